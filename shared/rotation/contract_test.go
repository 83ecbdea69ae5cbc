package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestSamplePayloads decodes every function's sample input and output in
// functions/*/testdata strictly (no unknown fields) into the Go types, and
// re-encodes them, so the samples, the structs and the state machine's JSON
// paths cannot drift apart.
func TestSamplePayloads(t *testing.T) {
	tests := []struct {
		fn      string
		in, out func() any
	}{
		{"find", func() any { return &rotation.FindInput{} }, func() any { return &rotation.Plan{} }},
		{"create-and-store", func() any { return &rotation.Task{} }, func() any { return &rotation.NewKey{} }},
		{"deliver", func() any { return &rotation.Task{} }, func() any { return &rotation.Delivery{} }},
		{"notify", func() any { return &rotation.Task{} }, func() any { return &rotation.Notice{} }},
		{"check-adoption", func() any { return &rotation.Task{} }, func() any { return &rotation.Adoption{} }},
		{"deactivate", func() any { return &rotation.Task{} }, func() any { return &rotation.Deactivation{} }},
		{"delete", func() any { return &rotation.Task{} }, func() any { return &rotation.Cleanup{} }},
		{"summarize", func() any { return &rotation.SummarizeInput{} }, func() any { return &rotation.Summary{} }},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.fn] = true
	}
	dirs, _ := filepath.Glob("../../functions/*/main.go")
	for _, d := range dirs {
		if fn := filepath.Base(filepath.Dir(d)); !covered[fn] {
			t.Errorf("function %s has no sample payloads checked here", fn)
		}
	}
	for _, tt := range tests {
		t.Run(tt.fn, func(t *testing.T) {
			for name, v := range map[string]any{"input.json": tt.in(), "output.json": tt.out()} {
				raw, err := os.ReadFile(filepath.Join("..", "..", "functions", tt.fn, "testdata", name))
				if err != nil {
					t.Fatal(err)
				}
				dec := json.NewDecoder(bytes.NewReader(raw))
				dec.DisallowUnknownFields()
				if err := dec.Decode(v); err != nil {
					t.Fatalf("%s/%s does not decode into %T: %v", tt.fn, name, v, err)
				}
				if _, err := json.Marshal(v); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
	// The sample execution input is a valid request.
	var in rotation.FindInput
	raw, _ := os.ReadFile("../../functions/find/testdata/input.json")
	json.Unmarshal(raw, &in)
	if _, err := rotation.ParseRequest(in.Request); err != nil {
		t.Fatalf("sample request: %v", err)
	}
}

// TestSampleStatePaths: the samples carry the fields the state machine
// branches on (infra/workflow.go: $.notice.accepted, $.deactivation.next,
// $.deactivation.graceExecution), and the summarize sample output is what
// summarize makes of the sample input.
func TestSampleStatePaths(t *testing.T) {
	read := func(fn, name string) []byte {
		t.Helper()
		raw, err := os.ReadFile(filepath.Join("..", "..", "functions", fn, "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(read("notify", "output.json"), &fields); err != nil || fields["accepted"] == nil {
		t.Fatalf("notify/output.json lacks accepted (%v)", err)
	}
	// NoticeSent branches on $.delivery.complete first.
	if err := json.Unmarshal(read("deliver", "output.json"), &fields); err != nil || fields["complete"] == nil {
		t.Fatalf("deliver/output.json lacks complete (%v)", err)
	}
	var d rotation.Deactivation
	if err := json.Unmarshal(read("deactivate", "output.json"), &d); err != nil || d.GraceExecution == "" ||
		(d.Next != rotation.NextGrace && d.Next != rotation.NextDelete && d.Next != rotation.NextStop) {
		t.Fatalf("deactivate/output.json = %+v (%v); want next grace|delete|stop and a grace execution", d, err)
	}
	if want := rotation.GraceExecutionName("alice", d.KeyID, d.Rotation); d.GraceExecution != want {
		t.Fatalf("deactivate/output.json graceExecution %q; want %q", d.GraceExecution, want)
	}
	var del rotation.Task
	if err := json.Unmarshal(read("delete", "input.json"), &del); err != nil || del.Deactivation == nil || del.Execution == "" {
		t.Fatalf("delete/input.json = %+v (%v); want the grace execution's input: execution, item, deactivation", del, err)
	}

	var in rotation.SummarizeInput
	if err := json.Unmarshal(read("summarize", "input.json"), &in); err != nil {
		t.Fatal(err)
	}
	got, err := (&rotation.Summarizer{}).Handle(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	var want rotation.Summary
	if err := json.Unmarshal(read("summarize", "output.json"), &want); err != nil {
		t.Fatal(err)
	}
	gotJSON, _ := json.Marshal([]any{got.Totals, got.Users})
	wantJSON, _ := json.Marshal([]any{want.Totals, want.Users})
	if !bytes.Equal(gotJSON, wantJSON) {
		t.Fatalf("summarize(sample input) = %s\nsample output has %s", gotJSON, wantJSON)
	}
}
