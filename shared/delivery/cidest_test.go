package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/shared/delivery"
)

// Helpers of the gitlab and circleci destination tests.

// ciLog collects what delivery.Client logs, safe for the client's
// goroutines.
type ciLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *ciLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *ciLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// ciEnv is an Env whose hub holds creds (secret name to token), whose
// HTTP client logs JSON to the returned log, and that allows http on
// loopback (the emulators).
func ciEnv(creds map[string]string) (delivery.Env, *ciLog) {
	log := &ciLog{}
	return delivery.Env{
		HTTP: delivery.Client(slog.New(slog.NewJSONHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})), 5*time.Second),
		Credential: func(_ context.Context, name string) (string, error) {
			if v, ok := creds[name]; ok {
				return v, nil
			}
			return "", fmt.Errorf("secret %s not found", name)
		},
		AllowHTTP: true,
	}, log
}

// ciKey is the nth test access key: an id and a secret shaped like AWS's
// (the secret holds / and +).
func ciKey(n int) delivery.Key {
	return delivery.Key{
		AccessKeyID:     fmt.Sprintf("AKIAEXAMPLE%09d", n),
		SecretAccessKey: fmt.Sprintf("wJalrXUtnFEMI/K7MDENG+bPxRfiCY%010d", n),
	}
}

// ciNoLeak fails when any of secrets appears in any of texts.
func ciNoLeak(t *testing.T, what string, texts []string, secrets ...string) {
	t.Helper()
	for _, text := range texts {
		for _, s := range secrets {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("%s shows a secret or token: %q", what, text)
			}
		}
	}
}

// ciStatus returns the status of a *delivery.Error and whether it is
// retryable, failing the test for any other error.
func ciStatus(t *testing.T, err error) (int, bool) {
	t.Helper()
	var de *delivery.Error
	if !errors.As(err, &de) {
		t.Fatalf("error = %v (%T); want a *delivery.Error", err, err)
	}
	return de.Status, de.Retryable()
}

// ciFieldCase is one spec a Checker refuses: the field the error names
// and a word of the fix.
type ciFieldCase struct {
	name  string
	spec  string // JSON of the destination
	field string
	fix   string
}

func ciCheckFields(t *testing.T, tests []ciFieldCase) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := `{"version":1,"destinations":[{"type":"gitlab","project":"acme/other","credential":"c"},` + tc.spec + `]}`
			_, err := delivery.ParseDocument([]byte(doc))
			var fe *delivery.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("ParseDocument(%s) = %v; want a *FieldError", tc.spec, err)
			}
			if fe.Field != tc.field || !strings.Contains(fe.Msg, tc.fix) {
				t.Errorf("ParseDocument(%s) = %q: %q; want field %q and a fix mentioning %q", tc.spec, fe.Field, fe.Msg, tc.field, tc.fix)
			}
		})
	}
}

// TestCIEchoedSecretsRedacted: a service whose error message repeats the
// request (the token, the value sent) still yields errors and logs without
// them: the destinations redact the service's own words.
func TestCIEchoedSecretsRedacted(t *testing.T) {
	const token = "tok-0123456789abcdef"
	k := ciKey(5)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		if r.Method == http.MethodGet && r.Header.Get("PRIVATE-TOKEN") != "" {
			// GitLab has no such variable: the destination creates it.
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"message":"404 Variable Not Found"}`))
			return
		}
		w.WriteHeader(http.StatusUnprocessableEntity)
		msg, _ := json.Marshal(map[string]string{"message": "refused " + string(b) + " from " + r.Header.Get("PRIVATE-TOKEN") + r.Header.Get("Circle-Token")})
		w.Write(msg)
	}))
	defer srv.Close()
	tests := []struct {
		name string
		spec delivery.Spec
	}{
		{"gitlab", delivery.Spec{Type: "gitlab", Project: "acme/app"}},
		{"circleci project", delivery.Spec{Type: "circleci", Project: "gh/acme/app"}},
		{"circleci context", delivery.Spec{Type: "circleci", Context: "6b1c2a4e-8f0d-4e1a-9c3b-2d5e7f9a1b3c"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			tc.spec.Credential, tc.spec.URL = "t", srv.URL
			env, log := ciEnv(map[string]string{"t": token})
			d, err := delivery.Build(ctx, tc.spec, env)
			if err != nil {
				t.Fatal(err)
			}
			// Write the secret first, so the echo holds it.
			k := delivery.Key{AccessKeyID: k.SecretAccessKey, SecretAccessKey: k.SecretAccessKey}
			err = d.Write(ctx, k)
			if status, retryable := ciStatus(t, err); status != 422 || retryable {
				t.Errorf("Write = %v; want 422, not retryable", err)
			}
			if !strings.Contains(err.Error(), "[redacted]") {
				t.Errorf("Write = %q; want the echo redacted", err)
			}
			ciNoLeak(t, "error", []string{err.Error(), log.String()}, k.SecretAccessKey, token)
		})
	}
}
