package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	"github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/keyrotor/keyrotor/shared/rotation"
)

// ExecutionsAPI starts and watches executions (Step Functions).
type ExecutionsAPI interface {
	StartExecution(ctx context.Context, in *sfn.StartExecutionInput, optFns ...func(*sfn.Options)) (*sfn.StartExecutionOutput, error)
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, optFns ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

var _ ExecutionsAPI = (*sfn.Client)(nil)

// DryRun starts a dry run of the deployed state machine (input: req with
// dryRun set) and waits for its plan, checking every poll. The execution
// is named plan-<time>, so it is found in the console.
func DryRun(ctx context.Context, api ExecutionsAPI, stateMachineARN string, req rotation.Request, now time.Time, poll time.Duration) (*rotation.Plan, string, error) {
	req.DryRun = true
	input, _ := json.Marshal(req)
	name := "plan-" + now.UTC().Format("20060102T150405Z")
	out, err := api.StartExecution(ctx, &sfn.StartExecutionInput{StateMachineArn: aws.String(stateMachineARN), Name: aws.String(name), Input: aws.String(string(input))})
	if err != nil {
		return nil, "", fmt.Errorf("start the dry run %s: %w", name, err)
	}
	arn := aws.ToString(out.ExecutionArn)
	for {
		d, err := api.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(arn)})
		if err != nil {
			return nil, arn, fmt.Errorf("watch the dry run %s: %w", arn, err)
		}
		switch d.Status {
		case types.ExecutionStatusRunning, types.ExecutionStatusPendingRedrive:
		case types.ExecutionStatusSucceeded:
			var p rotation.Plan
			if err := json.Unmarshal([]byte(aws.ToString(d.Output)), &p); err != nil {
				return nil, arn, fmt.Errorf("the dry run %s did not output a plan: %w", arn, err)
			}
			return &p, arn, nil
		default:
			return nil, arn, fmt.Errorf("the dry run %s ended %s: %s: %s", arn, d.Status, aws.ToString(d.Error), aws.ToString(d.Cause))
		}
		select {
		case <-ctx.Done():
			return nil, arn, fmt.Errorf("stopped waiting for the dry run %s (it goes on in Step Functions): %w", arn, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// WritePlanTable prints a plan for people: its counts, the work (one row
// per key), then the users it does not act on, with the reasons.
func WritePlanTable(w io.Writer, p *rotation.Plan) error {
	var b bytes.Buffer
	c := p.Counts
	fmt.Fprintf(&b, "Dry run as of %s: %d users, %d to rotate, %d to retire, %d blocked, %d exempt, %d held, %d needing attention, %d in flight, %d adopting\n",
		p.AsOf.UTC().Format(time.RFC3339), c.Users, c.Rotate, c.Retire, c.Blocked, c.Exempt, c.Held, c.Attention, c.InFlight, c.Adopting)
	org := len(p.Accounts) > 0
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	head := "ACTION\tUSER\tKEY\tAGE\tREASON"
	if org {
		head = "ACCOUNT\t" + head
	}
	fmt.Fprintln(&b)
	fmt.Fprintln(tw, head)
	row := func(account, action, user, key, age, reason string) {
		cols := []string{action, user, key, age, reason}
		if org {
			cols = append([]string{accountName(account)}, cols...)
		}
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	}
	for _, it := range p.Items {
		row(it.Account, string(it.Action), it.User, it.OldKey.ID, fmt.Sprintf("%dd", it.OldKey.AgeDays), it.Reason)
	}
	for _, l := range []struct {
		action string
		list   []rotation.Skipped
	}{{"blocked", p.Blocked}, {"held", p.Held}, {"attention", p.Attention}, {"in flight", p.InFlight}, {"adopting", p.Adopting}, {"exempt", p.Exempt}} {
		for _, s := range l.list {
			row(s.Account, l.action, s.User, s.KeyID, "-", s.Reason)
		}
	}
	tw.Flush()
	if p.ItemsTruncated {
		fmt.Fprintf(&b, "(the items are cut short: the full list is s3://%s/%s)\n", p.Bucket, p.ItemsKey)
	}
	if org {
		fmt.Fprintln(&b)
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tSTAGE\tSTATUS\tUSERS\tITEMS\tREASON")
		for _, a := range p.Accounts {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%s\n", a.Account, a.Stage, a.Status, a.Users, a.Items, a.Reason)
		}
		tw.Flush()
	}
	_, err := w.Write(b.Bytes())
	return err
}
