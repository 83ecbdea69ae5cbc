package local_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/local"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// binDir is the host build of the functions (make build-host).
func binDir(t *testing.T) string {
	t.Helper()
	d, _ := filepath.Abs("../../build/host")
	if _, err := os.Stat(filepath.Join(d, "find", "bootstrap")); err != nil {
		t.Fatalf("host binaries missing in %s: run `make build-host` (make test does)", d)
	}
	return d
}

// TestMotoRunHandTemplate runs a hand-written template of the same shape
// as the synthesized one through the engine and the local Lambda server.
func TestMotoRunHandTemplate(t *testing.T) {
	a := awstest.New(t)
	a.VerifySender(t, "keyrotor@example.com")
	a.Clock(t, -120*24*time.Hour)
	a.User(t, "alice", "email", "alice@example.com")
	id, secret := a.KeyWithSecret(t, "alice")
	a.Clock(t, -24*time.Hour)
	a.Use(t, id, secret)
	a.Clock(t, 0)
	zero := time.Duration(0)
	r, err := local.Run(context.Background(), local.Options{
		Endpoint: a.Endpoint, Template: templatePath(t), BinDir: binDir(t),
		Input: json.RawMessage(`{}`), RetryInterval: &zero, WorkDir: t.TempDir(), ExecutionName: "hand-1",
		Progress: func(e local.Event) { t.Logf("%s %s %d %s %s", e.Type, e.State, e.Index, e.User, e.Error) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "SUCCEEDED" {
		t.Fatalf("status %s: %s %s %s / %s", r.Status, r.FailedState, r.Error, r.Cause, r.FailedIn)
	}
	keys := a.Keys(t, "alice")
	if len(keys) != 1 || keys[id] != "" {
		t.Fatalf("keys after the run = %v; want only a new key", keys)
	}
	t.Logf("output: %s", r.Output)
}

func templatePath(t *testing.T) string {
	if p := os.Getenv("KEYROTOR_TEST_TEMPLATE"); p != "" {
		return p
	}
	return "testdata/template.json"
}
