package rotation_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// fakeIAM is a small in-memory IAM for one user's keys and password.
type fakeIAM struct {
	keys           map[string]types.StatusType
	created        map[string]time.Time // creation times; absent: t0 - 100 days
	updates        int
	deletes        int
	passwordUsed   *time.Time
	passwordSet    *time.Time // the login profile's CreateDate (nil: t0 - 200 days)
	profileDeleted bool
}

func (f *fakeIAM) ListAccessKeys(_ context.Context, in *iam.ListAccessKeysInput, _ ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	out := &iam.ListAccessKeysOutput{}
	for id, st := range f.keys {
		created, ok := f.created[id]
		if !ok {
			created = t0.Add(-100 * 24 * time.Hour)
		}
		out.AccessKeyMetadata = append(out.AccessKeyMetadata, types.AccessKeyMetadata{AccessKeyId: aws.String(id), Status: st, UserName: in.UserName, CreateDate: aws.Time(created)})
	}
	return out, nil
}

func (f *fakeIAM) UpdateAccessKey(_ context.Context, in *iam.UpdateAccessKeyInput, _ ...func(*iam.Options)) (*iam.UpdateAccessKeyOutput, error) {
	f.updates++
	f.keys[*in.AccessKeyId] = in.Status
	return &iam.UpdateAccessKeyOutput{}, nil
}

func (f *fakeIAM) DeleteAccessKey(_ context.Context, in *iam.DeleteAccessKeyInput, _ ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error) {
	f.deletes++
	delete(f.keys, *in.AccessKeyId)
	return &iam.DeleteAccessKeyOutput{}, nil
}

func (f *fakeIAM) GetUser(_ context.Context, in *iam.GetUserInput, _ ...func(*iam.Options)) (*iam.GetUserOutput, error) {
	return &iam.GetUserOutput{User: &types.User{UserName: in.UserName, PasswordLastUsed: f.passwordUsed}}, nil
}

func (f *fakeIAM) GetLoginProfile(_ context.Context, in *iam.GetLoginProfileInput, _ ...func(*iam.Options)) (*iam.GetLoginProfileOutput, error) {
	if f.profileDeleted {
		return nil, &types.NoSuchEntityException{Message: aws.String("Login profile not found")}
	}
	set := t0.Add(-200 * 24 * time.Hour)
	if f.passwordSet != nil {
		set = *f.passwordSet
	}
	return &iam.GetLoginProfileOutput{LoginProfile: &types.LoginProfile{UserName: in.UserName, CreateDate: aws.Time(set)}}, nil
}

func (f *fakeIAM) DeleteLoginProfile(context.Context, *iam.DeleteLoginProfileInput, ...func(*iam.Options)) (*iam.DeleteLoginProfileOutput, error) {
	f.profileDeleted = true
	return &iam.DeleteLoginProfileOutput{}, nil
}

// GetAccessKeyLastUsed answers "never used" (the fake's keys are not
// used; tests of last use run against moto).
func (f *fakeIAM) GetAccessKeyLastUsed(_ context.Context, in *iam.GetAccessKeyLastUsedInput, _ ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error) {
	return &iam.GetAccessKeyLastUsedOutput{AccessKeyLastUsed: &types.AccessKeyLastUsed{}}, nil
}

var (
	_ rotation.DeactivateIAM = (*fakeIAM)(nil)
	_ rotation.DeleteIAM     = (*fakeIAM)(nil)
)

// fakeRecords is an in-memory rotation.Records with ledger.Store's
// semantics: records are copied in and out (as if encoded), and a Put
// whose version is not the stored one (a new record: version 0, none may
// exist) fails with a ConflictError.
type fakeRecords struct {
	recs map[string]*ledger.Record
	puts int
	// before, when set, runs before the Put with that 1-based number (for
	// another writer that wins a race).
	before map[int]func(f *fakeRecords)
	// fail, when set, fails the Put with that number without writing.
	fail map[int]error
}

var _ rotation.Records = (*fakeRecords)(nil)

// newRecords holds recs, each as if written once (version 1).
func newRecords(recs ...*ledger.Record) *fakeRecords {
	f := &fakeRecords{recs: map[string]*ledger.Record{}}
	for _, r := range recs {
		c := cloneRecord(r)
		if c.Version == 0 {
			c.Version = 1
		}
		f.recs[c.ID] = c
	}
	return f
}

func cloneRecord(r *ledger.Record) *ledger.Record {
	b, err := json.Marshal(r)
	if err != nil {
		panic(err)
	}
	var c ledger.Record
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}

func (f *fakeRecords) Get(_ context.Context, id string) (*ledger.Record, error) {
	r, ok := f.recs[id]
	if !ok {
		return nil, nil
	}
	return cloneRecord(r), nil
}

func (f *fakeRecords) Put(_ context.Context, r *ledger.Record) error {
	f.puts++
	if hook := f.before[f.puts]; hook != nil {
		hook(f)
	}
	if err := f.fail[f.puts]; err != nil {
		return err
	}
	cur, ok := f.recs[r.ID]
	if (!ok && r.Version != 0) || (ok && cur.Version != r.Version) {
		return &failures.ConflictError{ID: r.ID}
	}
	next := cloneRecord(r)
	next.Version = r.Version + 1
	f.recs[r.ID] = next
	r.Version = next.Version
	return nil
}

// record returns the stored record of id, or fails the test.
func (f *fakeRecords) record(t *testing.T, id string) *ledger.Record {
	t.Helper()
	r, ok := f.recs[id]
	if !ok {
		t.Fatalf("no rotation record %s", id)
	}
	return r
}

// TestFakeRecordsConflict pins the fake to ledger.Store's contract: a
// stale version or a second new record is a ConflictError.
func TestFakeRecordsConflict(t *testing.T) {
	ctx := context.Background()
	f := newRecords()
	a := &ledger.Record{ID: "K"}
	if err := f.Put(ctx, a); err != nil || a.Version != 1 {
		t.Fatalf("Put(new) = %v, version %d; want nil, 1", err, a.Version)
	}
	var cf *failures.ConflictError
	if err := f.Put(ctx, &ledger.Record{ID: "K"}); !errors.As(err, &cf) {
		t.Fatalf("Put(second new) = %v; want ConflictError", err)
	}
	stale, _ := f.Get(ctx, "K")
	if err := f.Put(ctx, a); err != nil || a.Version != 2 {
		t.Fatalf("Put(current) = %v, version %d; want nil, 2", err, a.Version)
	}
	if err := f.Put(ctx, stale); !errors.As(err, &cf) {
		t.Fatalf("Put(stale) = %v; want ConflictError", err)
	}
}

type fakeTopic struct{ messages []string }

func (f *fakeTopic) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.messages = append(f.messages, *in.Message)
	return &sns.PublishOutput{MessageId: aws.String("m")}, nil
}

var t0 = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

const (
	day30    = 30 * 24 * time.Hour // config.DefaultHoldDays
	adminARN = "arn:aws:sns:us-east-1:1:t"
)

func rotateTask() rotation.Task {
	return rotation.Task{Execution: "e", Item: rotation.Item{User: "alice", Action: "rotate", OldKey: rotation.KeyRef{ID: "OLD"}},
		NewKey: &rotation.NewKey{KeyID: "NEW", Rotation: 1}}
}

// rec is the record of alice's rotation of OLD to NEW in the given state,
// driven by this execution ("e").
func rec(state ledger.State, edit ...func(r *ledger.Record)) *ledger.Record {
	r := &ledger.Record{ID: "OLD", User: "alice", Action: "rotate", Rotation: 1, State: state,
		Owner: "e", LeaseUntil: t0.Add(time.Hour), NewKeyID: "NEW", NewKeyCreated: t0.Add(-time.Hour),
		History: []ledger.Entry{{At: t0.Add(-time.Hour), State: ledger.Started, Execution: "e"}}}
	if state != ledger.Started {
		r.History = append(r.History, ledger.Entry{At: t0.Add(-time.Hour), State: state, Execution: "e"})
	}
	for _, e := range edit {
		e(r)
	}
	return r
}

func notified(r *ledger.Record) {
	r.Notice, r.OwnerMails, r.AdminsTold = ledger.NoticeAccepted, 1, true
}

func deactivatedAt(at time.Time) func(r *ledger.Record) {
	return func(r *ledger.Record) {
		notified(r)
		r.DeactivatedAt, r.DeleteAfter = at, at.Add(config.DefaultGracePeriod)
		r.GraceExecution = rotation.GraceExecutionName(r.User, r.ID, r.Rotation)
	}
}

func copyKeys(m map[string]types.StatusType) map[string]types.StatusType {
	c := make(map[string]types.StatusType, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func lastEntry(r *ledger.Record) ledger.Entry {
	if len(r.History) == 0 {
		return ledger.Entry{}
	}
	return r.History[len(r.History)-1]
}

func TestDeactivateUnit(t *testing.T) {
	active := map[string]types.StatusType{"OLD": "Active", "NEW": "Active"}
	tests := []struct {
		name        string
		keys        map[string]types.StatusType
		rec         *ledger.Record // nil: no record
		wantErr     any            // a pointer to the wanted error type
		wantUpdates int
		wantOld     types.StatusType
		wantNext    string
		wantAfter   time.Time
		wantState   ledger.State // "": no record afterwards
		wantNote    string
		wantHeld    bool // HeldUntil = now + hold days
		wantAdmin   bool
	}{
		{name: "deactivates and records", keys: active, rec: rec(ledger.Notified, notified),
			wantUpdates: 1, wantOld: "Inactive", wantNext: rotation.NextGrace, wantAfter: t0.Add(7 * 24 * time.Hour), wantState: ledger.Deactivated},
		{name: "already inactive, recorded earlier: the recorded time wins", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"},
			rec: rec(ledger.Deactivated, deactivatedAt(t0.Add(-time.Hour))), wantOld: "Inactive", wantNext: rotation.NextGrace,
			wantAfter: t0.Add(7*24*time.Hour - time.Hour), wantState: ledger.Deactivated},
		{name: "recorded earlier, grace already over: delete now", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"},
			rec: rec(ledger.Deactivated, deactivatedAt(t0.Add(-8*24*time.Hour))), wantOld: "Inactive", wantNext: rotation.NextDelete,
			wantAfter: t0.Add(-24 * time.Hour), wantState: ledger.Deactivated},
		{name: "deactivated by a person first: the grace starts now", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"},
			rec: rec(ledger.Notified, notified), wantOld: "Inactive", wantNext: rotation.NextGrace, wantAfter: t0.Add(7 * 24 * time.Hour), wantState: ledger.Deactivated},
		{name: "new key missing: old key stays Active", keys: map[string]types.StatusType{"OLD": "Active"}, rec: rec(ledger.Notified, notified),
			wantOld: "Active", wantNext: rotation.NextStop, wantState: ledger.Ended, wantNote: "stays Active", wantHeld: true, wantAdmin: true},
		{name: "new key inactive: old key stays Active", keys: map[string]types.StatusType{"OLD": "Active", "NEW": "Inactive"}, rec: rec(ledger.Notified, notified),
			wantOld: "Active", wantNext: rotation.NextStop, wantState: ledger.Ended, wantNote: "stays Active", wantHeld: true, wantAdmin: true},
		{name: "new key not listed yet: retried", keys: map[string]types.StatusType{"OLD": "Active"},
			rec:     rec(ledger.Notified, notified, func(r *ledger.Record) { r.NewKeyCreated = t0.Add(-30 * time.Second) }),
			wantErr: new(*failures.NotVisibleYetError), wantOld: "Active", wantState: ledger.Notified},
		{name: "notice not accepted: nothing deactivated", keys: active, rec: rec(ledger.Stored, func(r *ledger.Record) { r.Notice = ledger.NoticeRefused }),
			wantOld: "Active", wantNext: rotation.NextStop, wantState: ledger.Stored, wantNote: "has not gone out"},
		{name: "re-activated by a person after keyrotor deactivated it: held", keys: active,
			rec: rec(ledger.Deactivated, deactivatedAt(t0.Add(-time.Hour))), wantOld: "Active", wantNext: rotation.NextStop,
			wantState: ledger.Held, wantNote: "re-activated", wantHeld: true, wantAdmin: true},
		{name: "no record: not keyrotor's rotation", keys: active, wantOld: "Active", wantNext: rotation.NextStop, wantNote: "no rotation record"},
		{name: "in flight in another execution", keys: active, rec: rec(ledger.Notified, notified, func(r *ledger.Record) { r.Owner = "other" }),
			wantOld: "Active", wantNext: rotation.NextStop, wantState: ledger.Notified, wantNote: "in flight in execution other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeIAM{keys: copyKeys(tt.keys)}
			recs := newRecords()
			if tt.rec != nil {
				recs = newRecords(tt.rec)
			}
			topic := &fakeTopic{}
			cfg := config.Default()
			cfg.AdminTopicARN = adminARN
			d := &rotation.Deactivator{IAM: f, Records: recs, Topic: topic, Config: cfg, Now: func() time.Time { return t0 }}
			got, err := d.Handle(context.Background(), rotateTask())
			if tt.wantErr != nil {
				if err == nil || !errors.As(err, tt.wantErr) {
					t.Fatalf("Handle = %+v, %v; want %T", got, err, tt.wantErr)
				}
			} else if err != nil || got.Next != tt.wantNext || !got.DeleteAfter.Equal(tt.wantAfter) || !strings.Contains(got.Note, tt.wantNote) {
				t.Fatalf("Handle = %+v, %v; want next %s, deleteAfter %v, note containing %q", got, err, tt.wantNext, tt.wantAfter, tt.wantNote)
			}
			if f.updates != tt.wantUpdates || f.keys["OLD"] != tt.wantOld {
				t.Fatalf("updates %d, OLD %s; want %d, %s", f.updates, f.keys["OLD"], tt.wantUpdates, tt.wantOld)
			}
			if (len(topic.messages) > 0) != tt.wantAdmin {
				t.Fatalf("admin messages %q; want some: %v", topic.messages, tt.wantAdmin)
			}
			if tt.wantState == "" {
				if len(recs.recs) != 0 {
					t.Fatalf("records %v; want none", recs.recs)
				}
				return
			}
			r := recs.record(t, "OLD")
			if r.State != tt.wantState {
				t.Fatalf("record state %s; want %s (history %+v)", r.State, tt.wantState, r.History)
			}
			if tt.wantHeld != r.HeldUntil.Equal(t0.Add(day30)) {
				t.Fatalf("heldUntil %v; held %v wanted", r.HeldUntil, tt.wantHeld)
			}
			if tt.wantState == ledger.Deactivated {
				if !r.DeleteAfter.Equal(tt.wantAfter) || got.GraceExecution != "alice-OLD-r1" || r.GraceExecution != got.GraceExecution || got.Rotation != 1 {
					t.Fatalf("record deleteAfter %v grace %q, output %+v; want %v, alice-OLD-r1", r.DeleteAfter, r.GraceExecution, got, tt.wantAfter)
				}
				if e := lastEntry(r); e.State != ledger.Deactivated || e.Execution != "e" {
					t.Fatalf("last history entry %+v; want deactivated by e", e)
				}
			}
			if tt.wantState == ledger.Held || tt.wantState == ledger.Ended {
				if r.Owner != "" || r.ExpiresAt == 0 || lastEntry(r).State != tt.wantState {
					t.Fatalf("final record %+v; want no owner, an expiry and a %s entry", r, tt.wantState)
				}
			}
		})
	}
}

func TestDeleteUnit(t *testing.T) {
	pastGrace := deactivatedAt(t0.Add(-8 * 24 * time.Hour))
	tests := []struct {
		name      string
		keys      map[string]types.StatusType
		rec       *ledger.Record // nil: no record
		rotation  int            // the deactivation output's rotation (0: absent)
		deleted   bool
		reason    string
		adminMsg  bool
		wantState ledger.State
		wantHeld  bool
	}{
		{name: "past grace: deleted, rotation done", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"}, rec: rec(ledger.Deactivated, pastGrace),
			rotation: 1, deleted: true, reason: "deleted after", wantState: ledger.Deleted},
		{name: "already gone: success", keys: map[string]types.StatusType{"NEW": "Active"}, rec: rec(ledger.Deactivated, pastGrace),
			deleted: true, reason: "already deleted", wantState: ledger.Deleted},
		{name: "re-activated: kept and held", keys: map[string]types.StatusType{"OLD": "Active", "NEW": "Active"}, rec: rec(ledger.Deactivated, pastGrace),
			reason: "re-activated", adminMsg: true, wantState: ledger.Held, wantHeld: true},
		{name: "new key gone: kept", keys: map[string]types.StatusType{"OLD": "Inactive"}, rec: rec(ledger.Deactivated, pastGrace),
			reason: "new key", adminMsg: true, wantState: ledger.Ended, wantHeld: true},
		{name: "new key inactive: kept", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Inactive"}, rec: rec(ledger.Deactivated, pastGrace),
			reason: "new key", adminMsg: true, wantState: ledger.Ended, wantHeld: true},
		{name: "not keyrotor's: kept", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"}, reason: "no record"},
		{name: "too early: kept", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"}, rec: rec(ledger.Deactivated, deactivatedAt(t0.Add(-time.Hour))),
			reason: "grace period runs until", wantState: ledger.Deactivated},
		{name: "not deactivated in this rotation: kept", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"}, rec: rec(ledger.Notified, notified),
			reason: "the rotation is notified", wantState: ledger.Notified},
		{name: "a later rotation is current: kept", keys: map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"},
			rec: rec(ledger.Deactivated, pastGrace, func(r *ledger.Record) { r.Rotation = 2 }), rotation: 1, reason: "rotation 2", wantState: ledger.Deactivated},
		{name: "held: kept", keys: map[string]types.StatusType{"OLD": "Active", "NEW": "Active"},
			rec: rec(ledger.Held, pastGrace, func(r *ledger.Record) { r.HeldUntil, r.Owner = t0.Add(day30), "" }), reason: "the rotation is held", wantState: ledger.Held, wantHeld: true},
		{name: "deleted by an earlier attempt: success, nothing called", keys: map[string]types.StatusType{"NEW": "Active"},
			rec: rec(ledger.Deleted, pastGrace), deleted: true, reason: "already deleted", wantState: ledger.Deleted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeIAM{keys: copyKeys(tt.keys)}
			recs := newRecords()
			if tt.rec != nil {
				recs = newRecords(tt.rec)
			}
			topic := &fakeTopic{}
			cfg := config.Default()
			cfg.AdminTopicARN = adminARN
			d := &rotation.Deleter{IAM: f, Records: recs, Topic: topic, Config: cfg, Now: func() time.Time { return t0 }}
			task := rotateTask()
			if tt.rotation != 0 {
				task.Deactivation = &rotation.Deactivation{KeyID: "OLD", Rotation: tt.rotation, Next: rotation.NextGrace}
			}
			got, err := d.Handle(context.Background(), task)
			if err != nil || got.Deleted != tt.deleted || !strings.Contains(got.Reason, tt.reason) {
				t.Fatalf("Handle = %+v, %v; want deleted=%v, reason containing %q", got, err, tt.deleted, tt.reason)
			}
			if _, still := f.keys["OLD"]; still == tt.deleted {
				t.Fatalf("OLD present = %v after deleted=%v", still, tt.deleted)
			}
			if f.keys["OLD"] == "Active" && f.updates != 0 {
				t.Fatalf("a re-activated key was touched")
			}
			if (len(topic.messages) > 0) != tt.adminMsg {
				t.Fatalf("admin messages %v; want %v", topic.messages, tt.adminMsg)
			}
			if tt.rec == nil {
				if len(recs.recs) != 0 {
					t.Fatalf("delete created a record: %v", recs.recs)
				}
				return
			}
			r := recs.record(t, "OLD")
			if r.State != tt.wantState || tt.wantHeld != r.HeldUntil.Equal(t0.Add(day30)) {
				t.Fatalf("record state %s heldUntil %v; want %s, held %v", r.State, r.HeldUntil, tt.wantState, tt.wantHeld)
			}
			if tt.wantState == ledger.Deleted && tt.rec.State != ledger.Deleted {
				if r.Owner != "" || r.ExpiresAt == 0 || lastEntry(r).State != ledger.Deleted || !strings.Contains(r.Outcome, tt.reason) {
					t.Fatalf("finished record %+v; want no owner, an expiry, a deleted entry and the reason", r)
				}
			}
			if tt.rec.State == ledger.Deleted && (f.deletes != 0 || r.Version != 1) {
				t.Fatalf("a finished rotation was acted on again: %d deletes, record version %d", f.deletes, r.Version)
			}
		})
	}
}

// TestDeletePasswordUnit: a console password is removed after its grace,
// unless it was used after the notice, or a person set a new one (held),
// or it is gone already.
func TestDeletePasswordUnit(t *testing.T) {
	noticeAt := t0.Add(-8 * 24 * time.Hour)
	usedAfter := noticeAt.Add(time.Hour)
	usedBefore := noticeAt.Add(-time.Hour)
	set := t0.Add(-200 * 24 * time.Hour)
	setLater, setSubsecond := noticeAt.Add(2*24*time.Hour), set.Add(300*time.Millisecond)
	tests := []struct {
		name      string
		used, set *time.Time
		gone      bool
		deleted   bool
		wantState ledger.State
		adminMsg  bool
	}{
		{"never used", nil, nil, false, true, ledger.Deleted, false},
		{"used before the notice", &usedBefore, nil, false, true, ledger.Deleted, false},
		{"used after the notice: kept", &usedAfter, nil, false, false, ledger.Ended, true},
		{"the noticed password, its CreateDate in milliseconds", nil, &setSubsecond, false, true, ledger.Deleted, false},
		{"re-set by a person after the notice: kept, held", nil, &setLater, false, false, ledger.Held, true},
		{"re-set and used: kept, held", &usedAfter, &setLater, false, false, ledger.Held, true},
		{"already removed", nil, nil, true, true, ledger.Deleted, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := ledger.PasswordID("carol", set)
			r := rec(ledger.Deactivated, deactivatedAt(noticeAt), func(r *ledger.Record) {
				r.ID, r.User, r.Action, r.NewKeyID, r.NewKeyCreated = id, "carol", "retire-password", "", time.Time{}
			})
			recs := newRecords(r)
			f := &fakeIAM{keys: map[string]types.StatusType{}, passwordUsed: tt.used, passwordSet: tt.set, profileDeleted: tt.gone}
			topic := &fakeTopic{}
			cfg := config.Default()
			cfg.AdminTopicARN = adminARN
			d := &rotation.Deleter{IAM: f, Records: recs, Topic: topic, Config: cfg, Now: func() time.Time { return t0 }}
			task := rotation.Task{Execution: "e", Item: rotation.Item{User: "carol", Action: "retire-password", OldKey: rotation.KeyRef{ID: "password", Created: set}}}
			got, err := d.Handle(context.Background(), task)
			if err != nil || got.Deleted != tt.deleted || f.profileDeleted != tt.deleted {
				t.Fatalf("Handle = %+v, %v; profile deleted %v; want deleted=%v", got, err, f.profileDeleted, tt.deleted)
			}
			if st := recs.record(t, id).State; st != tt.wantState {
				t.Fatalf("record state %s; want %s (the rotation is over either way)", st, tt.wantState)
			}
			if (len(topic.messages) > 0) != tt.adminMsg {
				t.Fatalf("admin messages %v; want %v", topic.messages, tt.adminMsg)
			}
		})
	}
}

// fakeMail records sends and can fail them.
type fakeMail struct {
	sent int
	err  error
}

func (f *fakeMail) SendEmail(context.Context, *sesv2.SendEmailInput, ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.sent++
	return &sesv2.SendEmailOutput{MessageId: aws.String("mail-1")}, nil
}

func newNotifier(recs rotation.Records, mail rotation.MailAPI, topic rotation.PublishAPI) *rotation.Notifier {
	cfg := config.Default()
	cfg.Sender, cfg.AdminTopicARN = "keyrotor@example.com", adminARN
	return &rotation.Notifier{Records: recs, Mail: mail, Topic: topic, Config: cfg, Now: func() time.Time { return t0 }}
}

// TestNotifyRecordUnit: the rotation record makes the owner's mail go out
// once per rotation: each recorded notice outcome, and a clearly refused,
// throttled or unknown send.
func TestNotifyRecordUnit(t *testing.T) {
	refused := &smithy.GenericAPIError{Code: "MessageRejected", Message: "Email address not verified", Fault: smithy.FaultClient}
	tests := []struct {
		name           string
		notice         string // the recorded notice before
		adminsTold     bool
		sendErr        error
		wantStatus     string
		wantAccepted   bool
		wantSent       int
		wantErr        string
		wantNotice     string // recorded afterwards
		wantOwnerMails int
		wantAdmin      int  // messages published
		wantAttention  bool // a condition for a person is recorded and told
		wantState      ledger.State
	}{
		{name: "first time", wantStatus: "sent", wantAccepted: true, wantSent: 1, wantNotice: ledger.NoticeAccepted, wantOwnerMails: 1, wantAdmin: 1, wantState: ledger.Notified},
		{name: "already done", notice: ledger.NoticeAccepted, adminsTold: true, wantStatus: "already-sent", wantAccepted: true,
			wantNotice: ledger.NoticeAccepted, wantOwnerMails: 1, wantState: ledger.Notified},
		{name: "mailed, admins not yet told", notice: ledger.NoticeAccepted, wantStatus: "already-sent", wantAccepted: true,
			wantNotice: ledger.NoticeAccepted, wantOwnerMails: 1, wantAdmin: 1, wantState: ledger.Notified},
		{name: "earlier send's outcome unknown: mailed again, attention cleared", notice: ledger.NoticeUnknown, wantStatus: "sent", wantAccepted: true, wantSent: 1,
			wantNotice: ledger.NoticeAccepted, wantOwnerMails: 1, wantAdmin: 1, wantState: ledger.Notified},
		{name: "earlier send refused: mailed again", notice: ledger.NoticeRefused, wantStatus: "sent", wantAccepted: true, wantSent: 1,
			wantNotice: ledger.NoticeAccepted, wantOwnerMails: 1, wantAdmin: 1, wantState: ledger.Notified},
		{name: "refused by SES: recorded, admins told, nothing deactivated", sendErr: refused, wantStatus: "refused",
			wantNotice: ledger.NoticeRefused, wantAdmin: 1, wantAttention: true, wantState: ledger.Stored},
		{name: "throttled: nothing recorded, retried", sendErr: &smithy.GenericAPIError{Code: "TooManyRequestsException"}, wantErr: "TooManyRequests", wantState: ledger.Stored},
		{name: "timed out: unknown, admins told, tried again next run", sendErr: context.DeadlineExceeded, wantStatus: "unknown",
			wantNotice: ledger.NoticeUnknown, wantAdmin: 1, wantAttention: true, wantState: ledger.Stored},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rec(ledger.Stored, func(r *ledger.Record) {
				r.Notice, r.AdminsTold = tt.notice, tt.adminsTold
				if tt.notice == ledger.NoticeAccepted {
					r.State, r.OwnerMails, r.NoticeChannel, r.MessageID = ledger.Notified, 1, "mail", "mail-0"
				}
				if tt.notice == ledger.NoticeUnknown || tt.notice == ledger.NoticeRefused {
					r.Attention, r.AttentionSince, r.AttentionTold = "the earlier send", t0.Add(-24*time.Hour), true
				}
			})
			recs := newRecords(r)
			mail := &fakeMail{err: tt.sendErr}
			topic := &fakeTopic{}
			n := newNotifier(recs, mail, topic)
			task := rotateTask()
			task.Item.Email = "alice@example.com"
			got, err := n.Handle(context.Background(), task)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(fmt.Sprintf("%T %v", err, err), tt.wantErr) {
					t.Fatalf("Handle error = %v; want %s", err, tt.wantErr)
				}
			} else if err != nil || got.MailStatus != tt.wantStatus || got.Accepted != tt.wantAccepted {
				t.Fatalf("Handle = %+v, %v; want status %s, accepted %v", got, err, tt.wantStatus, tt.wantAccepted)
			}
			if mail.sent != tt.wantSent || len(topic.messages) != tt.wantAdmin {
				t.Fatalf("sent %d mails, %d admin messages; want %d, %d", mail.sent, len(topic.messages), tt.wantSent, tt.wantAdmin)
			}
			after := recs.record(t, "OLD")
			if after.Notice != tt.wantNotice || after.OwnerMails != tt.wantOwnerMails || after.State != tt.wantState {
				t.Fatalf("record notice %q, owner mails %d, state %s; want %q, %d, %s", after.Notice, after.OwnerMails, after.State, tt.wantNotice, tt.wantOwnerMails, tt.wantState)
			}
			if tt.wantAttention != (after.Attention != "" && after.AttentionTold) {
				t.Fatalf("record attention %q (told %v); want one: %v", after.Attention, after.AttentionTold, tt.wantAttention)
			}
			if tt.wantAccepted && (after.Attention != "" || !after.AdminsTold) {
				t.Fatalf("accepted notice left attention %q, admins told %v", after.Attention, after.AdminsTold)
			}
			if tt.wantStatus == "refused" || tt.wantStatus == "unknown" {
				if got.Waiting == "" || got.Skipped != "" || !strings.Contains(topic.messages[0], "OLD") {
					t.Fatalf("not-sent notice %+v, admin message %q; want the reason, naming the key", got, topic.messages)
				}
			}
		})
	}
}

// TestNotifyRefusedTellsAdminsOnce: a refusal that persists over runs is
// recorded each time but told to the admins once.
func TestNotifyRefusedTellsAdminsOnce(t *testing.T) {
	recs := newRecords(rec(ledger.Stored))
	mail := &fakeMail{err: &smithy.GenericAPIError{Code: "MessageRejected", Message: "Email address not verified", Fault: smithy.FaultClient}}
	topic := &fakeTopic{}
	n := newNotifier(recs, mail, topic)
	task := rotateTask()
	task.Item.Email = "alice@example.com"
	for i := range 3 {
		got, err := n.Handle(context.Background(), task)
		if err != nil || got.MailStatus != ledger.NoticeRefused || got.Accepted {
			t.Fatalf("run %d = %+v, %v; want refused, not accepted, no error", i+1, got, err)
		}
	}
	if len(topic.messages) != 1 {
		t.Fatalf("admin messages %d; want 1 over three refused runs", len(topic.messages))
	}
	mail.err = nil
	got, err := n.Handle(context.Background(), task)
	if err != nil || got.MailStatus != "sent" || mail.sent != 1 {
		t.Fatalf("after the fix = %+v, %v, %d mails; want one mail sent", got, err, mail.sent)
	}
	if r := recs.record(t, "OLD"); r.Attention != "" || r.OwnerMails != 1 {
		t.Fatalf("record attention %q, owner mails %d; want cleared, 1", r.Attention, r.OwnerMails)
	}
}

// TestNotifyUnit: the notices that start or skip a rotation.
func TestNotifyUnit(t *testing.T) {
	retire := rotation.Task{Execution: "e", Item: rotation.Item{User: "bob", Email: "bob@example.com", Action: "retire", OldKey: rotation.KeyRef{ID: "UNUSED"}}}
	noMail := rotateTask()
	elsewhere := rotateTask()
	elsewhere.Item.Email = "alice@example.com"
	tests := []struct {
		name         string
		task         rotation.Task
		recs         []*ledger.Record
		noTopic      bool
		wantStatus   string
		wantAccepted bool
		wantSent     int
		wantAdmin    int
		wantRec      string // the record checked afterwards
		wantState    ledger.State
		wantChannel  string
	}{
		{name: "retirement: notify starts the rotation", task: retire, wantStatus: "sent", wantAccepted: true, wantSent: 1, wantAdmin: 1,
			wantRec: "UNUSED", wantState: ledger.Notified, wantChannel: "mail"},
		{name: "no owner address: the admins' message is the notice", task: noMail, recs: []*ledger.Record{rec(ledger.Stored)},
			wantStatus: "admins", wantAccepted: true, wantAdmin: 1, wantRec: "OLD", wantState: ledger.Notified, wantChannel: "admins"},
		{name: "no owner address and no admin topic: nobody told, refused", task: noMail, recs: []*ledger.Record{rec(ledger.Stored)}, noTopic: true,
			wantStatus: ledger.NoticeRefused, wantRec: "OLD", wantState: ledger.Stored},
		{name: "in flight in another execution: skipped", task: elsewhere, recs: []*ledger.Record{rec(ledger.Stored, func(r *ledger.Record) { r.Owner = "other" })},
			wantStatus: "skipped", wantRec: "OLD", wantState: ledger.Stored},
		{name: "rotation with no record: skipped", task: elsewhere, wantStatus: "skipped"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recs := newRecords(tt.recs...)
			mail, topic := &fakeMail{}, &fakeTopic{}
			n := newNotifier(recs, mail, topic)
			if tt.noTopic {
				n.Config.AdminTopicARN = ""
			}
			got, err := n.Handle(context.Background(), tt.task)
			if err != nil || got.MailStatus != tt.wantStatus || got.Accepted != tt.wantAccepted {
				t.Fatalf("Handle = %+v, %v; want status %s, accepted %v", got, err, tt.wantStatus, tt.wantAccepted)
			}
			if mail.sent != tt.wantSent || len(topic.messages) != tt.wantAdmin {
				t.Fatalf("sent %d mails, %d admin messages; want %d, %d", mail.sent, len(topic.messages), tt.wantSent, tt.wantAdmin)
			}
			if tt.wantRec == "" {
				if len(recs.recs) != 0 {
					t.Fatalf("records %v; want none", recs.recs)
				}
				return
			}
			r := recs.record(t, tt.wantRec)
			if r.State != tt.wantState || r.NoticeChannel != tt.wantChannel {
				t.Fatalf("record state %s channel %q; want %s, %q", r.State, r.NoticeChannel, tt.wantState, tt.wantChannel)
			}
			if tt.task.Item.Action == "retire" && (r.Action != "retire" || r.User != "bob" || r.Rotation != 1 || r.Owner != "e" || r.History[0].State != ledger.Started) {
				t.Fatalf("retirement record %+v; want rotation 1 of bob's retire, started and owned by e", r)
			}
			if tt.wantState == ledger.Notified && (r.Notice != ledger.NoticeAccepted || !r.AdminsTold) {
				t.Fatalf("record notice %q admins told %v; want accepted, told", r.Notice, r.AdminsTold)
			}
		})
	}
}

// TestNotifyLostRaceUnit: the mail cannot be taken back, so when another
// writer changed the record between notify's read and its write of the
// accepted notice, notify re-applies the notice to a fresh read.
func TestNotifyLostRaceUnit(t *testing.T) {
	recs := newRecords(rec(ledger.Stored))
	recs.before = map[int]func(*fakeRecords){2: func(f *fakeRecords) {
		r := f.recs["OLD"]
		r.Log(t0, r.State, "admin", "looked at by a person")
		r.Version++
	}}
	mail, topic := &fakeMail{}, &fakeTopic{}
	n := newNotifier(recs, mail, topic)
	task := rotateTask()
	task.Item.Email = "alice@example.com"
	got, err := n.Handle(context.Background(), task)
	if err != nil || !got.Accepted || mail.sent != 1 {
		t.Fatalf("Handle = %+v, %v, %d mails; want accepted, one mail", got, err, mail.sent)
	}
	r := recs.record(t, "OLD")
	if r.Notice != ledger.NoticeAccepted || r.OwnerMails != 1 || r.State != ledger.Notified {
		t.Fatalf("record notice %q owner mails %d state %s; want accepted, 1, notified", r.Notice, r.OwnerMails, r.State)
	}
	found := false
	for _, e := range r.History {
		found = found || e.Note == "looked at by a person"
	}
	if !found {
		t.Fatalf("the other writer's entry was lost: %+v", r.History)
	}
}

// TestNotifyRecordWriteFailsUnit: SES accepted the owner's mail but the
// write recording it failed (DynamoDB throttled, 5xx): the step fails and
// is retried. The retry must not mail the owner a second time.
func TestNotifyRecordWriteFailsUnit(t *testing.T) {
	recs := newRecords(rec(ledger.Stored))
	// Put 1 refreshes the lease; put 2 records the accepted notice.
	recs.fail = map[int]error{2: &failures.ThrottlingError{Op: "PutItem", Msg: "injected"}}
	mail, topic := &fakeMail{}, &fakeTopic{}
	n := newNotifier(recs, mail, topic)
	task := rotateTask()
	task.Item.Email = "alice@example.com"
	_, err := n.Handle(context.Background(), task)
	for i := 0; err != nil && i < 3; i++ { // the orchestrator's Retry
		_, err = n.Handle(context.Background(), task)
	}
	if err != nil || mail.sent != 1 {
		t.Fatalf("after retries: %v, %d mails; want one mail", err, mail.sent)
	}
}
