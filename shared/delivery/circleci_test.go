package delivery_test

import (
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/emulators/circleci"
	"github.com/keyrotor/keyrotor/shared/delivery"
)

// startCircleCI starts an emulator whose clock the returned function
// moves forward.
func startCircleCI(t *testing.T, start time.Time) (*circleci.Server, func(time.Duration)) {
	t.Helper()
	s, err := circleci.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	var elapsed atomic.Int64
	s.SetClock(func() time.Time { return start.Add(time.Duration(elapsed.Load())) })
	return s, func(d time.Duration) { elapsed.Add(int64(d)) }
}

func TestCircleCIWrite(t *testing.T) {
	start := time.Date(2026, 6, 1, 9, 0, 0, 500_000_000, time.UTC)
	tests := []struct {
		name    string
		spec    delivery.Spec // Project or Context "CONTEXT"
		idName  string
		secName string
		where   string
	}{
		{
			name: "project", spec: delivery.Spec{Project: "gh/acme/app"},
			idName: "AWS_ACCESS_KEY_ID", secName: "AWS_SECRET_ACCESS_KEY",
			where: "circleci project gh/acme/app variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY on 127.0.0.1",
		},
		{
			name: "project of a GitHub App organization", spec: delivery.Spec{Project: "circleci/6b1c2a4e-8f0d-4e1a-9c3b-2d5e7f9a1b3c/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9", IDName: "K_ID", SecretName: "K_SECRET"},
			idName: "K_ID", secName: "K_SECRET",
			where: "circleci project circleci/6b1c2a4e-8f0d-4e1a-9c3b-2d5e7f9a1b3c/0f1e2d3c-4b5a-4978-8695-a4b3c2d1e0f9 variables K_ID, K_SECRET",
		},
		{
			name: "context", spec: delivery.Spec{Context: "CONTEXT"},
			idName: "AWS_ACCESS_KEY_ID", secName: "AWS_SECRET_ACCESS_KEY",
			where: "circleci context CONTEXT variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cc, advance := startCircleCI(t, start)
			scope := "project:" + tc.spec.Project
			if tc.spec.Project != "" {
				cc.AddProject(tc.spec.Project)
			} else {
				tc.spec.Context = cc.AddContext("deploy")
				tc.where = strings.Replace(tc.where, "CONTEXT", tc.spec.Context, 1)
				scope = "context:" + tc.spec.Context
				// Other variables make the list span pages.
				cc.SetPageSize(1)
				for _, n := range []string{"A_OTHER", "ZZ_OTHER"} {
					if err := cc.SetVariable(scope, n, "value"); err != nil {
						t.Fatal(err)
					}
				}
			}
			tc.spec.Type, tc.spec.Credential, tc.spec.URL = "circleci", "hub/circleci", cc.URL()
			env, log := ciEnv(map[string]string{"hub/circleci": cc.Token()})
			d, err := delivery.Build(ctx, tc.spec, env)
			if err != nil {
				t.Fatalf("Build(%+v) = %v", tc.spec, err)
			}
			if got := d.Where(); !strings.HasPrefix(got, tc.where) {
				t.Errorf("Where() = %q; want %q", got, tc.where)
			}

			k := ciKey(2)
			advance(time.Hour)
			since := start.Add(time.Hour)
			if ok, err := d.Holds(ctx, k, since); ok || err != nil {
				t.Errorf("Holds before Write = %v, %v; want false, nil", ok, err)
			}
			if err := d.Write(ctx, k); err != nil {
				t.Fatalf("Write = %v", err)
			}
			for name, want := range map[string]string{tc.idName: k.AccessKeyID, tc.secName: k.SecretAccessKey} {
				if got, ok := cc.Value(scope, name); !ok || got != want {
					t.Errorf("%s holds %q, %v; want the new value", name, got, ok)
				}
				if n := cc.Writes(scope, name); n != 1 {
					t.Errorf("%s written %d times; want 1", name, n)
				}
			}
			if ok, err := d.Holds(ctx, k, since); !ok || err != nil {
				t.Errorf("Holds after Write = %v, %v; want true, nil", ok, err)
			}
			if tc.spec.Project != "" {
				// All a project variable shows is its last four characters.
				if ok, err := d.Holds(ctx, ciKey(3), since); ok || err != nil {
					t.Errorf("Holds(another key) = %v, %v; want false, nil", ok, err)
				}
			} else {
				// A context variable shows when it was written, nothing of
				// its value: since is what tells rotations apart, to the
				// second (the write was at 10:00:00.5).
				if ok, err := d.Holds(ctx, k, since.Add(400*time.Millisecond)); !ok || err != nil {
					t.Errorf("Holds(since the same second) = %v, %v; want true, nil", ok, err)
				}
				if ok, err := d.Holds(ctx, k, since.Add(time.Second)); ok || err != nil {
					t.Errorf("Holds(since a second later) = %v, %v; want false, nil", ok, err)
				}
			}
			ciNoLeak(t, "log", []string{log.String()}, k.SecretAccessKey, cc.Token())
		})
	}
}

// TestCircleCIContextHalfWritten: a context holding only one of the two
// variables, or an old one, does not hold the key.
func TestCircleCIContextHalfWritten(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	cc, advance := startCircleCI(t, start)
	id := cc.AddContext("deploy")
	env, _ := ciEnv(map[string]string{"t": cc.Token()})
	d, err := delivery.Build(ctx, delivery.Spec{Type: "circleci", Context: id, Credential: "t", URL: cc.URL()}, env)
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.SetVariable("context:"+id, "AWS_SECRET_ACCESS_KEY", "old"); err != nil {
		t.Fatal(err)
	}
	advance(time.Hour)
	if err := cc.SetVariable("context:"+id, "AWS_ACCESS_KEY_ID", "new"); err != nil {
		t.Fatal(err)
	}
	if ok, err := d.Holds(ctx, ciKey(1), start.Add(time.Hour)); ok || err != nil {
		t.Errorf("Holds with the secret older than since = %v, %v; want false, nil", ok, err)
	}
}

func TestCircleCIFailures(t *testing.T) {
	k := ciKey(7)
	tests := []struct {
		name      string
		spec      delivery.Spec
		token     string
		fault     func(*circleci.Server)
		status    int
		retryable bool
		msg       string
	}{
		{name: "wrong token", spec: delivery.Spec{Project: "gh/acme/app"}, token: "CCIPAT_wrong_token_1234", status: 401, msg: "You must log in first."},
		{name: "wrong token on a context", spec: delivery.Spec{Context: "CONTEXT"}, token: "CCIPAT_wrong_token_1234", status: 401, msg: "You must log in first."},
		{name: "unknown project", spec: delivery.Spec{Project: "gh/acme/nope"}, status: 404, msg: "Project not found"},
		{name: "unknown context", spec: delivery.Spec{Context: "00000000-0000-4000-8000-000000000000"}, status: 404, msg: "Context not found"},
		{
			name: "server error", spec: delivery.Spec{Project: "gh/acme/app"}, status: 500, retryable: true,
			fault: func(s *circleci.Server) { s.Fail(nil, http.StatusInternalServerError, 1) },
		},
		{
			name: "second write fails", spec: delivery.Spec{Context: "CONTEXT"}, status: 502, retryable: true,
			fault: func(s *circleci.Server) {
				s.Fail(func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/AWS_SECRET_ACCESS_KEY") }, http.StatusBadGateway, 1)
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			cc, _ := startCircleCI(t, time.Now())
			cc.AddProject("gh/acme/app")
			if tc.spec.Context == "CONTEXT" {
				tc.spec.Context = cc.AddContext("deploy")
			}
			if tc.fault != nil {
				tc.fault(cc)
			}
			token := tc.token
			if token == "" {
				token = cc.Token()
			}
			tc.spec.Type, tc.spec.Credential, tc.spec.URL = "circleci", "hub/cc", cc.URL()
			env, log := ciEnv(map[string]string{"hub/cc": token})
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
			ok, herr := d.Holds(ctx, k, time.Now().Add(-time.Minute))
			if ok {
				t.Errorf("Holds after a failed Write = true")
			}
			ciNoLeak(t, "error", []string{err.Error(), errString(herr), log.String()}, k.SecretAccessKey, token, cc.Token())
		})
	}
}

func TestCircleCICheck(t *testing.T) {
	ciCheckFields(t, []ciFieldCase{
		{"no locator", `{"type":"circleci","credential":"c"}`, "destinations[1].project", "gh/org/repo"},
		{"both locators", `{"type":"circleci","project":"gh/a/b","context":"6b1c2a4e-8f0d-4e1a-9c3b-2d5e7f9a1b3c","credential":"c"}`, "destinations[1].context", "not both"},
		{"slug without vcs", `{"type":"circleci","project":"acme/app","credential":"c"}`, "destinations[1].project", "gh/org/repo"},
		{"slug unknown vcs", `{"type":"circleci","project":"gl/acme/app","credential":"c"}`, "destinations[1].project", "circleci/<organization id>"},
		{"circleci slug not ids", `{"type":"circleci","project":"circleci/acme/app","credential":"c"}`, "destinations[1].project", "project id"},
		{"slug URL", `{"type":"circleci","project":"https://app.circleci.com/pipelines/gh/a/b","credential":"c"}`, "destinations[1].project", "slug"},
		{"context name", `{"type":"circleci","context":"deploy","credential":"c"}`, "destinations[1].context", "UUID"},
		{"name starts with digit", `{"type":"circleci","project":"gh/a/b","idName":"1KEY","credential":"c"}`, "destinations[1].idName", "starting with a letter"},
		{"name with dash", `{"type":"circleci","project":"gh/a/b","secretName":"AWS-SECRET","credential":"c"}`, "destinations[1].secretName", "letters, digits and _"},
		{"same names", `{"type":"circleci","project":"gh/a/b","idName":"K","secretName":"K","credential":"c"}`, "destinations[1].secretName", "two variables"},
		{"no credential", `{"type":"circleci","project":"gh/a/b"}`, "destinations[1].credential", "CircleCI"},
		{"field of gitlab", `{"type":"circleci","project":"gh/a/b","environmentScope":"production","credential":"c"}`, "destinations[1].environmentScope", "remove it"},
		{"group is gitlab's", `{"type":"circleci","project":"gh/a/b","group":"a","credential":"c"}`, "destinations[1].group", "remove it"},
		{"url with api", `{"type":"circleci","project":"gh/a/b","credential":"c","url":"https://circleci.example.com/api/v2/"}`, "destinations[1].url", "without it"},
	})
}
