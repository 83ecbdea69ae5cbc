package rotation_test

// At least once, everywhere (issue 18): a step invoked again after its
// first invocation committed, a person acting on a rotation of another
// kind, a verdict made stale by a person, a rotation that ended without a
// hold. Each test plays daily executions against the emulated account
// (one clock for the steps and moto, people acting in between) and
// asserts on the account and the records.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	cal "github.com/keyrotor/keyrotor/internal/calendar"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// unusedUser creates a user whose only key is age days old and was never
// used (retired once unused for config.UnusedDays), with its secret.
func (c *calendar) unusedUser(name string, age int) (string, string) {
	c.t.Helper()
	off := c.w.Offset()
	c.a.Clock(c.t, off-time.Duration(age)*oneDay)
	c.a.User(c.t, name, "email", name+"@example.com")
	id, secret := c.a.KeyWithSecret(c.t, name)
	c.a.Clock(c.t, off)
	return id, secret
}

// adminMessages returns the admins' messages that mention id.
func (c *calendar) adminMessages(id string) []string {
	_, notes := c.a.Sent(c.t)
	var out []string
	for _, n := range notes {
		if strings.Contains(n.Message, id) {
			out = append(out, n.Message)
		}
	}
	return out
}

// Issue 18, defect 1: a key retired as unused (mail, deactivated, grace
// running) is re-activated and used by a person; days later it is due for
// rotation. The person's act is final for the retire rotation whatever
// the new item's kind: the key is not switched off again, the rotation is
// held with the person's act recorded and the admins told, and only after
// the hold does a new rotation start, with its own owner mail naming the
// new key.
func TestMotoDaysReactivatedRetiredKeyIsHeldNotRotatedSilently(t *testing.T) {
	c := newCalendar(t)
	c.cfg.HoldDays = 5
	old, secret := c.unusedUser("rita", 86)
	if _, out := c.run(`{}`); out[old] != "grace" || c.status("rita")[old] != "Inactive" || c.ownerMails(old) != 1 {
		t.Fatalf("day 0: %q, key %s, %d mails; want retired: mailed once, Inactive", out[old], c.status("rita")[old], c.ownerMails(old))
	}
	if r := c.record(old); r.Action != "retire" {
		t.Fatalf("day 0: record action %q; want retire", r.Action)
	}
	c.advance(2 * oneDay)
	reactivate(c, "rita", old) // the key was needed after all
	c.a.Work(t, old, secret)
	c.run(`{}`)
	c.advance(3 * oneDay) // day 5: 91 days old and used: due for rotation, grace still running
	_, out := c.run(`{}`)
	keys := c.status("rita")
	if keys[old] != "Active" || len(keys) != 1 {
		t.Fatalf("day 5: keys %v (outcome %q); want the re-activated key left Active and no new key", keys, out[old])
	}
	r := c.record(old)
	if r.State != ledger.Held || !strings.Contains(r.Outcome, "re-activated") {
		t.Fatalf("day 5: record %s; want the retirement held, saying a person re-activated the key", c.describe(old))
	}
	if len(c.adminMessages(old)) == 0 || !strings.Contains(strings.Join(c.adminMessages(old), "\n"), "re-activated") {
		t.Fatalf("day 5: admins told %q; want the re-activation told", c.adminMessages(old))
	}
	c.advance(2 * oneDay) // the retirement's grace execution ends: nothing deleted
	c.run(`{}`)
	if c.status("rita")[old] != "Active" {
		t.Fatalf("day 7: key %s; want Active", c.status("rita")[old])
	}
	c.advance(4 * oneDay) // day 11: the hold (from day 5) has passed
	_, out = c.run(`{}`)
	r = c.record(old)
	if r.Rotation != 2 || r.Action != "rotate" || r.NewKeyID == "" || out[old] != "grace" {
		t.Fatalf("day 11: outcome %q, %s; want a new rotation (2, rotate) up to its grace", out[old], c.describe(old))
	}
	if n := c.ownerMails(r.NewKeyID); n != 1 {
		t.Fatalf("day 11: %d owner mails name the new key %s; want the new rotation's own mail", n, r.NewKeyID)
	}
}

// Issue 18, defect 1 (same root): a retirement was notified, the day's
// execution failed before deactivating, and the key was used before the
// next run, which finds it due for rotation. The retirement ends (its
// premise, "unused", no longer holds) and a fresh rotation starts with its
// own owner mail, naming the new key, before the old key is deactivated.
func TestMotoDaysRetireNoticeThenUsedStartsAFreshRotation(t *testing.T) {
	c := newCalendar(t)
	old, secret := c.unusedUser("rudi", 89)
	f := &rotation.Finder{IAM: c.a.IAM, Records: c.recs, Config: *c.cfg, Now: c.now, Log: c.log()}
	plan, err := retried(func() (*rotation.Plan, error) {
		return f.Handle(context.Background(), rotation.FindInput{Request: json.RawMessage(`{}`), ExecutionName: "failed-exec"})
	})
	if err != nil || len(plan.Items) != 1 || plan.Items[0].Action != "retire" {
		t.Fatalf("day 0: plan %+v, %v; want the retirement", plan, err)
	}
	n := &rotation.Notifier{Records: c.recs, Mail: c.a.SES, Topic: c.a.SNS, Config: *c.cfg, Region: "us-east-1", Now: c.now, Log: c.log()}
	if no, err := n.Handle(context.Background(), rotation.Task{Execution: "failed-exec", Item: plan.Items[0]}); err != nil || !no.Accepted {
		t.Fatalf("day 0: notify %+v, %v", no, err)
	}
	// The execution fails here, before DeactivateOldKey.
	c.advance(2 * oneDay)
	c.a.Work(t, old, secret)
	_, out := c.run(`{}`)
	r := c.record(old)
	if r.Rotation != 2 || r.Action != "rotate" || r.NewKeyID == "" {
		t.Fatalf("day 2: outcome %q, %s; want the retirement ended and a fresh rotation (2, rotate)", out[old], c.describe(old))
	}
	if !strings.Contains(fmt.Sprint(r.History), "retire") {
		t.Fatalf("day 2: history does not say the retirement ended: %+v", r.History)
	}
	if got := c.ownerMails(r.NewKeyID); got != 1 {
		t.Fatalf("day 2: %d owner mails name the new key %s (old key %s, outcome %q); want the fresh rotation's own mail", got, r.NewKeyID, c.status("rudi")[old], out[old])
	}
}

// Issue 18, the gap its first pass left: a retirement was notified, the
// day's execution failed before deactivating, and the key was used before
// the next run, which finds it not due at all (60 days old). The
// retirement's premise ("unused") no longer holds, so no run may resume
// it and switch the key off: it ends, saying why, the admins are told,
// and the key stays Active.
func TestMotoDaysRetireNoticeThenUsedNotDueIsNotResumed(t *testing.T) {
	c := newCalendar(t)
	old, secret := c.unusedUser("ruth", 60)
	f := &rotation.Finder{IAM: c.a.IAM, Records: c.recs, Config: *c.cfg, Now: c.now, Log: c.log()}
	plan, err := retried(func() (*rotation.Plan, error) {
		return f.Handle(context.Background(), rotation.FindInput{Request: json.RawMessage(`{}`), ExecutionName: "failed-exec"})
	})
	if err != nil || len(plan.Items) != 1 || plan.Items[0].Action != "retire" {
		t.Fatalf("day 0: plan %+v, %v; want the retirement", plan, err)
	}
	n := &rotation.Notifier{Records: c.recs, Mail: c.a.SES, Topic: c.a.SNS, Config: *c.cfg, Region: "us-east-1", Now: c.now, Log: c.log()}
	if no, err := n.Handle(context.Background(), rotation.Task{Execution: "failed-exec", Item: plan.Items[0]}); err != nil || !no.Accepted {
		t.Fatalf("day 0: notify %+v, %v", no, err)
	}
	// The execution fails here, before DeactivateOldKey; the owner, told,
	// uses the key.
	c.advance(oneDay)
	c.a.Work(t, old, secret)
	for day := 1; day <= 3; day++ {
		c.advance(oneDay)
		_, out := c.run(`{}`)
		if got := c.status("ruth")[old]; got != "Active" {
			t.Fatalf("day %d: key %s (outcome %q, %s); want it left Active: it was used after the notice", day+1, got, out[old], c.describe(old))
		}
	}
	r := c.record(old)
	if r.State.InFlight() || !strings.Contains(r.Outcome, "used") {
		t.Fatalf("the retirement is %s; want it ended, saying the key was used after the notice", c.describe(old))
	}
	if len(c.adminMessages(old)) == 0 {
		t.Fatal("the admins were not told that the retirement ended")
	}
}

// recordFault wraps the record table's DynamoDB: the first PutItem of a
// record whose JSON holds match fails, before it commits or (after) once
// it committed: its answer is lost.
type recordFault struct {
	ledger.API
	match string
	after bool
	err   error
	mu    sync.Mutex
	hits  int
}

func (f *recordFault) PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error) {
	doc, _ := in.Item["doc"].(*ddbtypes.AttributeValueMemberS)
	f.mu.Lock()
	hit := f.hits == 0 && doc != nil && strings.Contains(doc.Value, f.match)
	if hit {
		f.hits++
	}
	f.mu.Unlock()
	if !hit {
		return f.API.PutItem(ctx, in, optFns...)
	}
	if f.after {
		if _, err := f.API.PutItem(ctx, in, optFns...); err != nil {
			return nil, err
		}
	}
	return nil, f.err
}

// faultyRecords points the world's steps at the record table through f.
func (c *calendar) faultyRecords(f *recordFault) {
	f.API = c.a.DynamoDB
	c.w.Records = &ledger.Store{API: f, Table: c.cfg.RotationTable}
}

// Issue 18, defect 2: the check that first sees the new key in use
// records it, and its answer is lost after the write committed; Step
// Functions retries seconds later. The retry is the same scheduled check,
// not a later one: no switch-over on evidence until a check at least one
// recording interval later finds the old key unused since.
func TestMotoAdoptionRetriedCheckIsNotALaterCheck(t *testing.T) {
	c := newCalendar(t)
	c.cfg.AdoptionWindow = 5 * oneDay
	old, oldSecret := c.oldUserWithSecret("pia", 100)
	if _, out := c.run(`{}`); out[old] != "adopting" {
		t.Fatalf("day 0: %q; want the window started", out[old])
	}
	newID, newSecret := c.newKey(old)
	c.advance(oneDay)
	c.a.Work(t, newID, newSecret) // the pipeline uses both keys
	c.a.Work(t, old, oldSecret)
	lose := &recordFault{match: `"newSeenAt":"20`, after: true, err: &failures.TransientError{Op: "PutItem", Msg: "connection reset after the write"}}
	c.faultyRecords(lose)
	c.run(`{}`)
	if lose.hits != 1 {
		t.Fatal("day 1: the check never recorded the new key in use")
	}
	if r := c.record(old); r.Adoption.SwitchOver != "" || c.status("pia")[old] != "Active" {
		t.Fatalf("day 1: old key %s, %s; want no switch-over from a retry of the same check", c.status("pia")[old], c.describe(old))
	}
	// Day 2: the old key was not used since day 1's check: evidence.
	c.advance(oneDay)
	c.run(`{}`)
	if r := c.record(old); r.Adoption.SwitchOver != ledger.SwitchEvidence || c.status("pia")[old] != "Inactive" {
		t.Fatalf("day 2: old key %s, %s; want switched over on evidence", c.status("pia")[old], c.describe(old))
	}
}

// failAfterChecks fails ListAccessKeys (a refusal, not retried) once two
// GetAccessKeyLastUsed calls were made: the check ran, the deactivation
// after it fails.
type failAfterChecks struct {
	cal.StepIAM
	mu       sync.Mutex
	lastUses int
	failed   int
}

func (f *failAfterChecks) GetAccessKeyLastUsed(ctx context.Context, in *iam.GetAccessKeyLastUsedInput, optFns ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error) {
	f.mu.Lock()
	f.lastUses++
	f.mu.Unlock()
	return f.StepIAM.GetAccessKeyLastUsed(ctx, in, optFns...)
}

func (f *failAfterChecks) ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, optFns ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	f.mu.Lock()
	fail := f.lastUses >= 2
	if fail {
		f.failed++
	}
	f.mu.Unlock()
	if fail {
		return nil, errors.New("AccessDenied: not authorized (played)")
	}
	return f.StepIAM.ListAccessKeys(ctx, in, optFns...)
}

// Issue 18, defect 3: a person deactivates the old key during the window
// (to see what breaks); the check records "person"; the deactivation
// after it fails; the person re-activates the key. The next daily run
// hands the window to a new execution, which must not act on the stale
// verdict: the key is Active, a person's act, final for the rotation.
func TestMotoAdoptionStalePersonVerdictIsNotActedOn(t *testing.T) {
	c := newCalendar(t)
	c.cfg.AdoptionWindow = 5 * oneDay
	old, _ := c.oldUserWithSecret("pat", 100)
	c.run(`{}`)
	c.advance(oneDay)
	c.a.SetKeyStatus(t, "pat", old, false)
	fail := &failAfterChecks{StepIAM: c.a.IAM}
	c.w.StepIAM = fail
	c.run(`{}`)
	c.w.StepIAM = nil
	if r := c.record(old); r.Adoption.SwitchOver != ledger.SwitchPerson || r.State != ledger.Adopting || fail.failed == 0 {
		t.Fatalf("day 1: %s; want the person's verdict recorded and the deactivation failed", c.describe(old))
	}
	c.a.SetKeyStatus(t, "pat", old, true) // the person undoes it
	c.advance(oneDay)
	c.run(`{}`)
	if got := c.status("pat")[old]; got != "Active" {
		t.Fatalf("day 2: old key %s; want Active: the verdict was undone by the person (%s)", got, c.describe(old))
	}
	if r := c.record(old); r.State != ledger.Held {
		t.Fatalf("day 2: %s; want the rotation held: a person re-activated the key", c.describe(old))
	}
	c.advance(oneDay)
	c.run(`{}`)
	if got := c.status("pat")[old]; got != "Active" {
		t.Fatalf("day 3: old key %s; want Active", got)
	}
}

// Issue 18, defect 4: a rotation that ended without a hold (the day's
// record write failed, then a person deactivated the old key, so nothing
// was left to replace) restarts once its key is due again: a person
// re-activated it, and a 100-day-old key is never left unrotated.
func TestMotoDaysEndedRotationRestartsWhenDueAgain(t *testing.T) {
	c := newCalendar(t)
	old := c.oldUser("ezra", 100)
	c.faultyRecords(&recordFault{match: `"state":"creating"`, err: errors.New("ValidationException: played")})
	if _, out := c.run(`{}`); !strings.HasPrefix(out[old], "failed") {
		t.Fatalf("day 0: %q; want the create step failed", out[old])
	}
	c.w.Records = c.recs
	c.a.SetKeyStatus(t, "ezra", old, false)
	c.advance(oneDay)
	c.run(`{}`)
	if r := c.record(old); r.State != ledger.Ended || !r.HeldUntil.IsZero() {
		t.Fatalf("day 1: %s; want ended without a hold (nothing to replace)", c.describe(old))
	}
	c.advance(oneDay)
	c.a.SetKeyStatus(t, "ezra", old, true)
	for d := 3; d <= 4; d++ {
		c.advance(oneDay)
		plan, out := c.run(`{}`)
		if d == 3 && (out[old] != "grace" || c.status("ezra")[old] != "Inactive") {
			t.Fatalf("day %d: outcome %q, key %s, attention %+v; want a new rotation up to its grace", d, out[old], c.status("ezra")[old], plan.Attention)
		}
	}
	r := c.record(old)
	if r.Rotation != 2 || c.ownerMails(old) != 1 || c.ownerMails(r.NewKeyID) != 1 {
		t.Fatalf("%s, %d mails; want rotation 2 with its own mail", c.describe(old), c.ownerMails(old))
	}
}

// Issue 18, defect 4 (passwords): a password retirement ended "used after
// the notice; kept". Once the password is unused long enough to be due
// again, a new retirement starts, with its own mail, instead of "already
// ended" every day.
func TestEndedPasswordRetirementRestartsWhenDueAgain(t *testing.T) {
	noticeAt := t0.Add(-8 * oneDay)
	usedAfter := noticeAt.Add(time.Hour)
	set := t0.Add(-200 * oneDay)
	id := ledger.PasswordID("carol", set)
	r := rec(ledger.Deactivated, deactivatedAt(noticeAt), func(r *ledger.Record) {
		r.ID, r.User, r.Action, r.NewKeyID, r.NewKeyCreated = id, "carol", "retire-password", "", time.Time{}
	})
	recs := newRecords(r)
	f := &fakeIAM{keys: map[string]types.StatusType{}, passwordUsed: &usedAfter}
	cfg := config.Default()
	cfg.AdminTopicARN, cfg.Sender = adminARN, "keyrotor@example.com"
	task := rotation.Task{Execution: "e", Item: rotation.Item{User: "carol", Email: "carol@example.com", Action: "retire-password", Reason: "unused", OldKey: rotation.KeyRef{ID: "password", Created: set}}}
	d := &rotation.Deleter{IAM: f, Records: recs, Topic: &fakeTopic{}, Config: cfg, Now: func() time.Time { return t0 }}
	if got, err := d.Handle(context.Background(), task); err != nil || got.Deleted {
		t.Fatalf("delete = %+v, %v; want kept (used after the notice)", got, err)
	}
	if r := recs.record(t, id); r.State != ledger.Ended || !r.HeldUntil.IsZero() {
		t.Fatalf("record %s held until %v; want ended without a hold", r.State, r.HeldUntil)
	}
	// 60 days later the password is unused again and due: find plans it.
	later := t0.Add(60 * oneDay)
	mail := &fakeMail{}
	n := &rotation.Notifier{Records: recs, Mail: mail, Topic: &fakeTopic{}, Config: cfg, Now: func() time.Time { return later }}
	task.Execution = "later"
	no, err := n.Handle(context.Background(), task)
	if err != nil || !no.Accepted || mail.sent != 1 {
		t.Fatalf("notify = %+v, %v, %d mails; want a new retirement with its own mail", no, err, mail.sent)
	}
	if r := recs.record(t, id); r.Rotation != 2 || r.State != ledger.Notified {
		t.Fatalf("record rotation %d %s; want rotation 2 notified", r.Rotation, r.State)
	}
}

// passwordUser creates a user with no key and a console password set age
// days ago and never used (moto records no console sign-in).
func (c *calendar) passwordUser(name string, age int) time.Time {
	c.t.Helper()
	off := c.w.Offset()
	c.a.Clock(c.t, off-time.Duration(age)*oneDay)
	c.a.User(c.t, name, "email", name+"@example.com")
	out, err := c.a.IAM.CreateLoginProfile(context.Background(), &iam.CreateLoginProfileInput{UserName: &name, Password: ptr("Long-enough-pass-1!")})
	if err != nil {
		c.t.Fatal(err)
	}
	c.a.Clock(c.t, off)
	return *out.LoginProfile.CreateDate
}

// Issue 18 (passwords): the owner is told the unused console password
// will be removed; during the grace a person sets a new one (the
// password's analogue of re-activating a key). That is final for the
// retirement: the grace's end does not remove the new password, the
// retirement is held with the person's act recorded and the admins told.
// The new password is a credential of its own (its own id, by its set
// time), retired only once it is unused long enough, with its own notice.
func TestMotoDaysPasswordResetAfterNoticeIsKept(t *testing.T) {
	tests := []struct {
		name  string
		reset func(c *calendar, user string) error
	}{
		{"UpdateLoginProfile with a new password", func(c *calendar, user string) error {
			_, err := c.a.IAM.UpdateLoginProfile(context.Background(), &iam.UpdateLoginProfileInput{UserName: &user, Password: ptr("A-new-long-pass-2!")})
			return err
		}},
		{"DeleteLoginProfile then CreateLoginProfile", func(c *calendar, user string) error {
			if _, err := c.a.IAM.DeleteLoginProfile(context.Background(), &iam.DeleteLoginProfileInput{UserName: &user}); err != nil {
				return err
			}
			_, err := c.a.IAM.CreateLoginProfile(context.Background(), &iam.CreateLoginProfileInput{UserName: &user, Password: ptr("A-new-long-pass-2!")})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCalendar(t)
			c.cfg.RetirePasswords = true
			user := "pia"
			c.passwordUser(user, 100)
			plan, out := c.run(`{}`)
			it := itemFor(t, plan, user)
			id := ledger.PasswordID(user, it.OldKey.Created)
			if it.Action != "retire-password" || out["password"] != "grace" || c.ownerMails(user) != 1 {
				t.Fatalf("day 0: item %+v, outcome %q, %d mails; want the retirement noticed, its grace started", it, out["password"], c.ownerMails(user))
			}
			c.advance(2 * oneDay)
			if err := tt.reset(c, user); err != nil {
				t.Fatal(err)
			}
			lp, err := c.a.IAM.GetLoginProfile(context.Background(), &iam.GetLoginProfileInput{UserName: &user})
			if err != nil {
				t.Fatal(err)
			}
			reset := *lp.LoginProfile.CreateDate
			for range 7 { // the grace (7 days from day 0) ends on day 7
				c.advance(oneDay)
				if plan, _ := c.run(`{}`); len(plan.Items) != 0 {
					t.Fatalf("day %d: the new password (set %s) is planned: %+v", int(c.w.Offset()/oneDay), reset, plan.Items)
				}
			}
			if len(c.grace) != 0 {
				t.Fatalf("day 9: grace executions still pending: %+v", c.grace)
			}
			lp, err = c.a.IAM.GetLoginProfile(context.Background(), &iam.GetLoginProfileInput{UserName: &user})
			if err != nil || !lp.LoginProfile.CreateDate.Equal(reset) {
				t.Fatalf("day 9: login profile %+v, %v; want the password the person set on day 2 kept", lp, err)
			}
			r := c.record(id)
			if r.State != ledger.Held || !strings.Contains(r.Outcome, "re-set by a person") {
				t.Fatalf("day 9: %s; want the retirement held, saying a person re-set the password", c.describe(id))
			}
			if msgs := strings.Join(c.adminMessages(user), "\n"); !strings.Contains(msgs, "re-set by a person") {
				t.Fatalf("day 9: admins told %q; want the re-set told", msgs)
			}
			if c.ownerMails(user) != 1 {
				t.Fatalf("day 9: %d owner mails; want the one notice", c.ownerMails(user))
			}
		})
	}
}

// Issue 18 (passwords, at least once): every step of a password
// retirement may commit and lose its answer, retried at once or failing
// its execution for a later one to take over. Whatever is lost: one owner
// mail, the password removed once and only after the grace, and a
// password a person re-set during the grace kept.
func TestMotoDaysPasswordRetirementLostAnswers(t *testing.T) {
	tests := []struct {
		name        string
		rate, final float64
		reset       bool
	}{
		{"answers lost and retried", 0.5, 0, false},
		{"answers lost, some for good", 0.4, 0.5, false},
		{"answers lost, some for good; re-set during the grace", 0.4, 0.5, true},
	}
	lostAll := map[string]int{}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCalendar(t)
			c.cfg.RetirePasswords = true
			user := "lou"
			set := c.passwordUser(user, 100)
			id := ledger.PasswordID(user, set.Truncate(time.Second))
			c.w.Lost = &cal.LostAnswers{Rate: tt.rate, Final: tt.final, R: rand.New(rand.NewPCG(uint64(i), 18))}
			var reset time.Time
			for day := 0; day <= 12; day++ {
				c.w.RunDay(context.Background(), nil) // a find whose answer is lost for good fails the day
				if day < 7 {
					c.w.GraceDue(context.Background())
				}
				if r, _ := c.recs.Get(context.Background(), id); r != nil && r.State == ledger.Deleted {
					if r.DeactivatedAt.IsZero() || c.now().Before(r.DeactivatedAt.Add(c.cfg.GracePeriod)) {
						t.Fatalf("day %d: %s; removed before the grace", day, c.describe(id))
					}
				}
				if tt.reset && day == 2 {
					if _, err := c.a.IAM.UpdateLoginProfile(context.Background(), &iam.UpdateLoginProfileInput{UserName: &user, Password: ptr("A-new-long-pass-2!")}); err != nil {
						t.Fatal(err)
					}
					lp, err := c.a.IAM.GetLoginProfile(context.Background(), &iam.GetLoginProfileInput{UserName: &user})
					if err != nil {
						t.Fatal(err)
					}
					reset = *lp.LoginProfile.CreateDate
				}
				c.advance(oneDay)
			}
			lost, _ := json.Marshal(c.w.Lost.Lost)
			for step, n := range c.w.Lost.Lost {
				lostAll[step] += n
			}
			r := c.record(id)
			lp, err := c.a.IAM.GetLoginProfile(context.Background(), &iam.GetLoginProfileInput{UserName: &user})
			switch {
			case tt.reset && (err != nil || !lp.LoginProfile.CreateDate.Equal(reset) || r.State != ledger.Held):
				t.Fatalf("login profile %v, %v; %s; want the new password kept and the retirement held (lost: %s)", lp, err, c.describe(id), lost)
			case !tt.reset && (err == nil || r.State != ledger.Deleted):
				t.Fatalf("login profile %v; %s; want it removed (lost: %s)", lp, c.describe(id), lost)
			}
			if n := len(c.mailsTo(user + "@example.com")); n != 1+unknownNotices(r) {
				t.Fatalf("%d owner mails; want one (%d unknown outcomes) (lost: %s)", n, unknownNotices(r), lost)
			}
		})
	}
	t.Logf("answers lost, by step: %v", lostAll)
	for _, step := range []string{"NotifyOwner", "DeactivateOldKey", "DeleteOldKey"} {
		if lostAll[step] == 0 {
			t.Errorf("no answer of %s was lost (lost: %v); the test plays too little", step, lostAll)
		}
	}
}

func unknownNotices(r *ledger.Record) int {
	n := 0
	for _, h := range r.History {
		if strings.Contains(h.Note, "is unknown") {
			n++
		}
	}
	return n
}

// mailsTo are the mails sent to addr.
func (c *calendar) mailsTo(addr string) []string {
	mails, _ := c.a.Sent(c.t)
	var out []string
	for _, m := range mails {
		if strings.Contains(strings.Join(m.To, ","), addr) {
			out = append(out, m.Subject)
		}
	}
	return out
}
