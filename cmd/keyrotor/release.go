package main

import (
	"context"
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
	key := fs.String("key", "", "the held old access key id (as the admins' message and the summary name it)")
	table := fs.String("table", "", "the rotation record table, the stack output RotationTableName (default: found in the account: the one table named like KeyRotor's RotationTable)")
	reason := fs.String("reason", "", "why, for the rotation's history")
	endpoint := fs.String("endpoint", "", "AWS-compatible endpoint (default: AWS itself)")
	if code, ok := parseFlags(fs, args, "usage: keyrotor release --key AKIA... [--reason TEXT] [--table NAME] [--endpoint URL]\n\nEnds the hold keyrotor keeps on a rotation a person acted on, so the next run may rotate the key again.", stdout, stderr); !ok {
		return code
	}
	if strings.TrimSpace(*key) == "" {
		fmt.Fprintln(stderr, "keyrotor release: --key is required: the held old access key id")
		return 2
	}
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: *endpoint})
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor release: %v\n", err)
		return 1
	}
	db := dynamodb.NewFromConfig(cfg)
	if strings.TrimSpace(*table) == "" {
		name, err := rotationTable(ctx, db)
		if err != nil {
			fmt.Fprintf(stderr, "keyrotor release: %v\n", err)
			return 2
		}
		*table = name
	}
	store := &ledger.Store{API: db, Table: *table}
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

// rotationTable finds keyrotor's rotation record table in the account: the
// one table whose name holds the stack's logical id RotationTable (a
// deployed stack's KeyRotor-RotationTable...-..., a local run's
// keyrotor-RotationTable...). None or several: --table names it.
func rotationTable(ctx context.Context, db dynamodb.ListTablesAPIClient) (string, error) {
	var found []string
	p := dynamodb.NewListTablesPaginator(db, &dynamodb.ListTablesInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return "", fmt.Errorf("find the rotation table (dynamodb:ListTables): %w; or name it with --table (the stack output RotationTableName)", err)
		}
		for _, n := range out.TableNames {
			if strings.Contains(strings.ToLower(n), "rotationtable") {
				found = append(found, n)
			}
		}
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no keyrotor rotation table in this account and region: is keyrotor deployed here? Name it with --table (the stack output RotationTableName)")
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%d rotation tables (%s): name one with --table (the stack output RotationTableName)", len(found), strings.Join(found, ", "))
}
