package local

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// NotRedrivableError says why a work directory holds no execution to
// redrive.
type NotRedrivableError struct {
	Dir    string
	Reason string
}

func (e *NotRedrivableError) Error() string {
	return fmt.Sprintf("%s holds no failed execution to redrive: %s", e.Dir, e.Reason)
}

// Redrive runs the failed local execution whose work directory is dir
// again, as Step Functions' RedriveExecution does ("Redriving executions"
// and "Redriving Map Runs", AWS Step Functions Developer Guide,
// https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html
// and .../redrive-map-run.html): same execution name, same definition,
// restarted at the top-level state that failed with that state's recorded
// input; the steps that succeeded are not run again. When the failed state
// is a Distributed Map (RotateEachUser), only its children that failed,
// were aborted or never started run again, each failed or aborted one from
// the state it was in, with that state's recorded input (a Standard child
// execution is itself redriven); the map's results (ResultWriter) hold the
// children that succeeded before too. Grace executions the redriven
// attempt starts are run (or handed to DeferGrace) as in Run; those the
// earlier attempts started are not started again.
//
// The attempt's events are appended to dir's history.jsonl after an
// ExecutionRedriven line, so the history holds every attempt and a
// redriven execution that fails again can be redriven again. o.Input and
// o.ExecutionName are ignored: the execution's own are used.
func Redrive(ctx context.Context, o Options, dir string) (*Result, error) {
	jb, err := os.ReadFile(filepath.Join(dir, "job.json"))
	if err != nil {
		return nil, &NotRedrivableError{Dir: dir, Reason: "no job.json (not the work directory of a local run)"}
	}
	var job struct {
		Definition json.RawMessage `json:"definition"`
		Context    struct {
			Execution struct{ Id, Name string }
		} `json:"context"`
	}
	if err := json.Unmarshal(jb, &job); err != nil || job.Context.Execution.Name == "" {
		return nil, &NotRedrivableError{Dir: dir, Reason: "job.json names no execution"}
	}
	if !strings.Contains(job.Context.Execution.Id, ":execution:KeyRotor:") {
		return nil, &NotRedrivableError{Dir: dir, Reason: "it is not a KeyRotor execution (" + job.Context.Execution.Id + ")"}
	}
	h, err := readHistory(filepath.Join(dir, "history.jsonl"))
	if err != nil {
		return nil, &NotRedrivableError{Dir: dir, Reason: err.Error()}
	}
	switch {
	case h.status == "":
		return nil, &NotRedrivableError{Dir: dir, Reason: "its execution has no result (still running, or killed)"}
	case h.status != "FAILED":
		return nil, &NotRedrivableError{Dir: dir, Reason: "its execution " + h.status}
	case h.failedState == "":
		return nil, &NotRedrivableError{Dir: dir, Reason: "its history names no failed state"}
	}
	o.ExecutionName, o.WorkDir, o.appendHistory = job.Context.Execution.Name, dir, true
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	l, _, cleanup, err := prepare(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	if mr := h.maps[h.failedState]; mr != nil && h.failedType == "Map" {
		l.maps.redrive = mr
	}
	for _, name := range h.graceStarted {
		l.byName[name] = &GraceRun{Name: name}
	}
	marker, _ := json.Marshal(map[string]any{"type": "ExecutionRedriven", "timestamp": time.Now().UnixMilli(),
		"redriveCount": h.redrives + 1, "startAt": h.failedState, "input": h.failedInput})
	if err := appendLine(filepath.Join(dir, "history.jsonl"), marker); err != nil {
		return nil, err
	}
	r, err := l.run(ctx, job.Definition, "KeyRotor", o.ExecutionName, h.failedInput, dir, nil, runExtra{startAt: h.failedState})
	if err != nil {
		return nil, err
	}
	return l.finish(ctx, r)
}

func appendLine(path string, line []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.Write(append(line, '\n'))
	return err
}

// history is what a redrive needs from an execution's history.jsonl.
type history struct {
	status      string // the last attempt's result: SUCCEEDED, FAILED or "" (none)
	failedState string // the top-level state entered and not exited
	failedType  string
	failedInput json.RawMessage
	redrives    int
	// maps holds each Map state's latest map run.
	maps         map[string]*mapRunState
	graceStarted []string
}

// mapRunState is one map run's children, as the history tells them.
type mapRunState struct {
	state    string
	children map[int]*childState
}

type childState struct {
	input       json.RawMessage // the child execution's input
	status      string          // RUNNING, SUCCEEDED, FAILED
	output      json.RawMessage
	lastState   string // the child's last state entered, and its input
	lastInput   json.RawMessage
	start, stop string
}

func (m *mapRunState) child(i int) *childState {
	c := m.children[i]
	if c == nil {
		c = &childState{}
		m.children[i] = c
	}
	return c
}

// readHistory reads an execution's history: every engine event of every
// attempt, in order.
func readHistory(path string) (*history, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("no history.jsonl: %w", err)
	}
	defer f.Close()
	h := &history{maps: map[string]*mapRunState{}}
	var cur *mapRunState // the Map state entered last: nested events belong to it
	openType := ""
	continueAt := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		var ev struct {
			Type      string          `json:"type"`
			Timestamp int64           `json:"timestamp"`
			Index     *int            `json:"index"`
			Input     json.RawMessage `json:"input"`
			Output    json.RawMessage `json:"output"`
			Status    string          `json:"status"`
			StartAt   string          `json:"startAt"`
			State     *struct {
				Name   string          `json:"name"`
				Type   string          `json:"type"`
				Input  json.RawMessage `json:"input"`
				Output json.RawMessage `json:"output"`
			} `json:"state"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		at := time.UnixMilli(ev.Timestamp).UTC().Format(time.RFC3339Nano)
		switch {
		case ev.Type == "ExecutionRedriven":
			h.redrives++
			h.status, continueAt = "", ev.StartAt
			h.failedState, h.failedInput, openType = "", nil, ""
		case ev.Type == "Result":
			h.status = ev.Status
		case ev.Index == nil && ev.State != nil:
			switch ev.Type {
			case "StateEntered":
				h.failedState, h.failedInput, openType = ev.State.Name, ev.State.Input, ev.State.Type
				if ev.State.Type == "Map" {
					if continueAt == ev.State.Name && h.maps[ev.State.Name] != nil {
						cur = h.maps[ev.State.Name]
					} else {
						cur = &mapRunState{state: ev.State.Name, children: map[int]*childState{}}
						h.maps[ev.State.Name] = cur
					}
				}
				continueAt = ""
			case "StateExited":
				h.failedState, h.failedInput, openType = "", nil, ""
			}
		case ev.Index != nil && cur != nil:
			c := cur.child(*ev.Index)
			switch ev.Type {
			case "MapIterationStarted":
				if c.input == nil {
					c.input, c.start = ev.Input, at
				}
				c.status = "RUNNING"
			case "MapIterationSucceeded":
				c.status, c.output, c.stop = "SUCCEEDED", ev.Output, at
			case "MapIterationFailed":
				c.status, c.stop = "FAILED", at
			case "StateEntered":
				if ev.State != nil {
					c.lastState, c.lastInput = ev.State.Name, ev.State.Input
				}
			case "StateExited":
				if ev.State != nil {
					var out struct {
						Grace struct {
							ExecutionArn string `json:"executionArn"`
						} `json:"grace"`
					}
					json.Unmarshal(ev.State.Output, &out)
					if arn := out.Grace.ExecutionArn; arn != "" {
						h.graceStarted = append(h.graceStarted, arn[strings.LastIndexByte(arn, ':')+1:])
					}
				}
			}
		}
	}
	h.failedType = openType
	return h, sc.Err()
}
