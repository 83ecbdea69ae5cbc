package local

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"

	"github.com/keyrotor/keyrotor/shared/awsconf"
)

// StackName is the name of keyrotor's stack (infra/main.go), and of the
// local run's stand-in for it.
const StackName = "KeyRotor"

// Output is one output of a template.
type Output struct {
	Value       any    `json:"Value"`
	Description string `json:"Description"`
}

// StackAPI is the part of CloudFormation the stand-in stack needs.
type StackAPI interface {
	CreateStack(ctx context.Context, in *cloudformation.CreateStackInput, optFns ...func(*cloudformation.Options)) (*cloudformation.CreateStackOutput, error)
	UpdateStack(ctx context.Context, in *cloudformation.UpdateStackInput, optFns ...func(*cloudformation.Options)) (*cloudformation.UpdateStackOutput, error)
}

var _ StackAPI = (*cloudformation.Client)(nil)

// OutputValues resolves the template's outputs with r; a state machine's
// Ref is its ARN in region (as CloudFormation returns it), named by its
// StateMachineName.
func (t *Template) OutputValues(r Resolver, region string) (map[string]string, error) {
	machines := map[string]string{}
	for _, id := range t.OfType("AWS::StepFunctions::StateMachine") {
		var p struct{ StateMachineName string }
		if json.Unmarshal(t.Resources[id].Properties, &p) == nil && p.StateMachineName != "" {
			machines[id] = "arn:aws:states:" + region + ":123456789012:stateMachine:" + p.StateMachineName
		}
	}
	ref := r.Ref
	r.Ref = func(id string) (string, bool) {
		if arn, ok := machines[id]; ok {
			return arn, true
		}
		return ref(id)
	}
	out := map[string]string{}
	for name, o := range t.Outputs {
		v, err := r.Resolve(o.Value)
		if err != nil {
			return nil, fmt.Errorf("output %s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// recordOutputs records the stack's outputs, resolved to this run's local
// stand-ins (table, bucket, topic, the state machines' ARNs), as a
// CloudFormation stack named StackName on the emulator: a stack of
// outputs only (one WaitConditionHandle, nothing else), so the operator
// commands find the resources of a local run with DescribeStacks, exactly
// as they find a deployed stack's.
func recordOutputs(ctx context.Context, api StackAPI, values map[string]string) error {
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	outputs := map[string]any{}
	for _, n := range names {
		outputs[n] = map[string]string{"Value": values[n]}
	}
	body, err := json.Marshal(map[string]any{
		"Description": "keyrotor local run: the outputs of the KeyRotor stack, resolved to the emulator's stand-ins (no resources)",
		"Resources":   map[string]any{"LocalRun": map[string]string{"Type": "AWS::CloudFormation::WaitConditionHandle"}},
		"Outputs":     outputs,
	})
	if err != nil {
		return err
	}
	_, err = api.CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String(StackName), TemplateBody: aws.String(string(body))})
	if err == nil {
		return nil
	}
	if !strings.Contains(err.Error(), "AlreadyExists") {
		return fmt.Errorf("record the stack outputs: %w", err)
	}
	_, err = api.UpdateStack(ctx, &cloudformation.UpdateStackInput{StackName: aws.String(StackName), TemplateBody: aws.String(string(body))})
	if err != nil && !strings.Contains(err.Error(), "No updates") {
		return fmt.Errorf("record the stack outputs: %w", err)
	}
	return nil
}

// recordOutputs records tmpl's outputs, resolved to res, on o's endpoint.
func (res *resources) recordOutputs(ctx context.Context, tmpl *Template, o Options) error {
	values, err := tmpl.OutputValues(res.resolver(), o.Region)
	if err != nil {
		return err
	}
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: o.Endpoint, Region: o.Region, StaticTestCredentials: true})
	if err != nil {
		return err
	}
	return recordOutputs(ctx, cloudformation.NewFromConfig(cfg), values)
}
