package rotation_test

import (
	"bytes"
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
		{"notify", func() any { return &rotation.Task{} }, func() any { return &rotation.Notice{} }},
		{"deactivate", func() any { return &rotation.Task{} }, func() any { return &rotation.Deactivation{} }},
		{"delete", func() any { return &rotation.Task{} }, func() any { return &rotation.Cleanup{} }},
		{"summarize", func() any { return &rotation.SummarizeInput{} }, func() any { return &rotation.Summary{} }},
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
