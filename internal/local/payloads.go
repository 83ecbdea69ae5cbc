package local

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// Payload is one input or output in a local run's history.jsonl: of the
// execution, of a state, or of a map child.
type Payload struct {
	Where string          // e.g. "StateExited output of state SummarizeRun (map item 3)"
	Size  int             // bytes of compact JSON, as Step Functions counts a payload
	Raw   json.RawMessage // the payload itself
}

// HistoryStats counts a history's events.
type HistoryStats struct {
	Events int // every engine event
	Parent int // events outside map iterations (the execution's own history)
}

// Payloads reads every input and output in a history.jsonl (the engine's
// events, one JSON object a line), for checks against Step Functions'
// 256 KiB limit on a state's input or output.
func Payloads(path string) ([]Payload, HistoryStats, error) {
	var st HistoryStats
	f, err := os.Open(path)
	if err != nil {
		return nil, st, err
	}
	defer f.Close()
	var out []Payload
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		var ev struct {
			Type   string          `json:"type"`
			Index  *int            `json:"index"`
			Input  json.RawMessage `json:"input"`
			Output json.RawMessage `json:"output"`
			State  *struct {
				Name   string          `json:"name"`
				Input  json.RawMessage `json:"input"`
				Output json.RawMessage `json:"output"`
			} `json:"state"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		st.Events++
		if ev.Index == nil && ev.Type != "Result" {
			st.Parent++
		}
		where := func(field string) string {
			s := ev.Type + " " + field
			if ev.State != nil {
				s += " of state " + ev.State.Name
			}
			if ev.Index != nil {
				s += fmt.Sprintf(" (map item %d)", *ev.Index)
			}
			return s
		}
		add := func(field string, raw json.RawMessage) {
			if n := compactSize(raw); n > 0 {
				out = append(out, Payload{Where: where(field), Size: n, Raw: raw})
			}
		}
		add("input", ev.Input)
		add("output", ev.Output)
		if ev.State != nil {
			add("input", ev.State.Input)
			add("output", ev.State.Output)
		}
	}
	return out, st, sc.Err()
}

// compactSize is the size of a JSON value without insignificant space.
func compactSize(raw json.RawMessage) int {
	if len(raw) == 0 || string(raw) == "null" {
		return 0
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return len(raw)
	}
	return b.Len()
}
