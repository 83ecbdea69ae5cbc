package faultproxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/faultproxy"
)

// These tests put the proxy in front of a stub that answers 200 and
// records the bodies it got; no emulator needed.

type stub struct {
	mu     sync.Mutex
	bodies []string
}

func startStub(t *testing.T) (*stub, *faultproxy.Proxy) {
	t.Helper()
	s := &stub{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		s.mu.Unlock()
		io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	p, err := faultproxy.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	return s, p
}

func (s *stub) got() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...)
}

// raw is a hand-made AWS request.
type raw struct {
	service, method, path, target, form string
	contentType                         string
}

func (q raw) send(t *testing.T, base string) (*http.Response, error) {
	t.Helper()
	var body io.Reader
	if q.form != "" {
		body = strings.NewReader(q.form)
	}
	req, err := http.NewRequest(q.method, base+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if q.service != "" {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/"+q.service+"/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	}
	if q.target != "" {
		req.Header.Set("X-Amz-Target", q.target)
	}
	switch {
	case q.contentType != "":
		req.Header.Set("Content-Type", q.contentType)
	case q.form != "" && q.target == "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err == nil {
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func query(service, action string) raw {
	return raw{service: service, method: "POST", path: "/", form: url.Values{"Action": {action}, "Version": {"2010-05-08"}}.Encode()}
}

func jsonCall(service, target string) raw {
	return raw{service: service, method: "POST", path: "/", target: target, form: `{"SecretId":"s"}`, contentType: "application/x-amz-json-1.1"}
}

func TestIdentify(t *testing.T) {
	tests := []struct {
		name    string
		req     raw
		service string
		op      string
		action  string
	}{
		{"iam query", query("iam", "CreateAccessKey"), "iam", "CreateAccessKey", "iam:CreateAccessKey"},
		{"sts query", query("sts", "GetCallerIdentity"), "sts", "GetCallerIdentity", "sts:GetCallerIdentity"},
		{"sns query", query("sns", "Publish"), "sns", "Publish", "sns:Publish"},
		{"ses v1 query", query("ses", "SendEmail"), "ses", "SendEmail", "ses:SendEmail"},
		{"query in url", raw{service: "iam", method: "GET", path: "/?Action=ListUsers&Version=2010-05-08"}, "iam", "ListUsers", "iam:ListUsers"},
		{"secrets manager json", jsonCall("secretsmanager", "secretsmanager.PutSecretValue"), "secretsmanager", "PutSecretValue", "secretsmanager:PutSecretValue"},
		{"kms json 1.1", jsonCall("kms", "TrentService.Decrypt"), "kms", "Decrypt", "kms:Decrypt"},
		{"dynamodb json 1.0", jsonCall("dynamodb", "DynamoDB_20120810.PutItem"), "dynamodb", "PutItem", "dynamodb:PutItem"},
		{"unsigned json", raw{method: "POST", path: "/", target: "DynamoDB_20120810.GetItem", form: "{}", contentType: "application/x-amz-json-1.0"}, "dynamodb", "GetItem", "dynamodb:GetItem"},
		{"ses v2 send", raw{service: "ses", method: "POST", path: "/v2/email/outbound-emails", form: "{}", contentType: "application/json"}, "ses", "SendEmail", "ses:SendEmail"},
		{"ses v2 identity", raw{service: "ses", method: "GET", path: "/v2/email/identities/k%40example.com"}, "ses", "GetEmailIdentity", "ses:GetEmailIdentity"},
		{"s3 put x-id", raw{service: "s3", method: "PUT", path: "/b/runs/1/plan.json?x-id=PutObject", form: "data"}, "s3", "PutObject", "s3:PutObject"},
		{"s3 put plain", raw{service: "s3", method: "PUT", path: "/b/k", form: "data"}, "s3", "PutObject", "s3:PutObject"},
		{"s3 get", raw{service: "s3", method: "GET", path: "/b/a/b/c"}, "s3", "GetObject", "s3:GetObject"},
		{"s3 head", raw{service: "s3", method: "HEAD", path: "/b/a"}, "s3", "HeadObject", "s3:GetObject"},
		{"s3 list v2", raw{service: "s3", method: "GET", path: "/b?list-type=2&prefix=x"}, "s3", "ListObjectsV2", "s3:ListBucket"},
		{"s3 create bucket", raw{service: "s3", method: "PUT", path: "/b"}, "s3", "CreateBucket", "s3:CreateBucket"},
		{"s3 subresource", raw{service: "s3", method: "PUT", path: "/b/k?tagging"}, "s3", "PUT /b/k", ""},
		{"lambda invoke", raw{service: "lambda", method: "POST", path: "/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:f/invocations", form: "{}"}, "lambda", "Invoke", "lambda:InvokeFunction"},
		{"unknown rest", raw{service: "ses", method: "GET", path: "/v2/email/account"}, "ses", "GET /v2/email/account", ""},
		{"unsigned", raw{method: "GET", path: "/moto-api/data.json"}, "", "GET /moto-api/data.json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, p := startStub(t)
			resp, err := tt.req.send(t, p.URL())
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("send: %v %v", resp, err)
			}
			want := []faultproxy.Call{{Service: tt.service, Operation: tt.op, N: 1, Action: tt.action}}
			if tt.req.service != "" {
				want[0].AccessKeyID = "AKIDTEST"
			}
			if got := p.Log(); !reflect.DeepEqual(got, want) {
				t.Fatalf("Log() = %+v; want %+v", got, want)
			}
			if got := s.got(); len(got) != 1 || got[0] != tt.req.form {
				t.Fatalf("target got body %q; want %q", got, tt.req.form)
			}
		})
	}
}

func TestAction(t *testing.T) {
	tests := []struct {
		service, op, want string
	}{
		{"iam", "ListAccessKeys", "iam:ListAccessKeys"},
		{"iam", "TagUser", "iam:TagUser"},
		{"sts", "AssumeRole", "sts:AssumeRole"},
		{"secretsmanager", "GetSecretValue", "secretsmanager:GetSecretValue"},
		{"dynamodb", "PutItem", "dynamodb:PutItem"},
		{"kms", "Decrypt", "kms:Decrypt"},
		{"sns", "Publish", "sns:Publish"},
		{"ses", "SendEmail", "ses:SendEmail"},
		{"email", "SendRawEmail", "ses:SendRawEmail"},
		{"s3", "PutObject", "s3:PutObject"},
		{"s3", "GetObject", "s3:GetObject"},
		{"s3", "HeadObject", "s3:GetObject"},
		{"s3", "ListObjectsV2", "s3:ListBucket"},
		{"s3", "ListObjects", "s3:ListBucket"},
		{"s3", "ListBuckets", "s3:ListAllMyBuckets"},
		{"lambda", "Invoke", "lambda:InvokeFunction"},
		{"states", "StartExecution", "states:StartExecution"},
		{"s3", "PUT /b/k", ""},
		{"", "GET /moto-api/data.json", ""},
		{"", "GetItem", ""},
	}
	for _, tt := range tests {
		if got := faultproxy.Action(tt.service, tt.op); got != tt.want {
			t.Errorf("Action(%q, %q) = %q; want %q", tt.service, tt.op, got, tt.want)
		}
	}
}

// TestWriteLog: each call's signing key and action, as JSON lines that
// read back the same.
func TestWriteLog(t *testing.T) {
	_, p := startStub(t)
	p.FailNth("GetSecretValue", 1, faultproxy.Throttle)
	faults(t, p, query("iam", "ListAccessKeys"), jsonCall("secretsmanager", "secretsmanager.GetSecretValue"))
	var buf strings.Builder
	if err := p.WriteLog(&buf); err != nil {
		t.Fatal(err)
	}
	want := `{"service":"iam","operation":"ListAccessKeys","n":1,"accessKeyId":"AKIDTEST","action":"iam:ListAccessKeys"}
{"service":"secretsmanager","operation":"GetSecretValue","n":1,"fault":"throttle","accessKeyId":"AKIDTEST","action":"secretsmanager:GetSecretValue"}
`
	if buf.String() != want {
		t.Fatalf("WriteLog wrote\n%s\nwant\n%s", buf.String(), want)
	}
	calls, err := faultproxy.ReadLog(strings.NewReader(buf.String()))
	if err != nil || !reflect.DeepEqual(calls, p.Log()) {
		t.Fatalf("ReadLog = %+v, %v; want %+v", calls, err, p.Log())
	}
	path := filepath.Join(t.TempDir(), "calls.jsonl")
	if err := p.SaveLog(path); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != want {
		t.Fatalf("SaveLog wrote %q, %v; want %q", b, err, want)
	}
}

// faults sends reqs one after the other and returns the 1-based positions
// that met a fault (a non-200 answer or a broken connection).
func faults(t *testing.T, p *faultproxy.Proxy, reqs ...raw) []int {
	t.Helper()
	var out []int
	for i, q := range reqs {
		if resp, err := q.send(t, p.URL()); err != nil || resp.StatusCode != 200 {
			out = append(out, i+1)
		}
	}
	return out
}

func repeat(q raw, n int) []raw {
	out := make([]raw, n)
	for i := range out {
		out[i] = q
	}
	return out
}

// secret is a CreateSecret call naming name.
func secret(name string) raw {
	return raw{service: "secretsmanager", method: "POST", path: "/", target: "secretsmanager.CreateSecret", form: `{"Name":"` + name + `"}`, contentType: "application/x-amz-json-1.1"}
}

// userCall is a CreateAccessKey call for user.
func userCall(user string) raw {
	return raw{service: "iam", method: "POST", path: "/", form: url.Values{"Action": {"CreateAccessKey"}, "UserName": {user}, "Version": {"2010-05-08"}}.Encode()}
}

func TestFailNth(t *testing.T) {
	create, list := query("iam", "CreateAccessKey"), query("iam", "ListAccessKeys")
	snsTag, smTag := query("sns", "TagResource"), jsonCall("secretsmanager", "secretsmanager.TagResource")
	tests := []struct {
		name  string
		rules func(p *faultproxy.Proxy)
		reqs  []raw
		want  []int
	}{
		{"first", func(p *faultproxy.Proxy) { p.FailNth("CreateAccessKey", 1, faultproxy.ServerError) },
			[]raw{create, create}, []int{1}},
		{"counted per operation", func(p *faultproxy.Proxy) { p.FailNth("CreateAccessKey", 2, faultproxy.Throttle) },
			[]raw{create, list, list, create, create}, []int{4}},
		{"two rules", func(p *faultproxy.Proxy) {
			p.FailNth("ListAccessKeys", 1, faultproxy.Throttle)
			p.FailNth("ListAccessKeys", 3, faultproxy.DropConnection)
		}, repeat(list, 4), []int{1, 3}},
		{"same call twice: first rule wins, both spent", func(p *faultproxy.Proxy) {
			p.FailNth("ListAccessKeys", 2, faultproxy.Throttle)
			p.FailNth("ListAccessKeys", 2, faultproxy.ServerError)
		}, repeat(list, 4), []int{2}},
		{"any service", func(p *faultproxy.Proxy) { p.FailNth("TagResource", 2, faultproxy.Throttle) },
			[]raw{smTag, snsTag, snsTag}, []int{2}},
		{"one service", func(p *faultproxy.Proxy) { p.FailNth("sns:TagResource", 2, faultproxy.Throttle) },
			[]raw{smTag, snsTag, smTag, snsTag}, []int{4}},
		{"never reached", func(p *faultproxy.Proxy) { p.FailNth("CreateAccessKey", 5, faultproxy.Throttle) },
			repeat(create, 4), nil},
		{"cleared", func(p *faultproxy.Proxy) { p.FailNth("CreateAccessKey", 1, faultproxy.Throttle); p.Clear() },
			repeat(create, 2), nil},
		{"json body", func(p *faultproxy.Proxy) {
			p.FailNthContaining("CreateSecret", 1, faultproxy.ServerError, `"Name":"keys/alice"`)
		}, []raw{secret("keys/bob"), secret("keys/alice-b"), secret("keys/alice"), secret("keys/alice")}, []int{3}},
		{"query body", func(p *faultproxy.Proxy) {
			p.FailNthContaining("CreateAccessKey", 2, faultproxy.Throttle, "UserName=alice&")
		}, []raw{userCall("alice"), userCall("bob"), userCall("alice"), userCall("alice")}, []int{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, p := startStub(t)
			tt.rules(p)
			if got := faults(t, p, tt.reqs...); !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("faulted calls = %v; want %v", got, tt.want)
			}
			injected := 0
			for _, c := range p.Log() {
				if c.Fault != "" {
					injected++
				}
			}
			if injected != len(tt.want) {
				t.Fatalf("Log() shows %d faults; want %d: %+v", injected, len(tt.want), p.Log())
			}
		})
	}
}

// TestFailNthCountsFromNow: a rule set after some calls counts from then,
// while Call.N keeps counting from the start.
func TestFailNthCountsFromNow(t *testing.T) {
	_, p := startStub(t)
	list := query("iam", "ListAccessKeys")
	faults(t, p, list, list)
	p.FailNth("ListAccessKeys", 1, faultproxy.ServerError)
	if got := faults(t, p, list, list); !reflect.DeepEqual(got, []int{1}) {
		t.Fatalf("faulted = %v; want [1]", got)
	}
	log := p.Log()
	if c := log[2]; c.N != 3 || c.Fault != "server-error" {
		t.Fatalf("third call = %+v; want N 3 with a server-error", c)
	}
	if got, want := p.Calls(), map[string]int{"ListAccessKeys": 4}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Calls() = %v; want %v", got, want)
	}
	if got, want := p.Injected(), map[string]int{"ListAccessKeys": 1}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Injected() = %v; want %v", got, want)
	}
	p.ResetLog()
	if len(p.Log()) != 0 || p.Calls()["ListAccessKeys"] != 4 {
		t.Fatalf("ResetLog: log %v, calls %v", p.Log(), p.Calls())
	}
}

// TestFailRate: a seeded rate rule fails about that fraction of the
// matching calls, the same ones for the same seed, and no others.
func TestFailRate(t *testing.T) {
	const n = 1000
	var reqs []raw
	for i := range n {
		if i%2 == 0 {
			reqs = append(reqs, query("iam", "ListAccessKeys"))
		} else {
			reqs = append(reqs, query("iam", "GetUser"))
		}
	}
	run := func(seed int64) ([]int, map[string]int) {
		_, p := startStub(t)
		p.FailRate([]string{"ListAccessKeys"}, 0.3, faultproxy.Throttle, seed)
		return faults(t, p, reqs...), p.Injected()
	}
	a, injected := run(42)
	if len(a) < 110 || len(a) > 190 {
		t.Fatalf("%d of %d ListAccessKeys calls throttled; want about 150", len(a), n/2)
	}
	if got, want := injected, map[string]int{"ListAccessKeys": len(a)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("Injected() = %v; want %v", got, want)
	}
	for _, i := range a {
		if i%2 == 0 {
			t.Fatalf("call %d (GetUser) was faulted", i)
		}
	}
	if b, _ := run(42); !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed faulted different calls")
	}
	if c, _ := run(43); reflect.DeepEqual(a, c) {
		t.Fatal("another seed faulted the same calls")
	}
}

func TestFailRateAll(t *testing.T) {
	_, p := startStub(t)
	p.FailRate(nil, 1, faultproxy.ServerError, 1)
	got := faults(t, p, query("iam", "GetUser"), query("sts", "GetCallerIdentity"), jsonCall("secretsmanager", "secretsmanager.GetSecretValue"))
	if !reflect.DeepEqual(got, []int{1, 2, 3}) {
		t.Fatalf("faulted = %v; want all", got)
	}
	p.Clear()
	if got := faults(t, p, query("iam", "GetUser")); got != nil {
		t.Fatalf("faulted after Clear = %v", got)
	}
}

// TestNthBeforeRate: a FailNth call is not drawn for, so it does not shift
// the seeded sequence by more than that one call.
func TestNthBeforeRate(t *testing.T) {
	_, p := startStub(t)
	p.FailRate(nil, 0, faultproxy.Throttle, 1)
	p.FailNth("GetUser", 2, faultproxy.DropConnection)
	if got := faults(t, p, repeat(query("iam", "GetUser"), 3)...); !reflect.DeepEqual(got, []int{2}) {
		t.Fatalf("faulted = %v; want [2]", got)
	}
	if c := p.Log()[1]; c.Fault != "drop-connection" {
		t.Fatalf("second call = %+v; want drop-connection", c)
	}
}

// TestTimeoutHold: without a client timeout, a Timeout fault ends in a
// closed connection after TimeoutHold, and the target never sees the call.
func TestTimeoutHold(t *testing.T) {
	s, p := startStub(t)
	p.TimeoutHold = 300 * time.Millisecond
	p.FailNth("CreateAccessKey", 1, faultproxy.Timeout)
	start := time.Now()
	_, err := query("iam", "CreateAccessKey").send(t, p.URL())
	if err == nil {
		t.Fatal("a held call was answered")
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
		t.Fatalf("held %v; want about 300ms", d)
	}
	if got := s.got(); len(got) != 0 {
		t.Fatalf("target saw %d calls; want none", len(got))
	}
}

// TestCloseReleasesHeld: Close ends a held request at once.
func TestCloseReleasesHeld(t *testing.T) {
	_, p := startStub(t)
	p.FailNth("GetUser", 1, faultproxy.Timeout)
	done := make(chan error, 1)
	go func() { _, err := query("iam", "GetUser").send(t, p.URL()); done <- err }()
	for len(p.Log()) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	p.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("held call answered")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Close left the request held")
	}
}

func TestOperationsOf(t *testing.T) {
	calls := []faultproxy.Call{
		{Operation: "ListAccessKeys", N: 1}, {Operation: "CreateAccessKey", N: 1},
		{Operation: "ListAccessKeys", N: 2}, {Operation: "PutSecretValue", N: 1},
	}
	want := []string{"ListAccessKeys", "CreateAccessKey", "PutSecretValue"}
	if got := faultproxy.OperationsOf(calls); !reflect.DeepEqual(got, want) {
		t.Fatalf("OperationsOf(%v) = %v; want %v", calls, got, want)
	}
	if got := faultproxy.OperationsOf(nil); got != nil {
		t.Fatalf("OperationsOf(nil) = %v; want nil", got)
	}
}

func TestModeString(t *testing.T) {
	want := []string{"throttle", "server-error", "timeout", "drop-connection", "drop-response"}
	for i, m := range faultproxy.Modes {
		if m.String() != want[i] {
			t.Errorf("Mode(%d).String() = %q; want %q", i, m, want[i])
		}
	}
	if got := faultproxy.Mode(9).String(); got != "Mode(9)" {
		t.Errorf("Mode(9).String() = %q", got)
	}
}

// TestBodyRelayed: reading a body to match a rule leaves it whole for the
// service behind the proxy.
func TestBodyRelayed(t *testing.T) {
	s, p := startStub(t)
	p.FailNthContaining("CreateSecret", 1, faultproxy.ServerError, "never")
	faults(t, p, secret("keys/x"), userCall("alice"))
	got := s.got()
	if len(got) != 2 || got[0] != `{"Name":"keys/x"}` || !strings.Contains(got[1], "UserName=alice") {
		t.Fatalf("the service got %q", got)
	}
}
