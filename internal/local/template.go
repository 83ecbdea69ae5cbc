package local

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Template is the part of a synthesized CloudFormation template a local run
// needs: the state machine definition and the functions.
type Template struct {
	Resources map[string]Resource `json:"Resources"`
	Outputs   map[string]Output   `json:"Outputs"`
}

// Resource is one CloudFormation resource.
type Resource struct {
	Type       string          `json:"Type"`
	Properties json.RawMessage `json:"Properties"`
	Metadata   map[string]any  `json:"Metadata"`
}

// ReadTemplate reads a template file (cdk.out/KeyRotor.template.json).
func ReadTemplate(path string) (*Template, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w (run `make synth`)", err)
	}
	var t Template
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("template %s: %w", path, err)
	}
	return &t, nil
}

// OfType returns the logical IDs of resources of type typ, sorted.
func (t *Template) OfType(typ string) []string {
	var ids []string
	for id, r := range t.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// CDKPath is the construct path CDK recorded for a resource, or "".
func (t *Template) CDKPath(id string) string {
	p, _ := t.Resources[id].Metadata["aws:cdk:path"].(string)
	return p
}

// Resolver maps CloudFormation references to local values.
type Resolver struct {
	Ref    func(logicalID string) (string, bool)
	GetAtt func(logicalID, attr string) (string, bool)
}

var pseudo = map[string]string{
	"AWS::Partition": "aws", "AWS::Region": "us-east-1", "AWS::AccountId": "123456789012",
	"AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "KeyRotor", "AWS::NoValue": "",
}

// Resolve evaluates a CloudFormation value made of strings, Ref, Fn::GetAtt
// and Fn::Join (what CDK emits for definitions and environments).
func (r Resolver) Resolve(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case float64, bool:
		return fmt.Sprint(x), nil
	case map[string]any:
		if ref, ok := x["Ref"].(string); ok {
			if p, ok := pseudo[ref]; ok {
				return p, nil
			}
			if s, ok := r.Ref(ref); ok {
				return s, nil
			}
			return "", fmt.Errorf("no local value for Ref %s", ref)
		}
		if ga, ok := x["Fn::GetAtt"].([]any); ok && len(ga) == 2 {
			id, _ := ga[0].(string)
			attr, _ := ga[1].(string)
			if s, ok := r.GetAtt(id, attr); ok {
				return s, nil
			}
			return "", fmt.Errorf("no local value for Fn::GetAtt %s.%s", id, attr)
		}
		if j, ok := x["Fn::Join"].([]any); ok && len(j) == 2 {
			sep, _ := j[0].(string)
			parts, _ := j[1].([]any)
			var out []string
			for _, p := range parts {
				s, err := r.Resolve(p)
				if err != nil {
					return "", err
				}
				out = append(out, s)
			}
			return strings.Join(out, sep), nil
		}
		return "", fmt.Errorf("unsupported CloudFormation value %v", x)
	}
	return "", fmt.Errorf("unsupported CloudFormation value %v", v)
}

// Definition returns the state machine's definition with its references
// resolved. The template must hold exactly one state machine.
func (t *Template) Definition(r Resolver) (json.RawMessage, error) {
	return t.DefinitionOf(r, MainStateMachine)
}

// The CDK construct ids of keyrotor's two state machines.
const (
	MainStateMachine  = "StateMachine"      // the daily rotation
	GraceStateMachine = "GraceStateMachine" // one key's grace period and deletion
)

// DefinitionOf resolves the definition of the state machine whose CDK
// construct id is id.
func (t *Template) DefinitionOf(r Resolver, id string) (json.RawMessage, error) {
	var found []string
	for _, lid := range t.OfType("AWS::StepFunctions::StateMachine") {
		if strings.Contains(t.CDKPath(lid), "/"+id+"/") || strings.HasPrefix(lid, id) && !strings.HasPrefix(lid, id+"Grace") {
			found = append(found, lid)
		}
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("template has %d state machines with construct id %s; want 1", len(found), id)
	}
	var p struct {
		DefinitionString any
	}
	if err := json.Unmarshal(t.Resources[found[0]].Properties, &p); err != nil {
		return nil, err
	}
	s, err := r.Resolve(p.DefinitionString)
	if err != nil {
		return nil, fmt.Errorf("state machine definition: %w", err)
	}
	if !json.Valid([]byte(s)) {
		return nil, fmt.Errorf("state machine definition is not JSON after resolving")
	}
	return json.RawMessage(s), nil
}

// LambdaProps are the properties of an AWS::Lambda::Function a local run uses.
type LambdaProps struct {
	Environment struct {
		Variables map[string]any
	}
	Timeout    float64
	MemorySize float64
	// ReservedConcurrentExecutions is the function's reserved concurrency
	// (0: none), which the local server enforces (Function.Reserved).
	ReservedConcurrentExecutions float64
}

// Lambda returns the properties of function id.
func (t *Template) Lambda(id string) (LambdaProps, error) {
	var p LambdaProps
	err := json.Unmarshal(t.Resources[id].Properties, &p)
	return p, err
}
