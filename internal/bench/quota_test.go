package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadHistoriesLargestPayload: the largest input or output of any
// event, in the daily history or a grace one, is found and named; events
// of map iterations do not count as the daily execution's own.
func TestReadHistoriesLargestPayload(t *testing.T) {
	dir := t.TempDir()
	big := `{"users":["` + strings.Repeat("x", 1000) + `"]}`
	daily := strings.Join([]string{
		`{"type":"ExecutionStarted","timestamp":1,"input":{}}`,
		`{"type":"StateExited","timestamp":2,"state":{"name":"FindDueKeys","type":"Task","input":{},"output":{"plan": {"items": [1, 2]}}}}`,
		`{"type":"StateEntered","timestamp":3,"index":0,"state":{"name":"NotifyOwner","type":"Task","input":` + big + `}}`,
		`{"type":"Result","status":"SUCCEEDED","output":{}}`,
	}, "\n")
	grace := `{"type":"StateExited","timestamp":4,"state":{"name":"DeleteOldKey","type":"Task","output":{"a":"` + strings.Repeat("y", 2000) + `"}}}`
	must(t, os.WriteFile(filepath.Join(dir, "history.jsonl"), []byte(daily), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, "grace", "g1"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "grace", "g1", "history.jsonl"), []byte(grace), 0o644))

	var q QuotaResult
	must(t, q.readHistories(filepath.Join(dir, "history.jsonl")))
	if want := len(`{"a":""}`) + 2000; q.Largest.Bytes != want || !strings.Contains(q.Largest.Where, "DeleteOldKey") {
		t.Fatalf("readHistories: largest = %+v; want %d bytes in DeleteOldKey", q.Largest, want)
	}
	if q.ParentEvents != 2 || q.HistoryEvents != 5 {
		t.Fatalf("readHistories: %d parent of %d events; want 2 of 5", q.ParentEvents, q.HistoryEvents)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
