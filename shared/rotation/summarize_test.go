package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func task(user, old, newKey string, deleted bool, reason string) rotation.Task {
	t := rotation.Task{Execution: "run-1", Item: rotation.Item{User: user, Action: "rotate", OldKey: rotation.KeyRef{ID: old}}}
	t.NewKey = &rotation.NewKey{KeyID: newKey, SecretName: "iam-access-keys/" + user}
	t.Notice = &rotation.Notice{MailStatus: "sent"}
	t.Cleanup = &rotation.Cleanup{KeyID: old, Deleted: deleted, Reason: reason}
	return t
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
