package rotation_test

// Days, not runs: regression tests for what ties executions together. Each
// test plays several daily executions (distinct execution names, a clock
// shared by the steps and moto) with people acting in between, runs the
// steps in the order the state machine gives (find, then per key: create,
// notify, deactivate, then the key's grace-and-delete execution when its
// time comes), and asserts on the emulated account: keys, statuses,
// secrets, mails and rotation records.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	cal "github.com/keyrotor/keyrotor/internal/calendar"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

const oneDay = 24 * time.Hour

// calendar is an emulated account over days: the steps run by
// internal/calendar's World (the same flow the calendar simulation plays),
// with one clock shared with moto.
type calendar struct {
	t     *testing.T
	a     *awstest.Account
	w     *cal.World
	recs  *ledger.Store
	cfg   *config.Config
	grace []cal.PendingGrace
}

func newCalendar(t *testing.T) *calendar {
	t.Helper()
	a := awstest.New(t)
	cfg := config.Default()
	cfg.Sender = "keyrotor@example.com"
	cfg.AdminTopicARN = a.Topic(t, "keyrotor-admins")
	cfg.ReportBucket = "keyrotor-reports"
	cfg.RotationTable = "rotations"
	cfg.StoreRoleARN = storeRole
	a.Bucket(t, cfg.ReportBucket)
	a.VerifySender(t, cfg.Sender)
	cl := cal.Clients{IAM: a.IAM, Secrets: a.Secrets, SES: a.SES, SNS: a.SNS, S3: a.S3, DynamoDB: a.DynamoDB, Config: a.Config}
	w := &cal.World{People: cl, Steps: cl, Records: a.Records(t, cfg.RotationTable), Config: cfg, Endpoint: a.Endpoint,
		SetClock: func(d time.Duration) error { a.Clock(t, d); return nil }}
	return &calendar{t: t, a: a, w: w, recs: w.Records, cfg: &w.Config}
}

func (c *calendar) now() time.Time { return c.w.Now() }

// advance moves the shared clock (the steps' and moto's) by d.
func (c *calendar) advance(d time.Duration) {
	if err := c.w.Advance(d); err != nil {
		c.t.Fatal(err)
	}
}

// oldUser creates a user whose only key is age days old, used yesterday,
// with an owner tag.
func (c *calendar) oldUser(name string, age int, tags ...string) string {
	c.t.Helper()
	off := c.w.Offset()
	c.a.Clock(c.t, off-time.Duration(age)*oneDay)
	c.a.User(c.t, name, append([]string{"email", name + "@example.com"}, tags...)...)
	id, secret := c.a.KeyWithSecret(c.t, name)
	c.a.Use(c.t, id, secret)
	c.a.Clock(c.t, off-oneDay)
	c.a.Use(c.t, id, secret) // in use: rotated, not retired
	c.a.Clock(c.t, off)
	return id
}

func (c *calendar) log() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// run plays one daily execution and returns the plan and where each old
// key's flow ended ("grace", "stopped: <why>", "notice-not-sent", ...).
func (c *calendar) run(string) (*rotation.Plan, map[string]string) {
	c.t.Helper()
	plan, outs, err := c.w.RunDay(context.Background(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range outs {
		out[o.Item.OldKey.ID] = result(o.Result, o.Detail)
	}
	c.grace = c.w.Pending()
	return plan, out
}

func (c *calendar) flow(t rotation.Task) string {
	r := result(c.w.Flow(context.Background(), t))
	c.grace = c.w.Pending()
	return r
}

func result(r, detail string) string {
	if r == "stopped" || r == "failed" {
		return r + ": " + detail
	}
	return r
}

// retried runs a step as the state machine's Retry would.
func retried[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range 10 {
		if v, err = f(); err == nil {
			return v, nil
		}
		named := failures.Boundary(err)
		if n := failures.Name(named); n != failures.Name(&failures.ReportNotReadyError{}) && !contains(failures.Retryable(), n) {
			return v, named
		}
		time.Sleep(50 * time.Millisecond)
	}
	return v, err
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *calendar) record(id string) *ledger.Record {
	c.t.Helper()
	r, err := c.recs.Get(context.Background(), id)
	if err != nil {
		c.t.Fatal(err)
	}
	if r == nil {
		c.t.Fatalf("no rotation record for %s", id)
	}
	return r
}

// ownerMails counts the owner mails that mention key id.
func (c *calendar) ownerMails(id string) int {
	mails, _ := c.a.Sent(c.t)
	n := 0
	for _, m := range mails {
		if strings.Contains(m.Body, id) && !strings.Contains(strings.Join(m.To, ","), "admin") {
			n++
		}
	}
	return n
}

func (c *calendar) status(user string) map[string]string { return c.a.Keys(c.t, user) }

func reactivate(c *calendar, user, id string) { c.a.SetKeyStatus(c.t, user, id, true) }

// Defect 1: a person re-activates the old key during the grace period. That
// is final for the rotation: no later execution deactivates it again, the
// grace execution does not delete it, the admins are told, every run
// reports it held; only after the hold period does a new rotation start,
// with a new owner mail and a full grace period.
func TestMotoDaysReactivatedOldKeyIsHeldAcrossExecutions(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("alice", 100)
	_, out := c.run(`{}`)
	if out[old] != "grace" {
		t.Fatalf("day 0: %s", out[old])
	}
	if c.status("alice")[old] != "Inactive" || c.ownerMails(old) != 1 {
		t.Fatalf("day 0: old key %s, %d mails; want Inactive, 1", c.status("alice")[old], c.ownerMails(old))
	}

	c.advance(2 * oneDay)
	reactivate(c, "alice", old) // a pipeline broke: a person switches the old key back on
	plan, out := c.run(`{}`)
	if got := c.status("alice")[old]; got != "Active" {
		t.Fatalf("day 2: a later execution deactivated the re-activated key again (%s); outcome %q", got, out[old])
	}
	if r := c.record(old); r.State != ledger.Held {
		t.Fatalf("day 2: record %s (%s); want held", r.State, r.Outcome)
	}
	if c.ownerMails(old) != 1 {
		t.Fatalf("day 2: %d owner mails; want still 1", c.ownerMails(old))
	}
	_ = plan

	for d := 3; d <= 31; d++ {
		c.advance(oneDay)
		plan, out = c.run(`{}`)
		if c.status("alice")[old] != "Active" {
			t.Fatalf("day %d: held key touched: %s (outcome %q)", d, c.status("alice")[old], out[old])
		}
		if len(plan.Held) != 1 || plan.Held[0].KeyID != old {
			t.Fatalf("day %d: plan.Held = %+v; want the held key reported in every run", d, plan.Held)
		}
	}
	// Day 33: the 30-day hold (from day 2) has passed: a new rotation,
	// with a new mail and a full grace period from today.
	c.advance(2 * oneDay)
	_, out = c.run(`{}`)
	r := c.record(old)
	if out[old] != "grace" || r.Rotation != 2 || c.status("alice")[old] != "Inactive" {
		t.Fatalf("day 33: outcome %q, rotation %d, old key %s; want a second rotation that deactivates after a new notice", out[old], r.Rotation, c.status("alice")[old])
	}
	if c.ownerMails(old) != 2 {
		t.Fatalf("day 33: %d owner mails; want 2 (one per rotation)", c.ownerMails(old))
	}
	if got := r.DeleteAfter.Sub(r.DeactivatedAt); got != c.cfg.GracePeriod {
		t.Fatalf("rotation 2 grace %v; want %v from its own deactivation", got, c.cfg.GracePeriod)
	}
	c.advance(6 * oneDay)
	c.run(`{}`)
	if _, ok := c.status("alice")[old]; !ok {
		t.Fatal("day 39: old key deleted before the grace of rotation 2 ended")
	}
	c.advance(oneDay + time.Hour)
	c.run(`{}`)
	if _, ok := c.status("alice")[old]; ok {
		t.Fatalf("day 40: old key not deleted after rotation 2's grace: %+v", c.record(old))
	}
}

// Defect 1, second half: an execution re-run after the grace execution
// already refused (key re-activated) never re-deactivates with the old time.
func TestMotoDaysGraceRefusalThenRerunDoesNotDeleteEarly(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("bob", 100)
	c.run(`{}`)
	c.advance(6 * oneDay)
	reactivate(c, "bob", old)
	c.advance(oneDay + time.Hour)
	c.run(`{}`) // the grace execution ends: the key is Active, it holds
	if c.status("bob")[old] != "Active" || c.record(old).State != ledger.Held {
		t.Fatalf("day 7: %s, record %s; want Active and held", c.status("bob")[old], c.record(old).State)
	}
	c.advance(oneDay)
	c.run(`{}`)
	if c.status("bob")[old] != "Active" {
		t.Fatal("day 8: the next execution deactivated a held key")
	}
}

// Defect 2: SES refuses the owner's mail. Nothing is deactivated, the
// admins are told once, and the next run tries again; once the mail is
// accepted, the rotation goes on.
func TestMotoDaysRefusedMailIsRetriedNextRun(t *testing.T) {
	c := newCalendar(t)
	c.cfg.Sender = "unverified@example.com" // c.cfg is the world's configuration
	old := c.oldUser("carol", 100)
	_, out := c.run(`{}`)
	if out[old] != "notice-not-sent" || c.status("carol")[old] != "Active" {
		t.Fatalf("day 0: outcome %q, old key %s; want notice-not-sent and Active", out[old], c.status("carol")[old])
	}
	_, notes := c.a.Sent(t)
	told := 0
	for _, n := range notes {
		if strings.Contains(n.Message, "refused") {
			told++
		}
	}
	c.advance(oneDay)
	plan, out := c.run(`{}`)
	if out[old] != "notice-not-sent" || c.status("carol")[old] != "Active" {
		t.Fatalf("day 1: outcome %q, old key %s", out[old], c.status("carol")[old])
	}
	if len(plan.Attention) != 1 {
		t.Fatalf("day 1: plan.Attention = %+v; want the refused mail shown until fixed", plan.Attention)
	}
	_, notes = c.a.Sent(t)
	again := 0
	for _, n := range notes {
		if strings.Contains(n.Message, "refused") {
			again++
		}
	}
	if told != 1 || again != 1 {
		t.Fatalf("admins told %d times on day 0, %d after day 1; want once", told, again)
	}
	// The sender is fixed: the next run mails and deactivates.
	c.a.VerifySender(t, "unverified@example.com")
	c.advance(oneDay)
	_, out = c.run(`{}`)
	if out[old] != "grace" || c.ownerMails(old) != 1 || c.status("carol")[old] != "Inactive" {
		t.Fatalf("day 2: outcome %q, %d mails, old key %s", out[old], c.ownerMails(old), c.status("carol")[old])
	}
}

// Defect 3: an execution that failed after claiming a rotation does not
// block later executions: the next day's execution takes it over from its
// recorded progress (one new key, one mail).
func TestMotoDaysFailedExecutionIsTakenOverNextDay(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("dave", 100)
	f := &rotation.Finder{IAM: c.a.IAM, Records: c.recs, Config: *c.cfg, Now: c.now, Log: c.log()}
	plan, err := retried(func() (*rotation.Plan, error) {
		return f.Handle(context.Background(), rotation.FindInput{Request: json.RawMessage(`{}`), ExecutionName: "failed-exec"})
	})
	if err != nil {
		t.Fatal(err)
	}
	cr := &rotation.Creator{IAM: c.a.IAM, Secrets: c.a.Secrets, Records: c.recs, Topic: c.a.SNS, Config: *c.cfg, Now: c.now, Log: c.log()}
	nk, err := cr.Handle(context.Background(), rotation.Task{Execution: "failed-exec", Item: plan.Items[0]})
	if err != nil || nk.KeyID == "" {
		t.Fatalf("create: %v %+v", err, nk)
	}
	// The execution fails here and nobody redrives it.
	c.advance(oneDay)
	_, out := c.run(`{}`)
	if out[old] != "grace" {
		t.Fatalf("day 1: outcome %q; want the rotation taken over and finished up to deactivation", out[old])
	}
	keys := c.status("dave")
	if len(keys) != 2 || keys[nk.KeyID] != "Active" || keys[old] != "Inactive" {
		t.Fatalf("day 1: keys %v; want the failed execution's new key reused and the old key Inactive", keys)
	}
	if c.ownerMails(old) != 1 {
		t.Fatalf("%d owner mails; want 1", c.ownerMails(old))
	}
	r := c.record(old)
	if !strings.Contains(fmt.Sprint(r.History), "taken over from execution failed-exec") {
		t.Fatalf("history does not say who took over: %+v", r.History)
	}
}

// Defect 4: keyrotor keeps its progress out of the user's tags, so a user
// with 48 tags of their own rotates like any other and keeps exactly its
// tags.
func TestMotoDaysUserWithManyTagsRotatesAndTagsAreUntouched(t *testing.T) {
	c := newCalendar(t)
	var tags []string
	for i := range 47 {
		tags = append(tags, fmt.Sprintf("team-tag-%02d", i), "x")
	}
	old := c.oldUser("erin", 100, tags...) // 47 + the email tag = 48
	before := c.a.Tags(t, "erin")
	_, out := c.run(`{}`)
	if out[old] != "grace" {
		t.Fatalf("outcome %q", out[old])
	}
	c.advance(7*oneDay + time.Hour)
	c.run(`{}`)
	if _, ok := c.status("erin")[old]; ok {
		t.Fatal("old key not deleted after its grace")
	}
	if after := c.a.Tags(t, "erin"); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("keyrotor changed the user's tags:\nbefore %v\nafter  %v", before, after)
	}
}

// Defect 5: asOf is for previews. Without dryRun it is refused, naming the
// field, and nothing changes.
func TestMotoDaysAsOfWithoutDryRunIsRefused(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("frank", 30)
	f := &rotation.Finder{IAM: c.a.IAM, Records: c.recs, S3: c.a.S3, Config: *c.cfg, Now: c.now, Log: c.log()}
	future := c.now().Add(100 * oneDay).UTC().Format(time.RFC3339)
	_, err := f.Handle(context.Background(), rotation.FindInput{Request: json.RawMessage(`{"asOf":"` + future + `"}`), ExecutionName: "x"})
	var ie *failures.InvalidInputError
	if !errors.As(err, &ie) || ie.Field != "asOf" || !strings.Contains(ie.Msg, "dryRun") {
		t.Fatalf("err = %v; want InvalidInputError on asOf naming dryRun", err)
	}
	if all, _ := c.recs.All(context.Background()); len(all) != 0 || c.status("frank")[old] != "Active" {
		t.Fatalf("something changed: %d records, key %s", len(all), c.status("frank")[old])
	}
	plan, err := retried(func() (*rotation.Plan, error) {
		return f.Handle(context.Background(), rotation.FindInput{Request: json.RawMessage(`{"dryRun":true,"asOf":"` + future + `"}`), ExecutionName: "y"})
	})
	if err != nil || plan.Counts.Retire+plan.Counts.Rotate != 1 {
		t.Fatalf("a preview as of %s: %v %+v", future, err, plan)
	}
}

// Defect 6: a retry after CreateAccessKey's answer was lost never deletes a
// key it cannot prove it created (here a person's); it stops for the user
// and tells the admins once, and resumes once a person removed the extra key.
func TestMotoDaysUnprovableKeyIsNeverDeleted(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("grace", 100)
	c.w.StepIAM = &loseCreateAnswer{StepIAM: c.a.IAM}
	_, out := c.run(`{}`)
	if !strings.HasPrefix(out[old], "stopped: ") || !strings.Contains(out[old], "cannot prove") {
		t.Fatalf("day 0: outcome %q; want a stop saying keyrotor cannot prove it created the key", out[old])
	}
	keys := c.status("grace")
	if len(keys) != 2 {
		t.Fatalf("day 0: keys %v; want the unprovable key left alone", keys)
	}
	var extra string
	for id := range keys {
		if id != old {
			extra = id
		}
	}
	c.w.StepIAM = nil
	c.advance(oneDay)
	plan, _ := c.run(`{}`)
	if len(c.status("grace")) != 2 || len(plan.Attention) == 0 {
		t.Fatalf("day 1: keys %v, attention %+v; want the key kept and the condition shown", c.status("grace"), plan.Attention)
	}
	// A person deletes the extra key, as the admins' message says.
	if _, err := c.a.IAM.DeleteAccessKey(context.Background(), &iam.DeleteAccessKeyInput{UserName: aws.String("grace"), AccessKeyId: aws.String(extra)}); err != nil {
		t.Fatal(err)
	}
	c.advance(oneDay)
	_, out = c.run(`{}`)
	if out[old] != "grace" || c.ownerMails(old) != 1 {
		t.Fatalf("day 2: outcome %q, %d mails; want the rotation resumed", out[old], c.ownerMails(old))
	}
}

// loseCreateAnswer creates the key but loses the answer once (a dropped
// response): the caller never learns the key id.
type loseCreateAnswer struct {
	cal.StepIAM
	done bool
}

func (l *loseCreateAnswer) CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error) {
	out, err := l.StepIAM.CreateAccessKey(ctx, in, optFns...)
	if err == nil && !l.done {
		l.done = true
		return nil, &failures.TransientError{Op: "CreateAccessKey", Msg: "connection reset"}
	}
	return out, err
}

// Defect 7: IAM is eventually consistent. A new key not yet listed is a
// retried, named error: never a second key, never a non-retried failure.
func TestMotoDaysNewKeyNotYetListedIsRetried(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("heidi", 100)
	lag := &lagList{StepIAM: c.a.IAM, hide: 2}
	c.w.StepIAM = lag
	_, out := c.run(`{}`)
	if out[old] != "grace" {
		t.Fatalf("outcome %q", out[old])
	}
	if lag.creates != 1 || len(c.status("heidi")) != 2 {
		t.Fatalf("%d CreateAccessKey calls, keys %v; want exactly one new key", lag.creates, c.status("heidi"))
	}
}

// lagList hides a newly created key from the next hide ListAccessKeys
// answers, as IAM may for a few seconds.
type lagList struct {
	cal.StepIAM
	hide, creates int
	newID         string
}

func (l *lagList) CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error) {
	out, err := l.StepIAM.CreateAccessKey(ctx, in, optFns...)
	if err == nil {
		l.creates++
		l.newID = aws.ToString(out.AccessKey.AccessKeyId)
	}
	return out, err
}

func (l *lagList) ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, optFns ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	out, err := l.StepIAM.ListAccessKeys(ctx, in, optFns...)
	if err == nil && l.newID != "" && l.hide > 0 {
		l.hide--
		kept := out.AccessKeyMetadata[:0]
		for _, k := range out.AccessKeyMetadata {
			if aws.ToString(k.AccessKeyId) != l.newID {
				kept = append(kept, k)
			}
		}
		out.AccessKeyMetadata = kept
	}
	return out, err
}

// Defect 8: a person scheduled the user's secret for deletion. keyrotor
// restores it and stores the new key, instead of failing the user daily.
func TestMotoDaysSecretScheduledForDeletionIsRestored(t *testing.T) {
	// keyrotor's own secret (from the first rotation), which a person then
	// scheduled for deletion: the next rotation restores it. (A secret
	// keyrotor did not create is never written: TestMotoForeignSecretGetsNoKey.)
	c := newCalendar(t)
	old := c.oldUser("ivan", 100)
	name := rotation.SecretName(c.cfg.SecretPrefix, "ivan")
	if _, out := c.run(`{}`); out[old] != "grace" {
		t.Fatalf("day 0 outcome %q; want the first rotation to go on", out[old])
	}
	var first rotation.StoredKey
	json.Unmarshal([]byte(c.a.Secret(t, name)), &first)
	if _, err := c.a.Secrets.DeleteSecret(context.Background(), &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(30)}); err != nil {
		t.Fatal(err)
	}
	c.advance(time.Duration(c.cfg.MaxKeyAgeDays+1) * oneDay) // the new key is due in turn
	c.a.Use(t, first.AccessKeyID, first.SecretAccessKey)     // and in use: rotated, not retired
	_, out := c.run(`{}`)
	if out[first.AccessKeyID] != "grace" {
		t.Fatalf("outcome %q (all %v); want the rotation to go on", out[first.AccessKeyID], out)
	}
	var stored rotation.StoredKey
	json.Unmarshal([]byte(c.a.Secret(t, name)), &stored)
	if stored.AccessKeyID == "" || stored.AccessKeyID == first.AccessKeyID || c.status("ivan")[stored.AccessKeyID] != "Active" {
		t.Fatalf("secret holds %q; keys %v", stored.AccessKeyID, c.status("ivan"))
	}
}

// Defect 9: the day's execution ends at deactivation; each key's grace and
// deletion is its own execution, started once per rotation and named after
// the user and the key. A second start (a re-run) is a no-op.
func TestMotoDaysGraceIsItsOwnExecutionStartedOnce(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("judy", 100)
	_, out := c.run(`{}`)
	if out[old] != "grace" || len(c.grace) != 1 {
		t.Fatalf("outcome %q, %d grace executions", out[old], len(c.grace))
	}
	name := c.grace[0].Name
	if !strings.HasPrefix(name, "judy-") || !strings.Contains(name, old) || len(name) > 80 {
		t.Fatalf("grace execution %q; want it named after the user and the key, at most 80 characters", name)
	}
	// The same item again (a Redrive, a second execution the same day).
	c.flow(rotation.Task{Execution: "redrive", Item: c.grace[0].Task.Item})
	if len(c.grace) != 1 || c.ownerMails(old) != 1 {
		t.Fatalf("%d grace executions, %d mails after a re-run; want 1 and 1", len(c.grace), c.ownerMails(old))
	}
}

// A resumed rotation no due key leads to (a person deactivated the old key
// after its first notice was refused) still mails its owner: find reads the
// owner's address for it, so the notice does not fall back to the admins'
// "no owner address" message (found by the calendar simulation).
func TestMotoDaysResumedRotationMailsItsOwner(t *testing.T) {
	c := newCalendar(t)
	c.cfg.Sender = "unverified@example.com" // SES refuses the day-0 notice
	old := c.oldUser("dana", 100)
	if _, out := c.run(`{}`); out[old] != "notice-not-sent" {
		t.Fatalf("day 0: %s; want notice-not-sent", out[old])
	}
	c.a.SetKeyStatus(t, "dana", old, false) // the old key is no longer due
	c.cfg.Sender = "keyrotor@example.com"
	c.advance(oneDay)
	plan, out := c.run(`{}`)
	if plan.Counts.Resumed != 1 || out[old] != "grace" {
		t.Fatalf("day 1: resumed %d, outcome %q; want the rotation resumed into its grace period", plan.Counts.Resumed, out[old])
	}
	if r := c.record(old); r.NoticeChannel != "mail" || c.ownerMails(old) != 1 {
		t.Fatalf("day 1: notice by %q, %d owner mails; want the owner mailed (dana@example.com), once", r.NoticeChannel, c.ownerMails(old))
	}
}

// A key retired (never used) is deleted at the end of its grace by the
// rotation of the user's other key, which removes it first to make room;
// that rotation's owner mail says so (it names the retired key), yet it is
// no second notice of the retirement: one notice per rotation still holds.
// Found by the calendar soak (make soak DAYS=60 SEED=11 USERS=150
// ADOPTION=5, day 54), whose count of notices took any mail naming a key
// for a notice of that key's rotation.
func TestMotoDaysKeyRemovedToMakeRoomHasOneNotice(t *testing.T) {
	c := newCalendar(t)
	off := c.w.Offset()
	c.a.Clock(t, off-100*oneDay)
	c.a.User(t, "erin", "email", "erin@example.com")
	unused := c.a.Key(t, "erin") // never used: retired on day 0
	c.a.Clock(t, off-83*oneDay)
	inUse, secret := c.a.KeyWithSecret(t, "erin") // due on day 8
	c.a.Clock(t, off-oneDay)
	c.a.Use(t, inUse, secret)
	c.a.Clock(t, off)
	if _, out := c.run(`{}`); out[unused] != "grace" || out[inUse] != "" {
		t.Fatalf("day 0: %v; want %s retired into its grace period, %s not due", out, unused, inUse)
	}
	c.advance(8 * oneDay)
	c.a.Use(t, inUse, secret)
	if _, out := c.run(`{}`); out[inUse] != "grace" {
		t.Fatalf("day 8: %v; want %s rotated", out, inUse)
	}
	if _, ok := c.status("erin")[unused]; ok {
		t.Fatalf("day 8: keys %v; want the retired key %s deleted to make room", c.status("erin"), unused)
	}
	if r := c.record(unused); r.State != ledger.Deleted || !strings.Contains(r.Outcome, "make room") {
		t.Fatalf("record of %s = %s %q; want deleted to make room", unused, r.State, r.Outcome)
	}
	sent, err := c.w.ReadSent(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var naming []string
	for _, m := range sent.Mails {
		if strings.Contains(m.Body, unused) {
			naming = append(naming, m.Subject)
		}
	}
	if len(naming) != 2 || !strings.Contains(naming[1], inUse) {
		t.Fatalf("mails naming %s: %q; want its retirement notice and the rotation of %s telling the owner it was removed first", unused, naming, inUse)
	}
	if n, m := cal.OwnerNotices(sent.Mails, unused), cal.OwnerNotices(sent.Mails, inUse); n != 1 || m != 1 {
		t.Fatalf("owner notices: %d of %s, %d of %s; want one each", n, unused, m, inUse)
	}
}
