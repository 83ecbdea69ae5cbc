package local

import (
	"os"
	"path/filepath"
	"testing"
)

// TestPayloads: every execution, state and map child input and output is
// listed, sized as compact JSON, named by event, state and item; events
// of map iterations are not the execution's own.
func TestPayloads(t *testing.T) {
	path := filepath.Join(t.TempDir(), "history.jsonl")
	lines := `{"type":"ExecutionStarted","input":{"a": 1}}
{"type":"StateExited","state":{"name":"FindDueKeys","input":{},"output":{"plan": {"items": [1, 2]}}}}
{"type":"StateEntered","index":3,"state":{"name":"NotifyOwner","input":{"x":"y"}}}
not json
{"type":"Result","status":"SUCCEEDED","output":{"done":true}}
`
	if err := os.WriteFile(path, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, st, err := Payloads(path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"ExecutionStarted input":                               len(`{"a":1}`),
		"StateExited input of state FindDueKeys":               len(`{}`),
		"StateExited output of state FindDueKeys":              len(`{"plan":{"items":[1,2]}}`),
		"StateEntered input of state NotifyOwner (map item 3)": len(`{"x":"y"}`),
		"Result output": len(`{"done":true}`),
	}
	if len(ps) != len(want) {
		t.Fatalf("Payloads = %+v; want %d payloads", ps, len(want))
	}
	for _, p := range ps {
		if want[p.Where] != p.Size {
			t.Errorf("payload %q = %d bytes; want %d", p.Where, p.Size, want[p.Where])
		}
	}
	if st.Events != 4 || st.Parent != 2 {
		t.Errorf("stats = %+v; want 4 events, 2 of the execution's own", st)
	}
}
