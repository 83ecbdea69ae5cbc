package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestProgress: every line names a user or is a total; a retry says why;
// a key execution that kept its old key says so, naming the user, and is
// not reported as a deletion; durations are never negative, also when key
// executions run the same states at once.
func TestProgress(t *testing.T) {
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	var events []local.Event
	top := func(typ, state, st string, ms int) {
		events = append(events, local.Event{Type: typ, State: state, StateType: st, Index: -1, Time: at(ms)})
	}
	top("StateEntered", "FindDueKeys", "Task", 0)
	events = append(events, local.Event{Type: "StateFailed", State: "FindDueKeys", Index: -1, Error: "ReportNotReadyError", Cause: "credential report not ready yet (state STARTED); retry later", Time: at(10)},
		local.Event{Type: "StateRetried", State: "FindDueKeys", Index: -1, Time: at(11)})
	// The same retry again (same state, same reason) is not a new line.
	events = append(events, local.Event{Type: "StateFailed", State: "FindDueKeys", Index: -1, Error: "ReportNotReadyError", Cause: "credential report not ready yet (state STARTED); retry later", Time: at(20)},
		local.Event{Type: "StateRetried", State: "FindDueKeys", Index: -1, Time: at(21)})
	top("StateExited", "FindDueKeys", "Task", 1500)
	// A Choice does no work: no "ok" line.
	top("StateEntered", "IsDryRun", "Choice", 1500)
	top("StateExited", "IsDryRun", "Choice", 1500)
	top("StateEntered", "RotateEachUser", "Map", 1500)
	keyOut := func(user, key string, deleted bool, why string) json.RawMessage {
		b, _ := json.Marshal(map[string]any{"item": map[string]any{"user": user, "oldKey": map[string]any{"id": key}}, "cleanup": map[string]any{"deleted": deleted, "reason": why}})
		return b
	}
	users := []string{"alice", "bob", "carol", "dave"}
	for i, u := range users {
		events = append(events, local.Event{Type: "MapIterationSucceeded", Index: i, User: u, Time: at(2000 + i)})
		ex := u + "-AKIA" + fmt.Sprint(i) + "-r1"
		// Two key executions wait at once: their states interleave.
		events = append(events, local.Event{Type: "StateEntered", State: "WaitForGracePeriod", Index: -1, Execution: ex, User: u, Time: at(3000 + i)})
	}
	events = append(events,
		local.Event{Type: "StateFailed", State: "DeleteOldKey", Index: -1, Execution: "bob-AKIA1-r1", User: "bob", Error: "ThrottlingError", Cause: "Rate exceeded", Time: at(3100)},
		local.Event{Type: "StateRetried", State: "DeleteOldKey", Index: -1, Execution: "bob-AKIA1-r1", User: "bob", Time: at(3101)},
		local.Event{Type: "StateExited", State: "WaitForGracePeriod", Index: -1, Execution: "alice-AKIA0-r1", User: "alice", Time: at(2900)},
		local.Event{Type: "ExecutionSucceeded", Index: -1, Execution: "alice-AKIA0-r1", User: "alice", Output: keyOut("alice", "AKIA0", false, "not deleted: the old key AKIA0 was re-activated by a person during its grace period."), Time: at(4000)},
		local.Event{Type: "ExecutionSucceeded", Index: -1, Execution: "bob-AKIA1-r1", User: "bob", Output: keyOut("bob", "AKIA1", true, "deleted after its grace period"), Time: at(4001)},
		local.Event{Type: "ExecutionSucceeded", Index: -1, Execution: "carol-AKIA2-r1", User: "carol", Account: "111122223333", Output: keyOut("carol", "AKIA2", true, "deleted"), Time: at(4002)},
		local.Event{Type: "ExecutionFailed", Index: -1, Execution: "dave-AKIA3-r1", User: "dave", Account: "111122223333", Error: "States.TaskFailed", Cause: "boom", Time: at(4003)},
	)
	top("StateExited", "RotateEachUser", "Map", 5000)
	var buf bytes.Buffer
	p := newProgress(&buf)
	p.expect(len(users))
	for _, e := range events {
		p.event(e)
	}
	out := buf.String()
	for _, want := range []string{
		"retry FindDueKeys: ReportNotReadyError: credential report not ready yet (state STARTED); retry later",
		"retry DeleteOldKey for bob (key execution): ThrottlingError: Rate exceeded",
		"alice: old key AKIA0 kept: the old key AKIA0 was re-activated by a person during its grace period.",
		"111122223333/dave: key execution dave-AKIA3-r1 FAILED: States.TaskFailed boom",
		"key executions: 4 started, 0 in their grace period or adoption window, 2 old keys deleted, 1 kept, 1 failed",
		"ok FindDueKeys (1.5s)", "ok RotateEachUser (3.5s)", "4/4 users done",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("progress lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "retry FindDueKeys"); n != 1 {
		t.Errorf("the same retry printed %d times; want once:\n%s", n, out)
	}
	for _, bad := range []string{"(-", "ok WaitForGracePeriod", "ok DeleteOldKey", "> FindDueKeys", "ok IsDryRun"} {
		if strings.Contains(out, bad) {
			t.Errorf("progress has %q:\n%s", bad, out)
		}
	}
	// Every line names a user or is a total (a state of the run's own
	// execution, the users' bar, the key executions' counts).
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		named := strings.Contains(l, " ok ") || strings.Contains(l, " > ") || strings.Contains(l, "users done") || strings.Contains(l, "key executions:") || strings.Contains(l, "retry FindDueKeys")
		for _, u := range users {
			named = named || strings.Contains(l, u)
		}
		if !named {
			t.Errorf("line names no user and is no total: %q", l)
		}
	}
}

// TestDemoOutcome: the demo's table says what each key's grace-and-delete
// execution did, not what it was meant to do.
func TestDemoOutcome(t *testing.T) {
	o := rotation.Outcome{User: "alice", OldKeyID: "AK1", Result: "rotated"}
	tests := []struct {
		name     string
		cleanups map[string]rotation.Cleanup
		want     string
	}{
		{"deleted", map[string]rotation.Cleanup{"AK1": {Deleted: true}}, "rotated; old key deleted after grace"},
		{"kept", map[string]rotation.Cleanup{"AK1": {Reason: "not deleted: the old key AK1 was re-activated by a person during its grace period."}}, "rotated; old key kept: the old key AK1 was re-activated"},
		{"not ended", nil, "did not end"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := outcome(o, tt.cleanups); !strings.Contains(got, tt.want) {
				t.Fatalf("outcome = %q; want %q", got, tt.want)
			}
		})
	}
}
