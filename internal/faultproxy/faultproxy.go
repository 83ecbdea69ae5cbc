// Package faultproxy is a fault-injecting reverse proxy for tests and
// benchmarks. It sits in front of moto_server, names the AWS service and
// operation of every request, records them, and can answer chosen calls
// with throttling, a server error, a timeout or a dropped connection, or let
// a call through and drop the answer (the change happened; the caller never
// heard).
//
// Rules pick calls either by position (FailNth: the Nth matching call from
// now) or by chance (FailRate: a seeded fraction of matching calls). An
// operation is named as AWS names it ("CreateAccessKey", "PutSecretValue",
// "SendEmail"); prefix it with the service's signing name to tell apart
// operations several services share ("sns:TagResource").
//
// Faults reach the caller only if its SDK does not retry them: clients under
// test should use one attempt (awsconf.Options.MaxAttempts = 1) and, for
// Timeout, a short HTTP timeout.
//
// Calls that go through can also be held to behaviour of real AWS that moto
// lacks, each off by default: IAM's tag quotas (Proxy.TagLimits), IAM's
// eventual consistency for access keys (Proxy.Consistency), STS's refusal
// to assume a role that does not exist (Proxy.RoleChecks), the explicit
// denies of the caller's role on IAM users (Proxy.RoleDenies), and an
// organization's service control policies denying actions in an account
// (Proxy.DenyActions). The log names
// each call's signing access key and IAM action (Call.AccessKeyID,
// Call.Action), so a test can compare what a principal did with what its
// policy allows (WriteLog writes it as JSON lines).
package faultproxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iam"
)

// Mode is a kind of fault.
type Mode int

// The faults.
const (
	// Throttle answers with the protocol's throttling error (HTTP 400
	// Throttling or ThrottlingException; 429 TooManyRequestsException on
	// REST-JSON; 503 SlowDown on S3). AWS did nothing.
	Throttle Mode = iota
	// ServerError answers HTTP 500 InternalFailure (S3: InternalError).
	// AWS did nothing.
	ServerError
	// Timeout holds the request unanswered until the client gives up or
	// Proxy.TimeoutHold passes, then closes the connection. AWS did nothing.
	Timeout
	// DropConnection closes the connection without an answer. AWS did
	// nothing.
	DropConnection
	// DropResponse forwards the call, so the change happens, then closes
	// the connection without relaying the answer.
	DropResponse
)

// Modes lists every mode.
var Modes = []Mode{Throttle, ServerError, Timeout, DropConnection, DropResponse}

func (m Mode) String() string {
	names := [...]string{"throttle", "server-error", "timeout", "drop-connection", "drop-response"}
	if m < 0 || int(m) >= len(names) {
		return fmt.Sprintf("Mode(%d)", int(m))
	}
	return names[m]
}

// Call is one request the proxy saw.
type Call struct {
	// Service is the SigV4 signing name from the Authorization header's
	// credential scope: iam, sts, secretsmanager, sns, ses, s3, lambda...
	Service string `json:"service"`
	// Operation is the AWS operation name, or "METHOD /path" for a REST
	// call the proxy has no name for.
	Operation string `json:"operation"`
	// N counts the calls of Operation the proxy has seen, this one
	// included (1-based, across services).
	N int `json:"n"`
	// Fault is the injected Mode's name, or "" if the call went through.
	Fault string `json:"fault,omitempty"`
	// AccessKeyID is the access key that signed the call (SigV4
	// Credential=AKID/...), or "" for an unsigned call.
	AccessKeyID string `json:"accessKeyId,omitempty"`
	// Action is the IAM action that authorizes the call
	// ("iam:ListAccessKeys", "s3:ListBucket" for ListObjectsV2), or "" when
	// the proxy cannot name it (see Action).
	Action string `json:"action,omitempty"`
}

// OperationsOf lists the distinct operations of calls in the order of their
// first call, for generating one fault case per operation a step makes.
func OperationsOf(calls []Call) []string {
	var ops []string
	seen := map[string]bool{}
	for _, c := range calls {
		if !seen[c.Operation] {
			seen[c.Operation] = true
			ops = append(ops, c.Operation)
		}
	}
	return ops
}

// Proxy is a running fault proxy. Its methods are safe for concurrent use.
type Proxy struct {
	// TimeoutHold is the longest a Timeout fault holds a request (default
	// 10s). Set it before the first request.
	TimeoutHold time.Duration

	// TagLimits makes IAM TagUser calls that go through meet IAM's tag
	// quotas, which moto does not enforce (see tagUser). Set it before
	// the first request.
	TagLimits bool
	// Consistency, when positive, makes ListAccessKeys show for that long
	// after an access key write the user's keys as they were before it,
	// as IAM's eventual consistency can (see listKeys). A few seconds
	// is realistic. Set it before the first request.
	Consistency time.Duration
	// Now is the clock of the Consistency window (default time.Now).
	// Set it before the first request; the function may be called from
	// several goroutines.
	Now func() time.Time
	// RoleChecks makes an STS AssumeRole of a role that does not exist
	// in the target account answer AccessDenied, as AWS does; moto grants
	// it (see assumeRole). Set it before the first request.
	RoleChecks bool
	// RoleDenies makes an IAM call on a user, made with an assumed role's
	// credentials, answer AccessDenied when an explicit Deny of the role's
	// inline policies matches it, the user's ARN and tags (see
	// roleDenies); moto evaluates no policy. Set it before the first
	// request.
	RoleDenies bool

	ln        net.Listener
	srv       *http.Server
	rp        *httputil.ReverseProxy
	transport *http.Transport
	closed    chan struct{}
	closeOnce sync.Once

	mu       sync.Mutex
	nth      []*nthRule
	rate     []*rateRule
	counts   map[string]int
	injected map[string]int
	log      []Call

	target  *url.URL   // moto_server
	tagMu   sync.Mutex // one TagUser at a time when TagLimits is on
	keyMu   sync.Mutex // one access key write at a time when Consistency is on
	history map[string][]keyWrite

	principals map[string]principal // access key id -> who it is, from answers relayed
	denials    map[string][]string  // account -> denied IAM actions (DenyActions)
	iamOnce    sync.Once
	iamClient  *iam.Client // RoleChecks' GetRole, straight to the target
}

// New starts a proxy on a free loopback port in front of target (for
// example moto_server's endpoint, http://127.0.0.1:PORT).
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("parse target %q: %w", target, err)
	}
	if u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("target %q: want scheme://host:port", target)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // straight to the target, whatever HTTP_PROXY says
	tr.MaxIdleConnsPerHost = 64
	p := &Proxy{
		TimeoutHold: 10 * time.Second,
		ln:          ln,
		transport:   tr,
		closed:      make(chan struct{}),
		counts:      map[string]int{},
		injected:    map[string]int{},
		target:      u,
		history:     map[string][]keyWrite{},
		principals:  map[string]principal{},
		denials:     map[string][]string{},
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // moto may route on it; SigV4 signed it
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "faultproxy: forward to target: "+err.Error(), http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 30 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// URL is the proxy's endpoint, for awsconf.Options.Endpoint.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy and releases any request a Timeout holds.
func (p *Proxy) Close() {
	p.closeOnce.Do(func() {
		close(p.closed)
		_ = p.srv.Close()
		p.transport.CloseIdleConnections()
	})
}

// target is the operation a rule applies to: op, optionally in one service.
type target struct{ service, op string }

var serviceRE = regexp.MustCompile(`^[a-z0-9-]+$`)

// parseTarget reads "Op" or "service:Op".
func parseTarget(spec string) target {
	if svc, op, ok := strings.Cut(spec, ":"); ok && serviceRE.MatchString(svc) {
		return target{service: svc, op: op}
	}
	return target{op: spec}
}

func (t target) matches(service, op string) bool {
	return t.op == op && (t.service == "" || t.service == service)
}

type nthRule struct {
	target
	n, seen  int
	mode     Mode
	contains string // when set, only calls whose body holds it count
}

type rateRule struct {
	targets  []target // empty: every operation
	fraction float64
	rng      *mrand.Rand
	mode     Mode
}

func (r *rateRule) matches(service, op string) bool {
	if len(r.targets) == 0 {
		return true
	}
	for _, t := range r.targets {
		if t.matches(service, op) {
			return true
		}
	}
	return false
}

// FailNth answers the nth matching call of op (1-based, counted from now)
// with m. op is an operation name ("CreateAccessKey") or, to count one
// service's calls only, "service:Operation" ("sns:TagResource"). The rule
// fires once. If two rules pick the same call, the one added first wins and
// both are spent.
func (p *Proxy) FailNth(op string, n int, m Mode) {
	if n < 1 {
		panic(fmt.Sprintf("faultproxy: FailNth(%q, %d): n is 1-based", op, n))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nth = append(p.nth, &nthRule{target: parseTarget(op), n: n, mode: m})
}

// FailNthContaining is FailNth counting only the calls of op whose request
// body contains s (a JSON call's parameter, "iam-access-keys/alice" for one
// user's secret): the one call a test means, whichever order concurrent
// executions make their calls in.
func (p *Proxy) FailNthContaining(op string, n int, m Mode, s string) {
	if n < 1 || s == "" {
		panic(fmt.Sprintf("faultproxy: FailNthContaining(%q, %d, %q): n is 1-based and s not empty", op, n, s))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nth = append(p.nth, &nthRule{target: parseTarget(op), n: n, mode: m, contains: s})
}

// FailRate answers a fraction (0 to 1) of the calls of ops (every operation
// when ops is empty) with m, drawing from a generator seeded with seed: the
// same sequence of calls meets the same faults. ops take the same forms as
// in FailNth. A call FailNth picks is not drawn for.
func (p *Proxy) FailRate(ops []string, fraction float64, m Mode, seed int64) {
	r := &rateRule{fraction: fraction, mode: m, rng: mrand.New(mrand.NewPCG(uint64(seed), 0x6b6579726f746f72))}
	for _, o := range ops {
		r.targets = append(r.targets, parseTarget(o))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rate = append(p.rate, r)
}

// Clear removes every rule; counts and the log stay.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nth, p.rate = nil, nil
}

// Calls returns how many calls of each operation the proxy saw.
func (p *Proxy) Calls() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return copyCounts(p.counts)
}

// Injected returns how many faults the proxy injected, by operation.
func (p *Proxy) Injected() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return copyCounts(p.injected)
}

func copyCounts(m map[string]int) map[string]int {
	out := make(map[string]int, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// Log returns every call seen since New or ResetLog, in order.
func (p *Proxy) Log() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.log...)
}

// ResetLog forgets the calls logged so far. Rules, Calls and Injected stay.
func (p *Proxy) ResetLog() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
}

// decide counts the call, logs it and picks its fault, if any.
func (p *Proxy) decide(req request) (Mode, bool, time.Duration) {
	service, op := req.service, req.op
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[op]++
	var mode Mode
	faulty := false
	keep := p.nth[:0]
	for _, r := range p.nth {
		if r.matches(service, op) && (r.contains == "" || bytes.Contains(req.body, []byte(r.contains))) {
			r.seen++
			if r.seen == r.n && !faulty {
				mode, faulty = r.mode, true
			}
			if r.seen >= r.n {
				continue // spent
			}
		}
		keep = append(keep, r)
	}
	clear(p.nth[len(keep):])
	p.nth = keep
	for _, r := range p.rate {
		if !faulty && r.matches(service, op) && r.rng.Float64() < r.fraction {
			mode, faulty = r.mode, true
		}
	}
	c := Call{Service: service, Operation: op, N: p.counts[op], AccessKeyID: req.accessKeyID, Action: Action(service, op)}
	if faulty {
		c.Fault = mode.String()
		p.injected[op]++
	}
	p.log = append(p.log, c)
	return mode, faulty, p.TimeoutHold
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	req := identify(r)
	mode, faulty, hold := p.decide(req)
	if !faulty {
		p.forward(w, r, req)
		return
	}
	switch mode {
	case Throttle:
		req.throttle(w)
	case ServerError:
		req.serverError(w)
	case Timeout:
		// Read the whole body first: only then does the server notice
		// the client hanging up, which ends the request's context.
		_, _ = io.Copy(io.Discard, r.Body)
		t := time.NewTimer(hold)
		defer t.Stop()
		select {
		case <-r.Context().Done():
		case <-t.C:
		case <-p.closed:
		}
		hangUp(w, r)
	case DropConnection:
		_, _ = io.Copy(io.Discard, r.Body)
		hangUp(w, r)
	case DropResponse:
		// The change happens, even if the caller gives up meanwhile, and
		// meets the checks a call that goes through meets.
		p.forward(&discard{header: http.Header{}}, r.WithContext(context.WithoutCancel(r.Context())), req)
		hangUp(w, r)
	default:
		panic(fmt.Sprintf("faultproxy: unknown %v", mode))
	}
}

// discard is a ResponseWriter that throws the answer away.
type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// hangUp closes the client's connection without an answer.
//
// Go's HTTP transport silently resends a GET or HEAD whose reused
// connection closes before the first byte of an answer, so for those the
// proxy writes a few bytes of a status line first: the caller then always
// meets the fault (an unexpected EOF) instead of a resent call that works
// or not depending on connection reuse. Other calls (every IAM, STS,
// Secrets Manager, SNS and SES call is a POST) see the bare close.
func hangUp(w http.ResponseWriter, r *http.Request) {
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // the server drops the connection
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		_, _ = buf.WriteString("HTTP/1.1 ")
		_ = buf.Flush()
	}
	_ = conn.Close()
}

// protocol is an AWS wire protocol; errors are encoded per protocol.
type protocol int

const (
	restJSON protocol = iota // SES v2, Lambda
	awsQuery                 // IAM, STS, SNS, SES v1
	awsJSON                  // Secrets Manager, KMS, Step Functions...
	restXML                  // S3
)

// request is what the proxy knows of a call.
type request struct {
	service, op string
	proto       protocol
	contentType string     // for awsJSON: the request's (1.0 or 1.1)
	accessKeyID string     // the signing key, "" if unsigned
	form        url.Values // for awsQuery: the parameters
	body        []byte     // the request's body (awsJSON and awsQuery)
}

var scopeRE = regexp.MustCompile(`^([^/,\s]+)/[0-9]{8}/[^/]+/([^/]+)/aws4_request`)

// credential reads the signing access key and service from a SigV4
// Authorization header, or from the query of a presigned URL.
func credential(r *http.Request) (keyID, service string) {
	c := r.URL.Query().Get("X-Amz-Credential")
	if a := r.Header.Get("Authorization"); a != "" {
		if _, after, ok := strings.Cut(a, "Credential="); ok {
			c = after
		}
	}
	if m := scopeRE.FindStringSubmatch(c); m != nil {
		return m[1], m[2]
	}
	return "", ""
}

// targetServices names the service of an unsigned awsJSON call by the
// prefix of its X-Amz-Target.
var targetServices = map[string]string{
	"secretsmanager": "secretsmanager", "TrentService": "kms", "AWSStepFunctions": "states",
	"DynamoDB_20120810": "dynamodb", "AmazonSSM": "ssm", "Logs_20140328": "logs",
}

// identify names the service, operation and protocol of r. It reads a form
// body to find the Action and puts it back for forwarding.
func identify(r *http.Request) request {
	var req request
	req.accessKeyID, req.service = credential(r)
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		req.proto, req.contentType = awsJSON, r.Header.Get("Content-Type")
		var prefix string
		prefix, req.op, _ = strings.Cut(t, ".")
		if req.op == "" {
			req.op = t
		}
		if req.service == "" {
			req.service = targetServices[prefix]
		}
		if r.Body != nil {
			body, err := io.ReadAll(r.Body)
			_ = r.Body.Close()
			r.Body = io.NopCloser(bytes.NewReader(body))
			if err == nil {
				req.body = body
			}
		}
		return req
	}
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") && r.Body != nil {
		body, err := io.ReadAll(r.Body)
		_ = r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if err == nil {
			req.body = body
			if v, perr := url.ParseQuery(string(body)); perr == nil && v.Get("Action") != "" {
				req.op, req.proto, req.form = v.Get("Action"), awsQuery, v
				return req
			}
		}
	}
	if q := r.URL.Query(); q.Get("Action") != "" {
		req.op, req.proto, req.form = q.Get("Action"), awsQuery, q
		return req
	}
	if req.service == "s3" {
		req.proto = restXML
	}
	req.op = restOperation(req.service, r)
	return req
}

// route names a REST operation: method and path, where "*" stands for one
// path segment and "**" for one or more.
type route struct{ service, method, path, op string }

var routes = []route{
	{"ses", "POST", "/v2/email/outbound-emails", "SendEmail"},
	{"ses", "POST", "/v2/email/identities", "CreateEmailIdentity"},
	{"ses", "GET", "/v2/email/identities", "ListEmailIdentities"},
	{"ses", "GET", "/v2/email/identities/*", "GetEmailIdentity"},
	{"ses", "DELETE", "/v2/email/identities/*", "DeleteEmailIdentity"},
	{"lambda", "POST", "/2015-03-31/functions/*/invocations", "Invoke"},
	{"lambda", "GET", "/2015-03-31/functions/*", "GetFunction"},
	{"s3", "GET", "/", "ListBuckets"},
	{"s3", "PUT", "/*", "CreateBucket"},
	{"s3", "HEAD", "/*", "HeadBucket"},
	{"s3", "DELETE", "/*", "DeleteBucket"},
	{"s3", "GET", "/*", "ListObjects"}, // ListObjectsV2 has ?list-type=2
	{"s3", "PUT", "/*/**", "PutObject"},
	{"s3", "GET", "/*/**", "GetObject"},
	{"s3", "HEAD", "/*/**", "HeadObject"},
	{"s3", "DELETE", "/*/**", "DeleteObject"},
}

func restOperation(service string, r *http.Request) string {
	q := r.URL.Query()
	if service == "s3" {
		// The SDK names most S3 operations in the query (?x-id=PutObject).
		if id := q.Get("x-id"); id != "" {
			return id
		}
		if q.Get("list-type") == "2" {
			return "ListObjectsV2"
		}
	}
	segs := splitPath(r.URL.Path)
	for _, rt := range routes {
		if rt.service == service && rt.method == r.Method && pathMatches(splitPath(rt.path), segs) {
			if service == "s3" && len(q) > 0 && rt.op != "ListObjects" {
				break // a subresource (?tagging, ?uploads...): not the plain operation
			}
			return rt.op
		}
	}
	return r.Method + " " + r.URL.Path
}

func splitPath(p string) []string {
	p = strings.Trim(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func pathMatches(pattern, segs []string) bool {
	for i, p := range pattern {
		if p == "**" {
			return len(segs) > i
		}
		if i >= len(segs) || (p != "*" && p != segs[i]) {
			return false
		}
	}
	return len(segs) == len(pattern)
}

func requestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// throttle writes the protocol's throttling error.
func (req request) throttle(w http.ResponseWriter) {
	switch req.proto {
	case awsQuery:
		req.queryError(w, http.StatusBadRequest, "Sender", "Throttling", "Rate exceeded")
	case awsJSON:
		req.jsonError(w, http.StatusBadRequest, "ThrottlingException", "Rate exceeded")
	case restXML:
		req.xmlError(w, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	default:
		req.jsonError(w, http.StatusTooManyRequests, "TooManyRequestsException", "Rate exceeded")
	}
}

// serverError writes the protocol's internal server error.
func (req request) serverError(w http.ResponseWriter) {
	const msg = "faultproxy: injected server error"
	switch req.proto {
	case awsQuery:
		req.queryError(w, http.StatusInternalServerError, "Receiver", "InternalFailure", msg)
	case restXML:
		req.xmlError(w, http.StatusInternalServerError, "InternalError", msg)
	default:
		req.jsonError(w, http.StatusInternalServerError, "InternalFailure", msg)
	}
}

func (req request) queryError(w http.ResponseWriter, status int, typ, code, msg string) {
	writeQueryError(w, status, "", typ, code, msg)
}

// writeQueryError writes an awsQuery error, in the namespace ns when set:
// <ErrorResponse xmlns="..."><Error><Type>...</Type><Code>...
func writeQueryError(w http.ResponseWriter, status int, ns, typ, code, msg string) {
	id := requestID()
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("X-Amzn-RequestId", id)
	w.WriteHeader(status)
	var m strings.Builder
	_ = xml.EscapeText(&m, []byte(msg))
	attr := ""
	if ns != "" {
		attr = ` xmlns="` + ns + `"`
	}
	fmt.Fprintf(w, `<ErrorResponse%s><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`, attr, typ, code, m.String(), id)
}

// jsonError writes an awsJson or restJson error: the code in the
// X-Amzn-ErrorType header and, for awsJson, in __type too.
func (req request) jsonError(w http.ResponseWriter, status int, code, msg string) {
	ct, body := "application/json", fmt.Sprintf(`{"message":%q}`, msg)
	if req.proto == awsJSON {
		ct = req.contentType
		if !strings.HasPrefix(ct, "application/x-amz-json") {
			ct = "application/x-amz-json-1.1"
		}
		body = fmt.Sprintf(`{"__type":%q,"message":%q}`, code, msg)
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Amzn-ErrorType", code)
	w.Header().Set("X-Amzn-RequestId", requestID())
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (req request) xmlError(w http.ResponseWriter, status int, code, msg string) {
	id := requestID()
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Amz-Request-Id", id)
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>%s</Code><Message>%s</Message><RequestId>%s</RequestId></Error>`, code, msg, id)
}
