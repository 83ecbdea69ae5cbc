package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// fakeExecutions is Step Functions for one execution that runs for
// `running` polls, then ends with status and output.
type fakeExecutions struct {
	started *sfn.StartExecutionInput
	running int
	status  types.ExecutionStatus
	output  string
}

func (f *fakeExecutions) StartExecution(_ context.Context, in *sfn.StartExecutionInput, _ ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error) {
	f.started = in
	return &sfn.StartExecutionOutput{ExecutionArn: aws.String("arn:aws:states:us-east-1:123456789012:execution:KeyRotor:" + aws.ToString(in.Name))}, nil
}

func (f *fakeExecutions) DescribeExecution(_ context.Context, in *sfn.DescribeExecutionInput, _ ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error) {
	if f.running > 0 {
		f.running--
		return &sfn.DescribeExecutionOutput{Status: types.ExecutionStatusRunning}, nil
	}
	return &sfn.DescribeExecutionOutput{Status: f.status, Output: aws.String(f.output), Error: aws.String("States.TaskFailed"), Cause: aws.String("boom")}, nil
}

var _ ExecutionsAPI = (*fakeExecutions)(nil)

// TestDryRun: plan starts the deployed state machine with dryRun set (and
// the request's users), named plan-<time>, waits while it runs and returns
// its plan; a failed execution is an error naming it.
func TestDryRun(t *testing.T) {
	now := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	plan, _ := json.Marshal(rotation.Plan{DryRun: true, Items: []rotation.Item{{User: "alice", Action: policy.Rotate, OldKey: rotation.KeyRef{ID: "AKIAOLD", AgeDays: 120}, Reason: "due"}}})
	tests := []struct {
		name    string
		f       *fakeExecutions
		wantErr string
	}{
		{name: "succeeds after polls", f: &fakeExecutions{running: 2, status: types.ExecutionStatusSucceeded, output: string(plan)}},
		{name: "fails", f: &fakeExecutions{status: types.ExecutionStatusFailed}, wantErr: "ended FAILED: States.TaskFailed: boom"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, arn, err := DryRun(context.Background(), tc.f, "arn:sm", rotation.Request{Users: []string{"alice"}}, now, time.Millisecond)
			if got := aws.ToString(tc.f.started.Input); got != `{"dryRun":true,"users":["alice"]}` || aws.ToString(tc.f.started.Name) != "plan-20270102T030405Z" {
				t.Errorf("started %s with %s; want plan-20270102T030405Z with dryRun and the users", aws.ToString(tc.f.started.Name), got)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), arn) {
					t.Fatalf("DryRun error %v; want %q naming the execution", err, tc.wantErr)
				}
				return
			}
			if err != nil || len(p.Items) != 1 || p.Items[0].OldKey.ID != "AKIAOLD" {
				t.Fatalf("DryRun = %+v, %v", p, err)
			}
			var b bytes.Buffer
			if err := WritePlanTable(&b, p); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "rotate  alice  AKIAOLD  120d  due") {
				t.Errorf("plan table:\n%s", b.String())
			}
		})
	}
}
