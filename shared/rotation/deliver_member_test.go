package rotation_test

// Delivery to AWS destinations in member accounts (issue 21: "SSM
// Parameter Store SecureString and Secrets Manager, in any account and
// region keyrotor can reach; organization mode: through the member
// role"). The assertions read the emulated accounts themselves.

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// outsideAccount is an account in no scope of these tests.
const outsideAccount = "210987654321"

// TestMotoDeliveryMemberAWSDestinations: a member account's user with an
// ssm and a secretsmanager destination (no account: the user's own) gets
// exactly its new key written in the member account, through the member
// role, once (a re-run writes nothing); the hub's parameters and secret of
// the same names are untouched. A destination naming an account out of
// scope is refused at find, no key created; a destination in an account
// in scope whose member stack is missing is unreachable, with the fix.
func TestMotoDeliveryMemberAWSDestinations(t *testing.T) {
	if _, err := os.Stat(memberTemplate); err != nil {
		t.Fatalf("%s missing: run `make synth` (make test does)", memberTemplate)
	}
	ctx := context.Background()
	hub := awstest.New(t)
	o := awstest.NewOrg(t, hub.Endpoint, []awstest.MemberSpec{{Name: "dev", OU: "Development"}, {Name: "prod", OU: "Production"}})
	dev, prod := o.Member(t, "dev"), o.Member(t, "prod")
	dev.DeployMemberStack(t, memberTemplate) // prod has none: unreachable
	devSSM, hubSSM := ssm.NewFromConfig(dev.Config), ssm.NewFromConfig(hub.Config)

	// The same names in both accounts: the member's are the user's.
	params := [2]string{"/ci/app/aws-access-key-id", "/ci/app/aws-secret-access-key"}
	for _, a := range []struct {
		api     *ssm.Client
		secrets *secretsmanager.Client
		mark    string
	}{{devSSM, dev.Secrets, "dev"}, {hubSSM, hub.Secrets, "hub"}} {
		for _, p := range params {
			if _, err := a.api.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(p), Value: aws.String(a.mark + "-old"), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := a.secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("ci/aws"), SecretString: aws.String(`{"owner":"` + a.mark + `"}`)}); err != nil {
			t.Fatal(err)
		}
	}
	due := func(a *awstest.Account, user string) string {
		a.Clock(t, -120*24*time.Hour)
		a.User(t, user, "email", user+"@example.com")
		id, secret := a.KeyWithSecret(t, user)
		a.Clock(t, -time.Hour)
		a.Use(t, id, secret)
		a.Clock(t, 0)
		return id
	}
	aliceOld := due(dev.Account, "alice")
	bobOld := due(dev.Account, "bob")

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
	c.OrgScope, c.HomeAccount = []string{awstest.DefaultAccount, dev.ID, prod.ID}, awstest.DefaultAccount
	c.AdminTopicARN, c.RotationTable = hub.Topic(t, "keyrotor-admins"), "rotations"
	c.DeliveryParameters, c.DeliverySecrets = []string{"/ci/*"}, []string{"ci/aws"}
	recs := hub.Records(t, c.RotationTable)
	store := &delivery.Store{API: hub.DynamoDB, Table: c.RotationTable}
	mine := &delivery.Document{Version: 1, Destinations: []delivery.Spec{
		{Type: "ssm", IDName: params[0], SecretName: params[1]},
		{Type: "secretsmanager", SecretID: "ci/aws"},
	}}
	elsewhere := &delivery.Document{Version: 1, Destinations: []delivery.Spec{
		{Type: "ssm", IDName: params[0], SecretName: params[1], Account: outsideAccount},
	}}
	if err := store.Put(ctx, dev.ID, "alice", mine, "test"); err != nil {
		t.Fatal(err)
	}
	if err := store.Put(ctx, dev.ID, "bob", elsewhere, "test"); err != nil {
		t.Fatal(err)
	}

	log := slog.New(slog.NewJSONHandler(io.Discard, nil))
	f := &rotation.Finder{IAM: iam.NewFromConfig(cfg), Records: recs, Destinations: store, Config: c, Now: time.Now, Log: log,
		Org: rotation.NewOrgAccess(cfg, c, "find")}
	plan, err := retried(func() (*rotation.Plan, error) {
		return f.Handle(ctx, rotation.FindInput{Request: json.RawMessage(`{"accounts":["` + dev.ID + `"]}`), ExecutionName: "day-0"})
	})
	if err != nil {
		t.Fatal(err)
	}
	var alice *rotation.Item
	for i, it := range plan.Items {
		if it.Account == dev.ID && it.User == "alice" && it.Action == policy.Rotate {
			alice = &plan.Items[i]
		}
		if it.User == "bob" {
			t.Errorf("find planned bob (%+v); want him blocked: his destination names an account out of scope", it)
		}
	}
	if alice == nil {
		t.Fatalf("plan items %+v, blocked %+v; want alice's rotation in %s", plan.Items, plan.Blocked, dev.ID)
	}
	blocked := false
	for _, b := range plan.Blocked {
		if b.User == "bob" && b.KeyID == bobOld && strings.Contains(b.Reason, "destinations[0].account") && strings.Contains(b.Reason, outsideAccount) &&
			strings.Contains(b.Reason, "out of keyrotor's organization scope") {
			blocked = true
		}
	}
	if !blocked {
		t.Errorf("blocked %+v; want bob's rotation blocked naming destinations[0].account, %s and the scope", plan.Blocked, outsideAccount)
	}
	if keys := dev.Keys(t, "bob"); len(keys) != 1 || keys[bobOld] != "Active" {
		t.Errorf("bob's keys %v; want only the old key, Active (no key created)", keys)
	}

	env := lambdastep.Env{Config: c, AWS: cfg, Log: log, Now: time.Now}
	create := lambdastep.PerAccount(env, "create-and-store", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.NewKey, error) {
		cr := &rotation.Creator{IAM: iam.NewFromConfig(a.AWS), Secrets: secretsmanager.NewFromConfig(a.AWS), Records: recs, Topic: hub.SNS, Config: a.Config, Now: time.Now}
		return cr.Handle
	})
	sessions := &org.Sessions{Home: cfg, HomeAccount: c.HomeAccount, STS: sts.NewFromConfig(cfg), SessionName: "keyrotor-deliver"}
	denv := delivery.Env{AWS: rotation.DestinationClients(c, sessions)}
	deliver := lambdastep.PerAccount(env, "deliver", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Delivery, error) {
		d := &rotation.Deliverer{Records: recs, Documents: store, Secrets: secretsmanager.NewFromConfig(a.AWS), Topic: hub.SNS, Env: denv,
			Config: a.Config, Now: time.Now, Log: log}
		return d.Handle
	})
	task := rotation.Task{Execution: "day-0", Item: *alice}
	nk, err := retried(func() (*rotation.NewKey, error) { return create(ctx, task) })
	if err != nil {
		t.Fatal(err)
	}
	task.NewKey = nk
	var newSecret string
	var sk struct {
		SecretAccessKey string `json:"secretAccessKey"`
	}
	stored := dev.Secret(t, c.SecretPrefix+"alice")
	if json.Unmarshal([]byte(stored), &sk) != nil || sk.SecretAccessKey == "" {
		t.Fatalf("alice's stored key in %s: %q; want it there", dev.ID, stored)
	}
	newSecret = sk.SecretAccessKey

	for run := 1; run <= 2; run++ { // the second: a Retry of the step
		dl, err := retried(func() (*rotation.Delivery, error) { return deliver(ctx, task) })
		if err != nil || !dl.Complete || len(dl.Delivered) != 2 {
			t.Fatalf("deliver, run %d = %+v, %v; want both destinations delivered", run, dl, err)
		}
		for _, where := range dl.Delivered {
			if !strings.Contains(where, "account "+dev.ID) {
				t.Errorf("delivered to %q; want it in alice's account %s", where, dev.ID)
			}
		}
	}
	// The member's parameters hold the new key, written once each.
	for i, want := range []string{nk.KeyID, newSecret} {
		out, err := devSSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(params[i]), WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if got := aws.ToString(out.Parameter.Value); got != want || out.Parameter.Version != 2 || out.Parameter.Type != ssmtypes.ParameterTypeSecureString {
			t.Errorf("%s in %s holds the new key's value: %v, version %d, %s; want the new key's value, written once (version 2), SecureString",
				params[i], dev.ID, got == want, out.Parameter.Version, out.Parameter.Type)
		}
	}
	// The member's secret holds both values, its other key kept, written once.
	out, err := dev.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("ci/aws")})
	if err != nil {
		t.Fatal(err)
	}
	var held map[string]string
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &held); err != nil {
		t.Fatal(err)
	}
	if held["AWS_ACCESS_KEY_ID"] != nk.KeyID || held["AWS_SECRET_ACCESS_KEY"] != newSecret || held["owner"] != "dev" {
		t.Errorf("secret ci/aws in %s holds id %q (secret matches: %v, owner %q); want the new key %s and its other key kept",
			dev.ID, held["AWS_ACCESS_KEY_ID"], held["AWS_SECRET_ACCESS_KEY"] == newSecret, held["owner"], nk.KeyID)
	}
	versions, err := dev.Secrets.ListSecretVersionIds(ctx, &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String("ci/aws")})
	if err != nil {
		t.Fatal(err)
	}
	if len(versions.Versions) != 2 {
		t.Errorf("secret ci/aws in %s has %d versions; want 2 (created, then written once)", dev.ID, len(versions.Versions))
	}
	// The hub's namesakes are untouched.
	for _, name := range params {
		out, err := hubSSM.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Parameter.Value) != "hub-old" || out.Parameter.Version != 1 {
			t.Errorf("hub's %s = %q, version %d; want it untouched", name, aws.ToString(out.Parameter.Value), out.Parameter.Version)
		}
	}
	if got := hub.Secret(t, "ci/aws"); got != `{"owner":"hub"}` {
		t.Errorf("hub's secret ci/aws = %q; want it untouched", got)
	}
	r, err := recs.Get(ctx, aliceOld)
	if err != nil || r == nil || len(r.Deliveries) != 2 {
		t.Fatalf("alice's record = %+v, %v; want two deliveries", r, err)
	}
	for _, d := range r.Deliveries {
		if d.State != ledger.DeliveryVerified {
			t.Errorf("delivery %+v; want verified", d)
		}
	}

	// A member in scope whose member stack is missing: unreachable, with
	// the fix, as every step reports it.
	_, err = denv.AWS(ctx, prod.ID, "")
	var ue *failures.AccountUnreachableError
	if !errors.As(err, &ue) || ue.Account != prod.ID || !strings.Contains(ue.Msg, "deploy the member stack") {
		t.Errorf("clients in %s (no member stack) = %v; want an AccountUnreachableError naming the member stack", prod.ID, err)
	}
	// An account out of scope: refused before any call.
	_, err = denv.AWS(ctx, outsideAccount, "")
	var oe *failures.OutOfScopeError
	if !errors.As(err, &oe) {
		t.Errorf("clients in %s (out of scope) = %v; want an OutOfScopeError", outsideAccount, err)
	}
}

// TestMotoDeliverySingleAccountRefusesOtherAccounts: with the organization
// mode off, an AWS destination in any account but keyrotor's own is
// refused at find (no key created) and by the deliver step's clients.
func TestMotoDeliverySingleAccountRefusesOtherAccounts(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("carol", 100)
	ctx := context.Background()
	c.cfg.HomeAccount = awstest.DefaultAccount
	c.cfg.DeliveryParameters = []string{"/ci/*"}
	store := &delivery.Store{API: c.a.DynamoDB, Table: c.cfg.RotationTable}
	if err := store.Put(ctx, "", "carol", &delivery.Document{Version: 1, Destinations: []delivery.Spec{
		{Type: "ssm", IDName: "/ci/a", SecretName: "/ci/b", Account: outsideAccount},
	}}, "test"); err != nil {
		t.Fatal(err)
	}
	f := &rotation.Finder{IAM: c.a.IAM, Records: c.recs, Destinations: store, Config: *c.cfg, Now: c.now, Log: c.log()}
	plan, err := retried(func() (*rotation.Plan, error) {
		return f.Handle(ctx, rotation.FindInput{Request: json.RawMessage(`{}`), ExecutionName: "day-0"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Items) != 0 || len(plan.Blocked) != 1 || plan.Blocked[0].KeyID != old ||
		!strings.Contains(plan.Blocked[0].Reason, "destinations[0].account") || !strings.Contains(plan.Blocked[0].Reason, "organizationScope is not set") {
		t.Fatalf("plan items %+v, blocked %+v; want carol's rotation blocked, naming destinations[0].account and the organization mode", plan.Items, plan.Blocked)
	}
	if keys := c.status("carol"); len(keys) != 1 || keys[old] != "Active" {
		t.Fatalf("keys %v; want only the old key, Active", keys)
	}
	sessions := &org.Sessions{Home: c.a.Config, HomeAccount: c.cfg.HomeAccount, STS: sts.NewFromConfig(c.a.Config)}
	_, err = rotation.DestinationClients(*c.cfg, sessions)(ctx, outsideAccount, "")
	var oe *failures.OutOfScopeError
	if !errors.As(err, &oe) {
		t.Errorf("clients in %s = %v; want an OutOfScopeError (one account only)", outsideAccount, err)
	}
	if _, err := rotation.DestinationClients(*c.cfg, sessions)(ctx, "", "eu-west-1"); err != nil {
		t.Errorf("clients in keyrotor's own account = %v; want them", err)
	}
}
