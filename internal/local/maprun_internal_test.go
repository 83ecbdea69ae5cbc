package local

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestResultWriterFormat: the files the local ResultWriter writes are read
// by the summarize step as Step Functions' own: a succeeded child counts
// from its output, a failed one from its input, with its error, and goes
// into the retry plan.
func TestResultWriterFormat(t *testing.T) {
	a := awstest.New(t)
	a.Bucket(t, "results-bucket")
	mux := http.NewServeMux()
	(&mapRuns{s3: a.S3, region: "us-east-1"}).serve(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	body, _ := json.Marshal(map[string]any{
		"state": "RotateEachUser", "execution": "arn:aws:states:us-east-1:123456789012:execution:KeyRotor:run-1",
		"bucket": "results-bucket", "prefix": "results",
		"children": []map[string]any{
			{"index": 0, "status": "SUCCEEDED", "input": json.RawMessage(`{"execution":"run-1","item":{"user":"alice","action":"retire","oldKey":{"id":"AKIAALICE"}}}`),
				"output": json.RawMessage(`{"execution":"run-1","item":{"user":"alice","action":"retire","oldKey":{"id":"AKIAALICE"}},"notice":{"accepted":true,"mailStatus":"sent"}}`)},
			{"index": 1, "status": "FAILED", "error": "StepError", "cause": "boom",
				"input": json.RawMessage(`{"execution":"run-1","item":{"user":"bob","action":"retire","oldKey":{"id":"AKIABOB"}}}`)},
		},
	})
	resp, err := http.Post(srv.URL+"/result-writer", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var ref struct {
		MapRunArn           string
		ResultWriterDetails struct{ Bucket, Key string }
	}
	if err := json.NewDecoder(resp.Body).Decode(&ref); err != nil || resp.StatusCode != 200 || ref.ResultWriterDetails.Key == "" {
		t.Fatalf("result writer answered %d %+v (%v); want the manifest reference", resp.StatusCode, ref, err)
	}
	out, err := a.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("results-bucket"), Key: aws.String(ref.ResultWriterDetails.Key)})
	if err != nil {
		t.Fatal(err)
	}
	var man manifest
	json.NewDecoder(out.Body).Decode(&man)
	out.Body.Close()
	if len(man.ResultFiles["SUCCEEDED"]) != 1 || len(man.ResultFiles["FAILED"]) != 1 || man.MapRunArn != ref.MapRunArn || man.DestinationBucket != "results-bucket" {
		t.Fatalf("manifest = %+v; want one SUCCEEDED and one FAILED file", man)
	}

	refJSON, _ := json.Marshal(ref)
	s := &rotation.Summarizer{S3: a.S3}
	sum, err := s.Handle(context.Background(), rotation.SummarizeInput{
		Plan:          rotation.Plan{Bucket: "results-bucket", ItemsKey: "plans/2026-11-23/run-1/items.json"},
		Results:       refJSON,
		ExecutionName: "run-1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Totals.Failed != 1 || sum.Totals.Retired+sum.Totals.Skipped+sum.Totals.Waiting != 1 {
		t.Errorf("totals = %+v; want one failed and alice counted", sum.Totals)
	}
	if sum.RetryPlan == nil || len(sum.RetryPlan.Items) != 1 || sum.RetryPlan.Items[0].User != "bob" {
		t.Fatalf("retry plan = %+v; want bob, from the FAILED file's input", sum.RetryPlan)
	}
}
