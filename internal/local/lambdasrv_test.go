package local

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLambdaServer runs a tiny aws-lambda-go function over the Runtime API
// and checks what the Invoke API answers: the output, a named error by its
// Go type name, a panic, a crash, a timeout, and parallel invocations.
func TestLambdaServer(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, "./testdata/echofn")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv, err := NewServer([]Function{{Name: "echo", Binary: bin, Env: map[string]string{"ECHO_ENV": "set"}, Timeout: 2 * time.Second, MaxConcurrency: 4}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	tests := []struct {
		name, payload, wantType, wantIn string
	}{
		{"output and environment", `{"value":"hi"}`, "", `"echo":"hi","env":"set"`},
		{"named error", `{"do":"throttle"}`, "ThrottlingError", "Rate exceeded"},
		{"panic", `{"do":"panic"}`, "string", "boom"},
		{"crash", `{"do":"exit"}`, "Runtime.ExitError", "exit status 3"},
		{"timeout", `{"do":"sleep"}`, "Sandbox.Timedout", "timed out"},
		{"after a crash, a new process", `{"value":"again"}`, "", `"echo":"again"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, typ, err := srv.Invoke(ctx, "arn:aws:lambda:us-east-1:123456789012:function:echo", []byte(tt.payload))
			if err != nil || typ != tt.wantType || !strings.Contains(string(out), tt.wantIn) {
				t.Fatalf("Invoke(%s) = %s, %q, %v; want type %q containing %q", tt.payload, out, typ, err, tt.wantType, tt.wantIn)
			}
		})
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, _ := json.Marshal(map[string]string{"value": string(rune('a' + i))})
			if out, typ, err := srv.Invoke(ctx, "echo", b); err != nil || typ != "" || !strings.Contains(string(out), string(rune('a'+i))) {
				t.Errorf("parallel %d: %s %s %v", i, out, typ, err)
			}
		}()
	}
	wg.Wait()
	if _, _, err := srv.Invoke(ctx, "nope", []byte(`{}`)); err == nil {
		t.Fatal("an unknown function was invoked")
	}
	st := srv.Stats()
	if st.Invocations["echo"] < 14 || st.Errors["ThrottlingError"] != 1 || len(st.ColdStarts["echo"]) == 0 {
		t.Fatalf("stats = %+v", st)
	}
}
