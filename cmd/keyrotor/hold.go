package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

func runHold(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("hold", flag.ContinueOnError)
	var sf stackFlags
	sf.register(fs)
	key := fs.String("key", "", "the access key id to leave alone")
	days := fs.Int("days", 0, fmt.Sprintf("how long, in days (1 to %d, holdDays' bounds)", config.MaxHoldDays))
	reason := fs.String("reason", "", "why, for the rotation's history")
	if code, ok := parseFlags(fs, args, "usage: keyrotor hold --key AKIA... --days N [--reason TEXT] [--json] [--stack NAME] [--endpoint URL]\n\n"+
		"A person's hold: keyrotor leaves the key alone for N days (recorded in its rotation record's\n"+
		"history; `keyrotor status` lists it). Nothing in IAM changes: a key in its adoption window\n"+
		"or grace period stays as it is (Active or Inactive) and is not deactivated or deleted while\n"+
		"held. A key keyrotor never rotated gets a record in state held, so its first rotation waits\n"+
		"for the hold. A held key's hold is replaced. End it early with `keyrotor release --key ID`.\n"+
		"See docs/running.md.", stdout, stderr); !ok {
		return code
	}
	if strings.TrimSpace(*key) == "" {
		fmt.Fprintln(stderr, "keyrotor hold: --key is required: the access key id (AKIA...)")
		return 2
	}
	if !flagSet(fs, "days") {
		fmt.Fprintf(stderr, "keyrotor hold: --days is required: a whole number of days from 1 to %d\n", config.MaxHoldDays)
		return 2
	}
	cfg, stack, err := sf.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor hold: %v\n", err)
		return 1
	}
	table, err := stack.Output(operator.OutputTable)
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor hold: %v\n", err)
		return 1
	}
	store := &ledger.Store{API: dynamodb.NewFromConfig(cfg), Table: table}
	rec, err := operator.Hold(ctx, store, iam.NewFromConfig(cfg), operator.HoldRequest{Key: strings.TrimSpace(*key), Days: *days, Reason: *reason, Now: time.Now().UTC()})
	var refused *operator.RefusedError
	if errors.As(err, &refused) {
		fmt.Fprintf(stderr, "keyrotor hold: %v; nothing changed\n", err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor hold: %v\n", err)
		return 1
	}
	if sf.json {
		if err := writeJSON(stdout, rec); err != nil {
			fmt.Fprintf(stderr, "keyrotor hold: %v\n", err)
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "held: key %s (user %s) until %s; `keyrotor release --key %s` ends it earlier\n", rec.ID, rec.User, rec.HeldUntil.UTC().Format(time.RFC3339), rec.ID)
	return 0
}
