package main

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/local"
)

// TestSlowE2ERedriveAtEachState fails a run at each state in turn (a
// persistent fault), redrives it with `keyrotor run --redrive`, and checks
// the end state is that of an undisturbed run with no side effect repeated:
// one owner mail per key (assertRotated), one new key per user, no step
// that succeeded run again (top-level states before the failed one, and map
// children that succeeded), and every child run again restarted at the
// state it failed in or was cut short in.
func TestSlowE2ERedriveAtEachState(t *testing.T) {
	requireBuild(t)
	var failStart atomic.Bool
	testOptions = func(o *local.Options) {
		o.StartExecutionFault = func(name string) (string, string) {
			if failStart.Load() {
				return "StepFunctions.AccessDeniedException", "not authorized to perform states:StartExecution (injected)"
			}
			return "", ""
		}
	}
	t.Cleanup(func() { testOptions = nil })
	tests := []struct {
		name  string
		state string   // the top-level state that fails
		inner string   // the child state that fails, for RotateEachUser
		ops   []string // fault proxy operations failed every time
		after int      // ... but the first after calls
	}{
		// find writes the plan's items with PutObject; no other step runs
		// before it (the runner's own S3 calls do not go through the proxy).
		{name: "FindDueKeys", state: "FindDueKeys", ops: []string{"s3:PutObject"}},
		{name: "CreateAndStoreNewKey", state: "RotateEachUser", inner: "CreateAndStoreNewKey", ops: []string{"CreateAccessKey"}},
		// The owner's mail goes out, then telling the admins fails: the
		// redriven NotifyOwner must not mail again.
		{name: "NotifyOwner", state: "RotateEachUser", inner: "NotifyOwner", ops: []string{"sns:Publish"}},
		{name: "DeactivateOldKey", state: "RotateEachUser", inner: "DeactivateOldKey", ops: []string{"UpdateAccessKey"}},
		// The runner's ItemReader reads the plan's items (the first
		// GetObject); every later one is summarize reading the ResultWriter
		// files.
		{name: "SummarizeRun", state: "SummarizeRun", after: 1, ops: []string{"s3:GetObject"}},
		// The runner refuses StartExecution (a missing permission).
		{name: "StartGracePeriod", state: "RotateEachUser", inner: "StartGracePeriod"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := awstest.New(t)
			old := seed(t, a)
			p, err := faultproxy.New(a.Endpoint)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			switch {
			case tt.after > 0:
				for n := tt.after + 1; n <= tt.after+40; n++ {
					p.FailNth(tt.ops[0], n, faultproxy.ServerError)
				}
			case len(tt.ops) > 0:
				p.FailRate(tt.ops, 1, faultproxy.ServerError, 1)
			}
			failStart.Store(tt.ops == nil)
			work := t.TempDir()
			code, _, errOut := keyrotor(t, "", runArgsIn(work, p.URL(), "--retry-interval", "5ms", "--name", "redrive-"+strings.ToLower(tt.name))...)
			if code == 0 {
				t.Fatalf("the run succeeded despite the fault:\n%s", errOut)
			}
			if !strings.Contains(errOut, "execution FAILED at state "+tt.state) || !strings.Contains(errOut, tt.inner) {
				t.Fatalf("failure report does not name %s %s:\n%s", tt.state, tt.inner, errOut)
			}
			p.Clear()
			failStart.Store(false)
			code, out, errOut := keyrotor(t, "", "run", "--endpoint", p.URL(), "--template", template, "--bin", binDir,
				"--retry-interval", "5ms", "--redrive", work)
			if code != 0 {
				t.Fatalf("redrive exit %d\n%s", code, errOut)
			}
			assertRotated(t, a, old)
			var sum struct{ ExecutionName string }
			if err := json.Unmarshal([]byte(out), &sum); err != nil || sum.ExecutionName != "redrive-"+strings.ToLower(tt.name) {
				t.Errorf("redrive output names execution %q (%v); want the failed execution's name", sum.ExecutionName, err)
			}
			created := 0
			for _, c := range p.Log() {
				if c.Operation == "CreateAccessKey" && c.Fault == "" {
					created++
				}
			}
			if created != 3 {
				t.Errorf("%d access keys created; want 3 (one per rotated user)", created)
			}
			assertRedriven(t, filepath.Join(work, "history.jsonl"), tt.state, tt.inner)
			if _, err := os.Stat(filepath.Join(work, "history.jsonl")); err != nil {
				t.Fatal(err)
			}
			// The execution succeeded: nothing is left to redrive.
			code, _, errOut = keyrotor(t, "", "run", "--endpoint", p.URL(), "--template", template, "--bin", binDir, "--redrive", work)
			if code != 2 || !strings.Contains(errOut, "--redrive") || !strings.Contains(errOut, "SUCCEEDED") {
				t.Errorf("second redrive: exit %d, %q; want 2 naming --redrive and the execution's status", code, errOut)
			}
		})
	}
	t.Run("NotARun", func(t *testing.T) {
		dir := t.TempDir()
		code, _, errOut := keyrotor(t, "", "run", "--endpoint", "http://127.0.0.1:1", "--template", template, "--redrive", dir)
		if code != 2 || !strings.Contains(errOut, "--redrive "+dir) || !strings.Contains(errOut, "no failed execution") {
			t.Fatalf("exit %d, %q; want 2 naming --redrive and the directory", code, errOut)
		}
		code, _, errOut = keyrotor(t, "", "run", "--endpoint", "http://127.0.0.1:1", "--template", template, "--redrive", dir, "--input", "-")
		if code != 2 || !strings.Contains(errOut, "--input cannot be used with --redrive") {
			t.Fatalf("exit %d, %q; want 2 naming --input and --redrive", code, errOut)
		}
	})
}

// attempt is what one attempt of an execution did, from its history.
type attempt struct {
	top       []string         // top-level states entered, in order
	entered   map[int][]string // per map child: its states entered, in order
	succeeded map[int]bool
}

// readAttempts splits an execution's history into its attempts (the run,
// then each redrive).
func readAttempts(t *testing.T, path string) []*attempt {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cur := &attempt{entered: map[int][]string{}, succeeded: map[int]bool{}}
	all := []*attempt{cur}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		var ev struct {
			Type  string `json:"type"`
			Index *int   `json:"index"`
			State *struct {
				Name string `json:"name"`
			} `json:"state"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch {
		case ev.Type == "ExecutionRedriven":
			cur = &attempt{entered: map[int][]string{}, succeeded: map[int]bool{}}
			all = append(all, cur)
		case ev.Type == "StateEntered" && ev.Index == nil:
			cur.top = append(cur.top, ev.State.Name)
		case ev.Type == "StateEntered":
			cur.entered[*ev.Index] = append(cur.entered[*ev.Index], ev.State.Name)
		case ev.Type == "MapIterationSucceeded":
			cur.succeeded[*ev.Index] = true
		}
	}
	return all
}

// assertRedriven checks the history of a run that failed at state (inner,
// in a map child) and one redrive of it.
func assertRedriven(t *testing.T, path, state, inner string) {
	t.Helper()
	at := readAttempts(t, path)
	if len(at) != 2 {
		t.Fatalf("%d attempts in the history; want the run and one redrive", len(at))
	}
	first, again := at[0], at[1]
	t.Logf("run: %v, children %v, succeeded %v", first.top, first.entered, first.succeeded)
	t.Logf("redrive: %v, children %v", again.top, again.entered)
	if len(again.top) == 0 || again.top[0] != state {
		t.Fatalf("the redrive entered %v first; want %s", again.top, state)
	}
	for _, s := range first.top[:len(first.top)-1] {
		for _, r := range again.top {
			if r == s && s != "RotateEachUser" {
				t.Errorf("the redrive ran %s again, which had succeeded", s)
			}
		}
	}
	failedInner := false
	for i, states := range again.entered {
		if first.succeeded[i] {
			t.Errorf("the redrive ran child %d again (%v), which had succeeded", i, states)
		}
		if before := first.entered[i]; len(before) > 0 && states[0] != before[len(before)-1] {
			t.Errorf("child %d restarted at %s; want %s, where it stopped (states before: %v)", i, states[0], before[len(before)-1], before)
		}
	}
	for _, states := range first.entered {
		if inner != "" && states[len(states)-1] == inner {
			failedInner = true
		}
	}
	if inner != "" && !failedInner {
		t.Errorf("no child stopped at %s in the failed run: %v", inner, first.entered)
	}
	if state == "RotateEachUser" && len(again.entered) == 0 {
		t.Error("the redrive ran no child of the map")
	}
	if state == "SummarizeRun" && len(again.entered) != 0 {
		t.Errorf("a redrive at SummarizeRun ran map children: %v", again.entered)
	}
}
