// Package asl reads Amazon States Language definitions: it draws them as
// Mermaid flowcharts for README, from the synthesized definition itself.
package asl

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

type state struct {
	Type          string
	Next          string
	End           bool
	Default       string
	Choices       []struct{ Next string }
	ItemProcessor *machine
	Iterator      *machine
	Retry         []struct{ ErrorEquals []string }
	Catch         []struct{ Next string }
}

type machine struct {
	StartAt string
	States  map[string]state
}

// Mermaid draws def as a Mermaid flowchart: one node per state (Map states
// as subgraphs holding their item processor), one edge per transition.
// The output is deterministic, so a test can keep README in step.
func Mermaid(def []byte) (string, error) {
	var m machine
	if err := json.Unmarshal(def, &m); err != nil {
		return "", fmt.Errorf("definition: %w", err)
	}
	var b strings.Builder
	b.WriteString("flowchart TD\n")
	b.WriteString("  start((start)) --> " + m.StartAt + "\n")
	draw(&b, m, "  ")
	return b.String(), nil
}

func draw(b *strings.Builder, m machine, indent string) {
	names := make([]string, 0, len(m.States))
	for n := range m.States {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := m.States[n]
		sub := s.ItemProcessor
		if sub == nil {
			sub = s.Iterator
		}
		if sub != nil {
			fmt.Fprintf(b, "%ssubgraph %s [\"%s: one child execution per item\"]\n", indent, n, n)
			fmt.Fprintf(b, "%s  %s_start((item)) --> %s\n", indent, n, sub.StartAt)
			draw(b, *sub, indent+"  ")
			fmt.Fprintf(b, "%send\n", indent)
		} else {
			fmt.Fprintf(b, "%s%s%s\n", indent, n, shape(n, s))
		}
	}
	for _, n := range names {
		s := m.States[n]
		var edges []string
		if s.Next != "" {
			edges = append(edges, fmt.Sprintf("%s --> %s", n, s.Next))
		}
		for _, c := range s.Choices {
			edges = append(edges, fmt.Sprintf("%s -.-> %s", n, c.Next))
		}
		if s.Default != "" {
			edges = append(edges, fmt.Sprintf("%s -.->|otherwise| %s", n, s.Default))
		}
		for _, c := range s.Catch {
			edges = append(edges, fmt.Sprintf("%s -.->|catch| %s", n, c.Next))
		}
		for _, e := range edges {
			b.WriteString(indent + e + "\n")
		}
	}
}

func shape(name string, s state) string {
	label := name
	if len(s.Retry) > 0 {
		var errs []string
		for _, r := range s.Retry {
			for _, e := range r.ErrorEquals {
				if !strings.HasPrefix(e, "Lambda.") && !strings.HasPrefix(e, "Sandbox.") { // every task retries these
					errs = append(errs, e)
				}
			}
		}
		label += "<br/><small>retries " + strings.Join(errs, ", ") + "</small>"
	}
	switch s.Type {
	case "Choice":
		return "{" + `"` + label + `"` + "}"
	case "Wait":
		return `[/"` + label + `"/]`
	case "Succeed", "Fail":
		return `(["` + label + `"])`
	case "Pass":
		return `>"` + label + `"]`
	}
	return `["` + label + `"]`
}
