package delivery_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/emulators/gitlab"
	"github.com/keyrotor/keyrotor/shared/delivery"
)

func startGitLab(t *testing.T) *gitlab.Server {
	t.Helper()
	s, err := gitlab.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestGitLabWrite(t *testing.T) {
	desc := "rotated by keyrotor"
	// kept is an existing variable's attributes, which a write must not
	// change.
	kept := gitlab.Variable{Protected: true, Masked: true, Raw: true, VariableType: "env_var", EnvironmentScope: "production", Description: &desc}
	tests := []struct {
		name     string
		spec     delivery.Spec
		scope    string // emulator scope of the variables
		existing bool   // the variables exist, with kept's attributes
		idName   string
		secName  string
		where    string
	}{
		{
			name:  "new project variables by path",
			spec:  delivery.Spec{Project: "acme/app"},
			scope: "project:acme/app", idName: "AWS_ACCESS_KEY_ID", secName: "AWS_SECRET_ACCESS_KEY",
			where: "gitlab project acme/app variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (scope *) on 127.0.0.1",
		},
		{
			name:  "existing protected masked production project variables by id",
			spec:  delivery.Spec{Project: "PROJECT_ID", EnvironmentScope: "production"},
			scope: "project:acme/app@production", existing: true, idName: "AWS_ACCESS_KEY_ID", secName: "AWS_SECRET_ACCESS_KEY",
			where: "gitlab project PROJECT_ID variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (scope production)",
		},
		{
			name:  "new project variables in a scope",
			spec:  delivery.Spec{Project: "acme/app", EnvironmentScope: "review/*"},
			scope: "project:acme/app@review/*", idName: "AWS_ACCESS_KEY_ID", secName: "AWS_SECRET_ACCESS_KEY",
			where: "gitlab project acme/app variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (scope review/*)",
		},
		{
			name:  "new group variables with other names",
			spec:  delivery.Spec{Group: "acme/team", IDName: "DEPLOY_KEY_ID", SecretName: "DEPLOY_SECRET"},
			scope: "group:acme/team", idName: "DEPLOY_KEY_ID", secName: "DEPLOY_SECRET",
			where: "gitlab group acme/team variables DEPLOY_KEY_ID, DEPLOY_SECRET (scope *)",
		},
		{
			name:  "existing group variables in a scope",
			spec:  delivery.Spec{Group: "acme/team", EnvironmentScope: "production"},
			scope: "group:acme/team@production", existing: true, idName: "AWS_ACCESS_KEY_ID", secName: "AWS_SECRET_ACCESS_KEY",
			where: "gitlab group acme/team variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (scope production)",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			gl := startGitLab(t)
			pid := gl.AddProject("acme/app")
			gl.AddGroup("acme/team")
			if tc.spec.Project == "PROJECT_ID" {
				tc.spec.Project = strconv.Itoa(pid)
				tc.where = strings.Replace(tc.where, "PROJECT_ID", tc.spec.Project, 1)
			}
			old := ciKey(1)
			if tc.existing {
				for name, value := range map[string]string{tc.idName: old.AccessKeyID, tc.secName: old.SecretAccessKey} {
					v := kept
					v.Key, v.Value = name, value
					if err := gl.SetVariable(tc.scope, v); err != nil {
						t.Fatal(err)
					}
					// The same key in the default scope, which the
					// destination must leave alone.
					other := gitlab.Variable{Key: name, Value: "other-scope-value"}
					if err := gl.SetVariable(strings.Split(tc.scope, "@")[0], other); err != nil {
						t.Fatal(err)
					}
				}
			}
			tc.spec.Type, tc.spec.Credential, tc.spec.URL = "gitlab", "hub/gitlab-token", gl.URL()
			env, log := ciEnv(map[string]string{"hub/gitlab-token": gl.Token()})
			d, err := delivery.Build(ctx, tc.spec, env)
			if err != nil {
				t.Fatalf("Build(%+v) = %v", tc.spec, err)
			}
			if got := d.Where(); !strings.HasPrefix(got, tc.where) {
				t.Errorf("Where() = %q; want %q", got, tc.where)
			}

			k := ciKey(2)
			if ok, err := d.Holds(ctx, k, time.Time{}); ok || err != nil {
				t.Errorf("Holds before Write = %v, %v; want false, nil", ok, err)
			}
			if err := d.Write(ctx, k); err != nil {
				t.Fatalf("Write = %v", err)
			}
			for name, want := range map[string]string{tc.idName: k.AccessKeyID, tc.secName: k.SecretAccessKey} {
				v, ok := gl.Variable(tc.scope, name)
				if !ok || v.Value != want {
					t.Errorf("%s holds %q, %v; want the new value", name, v.Value, ok)
				}
				if n := gl.Writes(tc.scope, name); n != 1 {
					t.Errorf("%s written %d times; want 1", name, n)
				}
				// A new variable: masked, not protected, in the scope.
				wantAttrs := gitlab.Variable{Key: name, Value: want, VariableType: "env_var", Masked: true, EnvironmentScope: "*"}
				if _, env, ok := strings.Cut(tc.scope, "@"); ok {
					wantAttrs.EnvironmentScope = env
				}
				if tc.existing {
					wantAttrs = kept
					wantAttrs.Key, wantAttrs.Value = name, want
				}
				if !sameGitLabVar(v, wantAttrs) {
					t.Errorf("%s = %+v; want %+v (only the value changed)", name, v, wantAttrs)
				}
				if tc.existing {
					if other, _ := gl.Value(strings.Split(tc.scope, "@")[0], name); other != "other-scope-value" {
						t.Errorf("%s in scope * = %q; want it untouched", name, other)
					}
				}
			}
			if ok, err := d.Holds(ctx, k, time.Time{}); !ok || err != nil {
				t.Errorf("Holds after Write = %v, %v; want true, nil", ok, err)
			}
			if ok, err := d.Holds(ctx, ciKey(3), time.Time{}); ok || err != nil {
				t.Errorf("Holds(another key) = %v, %v; want false, nil", ok, err)
			}
			ciNoLeak(t, "log", []string{log.String()}, k.SecretAccessKey, gl.Token())
			if !strings.Contains(log.String(), `"status":200`) {
				t.Errorf("log = %s; want a line per call", log.String())
			}
		})
	}
}

func sameGitLabVar(a, b gitlab.Variable) bool {
	da, db := "", ""
	if a.Description != nil {
		da = *a.Description
	}
	if b.Description != nil {
		db = *b.Description
	}
	a.Description, b.Description = nil, nil
	return a == b && da == db
}

func TestGitLabFailures(t *testing.T) {
	k := ciKey(7)
	tests := []struct {
		name      string
		spec      delivery.Spec
		token     string // the hub's token; "" is the emulator's
		fault     func(*gitlab.Server)
		status    int
		retryable bool
		msg       string
	}{
		{name: "wrong token", spec: delivery.Spec{Project: "acme/app"}, token: "glpat-wrong-token-123", status: 401, msg: "401 Unauthorized"},
		{name: "unknown project", spec: delivery.Spec{Project: "acme/nope"}, status: 404, msg: "404 Project Not Found"},
		{name: "unknown group", spec: delivery.Spec{Group: "nope"}, status: 404, msg: "404 Group Not Found"},
		{
			name: "server error", spec: delivery.Spec{Project: "acme/app"}, status: 500, retryable: true,
			fault: func(s *gitlab.Server) { s.Fail(nil, http.StatusInternalServerError, 1) },
		},
		{
			name: "throttled create", spec: delivery.Spec{Project: "acme/app"}, status: 429, retryable: true,
			fault: func(s *gitlab.Server) {
				s.Fail(func(r *http.Request) bool { return r.Method == http.MethodPost }, http.StatusTooManyRequests, 1)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			gl := startGitLab(t)
			gl.AddProject("acme/app")
			if tc.fault != nil {
				tc.fault(gl)
			}
			token := tc.token
			if token == "" {
				token = gl.Token()
			}
			tc.spec.Type, tc.spec.Credential, tc.spec.URL = "gitlab", "hub/gitlab", gl.URL()
			env, log := ciEnv(map[string]string{"hub/gitlab": token})
			d, err := delivery.Build(ctx, tc.spec, env)
			if err != nil {
				t.Fatal(err)
			}
			err = d.Write(ctx, k)
			status, retryable := ciStatus(t, err)
			if status != tc.status || retryable != tc.retryable {
				t.Errorf("Write = %v: status %d, retryable %v; want %d, %v", err, status, retryable, tc.status, tc.retryable)
			}
			if tc.msg != "" && !strings.HasSuffix(err.Error(), tc.msg) {
				t.Errorf("Write = %q; want the service's message %q", err, tc.msg)
			}
			_, herr := d.Holds(ctx, k, time.Time{})
			ciNoLeak(t, "error", []string{err.Error(), errString(herr), log.String()}, k.SecretAccessKey, token, gl.Token())
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestGitLabDayOutage: a destination that answers 500 for a day fails
// every write, retryably, and takes the key once it is back.
func TestGitLabDayOutage(t *testing.T) {
	ctx := context.Background()
	gl := startGitLab(t)
	gl.AddProject("acme/app")
	start := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	var elapsed atomic.Int64
	gl.SetClock(func() time.Time { return start.Add(time.Duration(elapsed.Load())) })
	gl.FailUntil(start.Add(24 * time.Hour))
	env, _ := ciEnv(map[string]string{"t": gl.Token()})
	d, err := delivery.Build(ctx, delivery.Spec{Type: "gitlab", Project: "acme/app", Credential: "t", URL: gl.URL()}, env)
	if err != nil {
		t.Fatal(err)
	}
	k := ciKey(9)
	for _, h := range []time.Duration{0, time.Hour, 23 * time.Hour} {
		elapsed.Store(int64(h))
		if status, retryable := ciStatus(t, d.Write(ctx, k)); status != 500 || !retryable {
			t.Errorf("Write after %v = %d, retryable %v; want 500, retryable", h, status, retryable)
		}
	}
	elapsed.Store(int64(24 * time.Hour))
	if err := d.Write(ctx, k); err != nil {
		t.Fatalf("Write after the outage = %v", err)
	}
	if ok, err := d.Holds(ctx, k, time.Time{}); !ok || err != nil {
		t.Errorf("Holds = %v, %v; want true", ok, err)
	}
}

func TestGitLabCheck(t *testing.T) {
	ciCheckFields(t, []ciFieldCase{
		{"no locator", `{"type":"gitlab","credential":"c"}`, "destinations[1].project", "full path"},
		{"both locators", `{"type":"gitlab","project":"a/b","group":"a","credential":"c"}`, "destinations[1].group", "not both"},
		{"project URL", `{"type":"gitlab","project":"https://gitlab.com/a/b","credential":"c"}`, "destinations[1].project", "url"},
		{"project one segment", `{"type":"gitlab","project":"app","credential":"c"}`, "destinations[1].project", "group/app"},
		{"project trailing slash", `{"type":"gitlab","project":"a/b/","credential":"c"}`, "destinations[1].project", "trailing"},
		{"group bad", `{"type":"gitlab","group":"a b","credential":"c"}`, "destinations[1].group", "full path"},
		{"scope spaces", `{"type":"gitlab","project":"a/b","environmentScope":" prod","credential":"c"}`, "destinations[1].environmentScope", "production"},
		{"bad idName", `{"type":"gitlab","project":"a/b","idName":"AWS-KEY","credential":"c"}`, "destinations[1].idName", "A-Z, a-z, 0-9 and _"},
		{"long secretName", `{"type":"gitlab","project":"a/b","secretName":"` + strings.Repeat("A", 256) + `","credential":"c"}`, "destinations[1].secretName", "255"},
		{"same names", `{"type":"gitlab","project":"a/b","idName":"K","secretName":"K","credential":"c"}`, "destinations[1].secretName", "two variables"},
		{"no credential", `{"type":"gitlab","project":"a/b"}`, "destinations[1].credential", "token"},
		{"field of github", `{"type":"gitlab","project":"a/b","repository":"o/r","credential":"c"}`, "destinations[1].repository", "remove it"},
		{"field of circleci", `{"type":"gitlab","project":"a/b","context":"x","credential":"c"}`, "destinations[1].context", "remove it"},
		{"http url", `{"type":"gitlab","project":"a/b","credential":"c","url":"http://gitlab.example.com"}`, "destinations[1].url", "TLS"},
		{"url with api", `{"type":"gitlab","project":"a/b","credential":"c","url":"https://gitlab.example.com/api/v4"}`, "destinations[1].url", "without it"},
		{"url with user", `{"type":"gitlab","project":"a/b","credential":"c","url":"https://me:pw@gitlab.example.com"}`, "destinations[1].url", "credential"},
	})
}

// TestGitLabBuild: what only building can check, the environment's rule
// for plain http and the hub's token.
func TestGitLabBuild(t *testing.T) {
	ctx := context.Background()
	env, _ := ciEnv(map[string]string{"t": "glpat-x", "empty": " "})
	tests := []struct {
		name  string
		spec  delivery.Spec
		allow bool
		want  string
	}{
		{"http loopback not allowed", delivery.Spec{Type: "gitlab", Project: "a/b", Credential: "t", URL: "http://127.0.0.1:1"}, false, "TLS"},
		{"missing hub secret", delivery.Spec{Type: "gitlab", Project: "a/b", Credential: "nope"}, true, "read credential nope"},
		{"empty hub secret", delivery.Spec{Type: "gitlab", Project: "a/b", Credential: "empty"}, true, "empty"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := env
			e.AllowHTTP = tc.allow
			_, err := delivery.Build(ctx, tc.spec, e)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Build(%+v) = %v; want an error mentioning %q", tc.spec, err, tc.want)
			}
		})
	}
}

// TestGitLabUnmaskable: a value GitLab could not mask is created
// unmasked rather than refused; one it can is created masked.
func TestGitLabUnmaskable(t *testing.T) {
	ctx := context.Background()
	gl := startGitLab(t)
	gl.AddProject("acme/app")
	env, _ := ciEnv(map[string]string{"t": gl.Token()})
	d, err := delivery.Build(ctx, delivery.Spec{Type: "gitlab", Project: "acme/app", Credential: "t", URL: gl.URL()}, env)
	if err != nil {
		t.Fatal(err)
	}
	k := delivery.Key{AccessKeyID: "SHORT", SecretAccessKey: "a secret with spaces"}
	if err := d.Write(ctx, k); err != nil {
		t.Fatalf("Write = %v", err)
	}
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if v, ok := gl.Variable("project:acme/app", name); !ok || v.Masked || v.Protected {
			t.Errorf("%s = %+v, %v; want it unmasked and unprotected", name, v, ok)
		}
	}
	if ok, err := d.Holds(ctx, k, time.Time{}); !ok || err != nil {
		t.Errorf("Holds = %v, %v; want true", ok, err)
	}
}

// TestGitLabHidden: a masked and hidden variable never shows its value,
// so Holds says it cannot confirm it rather than answering false forever.
func TestGitLabHidden(t *testing.T) {
	ctx := context.Background()
	gl := startGitLab(t)
	gl.AddProject("acme/app")
	k := ciKey(4)
	for name, value := range map[string]string{"AWS_ACCESS_KEY_ID": k.AccessKeyID, "AWS_SECRET_ACCESS_KEY": k.SecretAccessKey} {
		if err := gl.SetVariable("project:acme/app", gitlab.Variable{Key: name, Value: value, Masked: true, Hidden: true}); err != nil {
			t.Fatal(err)
		}
	}
	env, _ := ciEnv(map[string]string{"t": gl.Token()})
	d, err := delivery.Build(ctx, delivery.Spec{Type: "gitlab", Project: "acme/app", Credential: "t", URL: gl.URL()}, env)
	if err != nil {
		t.Fatal(err)
	}
	ok, err := d.Holds(ctx, k, time.Time{})
	if ok || err == nil || !strings.Contains(err.Error(), "hidden") {
		t.Errorf("Holds = %v, %v; want false and an error naming the hidden variable", ok, err)
	}
	ciNoLeak(t, "error", []string{errString(err)}, k.SecretAccessKey, gl.Token())
}
