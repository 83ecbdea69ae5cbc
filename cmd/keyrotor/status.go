package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/shared/audit"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

func init() {
	commands["status"] = runStatus
	commands["plan"] = runPlan
	commands["hold"] = runHold
}

// stackFlags are the flags of the commands that work on a deployed stack
// (status, plan, hold): they find its resources from its outputs.
type stackFlags struct {
	endpoint, stack, region string
	json                    bool
}

func (f *stackFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoint, "endpoint", "", "AWS-compatible endpoint, e.g. an emulator a local run used (default: AWS itself, with your credentials)")
	fs.StringVar(&f.stack, "stack", local.StackName, "the stack's name")
	fs.StringVar(&f.region, "region", "", "the stack's region (default: your AWS configuration's)")
	fs.BoolVar(&f.json, "json", false, "print JSON instead of a table")
}

// open loads the caller's AWS configuration and finds the stack.
func (f *stackFlags) open(ctx context.Context) (aws.Config, *operator.Stack, error) {
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: f.endpoint, Region: f.region})
	if err != nil {
		return aws.Config{}, nil, err
	}
	st, err := operator.FindStack(ctx, cloudformation.NewFromConfig(cfg), f.stack, cfg.Region)
	return cfg, st, err
}

// s3Client is an S3 client for cfg (path style against an emulator).
func s3Client(cfg aws.Config) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = cfg.BaseEndpoint != nil
		o.DisableLogOutputChecksumValidationSkipped = true
	})
}

// writeJSON prints v indented.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runStatus(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	var sf stackFlags
	sf.register(fs)
	if code, ok := parseFlags(fs, args, "usage: keyrotor status [--json] [--stack NAME] [--endpoint URL]\n\n"+
		"What keyrotor is doing in the deployed stack (found from its outputs): rotations in flight,\n"+
		"in their adoption window, in grace with their delete date, held by a person with the date\n"+
		"the hold ends, and needing attention with what to do (per account in organization mode),\n"+
		"with the dashboard's figures: keys by age band and the oldest key to rotate as of the last\n"+
		"run. It changes nothing.", stdout, stderr); !ok {
		return code
	}
	cfg, stack, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor status: %v\n", err)
		return 1
	}
	table, err := stack.Output(operator.OutputTable)
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor status: %v\n", err)
		return 1
	}
	records, err := (&ledger.Store{API: dynamodb.NewFromConfig(cfg), Table: table}).All(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor status: %v\n", err)
		return 1
	}
	var report *audit.Report
	key := ""
	if bucket, err := stack.Output(operator.OutputBucket); err == nil {
		if report, key, err = operator.LatestReport(ctx, s3Client(cfg), bucket); err != nil {
			fmt.Fprintf(stderr, "keyrotor status: %v\n", err)
			return 1
		}
	}
	st := operator.BuildStatus(stack.Name, records, report, key, time.Now())
	if sf.json {
		err = writeJSON(stdout, st)
	} else {
		err = st.WriteTable(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor status: %v\n", err)
		return 1
	}
	return 0
}
