package rotation_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const (
	day    = 24 * time.Hour
	sender = "keyrotor@example.com"
	table  = "rotations"
	// storeRole stands in for create-and-store's role (the stack's setting).
	storeRole = "arn:aws:iam::123456789012:role/KeyRotor-create-and-store"
)

// steps wires the six steps to an emulated account and its rotation
// record table, with JSON logs captured.
type steps struct {
	acct   *awstest.Account
	recs   *ledger.Store
	cfg    config.Config
	logs   *bytes.Buffer
	now    time.Time
	find   *rotation.Finder
	create *rotation.Creator
	notify *rotation.Notifier
	deact  *rotation.Deactivator
	del    *rotation.Deleter
}

func newSteps(t *testing.T, acct *awstest.Account) *steps {
	t.Helper()
	cfg := config.Default()
	cfg.Sender = sender
	cfg.AdminTopicARN = acct.Topic(t, "keyrotor-admins")
	cfg.ReportBucket = "keyrotor-reports"
	cfg.StoreRoleARN = storeRole
	acct.Bucket(t, cfg.ReportBucket)
	acct.VerifySender(t, sender)
	acct.Records(t, table)
	s := &steps{acct: acct, cfg: cfg, logs: &bytes.Buffer{}, now: time.Now()}
	s.rewire()
	return s
}

// rewire builds the steps from s.cfg, with s.now as their clock.
func (s *steps) rewire() {
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	now := func() time.Time { return s.now }
	a := s.acct
	// The table is created once (newSteps); the store uses this account's
	// client, so a rig's faulty steps reach DynamoDB through the proxy too.
	s.recs = &ledger.Store{API: a.DynamoDB, Table: table}
	s.find = &rotation.Finder{IAM: a.IAM, Records: s.recs, S3: a.S3, Config: s.cfg, Now: now, Log: log}
	s.create = &rotation.Creator{IAM: a.IAM, Secrets: a.Secrets, Records: s.recs, Topic: a.SNS, Verify: rotation.STSVerifier(a.Config), Config: s.cfg, Now: now, Log: log}
	s.notify = &rotation.Notifier{Records: s.recs, Mail: a.SES, Topic: a.SNS, Config: s.cfg, Region: "us-east-1", Now: now, Log: log}
	s.deact = &rotation.Deactivator{IAM: a.IAM, Records: s.recs, Topic: a.SNS, Config: s.cfg, Now: now, Log: log}
	s.del = &rotation.Deleter{IAM: a.IAM, Records: s.recs, Topic: a.SNS, Config: s.cfg, Now: now, Log: log}
}

// record reads the rotation record of id, or fails the test.
func (s *steps) record(t *testing.T, id string) *ledger.Record {
	t.Helper()
	r, err := s.recs.Get(context.Background(), id)
	if err != nil || r == nil {
		t.Fatalf("rotation record %s = %v, %v; want one", id, r, err)
	}
	return r
}

// states lists the states a record's history passed through, repeats
// folded.
func states(r *ledger.Record) []ledger.State {
	var out []ledger.State
	for _, e := range r.History {
		if len(out) == 0 || out[len(out)-1] != e.State {
			out = append(out, e.State)
		}
	}
	return out
}

// seedUser creates user with one key created ageDays ago and last used
// usedDaysAgo (negative: never), and returns the key id and secret.
func seedUser(t *testing.T, a *awstest.Account, user string, ageDays, usedDaysAgo int, tags ...string) (string, string) {
	t.Helper()
	a.Clock(t, -time.Duration(ageDays)*day)
	a.User(t, user, tags...)
	id, secret := a.KeyWithSecret(t, user)
	if usedDaysAgo >= 0 {
		a.Clock(t, -time.Duration(usedDaysAgo)*day)
		a.Use(t, id, secret)
	}
	a.Clock(t, 0)
	return id, secret
}

func (s *steps) plan(t *testing.T, input string) *rotation.Plan {
	t.Helper()
	s.now = time.Now() // after seeding, so ages read as seeded
	var p *rotation.Plan
	var err error
	for range 3 { // a fresh emulator reports "STARTED" first, like IAM
		p, err = s.find.Handle(context.Background(), rotation.FindInput{Request: json.RawMessage(input), ExecutionName: "test-run"})
		var nr *failures.ReportNotReadyError
		if !errors.As(err, &nr) {
			break
		}
	}
	if err != nil {
		t.Fatalf("find(%s): %v", input, err)
	}
	return p
}

func itemFor(t *testing.T, p *rotation.Plan, user string) rotation.Item {
	t.Helper()
	for _, it := range p.Items {
		if it.User == user {
			return it
		}
	}
	t.Fatalf("plan has no item for %s: %+v", user, p.Items)
	return rotation.Item{}
}

// TestMotoFullSequence runs every step for one user, twice each, asserting
// the account after each step.
func TestMotoFullSequence(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	oldID, oldSecret := seedUser(t, a, "alice", 120, 1, "email", "alice@example.com")
	ctx := context.Background()

	p := s.plan(t, `{}`)
	if p.Counts.Rotate != 1 || len(p.Items) != 1 {
		t.Fatalf("plan counts = %+v items %+v; want one rotation", p.Counts, p.Items)
	}
	it := itemFor(t, p, "alice")
	if it.Action != policy.Rotate || it.OldKey.ID != oldID || it.OldKey.AgeDays != 120 || it.Email != "alice@example.com" || it.OldKey.LastUsed == nil {
		t.Fatalf("item = %+v; want rotate of %s, 120 days, mail alice@example.com, last used set", it, oldID)
	}
	task := rotation.Task{Execution: "exec-1", Item: it}

	// create-and-store, twice: the second reuses the stored key.
	var nk *rotation.NewKey
	for i := range 2 {
		got, err := s.create.Handle(ctx, task)
		if err != nil {
			t.Fatalf("create #%d: %v", i+1, err)
		}
		if nk != nil && (got.KeyID != nk.KeyID || !got.Reused) {
			t.Fatalf("create #2 = %+v; want reuse of %s", got, nk.KeyID)
		}
		nk = got
	}
	keys := a.Keys(t, "alice")
	if len(keys) != 2 || keys[oldID] != "Active" || keys[nk.KeyID] != "Active" {
		t.Fatalf("after create keys = %v; want old and new Active", keys)
	}
	var stored rotation.StoredKey
	if err := json.Unmarshal([]byte(a.Secret(t, "iam-access-keys/alice")), &stored); err != nil {
		t.Fatal(err)
	}
	if stored.AccessKeyID != nk.KeyID || stored.ReplacesKeyID != oldID || stored.UserName != "alice" || stored.SecretAccessKey == "" || stored.CreatedAt.IsZero() {
		t.Fatalf("secret holds %+v; want the new key %s replacing %s", stored, nk.KeyID, oldID)
	}
	a.Use(t, stored.AccessKeyID, stored.SecretAccessKey) // the stored key works
	if nk.SecretName != "iam-access-keys/alice" || !strings.Contains(nk.SecretARN, "iam-access-keys/alice") || nk.Rotation != 1 {
		t.Fatalf("new key output = %+v", nk)
	}
	if r := s.record(t, oldID); r.State != ledger.Stored || r.NewKeyID != nk.KeyID || r.Owner != "exec-1" || r.User != "alice" || r.Rotation != 1 || r.SecretName != nk.SecretName {
		t.Fatalf("record after create = %+v; want rotation 1 stored, new key %s, owned by exec-1", r, nk.KeyID)
	}
	task.NewKey = nk

	// notify, twice: one mail, to the owner, without the secret.
	for i := range 2 {
		n, err := s.notify.Handle(ctx, task)
		if err != nil {
			t.Fatalf("notify #%d: %v", i+1, err)
		}
		want := []string{"sent", "already-sent"}[i]
		if n.MailStatus != want || !n.Accepted {
			t.Fatalf("notify #%d = %+v; want status %q, accepted", i+1, n, want)
		}
		task.Notice = n
	}
	mails, notes := a.Sent(t)
	if len(mails) != 1 || mails[0].To[0] != "alice@example.com" || mails[0].From != sender {
		t.Fatalf("mails = %+v; want one to alice@example.com from %s", mails, sender)
	}
	for _, want := range []string{oldID, nk.KeyID, "iam-access-keys/alice", "aws secretsmanager get-secret-value --secret-id 'iam-access-keys/alice'"} {
		if !strings.Contains(html.UnescapeString(mails[0].Body), want) {
			t.Errorf("mail body lacks %q:\n%s", want, mails[0].Body)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0].Message, "rotated access key "+oldID) {
		t.Fatalf("admin notes = %+v; want one rotation notice", notes)
	}
	if r := s.record(t, oldID); r.State != ledger.Notified || r.Notice != ledger.NoticeAccepted || r.OwnerMails != 1 || !r.AdminsTold || r.NoticeChannel != "mail" {
		t.Fatalf("record after notify = %+v; want notified, one owner mail accepted, admins told", r)
	}

	// deactivate, twice: same deleteAfter, old key Inactive.
	var d *rotation.Deactivation
	for i := range 2 {
		got, err := s.deact.Handle(ctx, task)
		if err != nil {
			t.Fatalf("deactivate #%d: %v", i+1, err)
		}
		if d != nil && !got.DeleteAfter.Equal(d.DeleteAfter) {
			t.Fatalf("deactivate #2 deleteAfter = %v; want unchanged %v", got.DeleteAfter, d.DeleteAfter)
		}
		d = got
		s.now = s.now.Add(time.Minute) // a later re-run must not extend the grace
	}
	if want := d.DeactivatedAt.Add(7 * day); !d.DeleteAfter.Equal(want) {
		t.Fatalf("deleteAfter = %v; want %v", d.DeleteAfter, want)
	}
	if d.Next != rotation.NextGrace || d.GraceExecution != rotation.GraceExecutionName("alice", oldID, 1) || d.Rotation != 1 {
		t.Fatalf("deactivation = %+v; want next grace in %s", d, rotation.GraceExecutionName("alice", oldID, 1))
	}
	if r := s.record(t, oldID); r.State != ledger.Deactivated || !r.DeleteAfter.Equal(d.DeleteAfter) || r.GraceExecution != d.GraceExecution {
		t.Fatalf("record after deactivate = %+v; want deactivated until %v", r, d.DeleteAfter)
	}
	if keys := a.Keys(t, "alice"); keys[oldID] != "Inactive" || keys[nk.KeyID] != "Active" {
		t.Fatalf("after deactivate keys = %v", keys)
	}
	task.Deactivation = d

	// delete too early: nothing deleted.
	c, err := s.del.Handle(ctx, task)
	if err != nil || c.Deleted || !strings.Contains(c.Reason, "grace period") {
		t.Fatalf("early delete = %+v, %v; want refusal for the grace period", c, err)
	}
	if keys := a.Keys(t, "alice"); len(keys) != 2 {
		t.Fatalf("early delete removed a key: %v", keys)
	}
	// after the grace, twice.
	s.now = d.DeleteAfter.Add(time.Second)
	for i := range 2 {
		c, err := s.del.Handle(ctx, task)
		if err != nil || !c.Deleted {
			t.Fatalf("delete #%d = %+v, %v; want deleted", i+1, c, err)
		}
		task.Cleanup = c
	}
	keys = a.Keys(t, "alice")
	if len(keys) != 1 || keys[nk.KeyID] != "Active" {
		t.Fatalf("after delete keys = %v; want only the new key", keys)
	}
	// The record is the rotation's audit trail; the user's tags are the
	// customer's and never written.
	r := s.record(t, oldID)
	want := []ledger.State{ledger.Started, ledger.Creating, ledger.Created, ledger.Stored, ledger.Notified, ledger.Deactivated, ledger.Deleted}
	if fmt.Sprint(states(r)) != fmt.Sprint(want) || r.Owner != "" || r.ExpiresAt == 0 || r.OwnerMails != 1 {
		t.Fatalf("final record %+v\nstates %v; want %v, no owner, an expiry, one owner mail", r, states(r), want)
	}
	for _, e := range r.History {
		if e.Execution != "exec-1" || e.At.IsZero() {
			t.Fatalf("history entry %+v; want time and execution exec-1", e)
		}
	}
	for k := range a.Tags(t, "alice") {
		if strings.HasPrefix(k, "keyrotor:") {
			t.Errorf("user tag %s written", k)
		}
	}

	// Nothing anywhere holds a secret but the secret itself.
	outputs, _ := json.Marshal([]any{p, task, r})
	mails, notes = a.Sent(t)
	everything := s.logs.String() + string(outputs) + fmt.Sprint(mails) + fmt.Sprint(notes)
	for _, secret := range []string{oldSecret, stored.SecretAccessKey} {
		if strings.Contains(everything, secret) {
			t.Fatalf("a secret access key appears in logs, outputs or messages")
		}
	}
}

// TestMotoDiscovery covers pagination past 100 users, exemption, the
// owner tag and the two-key rule in every combination.
func TestMotoDiscovery(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	s.cfg.ExemptGroup = "breakglass"
	s.rewire()
	ctx := context.Background()
	if _, err := a.IAM.CreateGroup(ctx, &iam.CreateGroupInput{GroupName: ptr("breakglass")}); err != nil {
		t.Fatal(err)
	}
	for i := range 241 {
		seedUser(t, a, fmt.Sprintf("fine-%03d", i), 10, 1)
	}
	seedUser(t, a, "due-with-mail", 100, 2, "email", "due@example.com")
	seedUser(t, a, "due-no-mail", 100, 2)
	seedUser(t, a, "exempt-tag", 100, 2, "keyrotor:exempt", "true")
	seedUser(t, a, "exempt-group", 100, 2)
	if _, err := a.IAM.AddUserToGroup(ctx, &iam.AddUserToGroupInput{GroupName: ptr("breakglass"), UserName: ptr("exempt-group")}); err != nil {
		t.Fatal(err)
	}
	seedUser(t, a, "unused", 60, -1)
	// Two keys, each combination.
	seedUser(t, a, "two-active", 100, 2)
	a.Key(t, "two-active")
	seedUser(t, a, "other-inactive", 100, 2)
	a.SetKeyStatus(t, "other-inactive", a.Key(t, "other-inactive"), false)
	// Keys keyrotor deactivated (its record says when), in and past their
	// grace period.
	inGraceActive, _ := seedUser(t, a, "other-in-grace", 100, 2)
	inGrace := a.Key(t, "other-in-grace")
	a.SetKeyStatus(t, "other-in-grace", inGrace, false)
	putDeactivated(t, s, "other-in-grace", inGrace, inGraceActive, time.Now().Add(-2*day))
	pastGraceActive, _ := seedUser(t, a, "other-past-grace", 100, 2)
	pastGrace := a.Key(t, "other-past-grace")
	a.SetKeyStatus(t, "other-past-grace", pastGrace, false)
	putDeactivated(t, s, "other-past-grace", pastGrace, pastGraceActive, time.Now().Add(-7*day-12*time.Hour))

	p := s.plan(t, `{}`)
	if p.Counts.Users != 250 {
		t.Fatalf("plan considered %d users; want 250 (pagination)", p.Counts.Users)
	}
	got := map[string]string{}
	for _, it := range p.Items {
		got[it.User] = string(it.Action)
	}
	for _, x := range append(p.Blocked, p.Exempt...) {
		got[x.User] = string(x.Action)
	}
	want := map[string]string{
		"due-with-mail": "rotate", "due-no-mail": "rotate", "exempt-tag": "exempt", "exempt-group": "exempt",
		"unused": "retire", "two-active": "blocked", "other-inactive": "blocked", "other-in-grace": "blocked",
		"other-past-grace": "rotate",
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("decisions = %v\nwant        %v", got, want)
	}
	if it := itemFor(t, p, "other-past-grace"); it.RemoveFirst != pastGrace {
		t.Fatalf("other-past-grace removeFirst = %q; want %s", it.RemoveFirst, pastGrace)
	}
	if it := itemFor(t, p, "due-no-mail"); it.Email != "" {
		t.Fatalf("due-no-mail email = %q", it.Email)
	}
	// The plan's items are in S3 for the map to read.
	if p.ItemsKey == "" || p.Bucket != "keyrotor-reports" {
		t.Fatalf("plan location = %s/%s", p.Bucket, p.ItemsKey)
	}
	// The deactivated keys wait out their grace in their own executions
	// (within a day of its end): not items of this run.
	if p.Counts.InGrace != 2 || p.Counts.Resumed != 0 {
		t.Fatalf("plan counts = %+v; want 2 in grace, none resumed", p.Counts)
	}

	// The past-grace key is removed first, then the rotation proceeds.
	it := itemFor(t, p, "other-past-grace")
	nk, err := s.create.Handle(ctx, rotation.Task{Execution: "e", Item: it})
	if err != nil {
		t.Fatal(err)
	}
	if keys := a.Keys(t, "other-past-grace"); len(keys) != 2 || keys[pastGrace] != "" || keys[nk.KeyID] != "Active" {
		t.Fatalf("keys = %v; want %s gone and %s Active", keys, pastGrace, nk.KeyID)
	}
	if r := s.record(t, pastGrace); r.State != ledger.Deleted || !strings.Contains(r.Outcome, "make room") {
		t.Fatalf("record of the removed key = %+v; want deleted, to make room", r)
	}

	// No address: admins only.
	it = itemFor(t, p, "due-no-mail")
	nk, err = s.create.Handle(ctx, rotation.Task{Execution: "e", Item: it})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.notify.Handle(ctx, rotation.Task{Execution: "e", Item: it, NewKey: nk})
	if err != nil || n.MailStatus != "admins" || !n.Accepted || n.MailedTo != "" {
		t.Fatalf("notify without address = %+v, %v; want the admins' message accepted as the notice", n, err)
	}
	if r := s.record(t, it.OldKey.ID); r.Notice != ledger.NoticeAccepted || r.NoticeChannel != "admins" || r.OwnerMails != 0 {
		t.Fatalf("record = %+v; want notice accepted by the admins' channel, no owner mail", r)
	}
	mails, notes := a.Sent(t)
	if len(mails) != 0 || len(notes) != 1 || !strings.Contains(notes[0].Message, "no owner e-mail tag") {
		t.Fatalf("mails %v notes %v; want no mail and an admin note about the missing tag", mails, notes)
	}

	// Restricting to users, and an unknown user.
	p = s.plan(t, `{"users":["due-with-mail"]}`)
	if p.Counts.Users != 1 || len(p.Items) != 1 {
		t.Fatalf("restricted plan = %+v", p.Counts)
	}
	_, err = s.find.Handle(ctx, rotation.FindInput{Request: json.RawMessage(`{"users":["nobody"]}`)})
	var ie *failures.InvalidInputError
	if !errors.As(err, &ie) || ie.Field != "users[0]" {
		t.Fatalf("unknown user error = %v; want InvalidInputError on users[0]", err)
	}
}

// flakySecrets fails the call that stores the key (CreateSecret for a new
// secret, PutSecretValue for an existing one) the first n times (after the
// call was made, when dropResponse is set).
type flakySecrets struct {
	rotation.SecretsAPI
	n            int
	dropResponse bool
}

func (f *flakySecrets) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	if f.n > 0 {
		f.n--
		if f.dropResponse {
			f.SecretsAPI.CreateSecret(ctx, in, o...)
		}
		return nil, &failures.TransientError{Op: "CreateSecret", Msg: "injected"}
	}
	return f.SecretsAPI.CreateSecret(ctx, in, o...)
}

func (f *flakySecrets) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	if f.n > 0 {
		f.n--
		if f.dropResponse {
			f.SecretsAPI.PutSecretValue(ctx, in, o...)
		}
		return nil, &failures.TransientError{Op: "PutSecretValue", Msg: "injected"}
	}
	return f.SecretsAPI.PutSecretValue(ctx, in, o...)
}

// failingDelete fails DeleteAccessKey while on.
type failingDelete struct {
	rotation.CreateIAM
	on bool
}

func (f *failingDelete) DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, o ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error) {
	if f.on {
		return nil, &failures.TransientError{Op: "DeleteAccessKey", Msg: "injected"}
	}
	return f.CreateIAM.DeleteAccessKey(ctx, in, o...)
}

// TestMotoCreateFailureBeforeStorage injects a failure between
// CreateAccessKey and storage and re-runs the step.
func TestMotoCreateFailureBeforeStorage(t *testing.T) {
	tests := []struct {
		name         string
		dropResponse bool // the store happened but its answer was lost
		deleteFails  bool // the clean-up delete fails too: an orphan is left
	}{
		{"store fails", false, false},
		{"store answer lost", true, false},
		{"store and clean-up fail", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := awstest.New(t)
			s := newSteps(t, a)
			oldID, _ := seedUser(t, a, "bob", 100, 1)
			it := itemFor(t, s.plan(t, `{}`), "bob")
			ctx := context.Background()
			fd := &failingDelete{CreateIAM: a.IAM, on: tt.deleteFails}
			s.create.IAM = fd
			s.create.Secrets = &flakySecrets{SecretsAPI: a.Secrets, n: 1, dropResponse: tt.dropResponse}
			task := rotation.Task{Execution: "exec-1", Item: it}
			nk, err := s.create.Handle(ctx, task)
			if tt.dropResponse {
				// Read-back found the key stored: success at the first try.
				if err != nil {
					t.Fatalf("create with a lost answer: %v", err)
				}
			} else {
				if err == nil {
					t.Fatal("create succeeded through an injected storage failure")
				}
				want := 1
				if tt.deleteFails {
					want = 2
				}
				if keys := a.Keys(t, "bob"); len(keys) != want {
					t.Fatalf("after the failure keys = %v; want %d", keys, want)
				}
				fd.on = false
				if tt.deleteFails {
					// The record names the unstored key: the re-run removes
					// it and asks to be retried (the orchestrator's Retry).
					r := s.record(t, oldID)
					if r.State != ledger.Created || r.NewKeyID == "" {
						t.Fatalf("record after the failure = %+v; want the unstored key recorded as created", r)
					}
					_, err = s.create.Handle(ctx, task)
					var te *failures.TransientError
					if !errors.As(err, &te) {
						t.Fatalf("re-run = %v; want TransientError after removing the unstored key", err)
					}
					if keys := a.Keys(t, "bob"); len(keys) != 1 || keys[r.NewKeyID] != "" {
						t.Fatalf("after the re-run keys = %v; want the unstored %s removed", keys, r.NewKeyID)
					}
				} else if r := s.record(t, oldID); r.State != ledger.Started || r.NewKeyID != "" {
					t.Fatalf("record after the failure = %+v; want started again, no new key", r)
				}
				if nk, err = s.create.Handle(ctx, task); err != nil {
					t.Fatalf("re-run: %v", err)
				}
			}
			keys := a.Keys(t, "bob")
			var stored rotation.StoredKey
			json.Unmarshal([]byte(a.Secret(t, "iam-access-keys/bob")), &stored)
			if len(keys) != 2 || keys[oldID] != "Active" || keys[nk.KeyID] != "Active" || stored.AccessKeyID != nk.KeyID {
				t.Fatalf("converged keys = %v, stored %s; want old + stored new %s", keys, stored.AccessKeyID, nk.KeyID)
			}
			a.Use(t, stored.AccessKeyID, stored.SecretAccessKey)
			if r := s.record(t, oldID); r.State != ledger.Stored || r.NewKeyID != nk.KeyID {
				t.Fatalf("record = %+v; want stored with %s", r, nk.KeyID)
			}
		})
	}
}

// TestMotoConcurrentExecutions: a second execution over the same user never
// makes a third key attempt while the first drives the rotation; once the
// first's lease has passed, it takes the rotation over and reuses the key.
func TestMotoConcurrentExecutions(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	oldID, _ := seedUser(t, a, "carol", 100, 1)
	it := itemFor(t, s.plan(t, `{}`), "carol")
	ctx := context.Background()
	// Execution 2 starts the rotation first but fails at storage;
	// execution 1 stays out of it.
	s2 := *s.create
	s2.Secrets = &flakySecrets{SecretsAPI: a.Secrets, n: 1}
	s2.IAM = &failingDelete{CreateIAM: a.IAM}
	if _, err := s2.Handle(ctx, rotation.Task{Execution: "exec-2", Item: it}); err == nil {
		t.Fatal("exec-2 should have failed at storage")
	}
	got, err := s.create.Handle(ctx, rotation.Task{Execution: "exec-1", Item: it})
	if err != nil || got.KeyID != "" || !strings.Contains(got.Skipped, "in flight in execution exec-2") {
		t.Fatalf("exec-1 = %+v, %v; want skipped: in flight in exec-2", got, err)
	}
	if keys := a.Keys(t, "carol"); len(keys) != 1 {
		t.Fatalf("keys = %v; want only the old key (no third attempt)", keys)
	}
	nk, err := s.create.Handle(ctx, rotation.Task{Execution: "exec-2", Item: it})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.create.Handle(ctx, rotation.Task{Execution: "exec-1", Item: it})
	if err != nil || again.KeyID != "" || again.Skipped == "" {
		t.Fatalf("exec-1 while exec-2's lease runs = %+v, %v; want skipped", again, err)
	}
	// exec-2 stops (aborted, never redriven); its lease passes.
	s.now = s.now.Add(rotation.LeaseDuration + time.Minute)
	again, err = s.create.Handle(ctx, rotation.Task{Execution: "exec-1", Item: it})
	if err != nil || again.KeyID != nk.KeyID || !again.Reused {
		t.Fatalf("exec-1 after exec-2's lease = %+v, %v; want reuse of %s", again, err, nk.KeyID)
	}
	if keys := a.Keys(t, "carol"); len(keys) != 2 {
		t.Fatalf("keys = %v; want the old and the one new key", keys)
	}
	r := s.record(t, oldID)
	if r.Owner != "exec-1" || !strings.Contains(lastNote(r), "taken over from execution exec-2") {
		t.Fatalf("record owner %q, last entry %q; want exec-1, taken over from exec-2", r.Owner, lastNote(r))
	}
}

func lastNote(r *ledger.Record) string {
	if len(r.History) == 0 {
		return ""
	}
	return r.History[len(r.History)-1].Note
}

// TestMotoPeopleDuringGrace: re-activated old key, deleted new key, deleted
// user. A person's action ends the rotation; re-activation holds it.
func TestMotoPeopleDuringGrace(t *testing.T) {
	tests := []struct {
		name      string
		meddle    func(t *testing.T, a *awstest.Account, old string, nk *rotation.NewKey)
		want      string
		kept      bool
		wantState ledger.State
		held      bool // HeldUntil = now + hold days
	}{
		{"old key re-activated", func(t *testing.T, a *awstest.Account, old string, _ *rotation.NewKey) {
			a.SetKeyStatus(t, "dave", old, true)
		}, "re-activated", true, ledger.Held, true},
		{"new key deleted", func(t *testing.T, a *awstest.Account, _ string, nk *rotation.NewKey) {
			a.IAM.DeleteAccessKey(context.Background(), &iam.DeleteAccessKeyInput{UserName: ptr("dave"), AccessKeyId: ptr(nk.KeyID)})
		}, "new key", true, ledger.Ended, true},
		{"user deleted", func(t *testing.T, a *awstest.Account, old string, nk *rotation.NewKey) {
			ctx := context.Background()
			for _, k := range []string{old, nk.KeyID} {
				a.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: ptr("dave"), AccessKeyId: ptr(k)})
			}
			if _, err := a.IAM.DeleteUser(ctx, &iam.DeleteUserInput{UserName: ptr("dave")}); err != nil {
				t.Fatal(err)
			}
		}, "no longer exists", false, ledger.Ended, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := awstest.New(t)
			s := newSteps(t, a)
			oldID, _ := seedUser(t, a, "dave", 100, 1)
			task := rotation.Task{Execution: "e", Item: itemFor(t, s.plan(t, `{}`), "dave")}
			ctx := context.Background()
			var err error
			if task.NewKey, err = s.create.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			if task.Notice, err = s.notify.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			if task.Deactivation, err = s.deact.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			tt.meddle(t, a, oldID, task.NewKey)
			s.now = task.Deactivation.DeleteAfter.Add(time.Second)
			c, err := s.del.Handle(ctx, task)
			if err != nil || c.Deleted || !strings.Contains(c.Reason, tt.want) {
				t.Fatalf("delete = %+v, %v; want nothing deleted, reason mentioning %q", c, err, tt.want)
			}
			if tt.kept {
				if _, ok := a.Keys(t, "dave")[oldID]; !ok {
					t.Fatal("old key was deleted")
				}
				_, notes := a.Sent(t)
				if last := notes[len(notes)-1]; !strings.Contains(last.Message, "needs a person for access key "+oldID) {
					t.Fatalf("admins not told: %+v", last)
				}
			}
			r := s.record(t, oldID)
			if r.State != tt.wantState || r.Owner != "" || !strings.Contains(r.Outcome, tt.want) || lastEntry(r).State != tt.wantState {
				t.Fatalf("record = %+v; want %s, no owner, outcome mentioning %q", r, tt.wantState, tt.want)
			}
			if held := r.HeldUntil.Equal(s.now.UTC().Truncate(time.Second).Add(time.Duration(s.cfg.HoldDays) * day)); held != tt.held {
				t.Fatalf("heldUntil %v (now %v); want held for %d days: %v", r.HeldUntil, s.now, s.cfg.HoldDays, tt.held)
			}
			// A second grace execution (Redrive) changes nothing.
			if c, err := s.del.Handle(ctx, task); err != nil || c.Deleted {
				t.Fatalf("delete again = %+v, %v; want nothing deleted", c, err)
			}
			if tt.kept {
				if _, ok := a.Keys(t, "dave")[oldID]; !ok {
					t.Fatal("old key was deleted on the second try")
				}
			}
			if tt.wantState == ledger.Held {
				// The next daily run reports the held key instead of rotating it.
				p := s.plan(t, `{}`)
				if len(p.Items) != 0 || len(p.Held) != 1 || p.Held[0].KeyID != oldID || p.Counts.Held != 1 {
					t.Fatalf("plan after the hold: items %+v held %+v; want only %s held", p.Items, p.Held, oldID)
				}
			}
		})
	}
}

// TestMotoReactivatedBeforeDeactivateRerun: a person re-activates the old
// key after deactivate ran; a re-run of deactivate (Retry, Redrive) holds
// the rotation instead of deactivating the key again.
func TestMotoReactivatedBeforeDeactivateRerun(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	oldID, _ := seedUser(t, a, "dora", 100, 1, "email", "dora@example.com")
	task := rotation.Task{Execution: "e", Item: itemFor(t, s.plan(t, `{}`), "dora")}
	ctx := context.Background()
	var err error
	if task.NewKey, err = s.create.Handle(ctx, task); err != nil {
		t.Fatal(err)
	}
	if task.Notice, err = s.notify.Handle(ctx, task); err != nil {
		t.Fatal(err)
	}
	if _, err = s.deact.Handle(ctx, task); err != nil {
		t.Fatal(err)
	}
	a.SetKeyStatus(t, "dora", oldID, true)
	s.now = s.now.Add(time.Hour)
	d, err := s.deact.Handle(ctx, task)
	if err != nil || d.Next != rotation.NextStop || !strings.Contains(d.Note, "re-activated") {
		t.Fatalf("deactivate again = %+v, %v; want stop, re-activated", d, err)
	}
	if keys := a.Keys(t, "dora"); keys[oldID] != "Active" {
		t.Fatalf("keys = %v; want the old key left Active", keys)
	}
	r := s.record(t, oldID)
	if want := s.now.UTC().Truncate(time.Second).Add(time.Duration(s.cfg.HoldDays) * day); r.State != ledger.Held || !r.HeldUntil.Equal(want) {
		t.Fatalf("record = %+v; want held until %v", r, want)
	}
	_, notes := a.Sent(t)
	if last := notes[len(notes)-1]; !strings.Contains(last.Message, "re-activated") || !strings.Contains(last.Message, oldID) {
		t.Fatalf("admins not told of the hold: %+v", last)
	}
}

// TestMotoRejectedSend: an unverified sender makes notify record a refused
// notice, say why (naming the sender), tell the admins once and deactivate
// nothing; a re-run after the fix sends exactly one mail.
func TestMotoRejectedSend(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	s.cfg.Sender = "unverified@example.com"
	s.rewire()
	oldID, _ := seedUser(t, a, "erin", 100, 1, "email", "erin@example.com")
	task := rotation.Task{Execution: "e", Item: itemFor(t, s.plan(t, `{}`), "erin")}
	ctx := context.Background()
	var err error
	if task.NewKey, err = s.create.Handle(ctx, task); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		n, err := s.notify.Handle(ctx, task)
		if err != nil || n.MailStatus != ledger.NoticeRefused || n.Accepted || !strings.Contains(n.Waiting, "unverified@example.com") {
			t.Fatalf("notify #%d = %+v, %v; want refused, not accepted, naming the sender", i+1, n, err)
		}
		task.Notice = n
	}
	r := s.record(t, oldID)
	if r.Notice != ledger.NoticeRefused || r.Attention == "" || !r.AttentionTold || r.OwnerMails != 0 || r.State != ledger.Stored {
		t.Fatalf("record = %+v; want notice refused, attention told, no owner mail, still stored", r)
	}
	mails, notes := a.Sent(t)
	if len(mails) != 0 || len(notes) != 1 || !strings.Contains(notes[0].Message, "unverified@example.com") {
		t.Fatalf("mails %d, admin notes %+v; want none and one note naming the sender", len(mails), notes)
	}
	// Nothing is deactivated while the notice has not gone out.
	d, err := s.deact.Handle(ctx, task)
	if err != nil || d.Next != rotation.NextStop {
		t.Fatalf("deactivate = %+v, %v; want stop", d, err)
	}
	if keys := a.Keys(t, "erin"); keys[oldID] != "Active" {
		t.Fatalf("keys = %v; want the old key Active", keys)
	}
	// The summary shows it waiting.
	sum, err := (&rotation.Summarizer{}).Handle(ctx, rotation.SummarizeInput{Results: mustJSON(t, []rotation.Task{task}), ExecutionName: "e"})
	if err != nil || sum.Totals.Waiting != 1 || sum.Users[0].Result != "waiting" {
		t.Fatalf("summary = %+v, %v; want one waiting", sum, err)
	}

	a.VerifySender(t, "unverified@example.com")
	n, err := s.notify.Handle(ctx, task)
	if err != nil || n.MailStatus != "sent" || !n.Accepted {
		t.Fatalf("notify after the fix = %+v, %v", n, err)
	}
	if mails, _ := a.Sent(t); len(mails) != 1 {
		t.Fatalf("mails = %d; want 1", len(mails))
	}
	if r := s.record(t, oldID); r.Notice != ledger.NoticeAccepted || r.Attention != "" || r.OwnerMails != 1 {
		t.Fatalf("record = %+v; want accepted, attention cleared, one owner mail", r)
	}
}

func mustJSON(t *testing.T, v any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// putDeactivated records that keyrotor deactivated key of user at at, in
// a rotation that replaced it by newKey.
func putDeactivated(t *testing.T, s *steps, user, key, newKey string, at time.Time) {
	t.Helper()
	at = at.UTC().Truncate(time.Second)
	r := &ledger.Record{ID: key, User: user, Action: "rotate", Rotation: 1, NewKeyID: newKey, Notice: ledger.NoticeAccepted,
		DeactivatedAt: at, DeleteAfter: at.Add(s.cfg.GracePeriod), GraceExecution: rotation.GraceExecutionName(user, key, 1), History: []ledger.Entry{}}
	r.Move(at, ledger.Deactivated, "earlier-run", "deactivated the old key")
	if err := s.recs.Put(context.Background(), r); err != nil {
		t.Fatal(err)
	}
}

func ptr(s string) *string { return &s }

// TestMotoUserNames: IAM user names with every legal special character and
// the maximum length go through secrets, mails and every step.
func TestMotoUserNames(t *testing.T) {
	long := "x+=,.@_-" + strings.Repeat("y", 56)
	tests := []struct{ user, secret string }{
		{"a+b=c,d.e@f_g-h", "iam-access-keys/a+b=3Dc=2Cd.e@f_g-h"},
		{long, "iam-access-keys/x+=3D=2C.@_-" + strings.Repeat("y", 56)},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			if len(tt.user) > 64 {
				t.Fatalf("test name too long: %d", len(tt.user))
			}
			a := awstest.New(t)
			s := newSteps(t, a)
			oldID, _ := seedUser(t, a, tt.user, 100, 1, "email", "owner@example.com")
			task := rotation.Task{Execution: "e", Item: itemFor(t, s.plan(t, `{}`), tt.user)}
			ctx := context.Background()
			var err error
			if task.NewKey, err = s.create.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			if task.NewKey.SecretName != tt.secret || a.Secret(t, tt.secret) == "" {
				t.Fatalf("secret name = %q; want %q holding the key", task.NewKey.SecretName, tt.secret)
			}
			if task.Notice, err = s.notify.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			if task.Deactivation, err = s.deact.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			if g := task.Deactivation.GraceExecution; !logSafeName(g) || !strings.HasSuffix(g, "-"+oldID+"-r1") || g[0] != tt.user[0] {
				t.Fatalf("grace execution name %q is not log-safe (0-9A-Za-z-_, at most 80) or does not name the user and the key", g)
			}
			s.now = task.Deactivation.DeleteAfter.Add(time.Second)
			if c, err := s.del.Handle(ctx, task); err != nil || !c.Deleted {
				t.Fatalf("delete = %+v, %v", c, err)
			}
			if _, ok := a.Keys(t, tt.user)[oldID]; ok {
				t.Fatal("old key not deleted")
			}
			mails, _ := a.Sent(t)
			if len(mails) != 1 || !strings.Contains(html.UnescapeString(mails[0].Body), tt.secret) {
				t.Fatalf("mail does not name the secret %q", tt.secret)
			}
		})
	}
}

// TestMotoRetirePassword: with password retirement on, an unused console
// password is noticed, then its login profile removed after the grace; off,
// it is only reported. IAM's longest user name (64 characters, every
// special character) goes through the password path too: its grace
// execution's name is log-safe and at most 80 characters (it panicked).
func TestMotoRetirePassword(t *testing.T) {
	tests := []struct{ name, user string }{
		{"short name", "carol"},
		{"longest legal name with every special character", "c+=,.@_-" + strings.Repeat("z", 56)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := awstest.New(t)
			s := newSteps(t, a)
			ctx := context.Background()
			a.Clock(t, -100*day)
			a.User(t, tt.user, "email", "carol@example.com")
			if _, err := a.IAM.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: ptr(tt.user), Password: ptr("Long-enough-pass-1!")}); err != nil {
				t.Fatal(err)
			}
			a.Clock(t, 0)
			if p := s.plan(t, `{}`); len(p.Items) != 0 {
				t.Fatalf("with retirePasswords off the plan has items: %+v", p.Items)
			}
			s.cfg.RetirePasswords = true
			s.rewire()
			it := itemFor(t, s.plan(t, `{}`), tt.user)
			if it.Action != "retire-password" || it.OldKey.ID != "password" {
				t.Fatalf("item = %+v", it)
			}
			task := rotation.Task{Execution: "e", Item: it}
			var err error
			if task.Notice, err = s.notify.Handle(ctx, task); err != nil || task.Notice.MailStatus != "sent" || !task.Notice.Accepted {
				t.Fatalf("notify = %+v, %v", task.Notice, err)
			}
			id := ledger.PasswordID(tt.user, it.OldKey.Created)
			if r := s.record(t, id); r.Action != "retire-password" || r.State != ledger.Notified || r.OwnerMails != 1 {
				t.Fatalf("record %s = %+v; want the retirement notified", id, r)
			}
			if task.Deactivation, err = s.deact.Handle(ctx, task); err != nil || task.Deactivation.Next != rotation.NextGrace {
				t.Fatalf("deactivate = %+v, %v; want the grace to start", task.Deactivation, err)
			}
			if g := task.Deactivation.GraceExecution; !logSafeName(g) || !strings.HasPrefix(g, "c") {
				t.Fatalf("grace execution name %q: want at most 80 characters of 0-9A-Za-z-_, starting with the user", g)
			}
			if r := s.record(t, id); r.GraceExecution != task.Deactivation.GraceExecution {
				t.Fatalf("record grace execution %q; want %q", r.GraceExecution, task.Deactivation.GraceExecution)
			}
			if _, err := a.IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: ptr(tt.user)}); err != nil {
				t.Fatalf("the password went before its grace: %v", err)
			}
			s.now = task.Deactivation.DeleteAfter.Add(time.Second)
			c, err := s.del.Handle(ctx, task)
			if err != nil || !c.Deleted {
				t.Fatalf("delete = %+v, %v", c, err)
			}
			if _, err := a.IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: ptr(tt.user)}); err == nil {
				t.Fatal("login profile still there after the grace")
			}
			if r := s.record(t, id); r.State != ledger.Deleted {
				t.Fatalf("record = %+v; want deleted", r)
			}
			mails, _ := a.Sent(t)
			if len(mails) != 1 || !strings.Contains(mails[0].Subject, "console password") {
				t.Fatalf("mails = %+v", mails)
			}
		})
	}
}

// TestMotoRotationInFlightKeepsItsExecutionName: a rotation deactivated
// by an earlier release, which named the grace execution with the user's
// '.' and '@' (not log-safe) and started it, goes on under the name its
// record holds. A re-run of the deactivation (a Redrive of the same
// execution, or a later execution taking the rotation over) hands the
// state machine that name, so StartExecution meets the execution already
// started (a no-op) rather than starting a second grace execution under
// the new naming.
func TestMotoRotationInFlightKeepsItsExecutionName(t *testing.T) {
	tests := []struct {
		name, execution string
		after           time.Duration
	}{
		{"a redrive of the same execution", "e", time.Minute},
		{"a later execution taking the rotation over", "next-day", day},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := awstest.New(t)
			s := newSteps(t, a)
			ctx := context.Background()
			user := "jo.smith@example.com"
			oldID, _ := seedUser(t, a, user, 100, 1, "email", "jo@example.com")
			task := rotation.Task{Execution: "e", Item: itemFor(t, s.plan(t, `{}`), user)}
			var err error
			if task.NewKey, err = s.create.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			if task.Notice, err = s.notify.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			if task.Deactivation, err = s.deact.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			if g := task.Deactivation.GraceExecution; !logSafeName(g) || g != "jo_smith_example_com-"+oldID+"-r1" {
				t.Fatalf("grace execution %q; want jo_smith_example_com-%s-r1", g, oldID)
			}
			// The record as the earlier release wrote it.
			old := user + "-" + oldID + "-r1"
			r := s.record(t, oldID)
			r.GraceExecution = old
			if err := s.recs.Put(ctx, r); err != nil {
				t.Fatal(err)
			}
			s.now = s.now.Add(tt.after)
			again := rotation.Task{Execution: tt.execution, Item: task.Item}
			d, err := s.deact.Handle(ctx, again)
			if err != nil || d.GraceExecution != old || d.Next != rotation.NextGrace {
				t.Fatalf("re-run deactivation = %+v, %v; want grace in the recorded %q", d, err, old)
			}
			if r := s.record(t, oldID); r.GraceExecution != old || !r.DeactivatedAt.Equal(task.Deactivation.DeactivatedAt) {
				t.Fatalf("record grace %q deactivated %v; want %q, %v unchanged", r.GraceExecution, r.DeactivatedAt, old, task.Deactivation.DeactivatedAt)
			}
		})
	}
}

// logSafeName reports whether name is a Step Functions execution name
// CloudWatch Logs can carry: 1-80 characters of 0-9, A-Z, a-z, - and _.
func logSafeName(name string) bool {
	if name == "" || len(name) > 80 {
		return false
	}
	for _, r := range name {
		if !(r >= '0' && r <= '9' || r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// TestMotoSecretUsesKMSKey: with a KMS key configured, the secret is
// created encrypted with it.
func TestMotoSecretUsesKMSKey(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	ctx := context.Background()
	key, err := kms.NewFromConfig(a.Config).CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.KMSKeyID = *key.KeyMetadata.Arn
	s.rewire()
	seedUser(t, a, "kim", 100, 1)
	if _, err := s.create.Handle(ctx, rotation.Task{Execution: "e", Item: itemFor(t, s.plan(t, `{}`), "kim")}); err != nil {
		t.Fatal(err)
	}
	d, err := a.Secrets.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: ptr("iam-access-keys/kim")})
	if err != nil || d.KmsKeyId == nil || !strings.Contains(*d.KmsKeyId, *key.KeyMetadata.KeyId) {
		t.Fatalf("secret KMS key = %v (%v); want %s", d.KmsKeyId, err, *key.KeyMetadata.Arn)
	}
}

// lossyRecords writes the Put with the given 1-based number and then
// reports it failed, as when DynamoDB's answer is lost (timeout, dropped
// connection): the record was written, the step cannot know.
type lossyRecords struct {
	rotation.Records
	puts, lose int
}

func (l *lossyRecords) Put(ctx context.Context, r *ledger.Record) error {
	l.puts++
	err := l.Records.Put(ctx, r)
	if err == nil && l.puts == l.lose {
		return &failures.TransientError{Op: "PutItem", Msg: "injected: answer lost"}
	}
	return err
}

// TestMotoCreateRecordAnswerLost: the write recording the new key's id
// (state created) takes effect but its answer is lost. A re-run, after
// IAM's visibility window, must finish the rotation, not take the key
// keyrotor itself removed for one a person deleted.
func TestMotoCreateRecordAnswerLost(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	oldID, _ := seedUser(t, a, "fay", 100, 1)
	task := rotation.Task{Execution: "exec-1", Item: itemFor(t, s.plan(t, `{}`), "fay")}
	ctx := context.Background()
	// Puts of a new rotation: 1 started, 2 creating, 3 created, 4 stored.
	s.create.Records = &lossyRecords{Records: s.recs, lose: 3}
	if nk, err := s.create.Handle(ctx, task); err == nil && (nk.KeyID == "" || nk.Skipped != "") {
		t.Fatalf("create through a lost record write = %+v; want a stored key or an error to retry", nk)
	}
	s.create.Records = s.recs
	s.now = s.now.Add(5 * time.Minute) // the orchestrator's retries, past the visibility window
	nk, err := s.create.Handle(ctx, task)
	if err != nil || nk.KeyID == "" || nk.Skipped != "" {
		t.Fatalf("create after the lost write = %+v, %v; want the rotation to go on with a stored new key (record %+v)", nk, err, s.record(t, oldID))
	}
	keys := a.Keys(t, "fay")
	var stored rotation.StoredKey
	json.Unmarshal([]byte(a.Secret(t, "iam-access-keys/fay")), &stored)
	if len(keys) != 2 || keys[nk.KeyID] != "Active" || stored.AccessKeyID != nk.KeyID {
		t.Fatalf("keys %v, stored %s; want old and the stored new key %s", keys, stored.AccessKeyID, nk.KeyID)
	}
	if r := s.record(t, oldID); r.State != ledger.Stored || r.HeldUntil.After(s.now) {
		t.Fatalf("record = %+v; want stored, not held", r)
	}
}
