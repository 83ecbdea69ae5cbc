package calendar_test

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
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
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/config"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// TestSlowCalendar plays simulated days of the daily schedule (see package
// calendar) and fails on any violated guarantee. make test runs a short
// one; `make soak DAYS=N SEED=S [USERS=U]` a long one, and replays a
// failing seed with the same command. KEYROTOR_SIM_ADOPTION_DAYS is the
// adoption window in days (default 4, so windows end within the short
// run; 0: no window).
func TestSlowCalendar(t *testing.T) {
	o := calendar.Options{
		Days: envInt("KEYROTOR_SIM_DAYS", 12), Users: envInt("KEYROTOR_SIM_USERS", 60), Seed: int64(envInt("KEYROTOR_SIM_SEED", 1)),
		People: 0.04, MailOutage: 0.15, Quiet: 3,
		Adoption: time.Duration(envInt("KEYROTOR_SIM_ADOPTION_DAYS", 4)) * calendar.Day,
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
	w := &calendar.World{
		People: clients(t, person.URL()), Steps: clients(t, steps.URL()),
		Records: a.Records(t, cfg.RotationTable), Config: cfg, Endpoint: a.Endpoint,
		SetClock: func(d time.Duration) error { a.Clock(t, d); return nil },
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
	seeded, err := calendar.Seed(ctx, w, o)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := calendar.Simulate(ctx, w, seeded, o)
	if err != nil {
		t.Fatalf("seed %d: %v\n%s", o.Seed, err, rep)
	}
	t.Logf("%s", rep)
	if rep.Deactivations == 0 || rep.Deletes == 0 || rep.PersonActs == 0 {
		t.Fatalf("the simulation exercised too little:\n%s", rep)
	}
	if o.Adoption > 0 {
		t.Logf("adoption window %s: switched over on evidence %d, on the deadline %d, by a person %d", o.Adoption, rep.Evidence, rep.Deadline, rep.Person)
	}
	if len(rep.Violations) > 0 {
		t.Fatalf("replay with: make soak DAYS=%d SEED=%d USERS=%d (adoption window: KEYROTOR_SIM_ADOPTION_DAYS=%d)\n%s", o.Days, o.Seed, o.Users, o.Adoption/calendar.Day, rep)
	}
	if o.Adoption > 0 {
		// A window must have time to end before the quiet days do.
		if o.Adoption <= time.Duration(o.Days-2)*calendar.Day && (rep.Evidence == 0 || rep.Deadline == 0) {
			t.Fatalf("the simulation exercised too little of the adoption window (want evidence and deadline switch-overs):\n%s", rep)
		}
	}
	if injected := steps.Injected(); len(injected) == 0 {
		t.Fatal("no fault was injected")
	} else {
		b, _ := json.Marshal(injected)
		t.Logf("faults injected: %s", b)
	}
}

// clients are an account's clients, retrying only throttled calls as the
// Lambdas do (awsconf.ThrottleRetryer): an SDK that retried a send whose
// answer was lost would mail twice where production does not.
func clients(t *testing.T, endpoint string) calendar.Clients {
	cfg := awstest.Connect(t, endpoint).Config.Copy()
	cfg.Retryer = func() aws.Retryer { return awsconf.ThrottleRetryer(8) }
	cfg.RetryMaxAttempts = 8
	return calendar.Clients{
		IAM: iam.NewFromConfig(cfg), Secrets: secretsmanager.NewFromConfig(cfg), SES: sesv2.NewFromConfig(cfg), SNS: sns.NewFromConfig(cfg),
		S3:       s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.DisableLogOutputChecksumValidationSkipped = true }),
		DynamoDB: dynamodb.NewFromConfig(cfg), STS: sts.NewFromConfig(cfg), Config: cfg,
	}
}
