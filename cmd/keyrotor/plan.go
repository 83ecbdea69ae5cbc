package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func runPlan(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("plan", flag.ContinueOnError)
	var sf stackFlags
	sf.register(fs)
	users := fs.String("users", "", "only these users, comma-separated (the input's users)")
	asOf := fs.String("as-of", "", "preview what will be due then (RFC 3339, the input's asOf)")
	wait := fs.Duration("timeout", 10*time.Minute, "how long to wait for the dry run")
	template := fs.String("template", "cdk.out/KeyRotor.template.json", "with --endpoint: the synthesized template the local engine runs (make synth)")
	bin := fs.String("bin", "build/host", "with --endpoint: the functions built for this machine (make build-host)")
	if code, ok := parseFlags(fs, args, "usage: keyrotor plan [--json] [--users a,b] [--as-of TIME] [--stack NAME] [--endpoint URL]\n\n"+
		"A dry run of the deployed state machine (its input {\"dryRun\": true}), shown as a table:\n"+
		"the keys a run would rotate or retire now, and the users it would not act on, with why.\n"+
		"It changes nothing. Against AWS it starts an execution named plan-<time> of the stack's\n"+
		"StateMachineArn and waits for it; with --endpoint (an emulator, which has no Step Functions\n"+
		"engine) it runs the synthesized state machine on the local engine, as `keyrotor run` does.", stdout, stderr); !ok {
		return code
	}
	req := rotation.Request{DryRun: true, AsOf: *asOf}
	if *users != "" {
		for _, u := range strings.Split(*users, ",") {
			req.Users = append(req.Users, strings.TrimSpace(u))
		}
	}
	input, _ := json.Marshal(req)
	if _, err := rotation.ParseRequest(input); err != nil {
		fmt.Fprintf(stderr, "keyrotor plan: %v\n", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(ctx, *wait)
	defer cancel()
	var plan *rotation.Plan
	if sf.endpoint != "" {
		p, err := localPlan(ctx, sf.endpoint, *template, *bin, input)
		if err != nil {
			fmt.Fprintf(stderr, "keyrotor plan: %v\n", err)
			return 1
		}
		plan = p
	} else {
		cfg, stack, err := sf.open(ctx)
		if err != nil {
			fmt.Fprintf(stderr, "keyrotor plan: %v\n", err)
			return 1
		}
		arn, err := stack.Output(operator.OutputStateMachine)
		if err != nil {
			fmt.Fprintf(stderr, "keyrotor plan: %v\n", err)
			return 1
		}
		p, execution, err := operator.DryRun(ctx, sfn.NewFromConfig(cfg), arn, req, time.Now(), 2*time.Second)
		if err != nil {
			fmt.Fprintf(stderr, "keyrotor plan: %v\n", err)
			return 1
		}
		fmt.Fprintf(stderr, "dry run %s\n", execution)
		plan = p
	}
	var err error
	if sf.json {
		err = writeJSON(stdout, plan)
	} else {
		err = operator.WritePlanTable(stdout, plan)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor plan: %v\n", err)
		return 1
	}
	return 0
}

// localPlan runs the dry run on the local engine against an emulator.
func localPlan(ctx context.Context, endpoint, template, bin string, input json.RawMessage) (*rotation.Plan, error) {
	if _, err := os.Stat(template); err != nil {
		return nil, fmt.Errorf("--template %s: not found: run `make synth`", template)
	}
	work, err := os.MkdirTemp("", "keyrotor-plan-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	res, err := local.Run(ctx, local.Options{Endpoint: endpoint, Template: template, BinDir: bin, Input: input,
		ExecutionName: "plan-" + time.Now().UTC().Format("20060102T150405Z"), WorkDir: work})
	if err != nil {
		return nil, err
	}
	if res.Status != "SUCCEEDED" {
		return nil, fmt.Errorf("the dry run %s at %s: %s: %s", res.Status, res.FailedState, res.Error, res.Cause)
	}
	var p rotation.Plan
	if err := json.Unmarshal(res.Output, &p); err != nil {
		return nil, fmt.Errorf("the dry run did not output a plan: %w", err)
	}
	return &p, nil
}
