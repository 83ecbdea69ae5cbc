package calendar_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/calendar"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/awsconf/lambdaenv"
	"github.com/keyrotor/keyrotor/shared/config"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// The organization mode's templates, synthesized by make synth
// (organizationScope=all, hubAccount=123456789012).
const (
	orgTemplate    = "../../build/cdk.org/KeyRotor.template.json"
	memberTemplate = "../../build/cdk.org/KeyRotorMember.template.json"
)

// TestSlowCalendar plays simulated days of the daily schedule (see package
// calendar) and fails on any violated guarantee. make test runs a short
// one; `make soak DAYS=N SEED=S [USERS=U] [ACCOUNTS=N]` a long one, and
// replays a failing seed with the same command. KEYROTOR_SIM_ADOPTION_DAYS
// is the adoption window in days (default 4, so windows end within the
// short run; 0: no window). KEYROTOR_SIM_ACCOUNTS is the number of member
// accounts (default 2, make soak's 0): with members the world is an
// organization, the hub (keyrotor's account, configured as the org
// template's functions are) and the members with the member stack, the
// users spread over all of them (the same names in several), and on one
// day the first member is unreachable (an SCP denying iam:*).
// KEYROTOR_SIM_LOST_PERMILLE is the share of step invocations (per
// thousand, default 20) whose answer is lost after the step committed.
// Delivery (issue 21), with an adoption window: KEYROTOR_SIM_DELIVERY_PERCENT
// of every account's users (default 60) have their key delivered to a
// GitHub repository secret (an emulator), half of them to SSM parameters
// too, in their own account (a member's through its member role), and
// their pipelines read the key from there. Per thousand destination calls,
// KEYROTOR_SIM_DEST_FAULT_PERMILLE (default 60) fail before they take
// effect (a 500, a 429, no connection) and KEYROTOR_SIM_DEST_LOST_PERMILLE
// (default 100) of the writes lose their answer after they took effect;
// KEYROTOR_SIM_DEST_DOWN_PERCENT (default 10) is the chance per day that
// GitHub, and apart SSM, is down for the day. KEYROTOR_SIM_PASSWORD_PERCENT
// of the users (default 15; 0: none) also have an unused console password,
// with retirePasswords on (issue 18: the password path, people re-setting
// a password after its notice).
func TestSlowCalendar(t *testing.T) {
	o := calendar.Options{
		Days: envInt("KEYROTOR_SIM_DAYS", 12), Users: envInt("KEYROTOR_SIM_USERS", 60), Seed: int64(envInt("KEYROTOR_SIM_SEED", 1)),
		People: 0.04, MailOutage: 0.15, Quiet: 3,
		Adoption: time.Duration(envInt("KEYROTOR_SIM_ADOPTION_DAYS", 4)) * calendar.Day,
		// Lost answers per thousand step invocations (the step committed).
		LostAnswers: float64(envInt("KEYROTOR_SIM_LOST_PERMILLE", 20)) / 1000,
		Delivery:    float64(envInt("KEYROTOR_SIM_DELIVERY_PERCENT", 60)) / 100,
		DestFaults:  float64(envInt("KEYROTOR_SIM_DEST_FAULT_PERMILLE", 60)) / 1000,
		DestLost:    float64(envInt("KEYROTOR_SIM_DEST_LOST_PERMILLE", 100)) / 1000,
		DestDown:    float64(envInt("KEYROTOR_SIM_DEST_DOWN_PERCENT", 10)) / 100,
		Passwords:   float64(envInt("KEYROTOR_SIM_PASSWORD_PERCENT", 15)) / 100,
	}
	members := envInt("KEYROTOR_SIM_ACCOUNTS", 2)
	o.OutageDay = -1
	if members > 0 && o.Days-o.Quiet > 4 {
		o.OutageDay = 3
	}
	if testing.Verbose() {
		o.Progress = os.Stdout
	}
	a := awstest.New(t)
	steps, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer steps.Close()
	steps.TagLimits = true
	steps.Consistency = 300 * time.Millisecond
	steps.RoleChecks = true
	person, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer person.Close()
	person.TagLimits = true

	cfg := config.Default()
	cfg.Sender = "keyrotor@example.com"
	cfg.ReportBucket = "keyrotor-reports"
	cfg.RotationTable = "rotations"
	cfg.AdminTopicARN = a.Topic(t, "keyrotor-admins")
	a.Bucket(t, cfg.ReportBucket)
	a.VerifySender(t, cfg.Sender)
	var ms []calendar.Member
	if members > 0 {
		cfg = orgConfig(t, cfg)
		var spec []awstest.MemberSpec
		for i := range members {
			spec = append(spec, awstest.MemberSpec{Name: fmt.Sprintf("member-%d", i+1), OU: "Simulated"})
		}
		// The people of each member act through the person proxy, in the
		// member (OrganizationAccountAccessRole).
		org := awstest.NewOrg(t, person.URL(), spec)
		for _, m := range org.Members {
			m.DeployMemberStack(t, memberTemplate)
			ms = append(ms, calendar.Member{ID: m.ID, Name: m.Name, People: clientsOf(m.Config)})
		}
		o.Deny = func(account string, on bool) {
			if on {
				steps.DenyActions(account, "iam:*")
			} else {
				steps.AllowActions(account)
			}
		}
	}
	w := &calendar.World{
		People: clients(t, person.URL()), Steps: clients(t, steps.URL()),
		Records: a.Records(t, cfg.RotationTable), Config: cfg, Endpoint: a.Endpoint,
		SetClock: func(d time.Duration) error { a.Clock(t, d); return nil },
		Members:  ms,
	}
	modes := []faultproxy.Mode{faultproxy.Throttle, faultproxy.ServerError, faultproxy.DropConnection, faultproxy.DropResponse}
	o.Faults = func(day int, on bool) {
		steps.Clear()
		if !on {
			return
		}
		for i, m := range modes {
			steps.FailRate(nil, 0.005, m, o.Seed*1000+int64(day*10+i))
		}
	}
	ctx := context.Background()
	setup := time.Now()
	seeded, err := calendar.Seed(ctx, w, o)
	if err != nil {
		t.Fatal(err)
	}
	if o.Progress != nil {
		fmt.Fprintf(o.Progress, "seeded %d users in %d accounts in %.1fs\n", o.Users, 1+members, time.Since(setup).Seconds())
	}
	rep, err := calendar.Simulate(ctx, w, seeded, o)
	if err != nil {
		t.Fatalf("seed %d: %v\n%s", o.Seed, err, rep)
	}
	t.Logf("%s", rep)
	if rep.Deactivations == 0 || rep.Deletes == 0 || rep.PersonActs == 0 {
		t.Fatalf("the simulation exercised too little:\n%s", rep)
	}
	if members > 0 {
		for id, c := range rep.Accounts {
			if c.Created == 0 || c.Deactivated == 0 {
				t.Errorf("the simulation rotated nothing in account %s:\n%s", id, rep)
			}
		}
	}
	if o.Adoption > 0 {
		t.Logf("adoption window %s: switched over on evidence %d, on the deadline %d, by a person %d", o.Adoption, rep.Evidence, rep.Deadline, rep.Person)
	}
	if len(rep.Violations) > 0 {
		// The knobs make soak does not name are replayed from the
		// environment (KEYROTOR_SIM_LOST_PERMILLE=150 make soak ...).
		var knobs []string
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "KEYROTOR_SIM_") && !slices.Contains([]string{"KEYROTOR_SIM_DAYS", "KEYROTOR_SIM_SEED", "KEYROTOR_SIM_USERS", "KEYROTOR_SIM_ADOPTION_DAYS", "KEYROTOR_SIM_ACCOUNTS"}, k) {
				knobs = append(knobs, kv+" ")
			}
		}
		sort.Strings(knobs)
		t.Fatalf("replay with: %smake soak DAYS=%d SEED=%d USERS=%d ACCOUNTS=%d ADOPTION=%d\n%s", strings.Join(knobs, ""), o.Days, o.Seed, o.Users, members, o.Adoption/calendar.Day, rep)
	}
	if o.Adoption > 0 {
		// A window must have time to end before the quiet days do.
		if o.Adoption <= time.Duration(o.Days-2)*calendar.Day && (rep.Evidence == 0 || rep.Deadline == 0) {
			t.Fatalf("the simulation exercised too little of the adoption window (want evidence and deadline switch-overs):\n%s", rep)
		}
	}
	if o.LostAnswers > 0 {
		if w.Lost == nil || len(w.Lost.Lost) == 0 {
			t.Fatal("no step answer was lost")
		}
		b, _ := json.Marshal(w.Lost.Lost)
		t.Logf("answers lost after the step committed, by step: %s", b)
	}
	if o.Delivery > 0 && o.Adoption > 0 {
		if rep.Delivered == 0 || rep.Checks["old key off only when delivered"] == 0 {
			t.Fatalf("the simulation exercised too little of delivery (want users with destinations whose old key went off):\n%s", rep)
		}
		if members > 0 && (rep.DeliveredMemberSSM == 0 || rep.Checks["old key off only when delivered: a member's own SSM parameters"] == 0) {
			t.Fatalf("the simulation exercised too little of delivery in member accounts (want member users with SSM parameters in their own account whose old key went off):\n%s", rep)
		}
		b, _ := json.Marshal(rep.DestFaults)
		t.Logf("destination faults injected: %s", b)
	}
	if o.Passwords > 0 {
		// The password path, noticed and removed, and a person's new
		// password kept (held), at least once each.
		if rep.Passwords["removed by keyrotor"] == 0 || rep.Passwords["reset-password"] == 0 || rep.Passwords["retirements held: re-set by a person"] == 0 {
			t.Fatalf("the simulation exercised too little of the password path (want passwords removed, and re-set by people and kept):\n%s", rep)
		}
	}
	if injected := steps.Injected(); len(injected) == 0 {
		t.Fatal("no fault was injected")
	} else {
		b, _ := json.Marshal(injected)
		t.Logf("faults injected: %s", b)
	}
}

// orgConfig is cfg in organization mode as the org hub template's find
// function has it: its KEYROTOR_ORG_* settings, and keyrotor's account
// (KEYROTOR_HOME_ACCOUNT, the stack's AWS::AccountId) the default account.
func orgConfig(t *testing.T, cfg config.Config) config.Config {
	t.Helper()
	b, err := os.ReadFile(orgTemplate)
	if err != nil {
		t.Fatalf("%v: run `make synth` (make test does)", err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties struct {
				Environment struct{ Variables map[string]any }
			}
		}
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatalf("%s: %v", orgTemplate, err)
	}
	env := cfg.Env()
	found := false
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Lambda::Function" || !strings.HasPrefix(id, "FindFunction") {
			continue
		}
		for k, v := range r.Properties.Environment.Variables {
			if s, ok := v.(string); ok && strings.HasPrefix(k, "KEYROTOR_ORG_") {
				env[k] = s
			}
		}
		if ref, _ := r.Properties.Environment.Variables[config.EnvHomeAccount].(map[string]any); ref["Ref"] == "AWS::AccountId" {
			env[config.EnvHomeAccount] = awstest.DefaultAccount
			found = true
		}
	}
	if !found {
		t.Fatalf("%s: no find function with %s = the stack's account: not an organization-mode template", orgTemplate, config.EnvHomeAccount)
	}
	out, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	if !out.Organization() {
		t.Fatalf("%s: find has no %s: not an organization-mode template", orgTemplate, config.EnvOrgScope)
	}
	return out
}

// clients are an account's clients, retrying only throttled calls as the
// Lambdas do (lambdaenv.ThrottleRetryer): an SDK that retried a send whose
// answer was lost would mail twice where production does not.
func clients(t *testing.T, endpoint string) calendar.Clients {
	return clientsOf(awstest.Connect(t, endpoint).Config)
}

// clientsOf are the clients of an account's configuration, retrying as
// clients' do.
func clientsOf(base aws.Config) calendar.Clients {
	cfg := base.Copy()
	cfg.Retryer = func() aws.Retryer { return lambdaenv.ThrottleRetryer(8) }
	cfg.RetryMaxAttempts = 8
	return calendar.Clients{
		IAM: iam.NewFromConfig(cfg), Secrets: secretsmanager.NewFromConfig(cfg), SES: sesv2.NewFromConfig(cfg), SNS: sns.NewFromConfig(cfg),
		S3:       s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.DisableLogOutputChecksumValidationSkipped = true }),
		DynamoDB: dynamodb.NewFromConfig(cfg), STS: sts.NewFromConfig(cfg), Config: cfg,
	}
}
