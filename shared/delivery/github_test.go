package delivery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	ghemu "github.com/keyrotor/keyrotor/internal/emulators/github"
	"github.com/keyrotor/keyrotor/shared/delivery"
)

const (
	testKeyID  = "AKIAIOSFODNN7EXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	credName   = "keyrotor/github-token"
)

var testKey = delivery.Key{AccessKeyID: testKeyID, SecretAccessKey: testSecret}

// ghWorld is an emulator with octo/app, its environment prod and the
// organization octo, and the log of the destinations' HTTP client.
type ghWorld struct {
	emu *ghemu.Server
	log *bytes.Buffer
	now time.Time
	mu  sync.Mutex
}

func newGHWorld(t *testing.T) *ghWorld {
	t.Helper()
	emu, err := ghemu.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	emu.AddRepo("octo/app")
	emu.AddEnvironment("octo/app", "prod")
	emu.AddEnvironment("octo/app", "Production EU")
	emu.AddOrg("octo")
	w := &ghWorld{emu: emu, log: &bytes.Buffer{}, now: time.Date(2026, 5, 4, 9, 30, 15, 0, time.UTC)}
	emu.SetClock(w.clock)
	return w
}

func (w *ghWorld) clock() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.now
}

func (w *ghWorld) advance(d time.Duration) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.now = w.now.Add(d)
}

// env builds destinations whose hub secret credName holds token.
func (w *ghWorld) env(token string, transport http.RoundTripper) delivery.Env {
	hc := delivery.Client(slog.New(slog.NewJSONHandler(w.log, nil)), 5*time.Second)
	if transport != nil {
		hc.Transport = transport
	}
	return delivery.Env{
		HTTP:      hc,
		AllowHTTP: true,
		Credential: func(_ context.Context, name string) (string, error) {
			if name != credName {
				return "", fmt.Errorf("no secret %s", name)
			}
			return token, nil
		},
	}
}

func (w *ghWorld) build(t *testing.T, s delivery.Spec, env delivery.Env) delivery.Destination {
	t.Helper()
	s.Type, s.Credential, s.URL = "github", credName, w.emu.URL()
	d, err := delivery.Build(context.Background(), s, env)
	if err != nil {
		t.Fatalf("Build(%+v) = %v", s, err)
	}
	return d
}

var ghTargets = []struct {
	name  string
	spec  delivery.Spec
	scope string
	where string
}{
	{
		name: "repository", spec: delivery.Spec{Repository: "octo/app"}, scope: "repo:octo/app",
		where: "github repository secret octo/app: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY at 127.0.0.1:",
	},
	{
		name: "environment", spec: delivery.Spec{Repository: "octo/app", Environment: "prod", IDName: "PROD_KEY_ID", SecretName: "PROD_SECRET"}, scope: "env:octo/app/prod",
		where: "github environment secret octo/app (environment prod): PROD_KEY_ID, PROD_SECRET at 127.0.0.1:",
	},
	{
		name: "environment named with a space", spec: delivery.Spec{Repository: "octo/app", Environment: "Production EU", IDName: "K", SecretName: "S"}, scope: "env:octo/app/Production EU",
		where: "github environment secret octo/app (environment Production EU): K, S at 127.0.0.1:",
	},
	{
		name: "organization", spec: delivery.Spec{Organization: "octo"}, scope: "org:octo",
		where: "github organization secret octo: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY at 127.0.0.1:",
	},
}

// TestGitHubWrite: each kind of secret holds exactly the new key id and
// secret, each written once, from one public key fetch.
func TestGitHubWrite(t *testing.T) {
	for _, tt := range ghTargets {
		t.Run(tt.name, func(t *testing.T) {
			w := newGHWorld(t)
			d := w.build(t, tt.spec, w.env(w.emu.Token(), nil))
			if !strings.HasPrefix(d.Where(), tt.where) {
				t.Errorf("Where() = %q; want prefix %q", d.Where(), tt.where)
			}
			if err := d.Write(context.Background(), testKey); err != nil {
				t.Fatalf("Write = %v", err)
			}
			idName, secretName := tt.spec.Names()
			for name, want := range map[string]string{idName: testKeyID, secretName: testSecret} {
				if got, ok := w.emu.Value(tt.scope, name); !ok || got != want {
					t.Errorf("%s %s holds %q (%v); want %q", tt.scope, name, got, ok, want)
				}
				if n := w.emu.Writes(tt.scope, name); n != 1 {
					t.Errorf("%s %s written %d times; want 1", tt.scope, name, n)
				}
			}
			if n := w.emu.Count("GET", "/public-key"); n != 1 {
				t.Errorf("public key fetched %d times; want 1", n)
			}
			if tt.spec.Organization != "" {
				if v, _, _ := w.emu.Access(tt.scope, idName); v != "private" {
					t.Errorf("new organization secret's visibility = %q; want private", v)
				}
			}
		})
	}
}

func TestGitHubHolds(t *testing.T) {
	tests := []struct {
		name string
		// before runs before Holds, given the write time (whole second).
		before func(t *testing.T, w *ghWorld, d delivery.Destination, scope string) time.Time
		want   bool
	}{
		{
			name: "nothing written",
			before: func(t *testing.T, w *ghWorld, d delivery.Destination, scope string) time.Time {
				return w.clock()
			},
			want: false,
		},
		{
			name: "written at since",
			before: func(t *testing.T, w *ghWorld, d delivery.Destination, scope string) time.Time {
				since := w.clock()
				mustWrite(t, d)
				return since
			},
			want: true,
		},
		{
			name: "written in the second of since (updated_at has no fraction)",
			before: func(t *testing.T, w *ghWorld, d delivery.Destination, scope string) time.Time {
				mustWrite(t, d)
				return w.clock().Add(900 * time.Millisecond)
			},
			want: true,
		},
		{
			name: "written a second before since",
			before: func(t *testing.T, w *ghWorld, d delivery.Destination, scope string) time.Time {
				mustWrite(t, d)
				w.advance(time.Second)
				return w.clock()
			},
			want: false,
		},
		{
			name: "one of the two updated before since",
			before: func(t *testing.T, w *ghWorld, d delivery.Destination, scope string) time.Time {
				mustWrite(t, d)
				w.advance(time.Hour)
				if err := w.emu.SetSecret(scope, "AWS_ACCESS_KEY_ID", "AKIANEWER", ""); err != nil {
					t.Fatal(err)
				}
				return w.clock()
			},
			want: false,
		},
		{
			name: "only one of the two exists",
			before: func(t *testing.T, w *ghWorld, d delivery.Destination, scope string) time.Time {
				if err := w.emu.SetSecret(scope, "AWS_ACCESS_KEY_ID", testKeyID, ""); err != nil {
					t.Fatal(err)
				}
				return w.clock()
			},
			want: false,
		},
	}
	for _, target := range ghTargets {
		if target.spec.IDName != "" {
			continue // the cases name the default secrets
		}
		for _, tt := range tests {
			t.Run(target.name+"/"+tt.name, func(t *testing.T) {
				w := newGHWorld(t)
				d := w.build(t, target.spec, w.env(w.emu.Token(), nil))
				since := tt.before(t, w, d, target.scope)
				got, err := d.Holds(context.Background(), testKey, since)
				if err != nil || got != tt.want {
					t.Errorf("Holds(since %s) = %v, %v; want %v", since.Format(time.RFC3339Nano), got, err, tt.want)
				}
			})
		}
	}
}

func mustWrite(t *testing.T, d delivery.Destination) {
	t.Helper()
	if err := d.Write(context.Background(), testKey); err != nil {
		t.Fatalf("Write = %v", err)
	}
}

// TestGitHubErrors: refusals and failures are *delivery.Error with the
// status and GitHub's message, retryable only when they may pass.
func TestGitHubErrors(t *testing.T) {
	tests := []struct {
		name      string
		token     string
		spec      delivery.Spec
		setup     func(w *ghWorld)
		op        string // "write" or "holds"
		status    int
		msg       string
		retryable bool
	}{
		{name: "wrong token", token: "ghp_wrong", spec: delivery.Spec{Repository: "octo/app"}, op: "write", status: 401, msg: "Bad credentials"},
		{name: "wrong token, holds", token: "ghp_wrong", spec: delivery.Spec{Repository: "octo/app"}, op: "holds", status: 401, msg: "Bad credentials"},
		{name: "unknown repository", spec: delivery.Spec{Repository: "octo/gone"}, op: "write", status: 404, msg: "Not Found"},
		{name: "unknown environment", spec: delivery.Spec{Repository: "octo/app", Environment: "staging"}, op: "write", status: 404},
		{name: "unknown organization", spec: delivery.Spec{Organization: "gone"}, op: "write", status: 404},
		{
			name: "server error", spec: delivery.Spec{Repository: "octo/app"}, op: "write", status: 500, retryable: true,
			setup: func(w *ghWorld) { w.emu.Fail(ghemu.Match("PUT", ""), 500, 1) },
		},
		{
			name: "throttled", spec: delivery.Spec{Organization: "octo"}, op: "write", status: 429, retryable: true,
			setup: func(w *ghWorld) { w.emu.Fail(ghemu.Match("GET", "/public-key"), 429, 1) },
		},
		{
			name: "down for a day, holds", spec: delivery.Spec{Repository: "octo/app"}, op: "holds", status: 500, retryable: true,
			setup: func(w *ghWorld) { w.emu.DownUntil(w.clock().Add(24 * time.Hour)) },
		},
		{
			name: "422 twice", spec: delivery.Spec{Repository: "octo/app"}, op: "write", status: 422,
			setup: func(w *ghWorld) { w.emu.Fail(ghemu.Match("PUT", ""), 422, -1) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newGHWorld(t)
			if tt.setup != nil {
				tt.setup(w)
			}
			token := tt.token
			if token == "" {
				token = w.emu.Token()
			}
			d := w.build(t, tt.spec, w.env(token, nil))
			var err error
			if tt.op == "write" {
				err = d.Write(context.Background(), testKey)
			} else {
				_, err = d.Holds(context.Background(), testKey, w.clock())
			}
			var de *delivery.Error
			if !errors.As(err, &de) {
				t.Fatalf("%s = %v (%T); want *delivery.Error", tt.op, err, err)
			}
			if de.Status != tt.status || de.Retryable() != tt.retryable {
				t.Errorf("%s = %v: status %d retryable %v; want %d %v", tt.op, err, de.Status, de.Retryable(), tt.status, tt.retryable)
			}
			if tt.msg != "" && de.Msg != tt.msg {
				t.Errorf("Msg = %q; want GitHub's %q", de.Msg, tt.msg)
			}
			if de.Where != d.Where() || de.Op == "" {
				t.Errorf("error names %q / %q; want the destination and an operation", de.Where, de.Op)
			}
			assertNoSecret(t, "error", err.Error(), token)
			assertNoSecret(t, "log", w.log.String(), token)
		})
	}
}

func TestGitHubNoAnswer(t *testing.T) {
	w := newGHWorld(t)
	d := w.build(t, delivery.Spec{Repository: "octo/app"}, w.env(w.emu.Token(), nil))
	_ = w.emu.Close()
	err := d.Write(context.Background(), testKey)
	var de *delivery.Error
	if !errors.As(err, &de) || de.Status != 0 || !de.Retryable() {
		t.Fatalf("Write to a closed server = %v; want a retryable *delivery.Error without status", err)
	}
	assertNoSecret(t, "error", err.Error(), w.emu.Token())
}

// rotateAfterKey changes the emulator's key of scope right after the
// first public key answer: the PUT then carries a stale key id.
type rotateAfterKey struct {
	next  http.RoundTripper
	emu   *ghemu.Server
	scope string
	once  sync.Once
}

func (r *rotateAfterKey) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err == nil && strings.HasSuffix(req.URL.Path, "/public-key") {
		r.once.Do(func() { _ = r.emu.RotateKey(r.scope) })
	}
	return resp, err
}

// TestGitHubStaleKey: a key changed between the key fetch and the PUT is
// answered 422; Write fetches the key again, once, and succeeds.
func TestGitHubStaleKey(t *testing.T) {
	for _, tt := range ghTargets {
		t.Run(tt.name, func(t *testing.T) {
			w := newGHWorld(t)
			env := w.env(w.emu.Token(), nil)
			env.HTTP.Transport = &rotateAfterKey{next: env.HTTP.Transport, emu: w.emu, scope: tt.scope}
			d := w.build(t, tt.spec, env)
			if err := d.Write(context.Background(), testKey); err != nil {
				t.Fatalf("Write = %v", err)
			}
			idName, secretName := tt.spec.Names()
			for name, want := range map[string]string{idName: testKeyID, secretName: testSecret} {
				if got, _ := w.emu.Value(tt.scope, name); got != want || w.emu.Writes(tt.scope, name) != 1 {
					t.Errorf("%s holds %q after %d writes; want %q once", name, got, w.emu.Writes(tt.scope, name), want)
				}
			}
			if n := w.emu.Count("GET", "/public-key"); n != 2 {
				t.Errorf("public key fetched %d times; want 2", n)
			}
			var refused int
			for _, c := range w.emu.Calls() {
				if c.Method == "PUT" && c.Status == 422 {
					refused++
				}
			}
			if refused != 1 {
				t.Errorf("%d PUTs refused; want 1", refused)
			}
		})
	}
}

// TestGitHubOrgVisibility: an update keeps who can read an organization
// secret, the selected repositories included (over more than one page).
func TestGitHubOrgVisibility(t *testing.T) {
	tests := []struct {
		name       string
		visibility string
		repos      int
	}{
		{name: "all", visibility: "all"},
		{name: "private", visibility: "private"},
		{name: "selected, none", visibility: "selected", repos: 0},
		{name: "selected, 150 repositories", visibility: "selected", repos: 150},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newGHWorld(t)
			var ids []int64
			for i := range tt.repos {
				ids = append(ids, w.emu.AddRepo(fmt.Sprintf("octo/r%03d", i)))
			}
			for _, n := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
				if err := w.emu.SetSecret("org:octo", n, "old", tt.visibility, ids...); err != nil {
					t.Fatal(err)
				}
			}
			d := w.build(t, delivery.Spec{Organization: "octo"}, w.env(w.emu.Token(), nil))
			mustWrite(t, d)
			for _, n := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
				v, sel, _ := w.emu.Access("org:octo", n)
				if v != tt.visibility || fmt.Sprint(sel) != fmt.Sprint(ids) && len(sel)+len(ids) > 0 {
					t.Errorf("%s: visibility %s, %d repositories; want %s, %d", n, v, len(sel), tt.visibility, len(ids))
				}
				if got, _ := w.emu.Value("org:octo", n); got == "old" {
					t.Errorf("%s not updated", n)
				}
			}
		})
	}
}

// TestGitHubCheck: every spec GitHub or keyrotor cannot use is refused,
// naming the field (as a path in the document) and the fix.
func TestGitHubCheck(t *testing.T) {
	base := func(mod func(*delivery.Spec)) delivery.Spec {
		s := delivery.Spec{Type: "github", Repository: "octo/app", Credential: credName}
		mod(&s)
		return s
	}
	tests := []struct {
		name  string
		spec  delivery.Spec
		field string // "" when valid
		fix   string // part of the message
	}{
		{name: "repository", spec: base(func(*delivery.Spec) {})},
		{name: "environment", spec: base(func(s *delivery.Spec) { s.Environment = "prod" })},
		{name: "organization", spec: base(func(s *delivery.Spec) { s.Repository, s.Organization = "", "octo" })},
		{name: "names and an Enterprise Server URL", spec: base(func(s *delivery.Spec) {
			s.IDName, s.SecretName, s.URL = "DEPLOY_KEY_ID", "_deploy_secret", "https://ghe.example.com/api/v3"
		})},
		{name: "a loopback http URL (built only with AllowHTTP)", spec: base(func(s *delivery.Spec) { s.URL = "http://127.0.0.1:8080" })},
		{name: "neither", spec: base(func(s *delivery.Spec) { s.Repository = "" }), field: "destinations[0].repository", fix: "organization"},
		{name: "both", spec: base(func(s *delivery.Spec) { s.Organization = "octo" }), field: "destinations[0].organization", fix: "not both"},
		{name: "environment without repository", spec: base(func(s *delivery.Spec) { s.Repository, s.Organization, s.Environment = "", "octo", "prod" }), field: "destinations[0].environment", fix: "repository"},
		{name: "repository without owner", spec: base(func(s *delivery.Spec) { s.Repository = "app" }), field: "destinations[0].repository", fix: "owner/repo"},
		{name: "repository with a path", spec: base(func(s *delivery.Spec) { s.Repository = "octo/app/extra" }), field: "destinations[0].repository", fix: "owner/repo"},
		{name: "repository URL", spec: base(func(s *delivery.Spec) { s.Repository = "https://github.com/octo/app" }), field: "destinations[0].repository", fix: "owner/repo"},
		{name: "organization with a slash", spec: base(func(s *delivery.Spec) { s.Repository, s.Organization = "", "octo/app" }), field: "destinations[0].organization", fix: "login"},
		{name: "environment name too long", spec: base(func(s *delivery.Spec) { s.Environment = strings.Repeat("e", 256) }), field: "destinations[0].environment", fix: "255 characters"},
		{name: "environment with a newline", spec: base(func(s *delivery.Spec) { s.Environment = "prod\n" }), field: "destinations[0].environment", fix: "control characters"},
		{name: "field of another type", spec: base(func(s *delivery.Spec) { s.Project = "gh/octo/app" }), field: "destinations[0].project", fix: "remove it"},
		{name: "field of ssm", spec: base(func(s *delivery.Spec) { s.Region = "eu-west-1" }), field: "destinations[0].region", fix: "remove it"},
		{name: "GITHUB_ prefix", spec: base(func(s *delivery.Spec) { s.IDName = "GITHUB_KEY_ID" }), field: "destinations[0].idName", fix: "GITHUB_"},
		{name: "github_ prefix, any case", spec: base(func(s *delivery.Spec) { s.SecretName = "github_secret" }), field: "destinations[0].secretName", fix: "GITHUB_"},
		{name: "starts with a digit", spec: base(func(s *delivery.Spec) { s.IDName = "1KEY" }), field: "destinations[0].idName", fix: "not starting with a digit"},
		{name: "a hyphen", spec: base(func(s *delivery.Spec) { s.SecretName = "AWS-SECRET" }), field: "destinations[0].secretName", fix: "underscores"},
		{name: "a space", spec: base(func(s *delivery.Spec) { s.IDName = "AWS KEY" }), field: "destinations[0].idName", fix: "underscores"},
		{name: "the same name twice", spec: base(func(s *delivery.Spec) { s.IDName, s.SecretName = "KEY", "key" }), field: "destinations[0].secretName", fix: "same GitHub secret"},
		{name: "no credential", spec: base(func(s *delivery.Spec) { s.Credential = "" }), field: "destinations[0].credential", fix: "hub secret"},
		{name: "blank credential", spec: base(func(s *delivery.Spec) { s.Credential = "  " }), field: "destinations[0].credential", fix: "hub secret"},
		{name: "plain http elsewhere", spec: base(func(s *delivery.Spec) { s.URL = "http://ghe.example.com/api/v3" }), field: "destinations[0].url", fix: "TLS"},
		{name: "a URL with a query", spec: base(func(s *delivery.Spec) { s.URL = "https://ghe.example.com/api/v3?x=1" }), field: "destinations[0].url", fix: "base URL only"},
		{name: "a URL with a user", spec: base(func(s *delivery.Spec) { s.URL = "https://me:pw@ghe.example.com/api/v3" }), field: "destinations[0].url", fix: "base URL only"},
		{name: "not a URL", spec: base(func(s *delivery.Spec) { s.URL = "ghe.example.com" }), field: "destinations[0].url", fix: "absolute URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := delivery.Document{Version: delivery.DocumentVersion, Destinations: []delivery.Spec{tt.spec}}
			err := doc.Validate()
			if tt.field == "" {
				if err != nil {
					t.Fatalf("Validate(%+v) = %v; want nil", tt.spec, err)
				}
				return
			}
			var fe *delivery.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("Validate(%+v) = %v; want a *FieldError", tt.spec, err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Msg, tt.fix) {
				t.Errorf("Validate(%+v) = %v; want field %s and a message with %q", tt.spec, err, tt.field, tt.fix)
			}
		})
	}
}

// TestGitHubBuild: what only the Env can decide, when the destination is
// built.
func TestGitHubBuild(t *testing.T) {
	w := newGHWorld(t)
	tests := []struct {
		name string
		spec delivery.Spec
		env  func() delivery.Env
		want string // part of the error
	}{
		{
			name: "loopback http without AllowHTTP",
			spec: delivery.Spec{Repository: "octo/app", URL: w.emu.URL()},
			env:  func() delivery.Env { e := w.env("tok", nil); e.AllowHTTP = false; return e },
			want: "url: ",
		},
		{
			name: "the hub secret cannot be read",
			spec: delivery.Spec{Repository: "octo/app", URL: "https://api.github.com"},
			env: func() delivery.Env {
				e := w.env("tok", nil)
				e.Credential = func(context.Context, string) (string, error) { return "", errors.New("AccessDeniedException") }
				return e
			},
			want: "read github token from hub secret " + credName + ": AccessDeniedException",
		},
		{
			name: "the hub secret is empty",
			spec: delivery.Spec{Repository: "octo/app"},
			env:  func() delivery.Env { return w.env(" \n", nil) },
			want: "is empty",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.spec
			s.Type, s.Credential = "github", credName
			_, err := delivery.Build(context.Background(), s, tt.env())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Build = %v; want an error with %q", err, tt.want)
			}
		})
	}
	d := w.build(t, delivery.Spec{Repository: "octo/app", IDName: "K", SecretName: "S"}, w.env("tok", nil))
	d2, err := delivery.Build(context.Background(), delivery.Spec{Type: "github", Repository: "octo/app", IDName: "K", SecretName: "S", Credential: credName}, w.env("tok", nil))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d2.Where(), "github repository secret octo/app: K, S"; got != want {
		t.Errorf("Where() on github.com = %q; want %q", got, want)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(f, d); strings.Contains(got, "tok") || !strings.Contains(got, "octo/app") {
			t.Errorf("Sprintf(%s, destination) = %q; want its place and not its token", f, got)
		}
	}
}

// TestGitHubNoSecretInLogs: across successes, refusals and failures, the
// secret access key and the token appear neither in the HTTP client's log
// nor in an error, and a Key prints without its secret.
func TestGitHubNoSecretInLogs(t *testing.T) {
	w := newGHWorld(t)
	tok := w.emu.Token()
	ctx := context.Background()
	var errs []error
	for _, s := range []delivery.Spec{{Repository: "octo/app"}, {Repository: "octo/app", Environment: "prod"}, {Organization: "octo"}} {
		d := w.build(t, s, w.env(tok, nil))
		errs = append(errs, d.Write(ctx, testKey))
		_, err := d.Holds(ctx, testKey, w.clock())
		errs = append(errs, err)
		w.emu.Fail(ghemu.Match("PUT", "/AWS_SECRET_ACCESS_KEY"), 422, 2)
		errs = append(errs, d.Write(ctx, testKey))
		w.emu.Fail(nil, 502, 1)
		errs = append(errs, d.Write(ctx, testKey))
		bad := w.build(t, s, w.env(tok+"x", nil))
		errs = append(errs, bad.Write(ctx, testKey))
	}
	var failed int
	for _, err := range errs {
		if err != nil {
			failed++
			assertNoSecret(t, "error", err.Error(), tok)
			assertNoSecret(t, "error", fmt.Sprintf("%+v %#v", err, err), tok)
		}
	}
	if failed != 9 {
		t.Errorf("%d calls failed; want 9 (3 refusals, 3 server errors, 3 bad tokens): %v", failed, errs)
	}
	if !strings.Contains(w.log.String(), `"path":"/repos/octo/app/actions/secrets/AWS_SECRET_ACCESS_KEY"`) {
		t.Fatalf("the log shows no call; captured %q", w.log.String())
	}
	assertNoSecret(t, "log", w.log.String(), tok)
	for _, f := range []string{"%v", "%+v", "%#v", "%s"} {
		assertNoSecret(t, "Key formatted with "+f, fmt.Sprintf(f, testKey), tok)
	}
}

func assertNoSecret(t *testing.T, what, text, token string) {
	t.Helper()
	for _, s := range []string{testSecret, token} {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s shows a secret or the token: %q", what, text)
		}
	}
}

// headerCheck records the headers of every request.
type headerCheck struct {
	next http.RoundTripper
	mu   sync.Mutex
	seen []http.Header
}

func (h *headerCheck) RoundTrip(req *http.Request) (*http.Response, error) {
	h.mu.Lock()
	h.seen = append(h.seen, req.Header.Clone())
	h.mu.Unlock()
	return h.next.RoundTrip(req)
}

// TestGitHubHeaders: every call carries the token as a Bearer token, the
// media type and the API version GitHub's docs ask for.
func TestGitHubHeaders(t *testing.T) {
	w := newGHWorld(t)
	env := w.env(w.emu.Token(), nil)
	hc := &headerCheck{next: env.HTTP.Transport}
	env.HTTP.Transport = hc
	d := w.build(t, delivery.Spec{Organization: "octo"}, env)
	mustWrite(t, d)
	if _, err := d.Holds(context.Background(), testKey, w.clock()); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Authorization":        "Bearer " + w.emu.Token(),
		"Accept":               "application/vnd.github+json",
		"X-Github-Api-Version": "2022-11-28",
	}
	if len(hc.seen) < 6 {
		t.Fatalf("%d calls; want at least 6", len(hc.seen))
	}
	for i, h := range hc.seen {
		for k, v := range want {
			if h.Get(k) != v {
				t.Errorf("call %d: %s = %q; want %q", i, k, h.Get(k), v)
			}
		}
	}
}
