package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestSlowE2ERunExitStatus: what keyrotor run's exit status and last line
// say is the truth of the account. Against an unverified sender every
// rotation waits (a new key, the old one still Active): the execution
// succeeds, but run exits 3 and says why in one line. An input naming a
// user the account lacks is a bad input: exit 2, the field named once,
// nothing changed. release finds the rotation table by itself.
func TestSlowE2ERunExitStatus(t *testing.T) {
	requireBuild(t)
	a := awstest.New(t) // no sender verified
	a.Clock(t, -120*day)
	a.User(t, "alice", "email", "alice@example.com")
	old := a.Key(t, "alice")
	a.Clock(t, 0)

	code, out, errOut := keyrotor(t, "", runArgs(t, a.Endpoint, "--input", `{"users":["nobody"]}`)...)
	if code != 2 || strings.Count(errOut, "InvalidInputError") > 0 || strings.Count(errOut, "nobody") != 1 || !strings.Contains(errOut, "keyrotor run: --input:") || out != "" {
		t.Fatalf("a user the account lacks: exit %d\nstdout: %s\nstderr: %s\nwant 2 and the field named once", code, out, errOut)
	}
	if keys := a.Keys(t, "alice"); len(keys) != 1 || keys[old] != "Active" {
		t.Fatalf("a refused input changed alice's keys: %v", keys)
	}

	code, out, errOut = keyrotor(t, "", runArgs(t, a.Endpoint)...)
	var sum rotation.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("stdout is not the summary: %v\n%s", err, out)
	}
	keys := a.Keys(t, "alice")
	if keys[old] != "Active" || sum.Totals.Waiting != 1 {
		t.Fatalf("unverified sender: keys %v, waiting %d; want the old key Active and 1 waiting", keys, sum.Totals.Waiting)
	}
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	if code != exitNeedsPerson || !strings.HasPrefix(last, "keyrotor run: 1 rotation is waiting") || !strings.Contains(last, "alice") {
		t.Fatalf("unverified sender: exit %d, last line %q; want %d and why", code, last, exitNeedsPerson)
	}

	// release without --table: the table is found; alice's rotation is
	// not held, so nothing changes.
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	code, _, errOut = keyrotor(t, "", "release", "--endpoint", a.Endpoint, "--key", old)
	if code != 2 || !strings.Contains(errOut, "no rotation of this key is held; nothing changed") {
		t.Fatalf("release without --table: exit %d %q", code, errOut)
	}
}

// TestReportDeliveries: run names, per user whose key has destinations,
// each destination that holds the new key and each that does not, with
// why; users without destinations get no line.
func TestReportDeliveries(t *testing.T) {
	sum := rotation.Summary{Users: []rotation.Outcome{
		{User: "plain", NewKeyID: "AKIAP", Result: "rotated"},
		{User: "ci", NewKeyID: "AKIANEW", Result: "waiting",
			Delivered:   []string{"github repository secret octo/app: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY"},
			Undelivered: []string{"gitlab project group/app variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (scope *): HTTP 500"}},
	}}
	raw, _ := json.Marshal(sum)
	var b strings.Builder
	reportDeliveries(&b, raw)
	want := "delivery of ci's new key AKIANEW: 1 of 2 destinations hold it\n" +
		"  delivered and read back: github repository secret octo/app: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\n" +
		"  NOT delivered: gitlab project group/app variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (scope *): HTTP 500\n"
	if b.String() != want {
		t.Errorf("reportDeliveries = %q; want %q", b.String(), want)
	}
}
