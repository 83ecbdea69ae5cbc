package calendar_test

import (
	"encoding/json"
	"testing"

	"github.com/keyrotor/keyrotor/internal/calendar"
	"github.com/keyrotor/keyrotor/internal/local"
)

// TestFlowOrderMatchesDefinition: the simulation runs one key's steps in
// the order of the synthesized definition (make synth writes it): each
// step of calendar.FlowOrder reaches the next without passing another Task,
// every Task of a child is one of them (or the inline DeleteOldKey), and
// the grace state machine waits, then deletes.
// The organization mode's hub template (the org simulation's) must have
// the same order.
func TestFlowOrderMatchesDefinition(t *testing.T) {
	for _, path := range []string{"../../cdk.out/KeyRotor.template.json", orgTemplate} {
		t.Run(path, func(t *testing.T) { flowOrderMatches(t, path) })
	}
}

func flowOrderMatches(t *testing.T, path string) {
	tmpl, err := local.ReadTemplate(path)
	if err != nil {
		t.Fatalf("%v (run make synth)", err)
	}
	r := local.Resolver{Ref: func(id string) (string, bool) { return id, true }, GetAtt: func(id, _ string) (string, bool) { return "arn:aws:lambda:us-east-1:123456789012:function:" + id, true }}
	raw, err := tmpl.Definition(r)
	if err != nil {
		t.Fatal(err)
	}
	type state struct {
		Type, Next, Default string
		Choices             []struct{ Next string }
		Catch               []struct{ Next string }
		ItemProcessor       *struct {
			StartAt string
			States  map[string]json.RawMessage
		}
	}
	var def struct{ States map[string]state }
	json.Unmarshal(raw, &def)
	ip := def.States["RotateEachUser"].ItemProcessor
	child := map[string]state{}
	for n, s := range ip.States {
		var st state
		json.Unmarshal(s, &st)
		child[n] = st
	}
	// nextTasks are the Tasks reachable from a state's successors without
	// passing another Task.
	nextTasks := func(from string) map[string]bool {
		out := map[string]bool{}
		seen := map[string]bool{}
		var walk func(n string)
		walk = func(n string) {
			if n == "" || seen[n] {
				return
			}
			seen[n] = true
			st := child[n]
			if st.Type == "Task" && n != from {
				out[n] = true
				return
			}
			if n != from || st.Type != "Task" {
				for _, c := range st.Choices {
					walk(c.Next)
				}
				walk(st.Default)
			}
			walk(st.Next)
		}
		walk(from)
		return out
	}
	allowed := map[string]bool{"DeleteOldKey": true, "StartAdoptionWindow": true}
	for _, n := range calendar.FlowOrder {
		allowed[n] = true
	}
	for n, st := range child {
		if st.Type == "Task" && !allowed[n] {
			t.Errorf("child Task %s is not in calendar.FlowOrder: the simulation would not run it", n)
		}
	}
	// A retirement has no new key: it starts at NotifyOwner.
	if first := nextTasks(ip.StartAt); !first[calendar.FlowOrder[0]] || !first["NotifyOwner"] {
		t.Errorf("a child starts with %v; want %s (rotate) or NotifyOwner (retire)", first, calendar.FlowOrder[0])
	}
	for i := 0; i+1 < len(calendar.FlowOrder); i++ {
		if next := nextTasks(calendar.FlowOrder[i]); !next[calendar.FlowOrder[i+1]] {
			t.Errorf("%s is followed by %v; want %s", calendar.FlowOrder[i], next, calendar.FlowOrder[i+1])
		}
	}
	if next := nextTasks("NotifyOwner"); !next["StartAdoptionWindow"] {
		t.Errorf("NotifyOwner is followed by %v; want StartAdoptionWindow too (the adoption window)", next)
	}
	graceRaw, err := tmpl.DefinitionOf(r, local.GraceStateMachine)
	if err != nil {
		t.Fatal(err)
	}
	var grace struct {
		StartAt string
		States  map[string]state
	}
	json.Unmarshal(graceRaw, &grace)
	// The key's own execution: a Choice between the adoption window and
	// the grace period; the window's check loops through a Wait and leads
	// to the deactivation, then the grace period.
	start := grace.States[grace.StartAt]
	if start.Type != "Choice" || start.Default != calendar.GraceOrder[0] || len(start.Choices) != 1 || start.Choices[0].Next != calendar.WindowOrder[0] {
		t.Errorf("the key's execution starts at %s (%+v); want a Choice of %s (window) or %s (grace)", grace.StartAt, start, calendar.WindowOrder[0], calendar.GraceOrder[0])
	}
	if grace.States[calendar.GraceOrder[0]].Next != calendar.GraceOrder[1] {
		t.Errorf("%s -> %s; want %v", calendar.GraceOrder[0], grace.States[calendar.GraceOrder[0]].Next, calendar.GraceOrder)
	}
	reach := func(from string) map[string]bool {
		out := map[string]bool{}
		st := grace.States[grace.States[from].Next]
		for _, c := range st.Choices {
			out[c.Next] = true
			if w := grace.States[c.Next]; w.Type == "Wait" {
				out[w.Next] = true
			}
		}
		out[st.Default] = true
		return out
	}
	if r := reach(calendar.WindowOrder[0]); !r[calendar.WindowOrder[0]] || !r[calendar.WindowOrder[1]] {
		t.Errorf("%s leads to %v; want itself (after a Wait) and %s", calendar.WindowOrder[0], r, calendar.WindowOrder[1])
	}
	if r := reach(calendar.WindowOrder[1]); !r[calendar.WindowOrder[2]] || !r[calendar.WindowOrder[3]] {
		t.Errorf("%s leads to %v; want %s or %s", calendar.WindowOrder[1], r, calendar.WindowOrder[2], calendar.WindowOrder[3])
	}
}
