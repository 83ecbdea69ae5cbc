package local_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
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

// TestMotoRunTemplate runs a hand-written template of the same shape
// as the synthesized one through the engine and the local Lambda server.
func TestMotoRunTemplate(t *testing.T) {
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

// templatePath is the synthesized template when `make synth` has run (as
// in make test), else a hand-written one of the same shape.
func templatePath(t *testing.T) string {
	if _, err := os.Stat("../../cdk.out/KeyRotor.template.json"); err == nil {
		return "../../cdk.out/KeyRotor.template.json"
	}
	t.Log("cdk.out missing: using testdata/template.json")
	return "testdata/template.json"
}

// TestMotoBadConfiguration: a function whose configuration is malformed
// fails at start-up with the variable named, and the account is unchanged.
func TestMotoBadConfiguration(t *testing.T) {
	a := awstest.New(t)
	a.Clock(t, -120*24*time.Hour)
	a.User(t, "alice", "email", "alice@example.com")
	id := a.Key(t, "alice")
	a.Clock(t, 0)
	raw, err := os.ReadFile(templatePath(t))
	if err != nil {
		t.Fatal(err)
	}
	var tmpl map[string]any
	json.Unmarshal(raw, &tmpl)
	for _, r := range tmpl["Resources"].(map[string]any) {
		res := r.(map[string]any)
		if res["Type"] == "AWS::Lambda::Function" {
			vars := res["Properties"].(map[string]any)["Environment"].(map[string]any)["Variables"].(map[string]any)
			vars["KEYROTOR_MAX_KEY_AGE_DAYS"] = "ninety"
		}
	}
	out, _ := json.Marshal(tmpl)
	bad := filepath.Join(t.TempDir(), "template.json")
	os.WriteFile(bad, out, 0o644)
	zero := time.Duration(0)
	r, err := local.Run(context.Background(), local.Options{Endpoint: a.Endpoint, Template: bad, BinDir: binDir(t),
		Input: json.RawMessage(`{}`), RetryInterval: &zero, WorkDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "FAILED" || r.FailedState != "FindDueKeys" || !strings.Contains(r.Cause, "KEYROTOR_MAX_KEY_AGE_DAYS") {
		t.Fatalf("status %s at %s: %s; want FAILED at FindDueKeys naming the variable", r.Status, r.FailedState, r.Cause)
	}
	if keys := a.Keys(t, "alice"); len(keys) != 1 || keys[id] != "Active" {
		t.Fatalf("keys changed: %v", keys)
	}
}
