package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// task is a child's result. With deleted set, a rotation that went as
// planned (old key deactivated, its grace-and-delete execution started:
// "rotated"); without, a resumed rotation whose delete refused, saying
// why ("kept").
func task(user, old, newKey string, deleted bool, reason string) rotation.Task {
	t := rotation.Task{Execution: "run-1", Item: rotation.Item{User: user, Action: "rotate", OldKey: rotation.KeyRef{ID: old}}}
	t.NewKey = &rotation.NewKey{KeyID: newKey, SecretName: "iam-access-keys/" + user, Rotation: 1}
	t.Notice = &rotation.Notice{MailStatus: "sent", Accepted: true}
	after := time.Date(2026, 11, 30, 6, 0, 0, 0, time.UTC)
	t.Deactivation = &rotation.Deactivation{KeyID: old, DeactivatedAt: after.Add(-7 * 24 * time.Hour), DeleteAfter: after, Rotation: 1,
		Next: rotation.NextGrace, GraceExecution: rotation.GraceExecutionName(user, old, 1)}
	if !deleted {
		t.Deactivation.Next = rotation.NextDelete
		t.Cleanup = &rotation.Cleanup{KeyID: old, Reason: reason}
	}
	return t
}

// TestSummarizeOutcomes: what summarize makes of each way a child ends.
func TestSummarizeOutcomes(t *testing.T) {
	base := func(edit func(t *rotation.Task)) rotation.Task {
		t := task("ann", "AK1", "AKN1", true, "")
		edit(&t)
		return t
	}
	tests := []struct {
		name   string
		task   rotation.Task
		result string
		reason string
	}{
		{"rotated: grace execution started", base(func(*rotation.Task) {}), "rotated", "to be deleted after 2026-11-30T06:00:00Z by its grace-and-delete execution ann-AK1-r1"},
		{"retired", base(func(t *rotation.Task) { t.Item.Action, t.NewKey = "retire", nil }), "retired", "old key Inactive"},
		{"resumed, grace over: deleted", base(func(t *rotation.Task) {
			t.Deactivation.Next, t.Cleanup = rotation.NextDelete, &rotation.Cleanup{KeyID: "AK1", Deleted: true, Reason: "deleted after its grace period"}
		}), "deleted", "deleted after its grace period"},
		{"resumed, delete refused: kept", task("ann", "AK1", "AKN1", false, "not deleted: the new key was deleted"), "kept", "the new key was deleted"},
		{"adoption window started", base(func(t *rotation.Task) {
			t.Notice.Adoption = &rotation.Adoption{Execution: "ann-AK1-r1", Until: time.Date(2026, 12, 14, 6, 0, 0, 0, time.UTC)}
			t.Deactivation = nil
		}), "adopting", "at the latest until 2026-12-14T06:00:00Z; checked by execution ann-AK1-r1"},
		{"notice refused: waiting", base(func(t *rotation.Task) {
			t.Notice = &rotation.Notice{MailStatus: "refused", Waiting: "the owner's mail was refused"}
			t.Deactivation = nil
		}), "waiting", "refused"},
		{"notice unknown: waiting", base(func(t *rotation.Task) {
			t.Notice = &rotation.Notice{MailStatus: "unknown", Waiting: "the outcome is unknown"}
			t.Deactivation = nil
		}), "waiting", "unknown"},
		{"held at create", base(func(t *rotation.Task) {
			t.NewKey, t.Notice, t.Deactivation = &rotation.NewKey{Skipped: "held until 2026-12-23T06:00:00Z: re-activated"}, nil, nil
		}), "held", "re-activated"},
		{"held at deactivate", base(func(t *rotation.Task) {
			t.Deactivation = &rotation.Deactivation{KeyID: "AK1", Next: rotation.NextStop, Note: "the old key AK1 was re-activated by a person"}
		}), "held", "re-activated"},
		{"in flight elsewhere: skipped", base(func(t *rotation.Task) {
			t.NewKey, t.Notice, t.Deactivation = &rotation.NewKey{Skipped: "rotation 1 is in flight in execution other"}, nil, nil
		}), "skipped", "in flight"},
		{"notify skipped", base(func(t *rotation.Task) {
			t.Notice, t.Deactivation = &rotation.Notice{MailStatus: "skipped", Skipped: "no rotation record"}, nil
		}), "skipped", "no rotation record"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, _ := json.Marshal([]rotation.Task{tt.task})
			sum, err := (&rotation.Summarizer{}).Handle(context.Background(), rotation.SummarizeInput{Results: raw, ExecutionName: "run-1"})
			if err != nil || len(sum.Users) != 1 {
				t.Fatalf("Handle = %+v, %v", sum, err)
			}
			if o := sum.Users[0]; o.Result != tt.result || !strings.Contains(o.Reason, tt.reason) {
				t.Fatalf("outcome = %+v; want result %s, reason containing %q", o, tt.result, tt.reason)
			}
		})
	}
}

// TestMotoSummarize reads both result shapes: the inline list (local engine)
// and the ResultWriter manifest in S3 (AWS), builds the retry plan for
// failed users on the first pass, and merges the second pass.
func TestMotoSummarize(t *testing.T) {
	a := awstest.New(t)
	a.Bucket(t, "reports")
	topic := a.Topic(t, "admins")
	cfg := config.Default()
	cfg.AdminTopicARN = topic
	s := &rotation.Summarizer{S3: a.S3, Topic: a.SNS, Config: cfg}
	ctx := context.Background()
	plan := rotation.Plan{ExecutionName: "run-1", Pass: 1, ToleratedFailurePercentage: 100, Bucket: "reports",
		ItemsKey: "plans/2026-11-23/run-1/items.json", Blocked: []rotation.Skipped{{User: "zed", KeyID: "AK3", Action: "blocked", Reason: "two active keys"}}}

	// Inline results: two rotated, one kept.
	inline, _ := json.Marshal([]rotation.Task{task("ann", "AK1", "AKN1", true, "deleted"), task("ben", "AK2", "AKN2", false, "not deleted: re-activated")})
	sum, err := s.Handle(ctx, rotation.SummarizeInput{Plan: plan, Results: inline, ExecutionName: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Totals.Rotated != 1 || sum.Totals.Kept != 1 || sum.Totals.Blocked != 1 || sum.RetryPlan != nil || sum.Totals.Mails != 2 {
		t.Fatalf("inline summary = %+v", sum.Totals)
	}
	_, notes := a.Sent(t)
	if len(notes) != 1 || !strings.Contains(notes[0].Message, "zed key AK3: two active keys") || !strings.Contains(notes[0].Message, "ben key AK2: kept") {
		t.Fatalf("admin summary = %+v", notes)
	}

	// ResultWriter manifest: one succeeded, one failed child.
	put := func(key string, v any) {
		b, _ := json.Marshal(v)
		if _, err := a.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: ptr("reports"), Key: ptr(key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	okOut, _ := json.Marshal(task("ann", "AK1", "AKN1", true, "deleted"))
	failIn, _ := json.Marshal(rotation.Task{Execution: "run-1", Item: rotation.Item{User: "cy", Action: "rotate", OldKey: rotation.KeyRef{ID: "AK4"}}})
	put("results/m/SUCCEEDED_0.json", []map[string]any{{"Status": "SUCCEEDED", "Input": "{}", "Output": string(okOut)}})
	put("results/m/FAILED_0.json", []map[string]any{{"Status": "FAILED", "Input": string(failIn), "Error": "StepError", "Cause": "boom"}})
	put("results/m/manifest.json", map[string]any{"ResultFiles": map[string]any{
		"SUCCEEDED": []map[string]any{{"Key": "results/m/SUCCEEDED_0.json"}},
		"FAILED":    []map[string]any{{"Key": "results/m/FAILED_0.json"}},
	}})
	rw := []byte(`{"MapRunArn":"arn:x","ResultWriterDetails":{"Bucket":"reports","Key":"results/m/manifest.json"}}`)
	sum, err = s.Handle(ctx, rotation.SummarizeInput{Plan: plan, Results: rw, ExecutionName: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Totals.Failed != 1 || sum.RetryPlan == nil || sum.RetryPlan.Pass != 2 || sum.RetryPlan.ToleratedFailurePercentage != 0 || len(sum.RetryPlan.Items) != 1 || sum.RetryPlan.Items[0].User != "cy" {
		t.Fatalf("manifest summary = %+v retry %+v", sum.Totals, sum.RetryPlan)
	}
	// Pass 2: cy succeeds; the merged summary keeps ann.
	retryOut, _ := json.Marshal([]rotation.Task{task("cy", "AK4", "AKN4", true, "deleted")})
	sum, err = s.Handle(ctx, rotation.SummarizeInput{Plan: *sum.RetryPlan, Results: retryOut, ExecutionName: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Totals.Rotated != 2 || sum.Totals.Failed != 0 || sum.RetryPlan != nil || sum.Pass != 2 {
		t.Fatalf("pass 2 summary = %+v (retry %v)", sum.Totals, sum.RetryPlan)
	}
}

// TestSummarizeAccounts: in organization mode the summary totals each
// account (keyrotor's own account's items name no account), reports an
// unreachable account with its fix, and does not send a child that failed
// on an unreachable account through the retry pass (only a person can fix it).
func TestSummarizeAccounts(t *testing.T) {
	const home, dev, prod = "100000000000", "200000000000", "300000000000"
	own := task("ann", "AK1", "AKN1", true, "")
	member := task("bob", "AK2", "AKN2", true, "")
	member.Item.Account, member.Item.AccountAlias = dev, "dev"
	lost := rotation.Task{Execution: "run-1", Item: rotation.Item{Account: dev, User: "cy", Action: "rotate", OldKey: rotation.KeyRef{ID: "AK3"}}}
	flaky := rotation.Task{Execution: "run-1", Item: rotation.Item{Account: dev, User: "di", Action: "rotate", OldKey: rotation.KeyRef{ID: "AK4"}}}
	a := awstest.New(t)
	a.Bucket(t, "reports")
	put := func(key string, v any) {
		b, _ := json.Marshal(v)
		if _, err := a.S3.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("reports"), Key: aws.String(key), Body: bytes.NewReader(b)}); err != nil {
			t.Fatal(err)
		}
	}
	in := func(tk rotation.Task) string { b, _ := json.Marshal(tk); return string(b) }
	put("res/SUCCEEDED_0.json", []map[string]string{{"Status": "SUCCEEDED", "Output": in(own)}, {"Status": "SUCCEEDED", "Output": in(member)}})
	put("res/FAILED_0.json", []map[string]string{
		{"Status": "FAILED", "Input": in(lost), "Error": "AccountUnreachableError", "Cause": "account 200000000000 unreachable: ..."},
		{"Status": "FAILED", "Input": in(flaky), "Error": "TransientError", "Cause": "IAM unavailable"}})
	put("res/manifest.json", map[string]any{"ResultFiles": map[string]any{
		"SUCCEEDED": []map[string]string{{"Key": "res/SUCCEEDED_0.json"}}, "FAILED": []map[string]string{{"Key": "res/FAILED_0.json"}}}})
	plan := rotation.Plan{Pass: 1, Bucket: "reports", ItemsKey: "plans/2026-11-30/run-1/items.json", Counts: rotation.Counts{Accounts: 3, Unreachable: 1},
		Accounts: []rotation.AccountPlan{{Account: home, Stage: 1, Status: rotation.AccountPlanned}, {Account: dev, Alias: "dev", Stage: 1, Status: rotation.AccountPlanned},
			{Account: prod, Stage: 1, Status: rotation.AccountUnreachable, Reason: "deploy the member stack (KeyRotorMember) in account " + prod}}}
	results, _ := json.Marshal(map[string]any{"ResultWriterDetails": map[string]string{"Bucket": "reports", "Key": "res/manifest.json"}})
	topic := a.Topic(t, "admins")
	s := &rotation.Summarizer{S3: a.S3, Topic: a.SNS, Config: config.Config{AdminTopicARN: topic, HomeAccount: home, OrgScope: []string{"all"}}}
	sum, err := s.Handle(context.Background(), rotation.SummarizeInput{Plan: plan, Results: results, ExecutionName: "run-1"})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]rotation.AccountTotals{}
	for _, x := range sum.Accounts {
		got[x.Account] = x
	}
	if got[home].Result != rotation.AccountRotated || got[dev].Result != rotation.AccountFailed || got[prod].Result != rotation.AccountUnreachable {
		t.Fatalf("account results = %+v; want rotated in keyrotor's own, failed in dev, unreachable in prod (not the plan's \"planned\")", sum.Accounts)
	}
	if got[home].Rotated != 1 || got[dev].Rotated != 1 || got[dev].Failed != 2 || got[prod].Status != rotation.AccountUnreachable || sum.Totals.Unreachable != 1 {
		t.Fatalf("accounts = %+v; want 1 rotated in each reached account, 2 failed in dev, prod unreachable", sum.Accounts)
	}
	if sum.RetryPlan == nil || len(sum.RetryPlan.Items) != 1 || sum.RetryPlan.Items[0].User != "di" {
		t.Fatalf("retry plan = %+v; want only the transient failure (di), not the unreachable account's", sum.RetryPlan)
	}
	// The admins hear of the unreachable account with its fix once the
	// run is over (second pass).
	plan.Pass = 2
	results2, _ := json.Marshal([]rotation.Task{})
	if _, err := s.Handle(context.Background(), rotation.SummarizeInput{Plan: plan, Results: results2, ExecutionName: "run-1"}); err != nil {
		t.Fatal(err)
	}
	_, notes := a.Sent(t)
	if len(notes) != 1 || !strings.Contains(notes[0].Message, "deploy the member stack (KeyRotorMember) in account "+prod) ||
		!strings.Contains(notes[0].Message, "cy in account "+dev) || !strings.Contains(notes[0].Subject, "1 accounts unreachable") {
		t.Fatalf("admin messages = %+v; want one summary naming the unreachable account's fix and the member's users", notes)
	}
}

// TestSummarizeAttentionCleared: a condition the plan reported (alice's
// mail refused on an earlier run) that this run cleared (her notice went
// out, her key rotated) is not in the summary's attention list, nor its
// total, nor the admins' message; one this run did not touch stays.
func TestSummarizeAttentionCleared(t *testing.T) {
	raw, _ := json.Marshal([]rotation.Task{task("alice", "AK1", "AKN1", true, "")})
	plan := rotation.Plan{Pass: 1, Counts: rotation.Counts{Attention: 2}, Attention: []rotation.Skipped{
		{User: "alice", KeyID: "AK1", Action: "attention", Reason: "the owner's mail was refused: MessageRejected"},
		{User: "bob", KeyID: "AK2", Action: "attention", Reason: "the owner's mail was refused: MessageRejected"}}}
	a := awstest.New(t)
	topic := a.Topic(t, "admins")
	s := &rotation.Summarizer{Topic: a.SNS, Config: config.Config{AdminTopicARN: topic}}
	sum, err := s.Handle(context.Background(), rotation.SummarizeInput{Plan: plan, Results: raw, ExecutionName: "run-2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(sum.Users) != 1 || sum.Users[0].Result != "rotated" || sum.Users[0].Mail != "sent" {
		t.Fatalf("users = %+v; want alice rotated and mailed", sum.Users)
	}
	if len(sum.Attention) != 1 || sum.Attention[0].User != "bob" || sum.Totals.Attention != 1 {
		t.Fatalf("attention = %+v (total %d); want only bob's", sum.Attention, sum.Totals.Attention)
	}
	_, notes := a.Sent(t)
	if len(notes) != 1 || strings.Contains(notes[0].Message, "alice key AK1: the owner's mail was refused") || !strings.Contains(notes[0].Message, "bob key AK2") {
		t.Fatalf("admin message = %+v; want bob's condition and not alice's", notes)
	}
}
