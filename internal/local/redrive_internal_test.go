package local

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadHistory reads what a redrive needs from a history: the failed
// top-level state and its input, and each map child's outcome and where
// it stopped, across attempts.
func TestReadHistory(t *testing.T) {
	lines := []string{
		`{"type":"ExecutionStarted","input":{}}`,
		`{"type":"StateEntered","state":{"name":"FindDueKeys","type":"Task","input":{}}}`,
		`{"type":"StateExited","state":{"name":"FindDueKeys","type":"Task","input":{},"output":{"plan":1}}}`,
		`{"type":"StateEntered","state":{"name":"RotateEachUser","type":"Map","input":{"plan":1}}}`,
		`{"type":"MapIterationStarted","index":0,"input":{"item":"a"}}`,
		`{"type":"MapIterationStarted","index":1,"input":{"item":"b"}}`,
		`{"type":"StateEntered","index":0,"state":{"name":"NotifyOwner","type":"Task","input":{"item":"a"}}}`,
		`{"type":"StateEntered","index":1,"state":{"name":"NotifyOwner","type":"Task","input":{"item":"b"}}}`,
		`{"type":"StateExited","index":0,"state":{"name":"StartGracePeriod","type":"Task","output":{"grace":{"executionArn":"arn:aws:states:us-east-1:123456789012:execution:KeyRotorGrace:a-AKIA-r1"}}}}`,
		`{"type":"MapIterationSucceeded","index":0,"output":{"item":"a","done":true}}`,
		`{"type":"StateEntered","index":1,"state":{"name":"DeactivateOldKey","type":"Task","input":{"item":"b","notice":1}}}`,
		`{"type":"StateFailed","index":1,"state":{"name":"DeactivateOldKey","type":"Task"},"Error":"X","Cause":"y"}`,
		`{"type":"MapIterationFailed","index":1}`,
		`{"type":"StateFailed","state":{"name":"RotateEachUser","type":"Map"}}`,
		`{"type":"Result","status":"FAILED","error":"X","cause":"y"}`,
	}
	path := filepath.Join(t.TempDir(), "history.jsonl")
	os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	h, err := readHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.status != "FAILED" || h.failedState != "RotateEachUser" || h.failedType != "Map" || string(h.failedInput) != `{"plan":1}` {
		t.Fatalf("readHistory = %s at %s (%s) with %s; want FAILED at RotateEachUser (Map) with its input", h.status, h.failedState, h.failedType, h.failedInput)
	}
	m := h.maps["RotateEachUser"]
	if m == nil || len(m.children) != 2 {
		t.Fatalf("map run = %+v; want two children", m)
	}
	if c := m.children[0]; c.status != "SUCCEEDED" || string(c.output) != `{"item":"a","done":true}` {
		t.Errorf("child 0 = %+v; want SUCCEEDED with its output", c)
	}
	if c := m.children[1]; c.status != "FAILED" || c.lastState != "DeactivateOldKey" || string(c.lastInput) != `{"item":"b","notice":1}` || string(c.input) != `{"item":"b"}` {
		t.Errorf("child 1 = %+v; want FAILED in DeactivateOldKey with that state's input", c)
	}
	if len(h.graceStarted) != 1 || h.graceStarted[0] != "a-AKIA-r1" {
		t.Errorf("grace started = %v; want [a-AKIA-r1]", h.graceStarted)
	}

	// A redrive that continues the map run and fails again at SummarizeRun.
	more := []string{
		`{"type":"ExecutionRedriven","redriveCount":1,"startAt":"RotateEachUser","input":{"plan":1}}`,
		`{"type":"StateEntered","state":{"name":"RotateEachUser","type":"Map","input":{"plan":1}}}`,
		`{"type":"MapIterationStarted","index":1,"input":{"item":"b","notice":1}}`,
		`{"type":"MapIterationSucceeded","index":1,"output":{"item":"b","done":true}}`,
		`{"type":"StateExited","state":{"name":"RotateEachUser","type":"Map","output":{"results":1}}}`,
		`{"type":"StateEntered","state":{"name":"SummarizeRun","type":"Task","input":{"results":1}}}`,
		`{"type":"Result","status":"FAILED"}`,
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(strings.Join(more, "\n") + "\n")
	f.Close()
	h, err = readHistory(path)
	if err != nil {
		t.Fatal(err)
	}
	if h.redrives != 1 || h.failedState != "SummarizeRun" || string(h.failedInput) != `{"results":1}` {
		t.Fatalf("after a redrive: %d redrives, failed at %s with %s; want 1, SummarizeRun, its input", h.redrives, h.failedState, h.failedInput)
	}
	m = h.maps["RotateEachUser"]
	if c := m.children[1]; c.status != "SUCCEEDED" || string(c.input) != `{"item":"b"}` {
		t.Errorf("child 1 after the redrive = %+v; want SUCCEEDED, with its execution's first input", c)
	}
	if c := m.children[0]; c.status != "SUCCEEDED" {
		t.Errorf("child 0 after the redrive = %+v; want still SUCCEEDED (the map run continued)", c)
	}
}
