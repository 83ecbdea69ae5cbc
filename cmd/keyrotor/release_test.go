package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

// TestMotoRelease: `keyrotor release` ends a hold (recorded in the
// rotation's history), refuses a key that is not held, naming the flag,
// and changes nothing then.
func TestMotoRelease(t *testing.T) {
	a := awstest.New(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	store := a.Records(t, "rotations")
	now := time.Now().UTC()
	held := &ledger.Record{ID: "AKIAHELD000000000001", User: "alice", Action: "rotate", Rotation: 1, State: ledger.Held,
		HeldUntil: now.Add(30 * 24 * time.Hour), Outcome: "re-activated by a person", History: []ledger.Entry{}}
	if err := store.Put(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := dispatch(context.Background(), append([]string{"release", "--endpoint", a.Endpoint, "--table", "rotations"}, args...), strings.NewReader(""), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, _, errOut := run(); code != 2 || !strings.Contains(errOut, "--key is required") {
		t.Fatalf("no --key: exit %d, %q", code, errOut)
	}
	code, out, errOut := run("--key", held.ID, "--reason", "pipeline switched")
	if code != 0 || !strings.Contains(out, "released") {
		t.Fatalf("release: exit %d\n%s%s", code, out, errOut)
	}
	got, err := store.Get(context.Background(), held.ID)
	if err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(got.HeldUntil) || !strings.Contains(got.History[len(got.History)-1].Note, "pipeline switched") {
		t.Fatalf("after release: held until %v, history %+v", got.HeldUntil, got.History)
	}
	version := got.Version
	if code, _, errOut := run("--key", held.ID); code != 2 || !strings.Contains(errOut, "nothing changed") {
		t.Fatalf("second release: exit %d, %q", code, errOut)
	}
	if again, _ := store.Get(context.Background(), held.ID); again.Version != version {
		t.Fatal("a refused release changed the record")
	}
}
