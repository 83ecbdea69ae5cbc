package rotation_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

const memberTemplate = "../../build/cdk.org/KeyRotorMember.template.json"

// TestMotoOrganizationStages: find plans the organization stage by stage.
// A later stage waits while an earlier one has rotations planned or an
// account it cannot reach; an account an SCP denies is reported with the
// action and the fix while the others are planned; a run can be
// restricted to chosen accounts. A transient failure is tried again.
func TestMotoOrganizationStages(t *testing.T) {
	if _, err := os.Stat(memberTemplate); err != nil {
		t.Fatalf("%s missing: run `make synth` (make test does)", memberTemplate)
	}
	ctx := context.Background()
	hub := awstest.New(t)
	org := awstest.NewOrg(t, hub.Endpoint, []awstest.MemberSpec{{Name: "dev", OU: "Development"}, {Name: "prod", OU: "Production"}})
	dev, prod := org.Member(t, "dev"), org.Member(t, "prod")
	dev.DeployMemberStack(t, memberTemplate)
	prod.DeployMemberStack(t, memberTemplate)
	due := func(a *awstest.Account, user string) string {
		a.Clock(t, -120*24*time.Hour)
		a.User(t, user, "email", user+"@example.com")
		id, secret := a.KeyWithSecret(t, user)
		a.Clock(t, -time.Hour)
		a.Use(t, id, secret)
		a.Clock(t, 0)
		return id
	}
	devKey := due(dev.Account, "alice")
	due(prod.Account, "bob")
	due(hub, "carol")
	// quiet-exempt: tagged exempt in dev, nothing due: a dry run reads its
	// tags through dev's member role and plans it exempt.
	dev.Clock(t, -10*24*time.Hour)
	dev.User(t, "quiet-exempt", "keyrotor:exempt", "true")
	dev.Key(t, "quiet-exempt")
	dev.Clock(t, 0)

	p, err := faultproxy.New(hub.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.RoleChecks = true
	t.Cleanup(p.Close)
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: p.URL(), Region: "us-east-1", StaticTestCredentials: true, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.OrgScope, c.OrgStages, c.HomeAccount = []string{org.Root}, [][]string{{org.OUs["Development"]}, {org.OUs["Production"]}}, awstest.DefaultAccount
	f := &rotation.Finder{IAM: iam.NewFromConfig(cfg), Records: hub.Records(t, "rotations"), Config: c, Now: time.Now,
		Org: rotation.NewOrgAccess(cfg, c, "find")}
	plan := func(input string) *rotation.Plan {
		t.Helper()
		for i := 0; ; i++ {
			pl, err := f.Handle(ctx, rotation.FindInput{Request: []byte(input), ExecutionName: "t"})
			var nr *failures.ReportNotReadyError
			if errors.As(err, &nr) && i < 50 { // the orchestrator's retry
				time.Sleep(100 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			return pl
		}
	}
	type want struct{ status, reason string }
	check := func(pl *rotation.Plan, wantAccounts map[string]want, wantUsers ...string) {
		t.Helper()
		got := map[string]rotation.AccountPlan{}
		for _, a := range pl.Accounts {
			got[a.Account] = a
		}
		for id, w := range wantAccounts {
			if a := got[id]; a.Status != w.status || !strings.Contains(a.Reason, w.reason) {
				t.Errorf("account %s = %+v; want %s, reason containing %q", id, a, w.status, w.reason)
			}
		}
		var users []string
		for _, it := range pl.Items {
			users = append(users, it.Account+"/"+it.User)
		}
		if strings.Join(users, " ") != strings.Join(wantUsers, " ") {
			t.Errorf("items = %v; want %v", users, wantUsers)
		}
	}

	// Day 1: only the first stage; the others wait for it. A 5xx on dev's
	// first call is tried again after the stage's other accounts: dev is
	// planned, not failed for the day.
	p.FailNth("iam:GenerateCredentialReport", 1, faultproxy.ServerError)
	pl := plan(`{"dryRun":true}`)
	check(pl, map[string]want{
		dev.ID:                 {rotation.AccountPlanned, ""},
		prod.ID:                {rotation.AccountWaiting, "stage 2 waits for stage 1 to finish (account " + dev.ID + ": 1 rotations planned)"},
		awstest.DefaultAccount: {rotation.AccountWaiting, "stage 2 waits for stage 1"},
	}, dev.ID+"/alice")
	if len(pl.Exempt) != 1 || pl.Exempt[0].Account != dev.ID || pl.Exempt[0].User != "quiet-exempt" || pl.Exempt[0].KeyID != "access_key_1" {
		t.Errorf("dry run exempt = %+v; want dev's quiet-exempt, access_key_1 (its tags read through the member role)", pl.Exempt)
	}

	// Stage 1 finished (its old key replaced and deactivated): stage 2 runs,
	// the hub (in no stage: last) waits for it.
	dev.SetKeyStatus(t, "alice", devKey, false)
	dev.Key(t, "alice")
	check(plan(`{"dryRun":true}`), map[string]want{
		dev.ID:                 {rotation.AccountPlanned, ""},
		prod.ID:                {rotation.AccountPlanned, ""},
		awstest.DefaultAccount: {rotation.AccountWaiting, "stage 3 waits for stage 2 to finish (account " + prod.ID},
	}, prod.ID+"/bob")

	// An SCP denies keyrotor in prod: prod is reported with the action and
	// the fix, dev is still planned, the hub waits for stage 2.
	p.DenyActions(prod.ID, "iam:GenerateCredentialReport", "iam:GetCredentialReport")
	pl = plan(`{"dryRun":true}`)
	check(pl, map[string]want{
		dev.ID:                 {rotation.AccountPlanned, ""},
		prod.ID:                {rotation.AccountUnreachable, "iam:GenerateCredentialReport was denied in account " + prod.ID},
		awstest.DefaultAccount: {rotation.AccountWaiting, "account " + prod.ID + " unreachable"},
	})
	if pl.Counts.Unreachable != 1 || pl.Counts.Waiting != 1 || pl.Counts.Accounts != 3 {
		t.Errorf("counts = %+v; want 3 accounts, 1 unreachable, 1 waiting", pl.Counts)
	}
	p.AllowActions(prod.ID)

	// A run restricted to one account plans that account only; an account
	// outside the scope is an input error naming the field, nothing planned.
	pl = plan(`{"dryRun":true,"accounts":["` + prod.ID + `"]}`)
	if len(pl.Accounts) != 1 || pl.Accounts[0].Account != prod.ID {
		t.Errorf("restricted plan accounts = %+v; want prod only", pl.Accounts)
	}
	_, err = f.Handle(ctx, rotation.FindInput{Request: []byte(`{"dryRun":true,"accounts":["999999999999"]}`), ExecutionName: "t"})
	var ie *failures.InvalidInputError
	if !errors.As(err, &ie) || ie.Field != "accounts[0]" || !strings.Contains(ie.Msg, "not in this deployment's organization scope") {
		t.Errorf("unknown account: error = %v; want an input error naming accounts[0]", err)
	}
	// accounts is refused in a single-account deployment.
	single := &rotation.Finder{IAM: hub.IAM, Config: config.Default(), Now: time.Now}
	_, err = single.Handle(ctx, rotation.FindInput{Request: []byte(`{"dryRun":true,"accounts":["` + dev.ID + `"]}`), ExecutionName: "t"})
	if !errors.As(err, &ie) || ie.Field != "accounts" {
		t.Errorf("accounts in single-account mode: error = %v; want an input error naming accounts", err)
	}
	// Dry runs changed nothing.
	keys, err := prod.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")})
	if err != nil || len(keys.AccessKeyMetadata) != 1 || keys.AccessKeyMetadata[0].Status != types.StatusTypeActive {
		t.Errorf("bob's keys after dry runs = %+v, %v; want the one Active key", keys, err)
	}
}

// TestMotoSingleAccountIgnoresMemberRecords: a deployment switched back to
// one account (organizationScope removed) keeps the organization's
// records in its table; they are a member account's rotations, which it
// cannot reach: find must not plan them (each would fail every day).
func TestMotoSingleAccountIgnoresMemberRecords(t *testing.T) {
	ctx := context.Background()
	hub := awstest.New(t)
	recs := hub.Records(t, "rotations")
	now := time.Now()
	for _, r := range []*ledger.Record{
		{ID: "AKIAMEMBERKEY0000001", Account: "111122223333", User: "alice", Action: "rotate", Rotation: 1, State: ledger.Notified, History: []ledger.Entry{}},
		{ID: "AKIAHOMEKEY000000001", User: "bob", Action: "rotate", Rotation: 1, State: ledger.Notified, History: []ledger.Entry{}},
	} {
		r.Log(now.Add(-48*time.Hour), r.State, "old-run", "seeded")
		if err := recs.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	f := &rotation.Finder{IAM: hub.IAM, Records: recs, Config: config.Default(), Now: time.Now}
	var pl *rotation.Plan
	for i := 0; ; i++ {
		var err error
		pl, err = f.Handle(ctx, rotation.FindInput{Request: []byte(`{"dryRun":true}`), ExecutionName: "t"})
		var nr *failures.ReportNotReadyError
		if errors.As(err, &nr) && i < 50 {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}
	var planned []string
	for _, it := range pl.Items {
		planned = append(planned, it.Account+"/"+it.OldKey.ID)
	}
	if len(planned) != 1 || planned[0] != "/AKIAHOMEKEY000000001" {
		t.Fatalf("items = %v; want only the home account's resumed rotation", planned)
	}
	if len(pl.Attention) != 1 || pl.Attention[0].Account != "111122223333" || !strings.Contains(pl.Attention[0].Reason, "set organizationScope again") {
		t.Fatalf("attention = %+v; want the member's unfinished rotation reported with the fix", pl.Attention)
	}
}
