// Package operator is what the operator commands (`keyrotor status`,
// `plan`, `hold`) know: the deployed stack's resources found from its
// outputs, the state of every rotation at a glance with the dashboard's
// figures, a person's hold, and a dry run of the deployed state machine.
//
// A local run (`keyrotor run`) records the outputs of the stack it ran,
// resolved to the emulator's stand-ins, as a CloudFormation stack of the
// same name on the emulator (internal/local.StackName), so the commands
// find a local run's resources exactly as they find a deployment's.
package operator

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
)

// The stack outputs the commands use (infra/stack.go).
const (
	OutputTable         = "RotationTableName"
	OutputBucket        = "ReportBucketName"
	OutputStateMachine  = "StateMachineArn"
	OutputGraceMachine  = "GraceStateMachineArn"
	OutputDashboardName = "DashboardName"
)

// Stack is a deployed keyrotor stack, by its outputs.
type Stack struct {
	Name    string
	Region  string
	Outputs map[string]string
}

// FindStack reads the outputs of stack name (CloudFormation
// DescribeStacks) with the caller's credentials.
func FindStack(ctx context.Context, api cloudformation.DescribeStacksAPIClient, name, region string) (*Stack, error) {
	out, err := api.DescribeStacks(ctx, &cloudformation.DescribeStacksInput{StackName: aws.String(name)})
	if err != nil {
		if strings.Contains(err.Error(), "does not exist") {
			return nil, fmt.Errorf("stack %s not found in %s: deploy it (make deploy), pick its region (AWS_REGION) or name it (--stack); against an emulator, run `keyrotor run` first", name, region)
		}
		return nil, fmt.Errorf("read stack %s: %w", name, err)
	}
	if len(out.Stacks) == 0 {
		return nil, fmt.Errorf("stack %s not found in %s", name, region)
	}
	s := &Stack{Name: name, Region: region, Outputs: map[string]string{}}
	for _, o := range out.Stacks[0].Outputs {
		s.Outputs[aws.ToString(o.OutputKey)] = aws.ToString(o.OutputValue)
	}
	return s, nil
}

// Output returns an output's value, or an error saying how to get it.
func (s *Stack) Output(key string) (string, error) {
	if v := s.Outputs[key]; v != "" {
		return v, nil
	}
	return "", fmt.Errorf("stack %s has no output %s: deploy this version of keyrotor (make deploy)", s.Name, key)
}
