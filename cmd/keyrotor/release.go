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

	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

func init() { commands["release"] = runRelease }

// runRelease ends the hold of a rotation before its hold period passes: a
// person decided the old key may be rotated again. The next daily run then
// starts a new rotation, with a new owner mail and a full grace period.
func runRelease(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("release", flag.ContinueOnError)
	fs.SetOutput(stderr)
	key := fs.String("key", "", "the held old access key id (as the admins' message and the summary name it)")
	table := fs.String("table", "", "the rotation record table: the stack output RotationTableName")
	reason := fs.String("reason", "", "why, for the rotation's history")
	endpoint := fs.String("endpoint", "", "AWS-compatible endpoint (default: AWS itself)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keyrotor release --key AKIA... --table NAME [--reason TEXT] [--endpoint URL]\n\nEnds the hold keyrotor keeps on a rotation a person acted on, so the next run may rotate the key again.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case strings.TrimSpace(*key) == "":
		fmt.Fprintln(stderr, "keyrotor release: --key is required: the held old access key id")
		return 2
	case strings.TrimSpace(*table) == "":
		fmt.Fprintln(stderr, "keyrotor release: --table is required: the stack output RotationTableName")
		return 2
	}
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: *endpoint})
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor release: %v\n", err)
		return 1
	}
	store := &ledger.Store{API: dynamodb.NewFromConfig(cfg), Table: *table}
	rec, err := store.Get(ctx, *key)
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor release: %v\n", err)
		return 1
	}
	now := time.Now().UTC()
	if rec == nil || rec.State.InFlight() || !now.Before(rec.HeldUntil) {
		fmt.Fprintf(stderr, "keyrotor release: --key %s: no rotation of this key is held; nothing changed\n", *key)
		return 2
	}
	note := "hold released by a person"
	if *reason != "" {
		note += ": " + *reason
	}
	rec.HeldUntil = now
	rec.Log(now, rec.State, "keyrotor release", note)
	if err := store.Put(ctx, rec); err != nil {
		fmt.Fprintf(stderr, "keyrotor release: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "released: rotation %d of %s (user %s); the next run may rotate it again\n", rec.Rotation, rec.ID, rec.User)
	return 0
}
