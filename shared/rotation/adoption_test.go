package rotation_test

// Switch over on evidence: with an adoption window the old key stays
// Active after the owner's notice until the new key is in use and the old
// one no longer is (checked once a day by the key's own execution), or
// until the window ends. Each test plays daily executions with a pipeline
// using the keys on chosen days (moto records a key's last use at its
// clock) and asserts on the account: statuses, mails, admin messages and
// records.

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/shared/audit"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// pipeline says which keys a user's pipeline uses on a day of the window.
type pipeline func(day int) (old, new bool)

func TestMotoAdoptionWindow(t *testing.T) {
	const window = 5
	cases := []struct {
		name string
		uses pipeline
		// the day the old key is deactivated, how, and the owner mails
		// (the notice plus reminders)
		offDay int
		how    string
		mails  int
	}{
		// Day 2: the check first sees the new key in use; day 3: the old
		// key was not used since: switched over on evidence, no reminder.
		{"switches on day 2", func(d int) (bool, bool) { return d < 2, d >= 2 }, 3, ledger.SwitchEvidence, 1},
		// Never switches: reminded half-way (day 2.5, so at the day-3
		// check) and one day before the end; deactivated on the deadline.
		{"never switches", func(int) (bool, bool) { return true, false }, window, ledger.SwitchDeadline, 3},
		// Uses both every day: the old key is never quiet, so no evidence.
		{"keeps using both", func(int) (bool, bool) { return true, true }, window, ledger.SwitchDeadline, 3},
		// Switches on day 4, after the first reminder: evidence on day 5
		// is checked before the deadline.
		{"switches late", func(d int) (bool, bool) { return d < 4, d >= 4 }, window, ledger.SwitchEvidence, 3},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCalendar(t)
			c.cfg.AdoptionWindow = window * oneDay
			old, oldSecret := c.oldUserWithSecret("dev", 100)
			var newID, newSecret string
			for day := 0; day <= window+1; day++ {
				if day > 0 {
					c.advance(oneDay)
				}
				useOld, useNew := tc.uses(day)
				if useOld {
					c.a.Work(t, old, oldSecret)
				}
				if useNew && newID != "" {
					c.a.Work(t, newID, newSecret)
				}
				plan, out := c.run(`{}`)
				if day == 0 {
					if out[old] != "adopting" {
						t.Fatalf("day 0: %s; want the adoption window started", out[old])
					}
					newID, newSecret = c.newKey(old)
				} else if day < tc.offDay && (plan.Counts.Adopting != 1 || len(plan.Items) != 0) {
					t.Fatalf("day %d: plan adopting %d, items %d; want the rotation reported in its window, not started again", day, plan.Counts.Adopting, len(plan.Items))
				}
				if day == 1 {
					// The audit report shows the window with both keys' last use.
					if sw := c.auditSwitchOver(old); !strings.HasPrefix(sw, "adopting until ") || !strings.Contains(sw, "old key last used 20") {
						t.Fatalf("day 1: audit switch_over %q; want the adoption window with the old key's last use", sw)
					}
				}
				want := "Active"
				if day >= tc.offDay {
					want = "Inactive"
				}
				if got := c.status("dev")[old]; got != want {
					t.Fatalf("day %d: old key %s; want %s (record %s)", day, got, want, c.describe(old))
				}
				if got := c.status("dev")[newID]; got != "Active" {
					t.Fatalf("day %d: new key %s; want Active", day, got)
				}
			}
			r := c.record(old)
			if r.State != ledger.Deactivated || r.Adoption == nil || r.Adoption.SwitchOver != tc.how {
				t.Fatalf("record %s; want deactivated, switched over on %s", c.describe(old), tc.how)
			}
			if r.DeactivatedAt.Before(r.Adoption.SwitchedAt) || r.DeleteAfter.Sub(r.DeactivatedAt) != c.cfg.GracePeriod {
				t.Fatalf("deactivated %s, switched %s, delete after %s; want a full grace period from the switch-over", r.DeactivatedAt, r.Adoption.SwitchedAt, r.DeleteAfter)
			}
			if n := c.ownerMails(old); n != tc.mails {
				t.Fatalf("%d owner mails; want %d (the notice and %d reminders)", n, tc.mails, tc.mails-1)
			}
			mails, notes := c.a.Sent(t)
			var told string
			for _, n := range notes {
				if strings.Contains(n.Subject, "switched over") {
					told = n.Message
				}
			}
			if !strings.Contains(told, "switched IAM user dev over on "+map[string]string{ledger.SwitchEvidence: "evidence", ledger.SwitchDeadline: "the deadline"}[tc.how]) ||
				!strings.Contains(told, "Old key last used: ") || !strings.Contains(told, "New key last used: ") {
				t.Fatalf("admins told %q; want the switch-over with both keys' last use", told)
			}
			if tc.how == ledger.SwitchDeadline && !strings.Contains(told, "may fail from now on") {
				t.Fatalf("deadline message %q does not warn that the old key was still in use", told)
			}
			for _, m := range mails {
				if strings.Contains(m.Body, oldSecret) || strings.Contains(m.Body, newSecret) {
					t.Fatal("a mail holds a secret")
				}
				if strings.Contains(m.Subject, "Reminder") && (!strings.Contains(m.Body, "last used") || !strings.Contains(m.Body, newID)) {
					t.Fatalf("reminder %q does not say where the old key was last used and which key to switch to", m.Body)
				}
			}
			// The grace period follows in the same execution: deleted after it.
			c.advance(c.cfg.GracePeriod)
			c.run(`{}`)
			if _, ok := c.status("dev")[old]; ok {
				t.Fatalf("old key still exists after its grace period: %s", c.describe(old))
			}
			if c.status("dev")[newID] != "Active" || !c.w.Works(context.Background(), newID, newSecret) {
				t.Fatal("the new key does not work")
			}
		})
	}
}

// A person deactivates the old key during the window: the grace period
// starts at once (switched over by a person); a person deleting the new
// key ends the rotation with the old key left Active and held.
func TestMotoAdoptionWindowPeople(t *testing.T) {
	c := newCalendar(t)
	c.cfg.AdoptionWindow = 5 * oneDay
	a, _ := c.oldUserWithSecret("ann", 100)
	b, _ := c.oldUserWithSecret("bob", 100)
	c.run(`{}`)
	bNew, _ := c.newKey(b)
	c.advance(oneDay)
	c.a.SetKeyStatus(t, "ann", a, false)
	if _, err := c.a.IAM.DeleteAccessKey(context.Background(), &iam.DeleteAccessKeyInput{UserName: aws.String("bob"), AccessKeyId: aws.String(bNew)}); err != nil {
		t.Fatal(err)
	}
	c.run(`{}`)
	if r := c.record(a); r.State != ledger.Deactivated || r.Adoption.SwitchOver != ledger.SwitchPerson {
		t.Fatalf("ann: %s; want the grace period started by a person's deactivation", c.describe(a))
	}
	if r := c.record(b); r.State != ledger.Ended || c.status("bob")[b] != "Active" || r.HeldUntil.IsZero() {
		t.Fatalf("bob: %s, old key %s; want the rotation ended and held, the old key Active", c.describe(b), c.status("bob")[b])
	}
	// Days later nothing more happens to bob's key, and no new rotation
	// starts while it is held.
	c.advance(6 * oneDay)
	plan, _ := c.run(`{}`)
	if c.status("bob")[b] != "Active" || plan.Counts.Held != 1 {
		t.Fatalf("bob: old key %s, held %d; want Active and held", c.status("bob")[b], plan.Counts.Held)
	}
}

// A window's execution that stops (fails, is aborted) is taken over: the
// next daily execution, once the lease has passed, hands the window to a
// new execution (a new name: the old one stays used for 90 days), which
// goes on from the record: no second owner mail, the window's end kept.
func TestMotoAdoptionWindowTakenOver(t *testing.T) {
	c := newCalendar(t)
	c.cfg.AdoptionWindow = 4 * oneDay
	old, oldSecret := c.oldUserWithSecret("cat", 100)
	c.run(`{}`)
	first := c.record(old).Adoption
	c.w.DropWindows() // the window's execution failed and nobody redrove it
	c.advance(2 * oneDay)
	c.a.Work(t, old, oldSecret)
	_, out := c.run(`{}`)
	r := c.record(old)
	if out[old] != "adopting" || r.Adoption.Execution == first.Execution || !r.Adoption.Until.Equal(first.Until) {
		t.Fatalf("day 2: %s, window %+v; want it handed to a new execution with the same end (%s)", out[old], r.Adoption, first.Until)
	}
	// The notice, and the half-way reminder from the new execution's
	// first check (day 2 of 4): the notice is not sent again.
	if n := c.ownerMails(old); n != 2 {
		t.Fatalf("%d owner mails; want 2 (the notice and the half-way reminder)", n)
	}
	c.advance(2 * oneDay)
	c.run(`{}`)
	if r := c.record(old); r.State != ledger.Deactivated || r.Adoption.SwitchOver != ledger.SwitchDeadline || c.status("cat")[old] != "Inactive" {
		t.Fatalf("day 4: %s; want deactivated on the deadline by the new execution", c.describe(old))
	}
}

// auditSwitchOver is the switch_over column of key id in the audit report
// find would write now.
func (c *calendar) auditSwitchOver(id string) string {
	c.t.Helper()
	if r := c.auditRow(id); r != nil {
		return r.SwitchOver
	}
	return "(no row for " + id + ")"
}

// auditRow is the audit report's row of key id, or nil.
func (c *calendar) auditRow(id string) *audit.Row {
	c.t.Helper()
	f := &rotation.Finder{IAM: c.a.IAM, Records: c.recs, Config: *c.cfg, Now: c.now}
	as, err := f.Assess(context.Background(), c.now(), nil)
	if err != nil {
		c.t.Fatal(err)
	}
	for _, r := range audit.Build(as, policy.Rules{MaxKeyAgeDays: c.cfg.MaxKeyAgeDays, UnusedDays: c.cfg.UnusedDays, Grace: c.cfg.GracePeriod}, false).Rows {
		if r.KeyID == id {
			return &r
		}
	}
	return nil
}

// oldUserWithSecret is oldUser returning the old key's secret too, for a
// pipeline that keeps using it.
func (c *calendar) oldUserWithSecret(name string, age int) (string, string) {
	c.t.Helper()
	off := c.w.Offset()
	c.a.Clock(c.t, off-time.Duration(age)*oneDay)
	c.a.User(c.t, name, "email", name+"@example.com")
	id, secret := c.a.KeyWithSecret(c.t, name)
	c.a.Clock(c.t, off-oneDay)
	c.a.Use(c.t, id, secret)
	c.a.Clock(c.t, off)
	return id, secret
}

// newKey reads the new key of old's rotation from its secret, as the
// owner does.
func (c *calendar) newKey(old string) (string, string) {
	c.t.Helper()
	r := c.record(old)
	out, err := c.a.Secrets.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.SecretName)})
	if err != nil {
		c.t.Fatal(err)
	}
	var sk rotation.StoredKey
	if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &sk); err != nil || sk.AccessKeyID != r.NewKeyID {
		c.t.Fatalf("secret %s holds %s; want %s", r.SecretName, sk.AccessKeyID, r.NewKeyID)
	}
	return sk.AccessKeyID, sk.SecretAccessKey
}

func (c *calendar) describe(id string) string {
	r, _ := c.recs.Get(context.Background(), id)
	if r == nil {
		return "no record"
	}
	b, _ := json.Marshal(struct {
		State    ledger.State
		Outcome  string
		Adoption *ledger.Adoption
		History  []ledger.Entry
	}{r.State, r.Outcome, r.Adoption, r.History})
	return string(b)
}

// memRecords is a map of records (no conditions: one writer here).
type memRecords map[string]*ledger.Record

func (m memRecords) Get(_ context.Context, id string) (*ledger.Record, error) {
	if r, ok := m[id]; ok {
		c := *r
		return &c, nil
	}
	return nil, nil
}

func (m memRecords) Put(_ context.Context, r *ledger.Record) error {
	r.Version++
	c := *r
	m[r.ID] = &c
	return nil
}

// listsOnly answers ListAccessKeys with the old key alone, as IAM may
// right after the new key was created (eventual consistency), or after a
// person deleted it.
type listsOnly struct{ old string }

func (l listsOnly) ListAccessKeys(context.Context, *iam.ListAccessKeysInput, ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	return &iam.ListAccessKeysOutput{AccessKeyMetadata: []iamtypes.AccessKeyMetadata{{AccessKeyId: aws.String(l.old), Status: iamtypes.StatusTypeActive}}}, nil
}

func (l listsOnly) GetAccessKeyLastUsed(context.Context, *iam.GetAccessKeyLastUsedInput, ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error) {
	return &iam.GetAccessKeyLastUsedOutput{}, nil
}

// TestAdoptionCheckNewKeyNotListedYet: the first check runs right after
// the new key was created; a ListAccessKeys that does not show it yet is a
// retried NotVisibleYetError, not a person's deletion (the calendar
// simulation, under the emulator's eventual consistency, found checks that
// ended rotations "on a person's action" nobody took). Minutes later, a
// missing new key is a person's deletion: the rotation ends, the old key
// stays Active.
func TestAdoptionCheckNewKeyNotListedYet(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		created time.Duration // before now
		want    string        // the error's name, or the record's state
	}{
		{"just created: not visible yet", 10 * time.Second, "NotVisibleYetError"},
		{"long gone: deleted by a person", 10 * time.Minute, string(ledger.Ended)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			recs := memRecords{"AKIAOLD": {ID: "AKIAOLD", User: "dev", Action: "rotate", Rotation: 1, State: ledger.Adopting,
				NewKeyID: "AKIANEW", NewKeyCreated: now.Add(-tc.created), Notice: ledger.NoticeAccepted, NoticeAt: now.Add(-tc.created),
				Owner: "dev-AKIAOLD-r1", LeaseUntil: now.Add(time.Hour),
				Adoption: &ledger.Adoption{Until: now.Add(5 * oneDay), Every: 86400, Execution: "dev-AKIAOLD-r1"}}}
			w := &rotation.Watcher{IAM: listsOnly{"AKIAOLD"}, Records: recs, Now: func() time.Time { return now }}
			_, err := w.Handle(context.Background(), rotation.Task{Execution: "dev-AKIAOLD-r1",
				Item: rotation.Item{User: "dev", Action: "rotate", Reason: "old", OldKey: rotation.KeyRef{ID: "AKIAOLD"}}})
			got := string(recs["AKIAOLD"].State)
			if err != nil {
				got = failures.Name(failures.Boundary(err))
			}
			if got != tc.want {
				t.Fatalf("got %s (error %v); want %s", got, err, tc.want)
			}
		})
	}
}

// Found by the 60-day soak (SEED=11, day 15): a person switches the old
// key off during its window (the verdict: person, grace starts), on again
// a second after the check recorded that, and off again a day later. The
// person's re-activation is final for the rotation, whether a daily run
// saw the key Active (seen) or only its use since shows it (used): the
// key is not deleted when the grace that started before it ends.
func TestMotoAdoptionPersonOffOnOffInGraceIsNotDeleted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		use, seen bool
	}{
		{name: "seen Active by a daily run", seen: true},
		{name: "used while Active, not seen", use: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCalendar(t)
			c.cfg.AdoptionWindow = 5 * oneDay
			old, oldSecret := c.oldUserWithSecret("quinn", 100)
			c.run(`{}`)
			c.advance(oneDay / 2)
			c.a.SetKeyStatus(t, "quinn", old, false) // to see what breaks
			c.advance(oneDay / 2)
			c.run(`{}`)
			if r := c.record(old); r.State != ledger.Deactivated || r.Adoption.SwitchOver != ledger.SwitchPerson {
				t.Fatalf("day 1: %s; want the person's verdict and the grace started", c.describe(old))
			}
			c.advance(time.Second)
			c.a.SetKeyStatus(t, "quinn", old, true) // undone
			if tc.use {
				c.advance(time.Hour)
				c.a.Use(t, old, oldSecret)
			}
			if tc.seen {
				c.advance(oneDay - time.Minute)
				c.run(`{}`)
			}
			c.advance(time.Hour)
			c.a.SetKeyStatus(t, "quinn", old, false) // and off again, their own act
			for range 8 {
				c.advance(oneDay)
				c.run(`{}`)
			}
			if got := c.status("quinn")[old]; got != "Inactive" {
				t.Fatalf("old key %q (%s); want kept, Inactive as the person left it: they re-activated it after keyrotor's grace started", got, c.describe(old))
			}
			if r := c.record(old); r.State == ledger.Deleted || r.State.InFlight() {
				t.Fatalf("%s; want the rotation ended (held): the person re-activated the key", c.describe(old))
			}
		})
	}
}
