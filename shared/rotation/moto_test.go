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
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const (
	day    = 24 * time.Hour
	sender = "keyrotor@example.com"
)

// steps wires the six steps to an emulated account, with JSON logs captured.
type steps struct {
	acct   *awstest.Account
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
	acct.Bucket(t, cfg.ReportBucket)
	acct.VerifySender(t, sender)
	s := &steps{acct: acct, cfg: cfg, logs: &bytes.Buffer{}, now: time.Now()}
	s.rewire()
	return s
}

// rewire builds the steps from s.cfg, with s.now as their clock.
func (s *steps) rewire() {
	log := slog.New(slog.NewJSONHandler(s.logs, nil))
	now := func() time.Time { return s.now }
	a := s.acct
	s.find = &rotation.Finder{IAM: a.IAM, S3: a.S3, Config: s.cfg, Now: now, Log: log}
	s.create = &rotation.Creator{IAM: a.IAM, Secrets: a.Secrets, Verify: rotation.STSVerifier(a.Config), Config: s.cfg, Now: now, Log: log}
	s.notify = &rotation.Notifier{IAM: a.IAM, Locks: a.S3, Mail: a.SES, Topic: a.SNS, Config: s.cfg, Region: "us-east-1", Now: now, Log: log}
	s.deact = &rotation.Deactivator{IAM: a.IAM, Config: s.cfg, Now: now, Log: log}
	s.del = &rotation.Deleter{IAM: a.IAM, Topic: a.SNS, Config: s.cfg, Now: now, Log: log}
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
	if nk.SecretName != "iam-access-keys/alice" || !strings.Contains(nk.SecretARN, "iam-access-keys/alice") {
		t.Fatalf("new key output = %+v", nk)
	}
	task.NewKey = nk

	// notify, twice: one mail, to the owner, without the secret.
	for i := range 2 {
		n, err := s.notify.Handle(ctx, task)
		if err != nil {
			t.Fatalf("notify #%d: %v", i+1, err)
		}
		want := []string{"sent", "already-sent"}[i]
		if n.MailStatus != want {
			t.Fatalf("notify #%d status = %q; want %q", i+1, n.MailStatus, want)
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
	if keys := a.Keys(t, "alice"); keys[oldID] != "Inactive" || keys[nk.KeyID] != "Active" {
		t.Fatalf("after deactivate keys = %v", keys)
	}
	task.Deactivation = d

	// delete too early: nothing deleted, admins told.
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
	}
	keys = a.Keys(t, "alice")
	if len(keys) != 1 || keys[nk.KeyID] != "Active" {
		t.Fatalf("after delete keys = %v; want only the new key", keys)
	}
	for k := range a.Tags(t, "alice") {
		if strings.HasPrefix(k, "keyrotor:") {
			t.Errorf("ledger tag %s left after delete", k)
		}
	}

	// Nothing anywhere holds a secret but the secret itself.
	outputs, _ := json.Marshal([]any{p, task})
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
	seedUser(t, a, "other-in-grace", 100, 2)
	inGrace := a.Key(t, "other-in-grace")
	a.SetKeyStatus(t, "other-in-grace", inGrace, false)
	tagUser(t, a, "other-in-grace", "keyrotor:deactivated:"+inGrace, s.now.Add(-2*day).UTC().Format(time.RFC3339))
	seedUser(t, a, "other-past-grace", 100, 2)
	pastGrace := a.Key(t, "other-past-grace")
	a.SetKeyStatus(t, "other-past-grace", pastGrace, false)
	tagUser(t, a, "other-past-grace", "keyrotor:deactivated:"+pastGrace, s.now.Add(-8*day).UTC().Format(time.RFC3339))

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

	// The past-grace key is removed first, then the rotation proceeds.
	it := itemFor(t, p, "other-past-grace")
	nk, err := s.create.Handle(ctx, rotation.Task{Execution: "e", Item: it})
	if err != nil {
		t.Fatal(err)
	}
	if keys := a.Keys(t, "other-past-grace"); len(keys) != 2 || keys[pastGrace] != "" || keys[nk.KeyID] != "Active" {
		t.Fatalf("keys = %v; want %s gone and %s Active", keys, pastGrace, nk.KeyID)
	}

	// No address: admins only.
	it = itemFor(t, p, "due-no-mail")
	nk, err = s.create.Handle(ctx, rotation.Task{Execution: "e", Item: it})
	if err != nil {
		t.Fatal(err)
	}
	n, err := s.notify.Handle(ctx, rotation.Task{Execution: "e", Item: it, NewKey: nk})
	if err != nil || n.MailStatus != "no-address" {
		t.Fatalf("notify without address = %+v, %v", n, err)
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

// flakySecrets fails PutSecretValue the first n times (after the call would
// have been made, when dropResponse is set).
type flakySecrets struct {
	rotation.SecretsAPI
	n            int
	dropResponse bool
}

func (f *flakySecrets) PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, o ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error) {
	if len(in.VersionStages) == 0 && f.n > 0 { // the key itself, not the claim
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
		})
	}
}

// TestMotoConcurrentExecutions: a second execution over the same user never
// makes a third key attempt; once the first stored its key, it reuses it.
func TestMotoConcurrentExecutions(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	seedUser(t, a, "carol", 100, 1)
	it := itemFor(t, s.plan(t, `{}`), "carol")
	ctx := context.Background()
	// Execution 2 claims first but has not created yet; execution 1 is refused.
	s2 := *s.create
	s2.Secrets = &flakySecrets{SecretsAPI: a.Secrets, n: 1}
	s2.IAM = &failingDelete{CreateIAM: a.IAM}
	if _, err := s2.Handle(ctx, rotation.Task{Execution: "exec-2", Item: it}); err == nil {
		t.Fatal("exec-2 should have failed at storage")
	}
	_, err := s.create.Handle(ctx, rotation.Task{Execution: "exec-1", Item: it})
	var rip *failures.RotationInProgressError
	if !errors.As(err, &rip) || rip.Holder != "exec-2" {
		t.Fatalf("exec-1 error = %v; want RotationInProgressError held by exec-2", err)
	}
	if keys := a.Keys(t, "carol"); len(keys) != 1 {
		t.Fatalf("keys = %v; want only the old key (no third attempt)", keys)
	}
	nk, err := s.create.Handle(ctx, rotation.Task{Execution: "exec-2", Item: it})
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.create.Handle(ctx, rotation.Task{Execution: "exec-1", Item: it})
	if err != nil || again.KeyID != nk.KeyID || !again.Reused {
		t.Fatalf("exec-1 after exec-2 stored = %+v, %v; want reuse of %s", again, err, nk.KeyID)
	}
}

// TestMotoPeopleDuringGrace: re-activated old key, deleted new key, deleted
// user.
func TestMotoPeopleDuringGrace(t *testing.T) {
	tests := []struct {
		name   string
		meddle func(t *testing.T, a *awstest.Account, old string, nk *rotation.NewKey)
		want   string
		kept   bool
	}{
		{"old key re-activated", func(t *testing.T, a *awstest.Account, old string, _ *rotation.NewKey) {
			a.SetKeyStatus(t, "dave", old, true)
		}, "re-activated", true},
		{"new key deleted", func(t *testing.T, a *awstest.Account, _ string, nk *rotation.NewKey) {
			a.IAM.DeleteAccessKey(context.Background(), &iam.DeleteAccessKeyInput{UserName: ptr("dave"), AccessKeyId: ptr(nk.KeyID)})
		}, "new key", true},
		{"user deleted", func(t *testing.T, a *awstest.Account, old string, nk *rotation.NewKey) {
			ctx := context.Background()
			for _, k := range []string{old, nk.KeyID} {
				a.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: ptr("dave"), AccessKeyId: ptr(k)})
			}
			out, _ := a.IAM.ListUserTags(ctx, &iam.ListUserTagsInput{UserName: ptr("dave")})
			var keys []string
			for _, tg := range out.Tags {
				keys = append(keys, *tg.Key)
			}
			a.IAM.UntagUser(ctx, &iam.UntagUserInput{UserName: ptr("dave"), TagKeys: keys})
			if _, err := a.IAM.DeleteUser(ctx, &iam.DeleteUserInput{UserName: ptr("dave")}); err != nil {
				t.Fatal(err)
			}
		}, "no longer exists", false},
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
				if last := notes[len(notes)-1]; !strings.Contains(last.Message, "did not delete access key "+oldID) {
					t.Fatalf("admins not told: %+v", last)
				}
			}
		})
	}
}

// TestMotoRejectedSend: an unverified sender fails notify with a clear error
// and clears the marker, so a re-run after the fix sends exactly one mail.
func TestMotoRejectedSend(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	s.cfg.Sender = "unverified@example.com"
	s.rewire()
	seedUser(t, a, "erin", 100, 1, "email", "erin@example.com")
	task := rotation.Task{Execution: "e", Item: itemFor(t, s.plan(t, `{}`), "erin")}
	ctx := context.Background()
	var err error
	if task.NewKey, err = s.create.Handle(ctx, task); err != nil {
		t.Fatal(err)
	}
	_, err = s.notify.Handle(ctx, task)
	var sr *failures.SendRejectedError
	if !errors.As(err, &sr) || !strings.Contains(err.Error(), "unverified@example.com") {
		t.Fatalf("notify error = %v; want SendRejectedError naming the sender", err)
	}
	a.VerifySender(t, "unverified@example.com")
	n, err := s.notify.Handle(ctx, task)
	if err != nil || n.MailStatus != "sent" {
		t.Fatalf("notify after the fix = %+v, %v", n, err)
	}
	if mails, _ := a.Sent(t); len(mails) != 1 {
		t.Fatalf("mails = %d; want 1", len(mails))
	}
}

func tagUser(t *testing.T, a *awstest.Account, user, k, v string) {
	t.Helper()
	if _, err := a.IAM.TagUser(context.Background(), &iam.TagUserInput{UserName: ptr(user), Tags: []iamTag{{Key: ptr(k), Value: ptr(v)}}}); err != nil {
		t.Fatal(err)
	}
}

func ptr(s string) *string { return &s }

type iamTag = iamtypes.Tag

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
// it is only reported.
func TestMotoRetirePassword(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	ctx := context.Background()
	a.Clock(t, -100*day)
	a.User(t, "carol", "email", "carol@example.com")
	if _, err := a.IAM.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: ptr("carol"), Password: ptr("Long-enough-pass-1!")}); err != nil {
		t.Fatal(err)
	}
	a.Clock(t, 0)
	if p := s.plan(t, `{}`); len(p.Items) != 0 {
		t.Fatalf("with retirePasswords off the plan has items: %+v", p.Items)
	}
	s.cfg.RetirePasswords = true
	s.rewire()
	it := itemFor(t, s.plan(t, `{}`), "carol")
	if it.Action != "retire-password" || it.OldKey.ID != "password" {
		t.Fatalf("item = %+v", it)
	}
	task := rotation.Task{Execution: "e", Item: it}
	var err error
	if task.Notice, err = s.notify.Handle(ctx, task); err != nil || task.Notice.MailStatus != "sent" {
		t.Fatalf("notify = %+v, %v", task.Notice, err)
	}
	if task.Deactivation, err = s.deact.Handle(ctx, task); err != nil {
		t.Fatal(err)
	}
	if _, err := a.IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: ptr("carol")}); err != nil {
		t.Fatalf("the password went before its grace: %v", err)
	}
	s.now = task.Deactivation.DeleteAfter.Add(time.Second)
	c, err := s.del.Handle(ctx, task)
	if err != nil || !c.Deleted {
		t.Fatalf("delete = %+v, %v", c, err)
	}
	if _, err := a.IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: ptr("carol")}); err == nil {
		t.Fatal("login profile still there after the grace")
	}
	mails, _ := a.Sent(t)
	if len(mails) != 1 || !strings.Contains(mails[0].Subject, "console password") {
		t.Fatalf("mails = %+v", mails)
	}
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
