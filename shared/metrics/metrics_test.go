package metrics

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestEncode: every line is one EMF document as the specification has it:
// _aws with a millisecond Timestamp and one MetricDirective (namespace
// KeyRotor, one dimension set naming a member of the root), every metric
// of the directive a number member of the root, with its unit.
func TestEncode(t *testing.T) {
	at := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		values  map[string]float64
		units   map[string]string
		wantErr string
	}{
		{name: "one count", values: map[string]float64{MailsRefused: 1}, units: map[string]string{MailsRefused: "Count"}},
		{name: "zero is emitted", values: map[string]float64{SwitchOverEvidence: 0, SwitchOverDeadline: 1},
			units: map[string]string{SwitchOverEvidence: "Count", SwitchOverDeadline: "Count"}},
		{name: "days have no unit", values: map[string]float64{OldestKeyAgeDays: 97, KeysOld: 2},
			units: map[string]string{OldestKeyAgeDays: "None", KeysOld: "Count"}},
		{name: "no values", values: map[string]float64{}, wantErr: "no values"},
		{name: "reserved name", values: map[string]float64{Dimension: 1}, wantErr: "reserved"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Encode(at, "find", tc.values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Encode(%v) error %v; want %q", tc.values, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if bytes.ContainsRune(b, '\n') {
				t.Fatalf("Encode(%v) = %s; want one line", tc.values, b)
			}
			var root map[string]any
			if err := json.Unmarshal(b, &root); err != nil {
				t.Fatal(err)
			}
			meta := root["_aws"].(map[string]any)
			if got := meta["Timestamp"].(float64); got != float64(at.UnixMilli()) {
				t.Errorf("Timestamp = %v; want %d", got, at.UnixMilli())
			}
			dirs := meta["CloudWatchMetrics"].([]any)
			if len(dirs) != 1 {
				t.Fatalf("%d directives; want 1", len(dirs))
			}
			d := dirs[0].(map[string]any)
			if d["Namespace"] != Namespace {
				t.Errorf("Namespace = %v", d["Namespace"])
			}
			if !reflect.DeepEqual(d["Dimensions"], []any{[]any{Dimension}}) || root[Dimension] != Service {
				t.Errorf("Dimensions = %v, %s = %v; want [[%s]] and %q", d["Dimensions"], Dimension, root[Dimension], Dimension, Service)
			}
			got := map[string]string{}
			for _, m := range d["Metrics"].([]any) {
				m := m.(map[string]any)
				name := m["Name"].(string)
				got[name] = m["Unit"].(string)
				if v, ok := root[name].(float64); !ok || v != tc.values[name] {
					t.Errorf("root[%s] = %v; want %v", name, root[name], tc.values[name])
				}
			}
			if !reflect.DeepEqual(got, tc.units) {
				t.Errorf("metrics %v; want %v", got, tc.units)
			}
			if root["function"] != "find" {
				t.Errorf("function = %v", root["function"])
			}
		})
	}
}

// TestEmitAndParse: what Emit writes, Parse reads back; other log lines
// (slog's) are skipped; a nil emitter writes nothing.
func TestEmitAndParse(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteString(`{"level":"INFO","msg":"plan ready"}` + "\n")
	e := New(&buf, "notify")
	if err := e.Emit(map[string]float64{MailsRefused: 1}); err != nil {
		t.Fatal(err)
	}
	if err := e.Emit(map[string]float64{MailsRefused: 0}); err != nil {
		t.Fatal(err)
	}
	buf.WriteString("not json\n")
	got := Parse(buf.Bytes())
	if !reflect.DeepEqual(got, map[string][]float64{MailsRefused: {1, 0}}) {
		t.Errorf("Parse = %v", got)
	}
	var none *Emitter
	if err := none.Emit(map[string]float64{MailsRefused: 1}); err != nil {
		t.Errorf("nil emitter: %v", err)
	}
}

// TestFiguresValues: every figure is a metric of All.
func TestFiguresValues(t *testing.T) {
	v := Figures{KeysAging: 2, Oldest: &Key{User: "bob", ID: "AKIA", AgeDays: 200}, Held: 1}.Values()
	if v[OldestKeyAgeDays] != 200 || v[KeysAging] != 2 || v[RotationsHeld] != 1 {
		t.Errorf("Values = %v", v)
	}
	all := map[string]bool{}
	for _, n := range All {
		all[n] = true
	}
	for n := range v {
		if !all[n] {
			t.Errorf("%s is not in All", n)
		}
	}
}
