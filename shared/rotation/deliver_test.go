package rotation_test

// Delivery (issue 21): the new key goes to where it is used (here an
// emulated GitHub repository, internal/emulators/github), is read back,
// and only then is the owner told and the old key switched off, on
// evidence that the delivered key is in use.

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	ghemu "github.com/keyrotor/keyrotor/internal/emulators/github"
	"github.com/keyrotor/keyrotor/shared/awsconf/lambdaenv"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// docs are destination documents by user (the store is tested in
// shared/delivery; here it only answers).
type docs map[string]*delivery.Document

func (d docs) Get(_ context.Context, account, user string) (*delivery.Document, error) {
	return d[account+"/"+user], nil
}

// dropAnswer performs the nth request whose path ends in suffix and then
// loses its answer, as a connection reset after the destination committed
// would.
type dropAnswer struct {
	next   http.RoundTripper
	suffix string
	n      int
	mu     sync.Mutex
	seen   int
}

func (d *dropAnswer) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := d.next.RoundTrip(r)
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, d.suffix) {
		if d.seen++; d.seen == d.n && err == nil {
			resp.Body.Close()
			return nil, errors.New("connection reset by peer")
		}
	}
	return resp, err
}

// withGitHub starts the GitHub emulator on the world's clock, stores its
// token in the hub as the document's credential, and lists one repository
// secret as user's destination.
func (c *calendar) withGitHub(user string) *ghemu.Server {
	c.t.Helper()
	gh, err := ghemu.Start()
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { gh.Close() })
	gh.SetClock(c.now)
	gh.AddRepo("octo/app")
	if _, err := c.a.Secrets.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{
		Name: aws.String("keyrotor-delivery/github"), SecretString: aws.String(gh.Token()),
	}); err != nil {
		c.t.Fatal(err)
	}
	c.w.Destinations = docs{"/" + user: {Version: 1, Destinations: []delivery.Spec{
		{Type: "github", Repository: "octo/app", Credential: "keyrotor-delivery/github", URL: gh.URL()},
	}}}
	c.w.Delivery = delivery.Env{
		HTTP:      delivery.Client(c.log(), 10*time.Second),
		AllowHTTP: true,
		Credential: func(ctx context.Context, name string) (string, error) {
			out, err := c.a.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
			if err != nil {
				return "", err
			}
			return aws.ToString(out.SecretString), nil
		},
	}
	return gh
}

// delivered returns what the repository holds, and how often each value
// was written.
func delivered(t *testing.T, gh *ghemu.Server) (id, secret string, writes int) {
	t.Helper()
	id, _ = gh.Value("repo:octo/app", "AWS_ACCESS_KEY_ID")
	secret, _ = gh.Value("repo:octo/app", "AWS_SECRET_ACCESS_KEY")
	return id, secret, max(gh.Writes("repo:octo/app", "AWS_ACCESS_KEY_ID"), gh.Writes("repo:octo/app", "AWS_SECRET_ACCESS_KEY"))
}

// TestMotoDeliveryEndToEnd: the new key is delivered and read back before
// the owner's mail (which says where it went); the old key stays Active
// until the pipeline, reading its key from the repository, is seen using
// the new one; then it goes off on evidence. The pipeline never fails and
// the secret appears in no output, mail or message.
func TestMotoDeliveryEndToEnd(t *testing.T) {
	c := newCalendar(t)
	gh := c.withGitHub("dora")
	old, oldSecret := c.oldUserWithSecret("dora", 100)
	// The pipeline reads its key from the repository's secrets and uses
	// it, every day.
	pipeline := func(day int) {
		id, secret, _ := delivered(t, gh)
		if id == "" {
			id, secret = old, oldSecret
		}
		c.a.Work(t, id, secret)
	}
	pipeline(0)
	if _, out := c.run(`{}`); out[old] != "adopting" {
		t.Fatalf("day 0: %q; want an adoption window (a delivered key switches over on evidence)", out[old])
	}
	newID, newSecret := c.newKey(old)
	id, secret, writes := delivered(t, gh)
	if id != newID || secret != newSecret || writes != 1 {
		t.Fatalf("day 0: the repository holds %q (secret matches: %v), written %d times; want the new key %s, once", id, secret == newSecret, writes, newID)
	}
	r := c.record(old)
	if !r.Evidence || len(r.Deliveries) != 1 || r.Deliveries[0].State != ledger.DeliveryVerified {
		t.Fatalf("day 0: record %+v; want one verified delivery and evidence required", r.Deliveries)
	}
	hist := ""
	for _, e := range r.History {
		hist += e.Note + "\n"
	}
	if d, m := strings.Index(hist, "delivered to github"), strings.Index(hist, "owner mailed"); d < 0 || m < 0 || d > m {
		t.Fatalf("day 0: history %q; want the delivery before the owner's mail", hist)
	}
	mails, _ := c.a.Sent(t)
	if len(mails) != 1 || !strings.Contains(mails[0].Body, "<li>delivered and read back: github repository secret octo/app") {
		t.Fatalf("day 0: owner mails %+v; want one naming the repository the key was delivered to", mails)
	}
	for day := 1; day <= 3; day++ {
		c.advance(oneDay)
		pipeline(day)
		c.run(`{}`)
	}
	r = c.record(old)
	if c.status("dora")[old] != "Inactive" || r.Adoption == nil || r.Adoption.SwitchOver != ledger.SwitchEvidence {
		t.Fatalf("day 3: old key %s, %s; want switched off on evidence", c.status("dora")[old], c.describe(old))
	}
	if _, _, writes := delivered(t, gh); writes != 1 {
		t.Fatalf("the repository was written %d times; want once", writes)
	}
	c.noSecretIn(newSecret, oldSecret)
}

// TestMotoDeliveryFailureKeepsTheOldKey: the destination is down for a
// day. Nothing is deactivated, the owner's mail says what is left, the
// admins are told; the next day's run delivers (once) and the window
// starts. A delivery failure never costs the owner a second mail.
func TestMotoDeliveryFailureKeepsTheOldKey(t *testing.T) {
	c := newCalendar(t)
	gh := c.withGitHub("eve")
	old, oldSecret := c.oldUserWithSecret("eve", 100)
	gh.DownUntil(c.now().Add(12 * time.Hour))
	if _, out := c.run(`{}`); out[old] != "delivery-incomplete" {
		t.Fatalf("day 0: %q; want the rotation stopped with its delivery incomplete", out[old])
	}
	if c.status("eve")[old] != "Active" {
		t.Fatalf("day 0: old key %s; want Active while a destination lacks the new key", c.status("eve")[old])
	}
	if id, _, writes := delivered(t, gh); id != "" || writes != 0 {
		t.Fatalf("day 0: the repository holds %q after %d writes; want nothing", id, writes)
	}
	mails, notes := c.a.Sent(t)
	if len(mails) != 1 || !strings.Contains(mails[0].Body, "not delivered yet</strong>: github repository secret octo/app") {
		t.Fatalf("day 0: owner mails %+v; want one saying the repository does not hold the key yet", mails)
	}
	told := ""
	for _, n := range notes {
		told += n.Message
	}
	if !strings.Contains(told, "do not hold the new key") || !strings.Contains(told, "stays Active") {
		t.Fatalf("day 0: admins told %q; want which destination failed and that the old key stays Active", told)
	}
	if r := c.record(old); !strings.HasPrefix(r.Attention, "delivery: ") {
		t.Fatalf("day 0: attention %q; want the delivery's", r.Attention)
	}
	if row := c.auditRow(old); row == nil || !strings.Contains(row.Destinations, "github repository secret octo/app") || !strings.Contains(row.Destinations, "failed (") {
		t.Fatalf("day 0: audit row %+v; want the destination shown failed, with its reason", row)
	}
	c.advance(oneDay)
	if _, out := c.run(`{}`); out[old] != "adopting" {
		t.Fatalf("day 1: %q; want delivered and the window started", out[old])
	}
	newID, newSecret := c.newKey(old)
	if id, secret, writes := delivered(t, gh); id != newID || secret != newSecret || writes != 1 {
		t.Fatalf("day 1: the repository holds %q, written %d times; want the new key %s, once", id, writes, newID)
	}
	if r := c.record(old); r.Attention != "" {
		t.Fatalf("day 1: attention %q; want it cleared", r.Attention)
	}
	if row := c.auditRow(old); row == nil || !strings.Contains(row.Destinations, "github repository secret octo/app: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY at ") || !strings.Contains(row.Destinations, ": delivered and verified at 20") {
		t.Fatalf("day 1: audit row %+v; want the destination shown delivered and verified", row)
	}
	if mails, _ := c.a.Sent(t); len(mails) != 1 {
		t.Fatalf("day 1: %d owner mails; want the one notice", len(mails))
	}
	c.noSecretIn(newSecret, oldSecret)
}

// TestMotoDeliveryLostAnswerIsNotWrittenTwice: the destination committed
// the write but its answer was lost. The step is retried; it asks the
// destination first and does not write again.
func TestMotoDeliveryLostAnswerIsNotWrittenTwice(t *testing.T) {
	c := newCalendar(t)
	gh := c.withGitHub("finn")
	// The second value's write (the last call of a Write) loses its answer.
	drop := &dropAnswer{next: c.w.Delivery.HTTP.Transport, suffix: "/AWS_SECRET_ACCESS_KEY", n: 1}
	c.w.Delivery.HTTP.Transport = drop
	old, _ := c.oldUserWithSecret("finn", 100)
	if _, out := c.run(`{}`); out[old] != "adopting" {
		t.Fatalf("%q; want delivered on the retry and the window started", out[old])
	}
	if drop.seen < 1 {
		t.Fatal("no answer was lost: the test tested nothing")
	}
	newID, newSecret := c.newKey(old)
	id, secret, _ := delivered(t, gh)
	if id != newID || secret != newSecret {
		t.Fatalf("the repository holds %q; want the new key %s", id, newID)
	}
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if n := gh.Writes("repo:octo/app", name); n != 1 {
			t.Errorf("%s written %d times; want once (the retry reads back before writing)", name, n)
		}
	}
}

// noSecretIn fails the test if any step's output or log, mail or admin
// message holds one of the secrets.
func (c *calendar) noSecretIn(secrets ...string) {
	c.t.Helper()
	out := string(c.w.Outputs())
	mails, notes := c.a.Sent(c.t)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			c.t.Fatal("a step's output or log holds a secret access key")
		}
		for _, m := range mails {
			if strings.Contains(m.Body, s) {
				c.t.Fatal("a mail holds a secret access key")
			}
		}
		for _, n := range notes {
			if strings.Contains(n.Message, s) {
				c.t.Fatal("an admin message holds a secret access key")
			}
		}
	}
}

// TestMotoDeliveryInvalidDocumentBlocksAtFind: a user's stored document
// that no longer validates (written before a rule changed, or by hand)
// stops the rotation at find, with the field and the fix: no key is
// created that could be delivered nowhere, and the old key stays.
func TestMotoDeliveryInvalidDocumentBlocksAtFind(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("gus", 100)
	ctx := context.Background()
	if _, err := c.a.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(c.cfg.RotationTable), Item: map[string]ddbtypes.AttributeValue{
		ledger.AttrID:   &ddbtypes.AttributeValueMemberS{Value: delivery.DocumentID("", "gus")},
		ledger.AttrKind: &ddbtypes.AttributeValueMemberS{Value: delivery.Kind},
		"doc":           &ddbtypes.AttributeValueMemberS{Value: `{"version":1,"destinations":[{"type":"gitea","repository":"o/r"}]}`},
		"user":          &ddbtypes.AttributeValueMemberS{Value: "gus"},
	}}); err != nil {
		t.Fatal(err)
	}
	f := &rotation.Finder{IAM: c.a.IAM, Records: c.recs, Destinations: &delivery.Store{API: c.a.DynamoDB, Table: c.cfg.RotationTable}, Config: *c.cfg, Now: c.now, Log: c.log()}
	plan, err := retried(func() (*rotation.Plan, error) {
		return f.Handle(ctx, rotation.FindInput{Request: json.RawMessage(`{}`), ExecutionName: "day-0"})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Items) != 0 || len(plan.Blocked) != 1 || plan.Blocked[0].KeyID != old ||
		!strings.Contains(plan.Blocked[0].Reason, "destinations[0].type") || !strings.Contains(plan.Blocked[0].Reason, "keyrotor destinations set --user gus") {
		t.Fatalf("plan items %+v, blocked %+v; want gus's rotation blocked, naming the field and the command", plan.Items, plan.Blocked)
	}
	if keys := c.status("gus"); len(keys) != 1 || keys[old] != "Active" {
		t.Fatalf("keys %v; want only the old key, Active", keys)
	}
}

// TestMotoDeliveryFailedSecondValueIsNotWrittenTwice: the first value's
// write took effect and the second's failed before it did (a 500). The
// retry writes only what the repository lacks: each value once. (The
// calendar simulation, seed 1, day 0: the key id was written twice.)
func TestMotoDeliveryFailedSecondValueIsNotWrittenTwice(t *testing.T) {
	c := newCalendar(t)
	gh := c.withGitHub("gus")
	gh.Fail(ghemu.Match(http.MethodPut, "/AWS_SECRET_ACCESS_KEY"), http.StatusInternalServerError, 1)
	old, _ := c.oldUserWithSecret("gus", 100)
	if _, out := c.run(`{}`); out[old] != "adopting" {
		t.Fatalf("%q; want delivered on the retry and the window started", out[old])
	}
	newID, newSecret := c.newKey(old)
	if id, secret, _ := delivered(t, gh); id != newID || secret != newSecret {
		t.Fatalf("the repository holds %q; want the new key %s", id, newID)
	}
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if n := gh.Writes("repo:octo/app", name); n != 1 {
			t.Errorf("%s written %d times; want once (the retry writes only what is missing)", name, n)
		}
	}
}

// dropSSMPut performs the first PutParameter and then loses its answer.
type dropSSMPut struct {
	mu   sync.Mutex
	seen int
}

func (d *dropSSMPut) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	d.mu.Lock()
	defer d.mu.Unlock()
	if r.Header.Get("X-Amz-Target") == "AmazonSSM.PutParameter" {
		if d.seen++; d.seen == 1 && err == nil {
			resp.Body.Close()
			return nil, errors.New("connection reset by peer")
		}
	}
	return resp, err
}

// TestMotoDeliverySSMLostAnswerIsNotWrittenTwice: the first parameter's
// write took effect and its answer was lost. The retry writes only the
// parameter that lacks its value: each is written once.
func TestMotoDeliverySSMLostAnswerIsNotWrittenTwice(t *testing.T) {
	c := newCalendar(t)
	c.cfg.DeliveryParameters = []string{"/ci/*"}
	names := []string{"/ci/app/aws-access-key-id", "/ci/app/aws-secret-access-key"}
	c.w.Destinations = docs{"/hal": {Version: 1, Destinations: []delivery.Spec{{Type: "ssm", IDName: names[0], SecretName: names[1]}}}}
	drop := &dropSSMPut{}
	cfg := c.a.Config.Copy()
	cfg.HTTPClient = &http.Client{Transport: drop}
	// As the deliver function's clients (awsconf.FromLambdaEnv): the SDK
	// retries throttling only, never a send whose answer was lost.
	cfg.Retryer = func() aws.Retryer { return lambdaenv.ThrottleRetryer(8) }
	c.w.Delivery = delivery.Env{AWS: func(context.Context, string, string) (delivery.AWSClients, error) {
		return delivery.AWSClients{SSM: ssm.NewFromConfig(cfg)}, nil
	}}
	old, _ := c.oldUserWithSecret("hal", 100)
	if _, out := c.run(`{}`); out[old] != "adopting" {
		t.Fatalf("%q; want delivered on the retry and the window started", out[old])
	}
	if drop.seen < 1 {
		t.Fatal("no answer was lost: the test tested nothing")
	}
	newID, newSecret := c.newKey(old)
	api := ssm.NewFromConfig(c.a.Config)
	for i, want := range []string{newID, newSecret} {
		out, err := api.GetParameter(context.Background(), &ssm.GetParameterInput{Name: aws.String(names[i]), WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if aws.ToString(out.Parameter.Value) != want || out.Parameter.Version != 1 {
			t.Errorf("%s: version %d, holds the new value: %v; want the new value, written once (version 1)", names[i], out.Parameter.Version, aws.ToString(out.Parameter.Value) == want)
		}
	}
}

// TestMotoDeliveryReusedKeyIsNotWrittenAgain: a rotation held by a
// person restarts after the hold and reuses the previous rotation's new
// key (still Active and stored). The destination holds it already: it is
// not written again. (The calendar simulation, make soak SEED=11, day 41:
// each value written twice.)
func TestMotoDeliveryReusedKeyIsNotWrittenAgain(t *testing.T) {
	c := newCalendar(t)
	c.cfg.GracePeriod, c.cfg.HoldDays = oneDay, 1
	gh := c.withGitHub("hana")
	old, _ := c.oldUserWithSecret("hana", 100)
	if _, out := c.run(`{}`); out[old] != "adopting" {
		t.Fatalf("day 0: %q; want delivered and the window started", out[old])
	}
	newID, _ := c.newKey(old)
	// The owner switches the old key off (the window's verdict), then on
	// again during the grace: the rotation is held, and restarts after.
	c.a.SetKeyStatus(t, "hana", old, false)
	c.advance(oneDay)
	c.run(`{}`)
	reactivate(c, "hana", old)
	var r2 *ledger.Record
	for day := 2; day <= 6 && r2 == nil; day++ {
		c.advance(oneDay)
		c.run(`{}`)
		if r := c.record(old); r.Rotation == 2 && len(r.Deliveries) > 0 {
			r2 = r
		}
	}
	if r2 == nil {
		t.Fatalf("no second rotation delivered: %s", c.describe(old))
	}
	if r2.NewKeyID != newID || r2.PrevNewKeyID != newID {
		t.Fatalf("rotation 2's new key %s (previous %s); want the reused key %s", r2.NewKeyID, r2.PrevNewKeyID, newID)
	}
	if r2.Deliveries[0].State != ledger.DeliveryVerified {
		t.Fatalf("rotation 2's delivery %+v; want verified", r2.Deliveries)
	}
	for _, name := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if n := gh.Writes("repo:octo/app", name); n != 1 {
			t.Errorf("%s written %d times; want once: the reused key was there already", name, n)
		}
	}
}
