package local

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
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

// TestLambdaServerReserved: with Reserved 1, an invoke while another is in
// flight is refused as Lambda refuses it (429 TooManyRequestsException,
// reason ReservedFunctionConcurrentInvocationLimitExceeded) without
// running, and Stats counts it; once the first ends, invokes run again.
func TestLambdaServerReserved(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "bootstrap")
	build := exec.Command("go", "build", "-tags", "lambda.norpc", "-o", bin, "./testdata/echofn")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	srv, err := NewServer([]Function{
		{Name: "one", Binary: bin, Timeout: 10 * time.Second, Reserved: 1},
		{Name: "free", Binary: bin, Timeout: 10 * time.Second},
	}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	invoke := func(fn, payload string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(srv.URL()+"/2015-03-31/functions/"+fn+"/invocations", "application/json", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}

	// The echo function sleeps 5s when asked: hold the one slot with it.
	done := make(chan string, 1)
	go func() {
		_, body := invoke("one", `{"do":"sleep"}`)
		done <- body
	}()
	for srv.Stats().Invocations["one"] == 0 {
		time.Sleep(10 * time.Millisecond)
	}

	tests := []struct {
		name, fn   string
		wantStatus int
		wantType   string // X-Amzn-ErrorType
		wantBody   string
	}{
		{"second in flight", "one", http.StatusTooManyRequests, "TooManyRequestsException",
			`{"Reason":"ReservedFunctionConcurrentInvocationLimitExceeded","Type":"User","message":"Rate Exceeded."}`},
		{"another function", "free", http.StatusOK, "", `"echo":"x"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := invoke(tt.fn, `{"value":"x"}`)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("X-Amzn-ErrorType") != tt.wantType || !strings.Contains(body, tt.wantBody) {
				t.Fatalf("invoke %s = %d %q %s; want %d %q %s", tt.fn, resp.StatusCode, resp.Header.Get("X-Amzn-ErrorType"), body, tt.wantStatus, tt.wantType, tt.wantBody)
			}
		})
	}
	if st := srv.Stats(); st.Throttles["one"] != 1 || st.Invocations["one"] != 1 || st.Throttles["free"] != 0 {
		t.Fatalf("while the slot is held: stats = %+v; want one throttle and one invocation of one", st)
	}
	_, _, err = srv.Invoke(context.Background(), "one", []byte(`{"value":"y"}`))
	var throttled *ThrottleError
	if !errors.As(err, &throttled) || throttled.Function != "one" || throttled.Reserved != 1 {
		t.Fatalf("Invoke while the slot is held: %v; want a *ThrottleError", err)
	}

	if body := <-done; strings.Contains(body, "Rate Exceeded") {
		t.Fatalf("the first invoke was throttled: %s", body)
	}
	if resp, body := invoke("one", `{"value":"z"}`); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"echo":"z"`) {
		t.Fatalf("invoke after the slot freed = %d %s; want the echo", resp.StatusCode, body)
	}
	if st := srv.Stats(); st.Throttles["one"] != 2 || st.Invocations["one"] != 2 {
		t.Fatalf("stats = %+v; want 2 throttles and 2 invocations of one", st)
	}
}
