package rotation_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestMotoRecordMustMatchItem: a step given an item whose old key's
// rotation record belongs to another user or account (a forged or stale
// input) refuses with OutOfScopeError, and nothing changes: the record,
// the keys, the mails.
func TestMotoRecordMustMatchItem(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	aliceKey, _ := seedUser(t, a, "alice", 120, 1, "email", "alice@example.com")
	seedUser(t, a, "bob", 10, 1, "email", "bob@example.com")
	ctx := context.Background()
	p := s.plan(t, `{}`)
	it := itemFor(t, p, "alice")
	task := rotation.Task{Execution: "exec-1", Item: it}
	nk, err := s.create.Handle(ctx, task)
	if err != nil {
		t.Fatal(err)
	}
	task.NewKey = nk
	n, err := s.notify.Handle(ctx, task)
	if err != nil || !n.Accepted {
		t.Fatalf("notify = %+v, %v", n, err)
	}
	task.Notice = n
	before := s.record(t, aliceKey)
	mails, _ := a.Sent(t)

	tests := []struct {
		name  string
		forge func(rotation.Task) rotation.Task
		step  func(rotation.Task) error
	}{
		{
			name:  "deactivate: another user named with alice's key",
			forge: func(t rotation.Task) rotation.Task { t.Item.User = "bob"; return t },
			step:  func(t rotation.Task) error { _, err := s.deact.Handle(ctx, t); return err },
		},
		{
			name: "notify: another user named with alice's key",
			forge: func(t rotation.Task) rotation.Task {
				t.Item.User, t.Item.Email = "bob", "attacker@example.net"
				return t
			},
			step: func(t rotation.Task) error { _, err := s.notify.Handle(ctx, t); return err },
		},
		{
			name:  "deactivate: another account named with alice's key",
			forge: func(t rotation.Task) rotation.Task { t.Item.Account = "210987654321"; return t },
			step:  func(t rotation.Task) error { _, err := s.deact.Handle(ctx, t); return err },
		},
		{
			name:  "delete: another user named with alice's key",
			forge: func(t rotation.Task) rotation.Task { t.Item.User = "bob"; return t },
			step:  func(t rotation.Task) error { _, err := s.del.Handle(ctx, t); return err },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.step(tt.forge(task))
			var oos *failures.OutOfScopeError
			if !errors.As(err, &oos) || failures.Name(failures.Boundary(err)) != "OutOfScopeError" {
				t.Fatalf("step = %v; want OutOfScopeError", err)
			}
			after := s.record(t, aliceKey)
			if after.Version != before.Version || after.State != before.State || after.User != "alice" {
				t.Errorf("record = %+v; want unchanged %+v", after, before)
			}
			if keys := a.Keys(t, "alice"); keys[aliceKey] != "Active" {
				t.Errorf("alice's keys = %v; want %s still Active", keys, aliceKey)
			}
			if got, _ := a.Sent(t); len(got) != len(mails) {
				t.Errorf("mails = %+v; want none more than %d", got, len(mails))
			}
		})
	}
}

// TestMotoExcludedUserPathsExempt: a user under an excludedUserPaths path
// is reported exempt, its due key untouched; a user elsewhere is planned.
func TestMotoExcludedUserPathsExempt(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	s.cfg.ExcludedUserPaths = []string{"/breakglass/"}
	s.rewire()
	a.Clock(t, -120*day)
	if _, err := a.IAM.CreateUser(context.Background(), &iam.CreateUserInput{UserName: aws.String("root-admin"), Path: aws.String("/breakglass/")}); err != nil {
		t.Fatal(err)
	}
	a.Key(t, "root-admin")
	a.Clock(t, 0)
	seedUser(t, a, "carol", 120, 1)
	p := s.plan(t, `{"dryRun":true}`)
	if len(p.Items) != 1 || p.Items[0].User != "carol" {
		t.Fatalf("items = %+v; want carol only", p.Items)
	}
	var found bool
	for _, sk := range p.Exempt {
		if sk.User == "root-admin" && sk.Action == "exempt" && strings.Contains(sk.Reason, "under excluded path /breakglass/") {
			found = true
		}
	}
	if !found {
		t.Fatalf("exempt = %+v; want root-admin under /breakglass/", p.Exempt)
	}
}
