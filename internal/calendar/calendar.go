// Package calendar simulates keyrotor over days: the daily schedule's
// executions over an emulated account of many users, with people acting at
// random between and during runs (re-activating, deactivating, deleting and
// creating keys, adding tags up to IAM's limit, deleting users, answering
// the admins' messages, and across kinds: re-activating retired keys,
// undoing their own deactivation in a window, acting between a failed step
// and the takeover), SES refusing mail on some days, faults at random AWS
// calls, and steps whose answer is lost after they committed (retried, or
// failing the execution). After every simulated day it checks keyrotor's
// guarantees on the account.
//
// Each day runs the same step handlers as production, in the order the
// state machine's definition gives (FlowOrder, checked against the
// synthesized definition by a test), with one clock shared by the steps
// and moto's settable clock. Step retries follow the definition's Retry
// lists (the named retryable errors); a step that fails otherwise fails
// that key's child, as in the Distributed Map.
package calendar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// Day is a simulated day.
const Day = 24 * time.Hour

// FlowOrder is the order of one key's steps in the daily definition: the
// Task states reached from the child's first state on the way to a
// rotation's end. A test compares it with the synthesized definition.
var FlowOrder = []string{"CreateAndStoreNewKey", "DeliverNewKey", "NotifyOwner", "DeactivateOldKey", "StartGracePeriod"}

// GraceOrder is the order of the grace-and-delete definition.
var GraceOrder = []string{"WaitForGracePeriod", "DeleteOldKey"}

// WindowOrder is the order of a key's own execution with an adoption
// window (started by StartAdoptionWindow after NotifyOwner): checks, each
// after a Wait, until the switch-over, then the deactivation and the grace
// period.
var WindowOrder = []string{"CheckAdoption", "DeactivateAfterSwitchOver", "WaitForGracePeriod", "DeleteOldKey"}

// Clients are the AWS clients of the emulated account.
type Clients struct {
	IAM      *iam.Client
	Secrets  *secretsmanager.Client
	SES      *sesv2.Client
	SNS      *sns.Client
	S3       *s3.Client
	DynamoDB *dynamodb.Client
	STS      *sts.Client
	Config   aws.Config
}

// StepIAM is every IAM call the steps make (*iam.Client implements it);
// tests may wrap it to play IAM's lost answers or eventual consistency.
type StepIAM interface {
	rotation.FindIAM
	rotation.CreateIAM
	UpdateAccessKey(ctx context.Context, in *iam.UpdateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.UpdateAccessKeyOutput, error)
	GetLoginProfile(ctx context.Context, in *iam.GetLoginProfileInput, optFns ...func(*iam.Options)) (*iam.GetLoginProfileOutput, error)
	DeleteLoginProfile(ctx context.Context, in *iam.DeleteLoginProfileInput, optFns ...func(*iam.Options)) (*iam.DeleteLoginProfileOutput, error)
}

var _ StepIAM = (*iam.Client)(nil)

// World is the simulated account and keyrotor's state over days.
type World struct {
	// StepIAM, when set, replaces Steps.IAM for the steps.
	StepIAM StepIAM
	// People acts on the account; Steps are keyrotor's clients (through
	// the fault proxy when faults are on). Both reach the same account.
	People, Steps Clients
	Records       *ledger.Store
	Config        config.Config
	// SetClock moves the shared clock (moto's offset from real time).
	SetClock func(offset time.Duration) error
	// Endpoint is the emulator's endpoint.
	Endpoint string
	// Members are the member accounts of the organization mode (nil: one
	// account). With members, Config is the hub's in organization mode
	// (OrgScope set, HomeAccount the account of People and Steps): find
	// lists the organization, and each key's steps act in its user's
	// account through lambdastep.PerAccount (the member role assumed with
	// the Steps clients, as the hub's functions do).
	Members []Member

	// Destinations are the users' destination documents (nil: nobody
	// has any), and Delivery what the deliver step builds them with.
	Destinations rotation.Documents
	Delivery     delivery.Env

	orgSteps *stepFuncs // the organization mode's per-account steps, built once

	// Lost, when set, loses step answers after the step committed (see
	// LostAnswers).
	Lost *LostAnswers
	// Panics are the steps that panicked (a violation: no step may panic
	// on any input), each with its input.
	Panics []string

	offset time.Duration
	runs   int
	// plan is the last daily run's plan (nil when its find failed): a
	// violation says what find made of the key.
	plan   *rotation.Plan
	grace  []PendingGrace
	window []*PendingWindow
	starts map[string]int
	logs   bytes.Buffer // every step's JSON log
	out    bytes.Buffer // every step's output
	mu     sync.Mutex

	// Truth: what keyrotor and people did, with the simulated time.
	Acts []Act
	// sent is every mail SES accepted (or may have: an unknown outcome)
	// and every admin message, as the steps' clients saw them.
	sent Sent
}

// LostAnswers lets a step's invocation commit all its effects and then
// fails its answer, as a Lambda whose response was lost (a timeout after
// the work, a 5xx after the write, Sandbox.Timedout) does: at random
// invocations (Rate), of every step. Most are retried at once (the Task's
// Retry: the step runs again in the same execution); a Final share fails
// the step for good (the execution fails, and a later one takes over).
type LostAnswers struct {
	Rate, Final float64
	R           *rand.Rand
	mu          sync.Mutex
	// Lost counts the answers lost, by step.
	Lost map[string]int
}

// lose draws whether this invocation's answer is lost, and whether for good.
func (l *LostAnswers) lose(step string) (lost, final bool) {
	if l == nil {
		return false, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.R.Float64() >= l.Rate {
		return false, false
	}
	if l.Lost == nil {
		l.Lost = map[string]int{}
	}
	l.Lost[step]++
	return true, l.R.Float64() < l.Final
}

// invoke runs one invocation of step: a panic is recorded (and fails the
// invocation as Lambda would), and with LostAnswers its answer may be
// lost after it committed.
func invoke[T any](w *World, step string, in any, f func() (T, error)) func() (T, error) {
	return func() (v T, err error) {
		defer func() {
			if p := recover(); p != nil {
				b, _ := json.Marshal(in)
				w.mu.Lock()
				w.Panics = append(w.Panics, fmt.Sprintf("%s panicked: %v (input %s)", step, p, b))
				w.mu.Unlock()
				var zero T
				v, err = zero, &failures.StepError{Msg: fmt.Sprintf("%s: Runtime.ExitError (panic)", step)}
			}
		}()
		v, err = f()
		if err != nil {
			return v, err
		}
		if lost, final := w.Lost.lose(step); lost {
			var zero T
			if final {
				return zero, &failures.StepError{Msg: step + ": Sandbox.Timedout after the step committed (simulated lost answer)"}
			}
			return zero, &failures.TransientError{Op: step, Msg: "answer lost after the step committed (simulated)"}
		}
		return v, nil
	}
}

// Member is a member account of the simulated organization.
type Member struct {
	ID, Name string
	// People acts in the member account (a person there).
	People Clients
}

// Org reports whether the world is an organization (the hub and members).
func (w *World) Org() bool { return len(w.Members) > 0 }

// Accounts lists the accounts' keys as users are identified: "" (the hub,
// or the one account) and each member's id.
func (w *World) Accounts() []string {
	out := []string{""}
	for _, m := range w.Members {
		out = append(out, m.ID)
	}
	return out
}

// AccountID is the account id of an account key ("": the hub's, or the
// emulator's default account in single-account mode).
func (w *World) AccountID(account string) string {
	if account != "" {
		return account
	}
	if w.Config.HomeAccount != "" {
		return w.Config.HomeAccount
	}
	return defaultAccount
}

// defaultAccount is moto's default account (the hub).
const defaultAccount = "123456789012"

// PeopleIn are the people's clients acting in account ("": the hub).
func (w *World) PeopleIn(account string) Clients {
	for _, m := range w.Members {
		if m.ID == account {
			return m.People
		}
	}
	return w.People
}

// Ref identifies a user: its name in the hub (or the one account), and
// "<account>:<name>" in a member (a colon is in no IAM user name). The home
// account's id is the hub's ref, "" (as Item.Account and the records).
func (w *World) Ref(account, user string) string {
	if account == "" || account == w.Config.HomeAccount {
		return user
	}
	return account + ":" + user
}

// RecRef is the ref of a rotation record's user.
func (w *World) RecRef(rec *ledger.Record) string { return w.Ref(rec.Account, rec.User) }

// SplitRef returns a ref's account ("": the hub) and user name.
func SplitRef(ref string) (account, user string) {
	if a, u, ok := strings.Cut(ref, ":"); ok {
		return a, u
	}
	return "", ref
}

// recordingMail passes sends to SES and notes each one that SES accepted or
// whose outcome is unknown (it may have gone out).
type recordingMail struct {
	rotation.MailAPI
	w *World
}

func (r recordingMail) SendEmail(ctx context.Context, in *sesv2.SendEmailInput, optFns ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	out, err := r.MailAPI.SendEmail(ctx, in, optFns...)
	if err == nil || failures.IsTransient(err) {
		var body, subject strings.Builder
		if c := in.Content; c != nil && c.Simple != nil && c.Simple.Subject != nil {
			subject.WriteString(aws.ToString(c.Simple.Subject.Data))
		}
		if c := in.Content; c != nil && c.Simple != nil && c.Simple.Body != nil {
			if c.Simple.Body.Text != nil {
				body.WriteString(aws.ToString(c.Simple.Body.Text.Data))
			}
			if c.Simple.Body.Html != nil {
				body.WriteString(aws.ToString(c.Simple.Body.Html.Data))
			}
		}
		r.w.mu.Lock()
		r.w.sent.Mails = append(r.w.sent.Mails, Mail{To: in.Destination.ToAddresses, Subject: subject.String(), Body: body.String()})
		r.w.mu.Unlock()
	}
	return out, err
}

// recordingTopic notes every admin message published (or maybe published).
type recordingTopic struct {
	rotation.PublishAPI
	w *World
}

func (r recordingTopic) Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error) {
	out, err := r.PublishAPI.Publish(ctx, in, optFns...)
	if err == nil || failures.IsTransient(err) {
		r.w.mu.Lock()
		r.w.sent.Messages = append(r.w.sent.Messages, aws.ToString(in.Subject)+"\n"+aws.ToString(in.Message))
		r.w.mu.Unlock()
	}
	return out, err
}

func (w *World) mail() rotation.MailAPI     { return recordingMail{MailAPI: w.Steps.SES, w: w} }
func (w *World) topic() rotation.PublishAPI { return recordingTopic{PublishAPI: w.Steps.SNS, w: w} }

// Act is one change to a key, by keyrotor or a person.
type Act struct {
	At     time.Time
	By     string // "keyrotor" or "person"
	What   string // deactivate, delete, reactivate, create, create-unknown (keyrotor's create whose answer was lost), delete-user
	User   string // a Ref: account and name
	KeyID  string
	Detail string
}

// PendingGrace is a grace-and-delete execution waiting out its grace.
type PendingGrace struct {
	Name string
	Task rotation.Task
}

// PendingWindow is a key's own execution in its adoption window, waiting
// for its next check.
type PendingWindow struct {
	Name      string
	Task      rotation.Task
	NextCheck time.Time
}

// Windows lists the adoption windows running (waiting for a check).
func (w *World) Windows() []PendingWindow {
	out := make([]PendingWindow, len(w.window))
	for i, p := range w.window {
		out[i] = *p
	}
	return out
}

// DropWindows forgets the running adoption windows, as if their executions
// failed and nobody redrove them.
func (w *World) DropWindows() { w.window = nil }

// Pending lists the grace-and-delete executions started and not yet run.
func (w *World) Pending() []PendingGrace { return append([]PendingGrace(nil), w.grace...) }

func (w *World) stepIAM() StepIAM {
	if w.StepIAM != nil {
		return w.StepIAM
	}
	return w.Steps.IAM
}

// Now is the shared clock.
func (w *World) Now() time.Time { return time.Now().Add(w.offset) }

// Advance moves the shared clock by d.
func (w *World) Advance(d time.Duration) error {
	w.offset += d
	return w.SetClock(w.offset)
}

// Offset is the shared clock's offset from real time.
func (w *World) Offset() time.Duration { return w.offset }

func (w *World) log() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&lockedWriter{w: &w.logs, mu: &w.mu}, nil))
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// recordingIAM passes every call to IAM and notes keyrotor's changes to
// keys in the world's truth (it changes nothing about the calls).
type recordingIAM struct {
	StepIAM
	w       *World
	account string // the account the client acts in ("": the hub)
}

func (r recordingIAM) CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error) {
	out, err := r.StepIAM.CreateAccessKey(ctx, in, optFns...)
	switch {
	case err == nil && out.AccessKey != nil:
		r.w.act("keyrotor", "create", r.w.Ref(r.account, aws.ToString(in.UserName)), aws.ToString(out.AccessKey.AccessKeyId), "")
	case err != nil && failures.IsTransient(err):
		r.w.act("keyrotor", "create-unknown", r.w.Ref(r.account, aws.ToString(in.UserName)), "", err.Error())
	}
	return out, err
}

func (r recordingIAM) UpdateAccessKey(ctx context.Context, in *iam.UpdateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.UpdateAccessKeyOutput, error) {
	out, err := r.StepIAM.UpdateAccessKey(ctx, in, optFns...)
	if err == nil || failures.IsTransient(err) {
		r.w.act("keyrotor", "deactivate", r.w.Ref(r.account, aws.ToString(in.UserName)), aws.ToString(in.AccessKeyId), string(in.Status))
	}
	return out, err
}

func (r recordingIAM) DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, optFns ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error) {
	out, err := r.StepIAM.DeleteAccessKey(ctx, in, optFns...)
	if err == nil || failures.IsTransient(err) {
		r.w.act("keyrotor", "delete", r.w.Ref(r.account, aws.ToString(in.UserName)), aws.ToString(in.AccessKeyId), "")
	}
	return out, err
}

func (w *World) act(by, what, user, key, detail string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.Acts = append(w.Acts, Act{At: w.Now(), By: by, What: what, User: user, KeyID: key, Detail: detail})
}

func (w *World) emit(v any) {
	b, _ := json.Marshal(v)
	w.mu.Lock()
	w.out.Write(b)
	w.out.WriteByte('\n')
	w.mu.Unlock()
}

// Outcome is where one key's flow ended in a day's execution.
type Outcome struct {
	Item   rotation.Item
	Result string // grace, deleted, kept, stopped, notice-not-sent, failed
	Detail string
}

// RunDay plays one daily execution: find, then each item's flow (with
// between, when set, called after each item: people acting during the
// run), then every adoption check and grace-and-delete execution whose
// time has come.
func (w *World) RunDay(ctx context.Context, between func()) (*rotation.Plan, []Outcome, error) {
	w.runs++
	if w.starts == nil {
		w.starts = map[string]int{}
	}
	exec := fmt.Sprintf("day-%03d-%d", int(w.offset/Day), w.runs)
	f := &rotation.Finder{IAM: w.stepIAM(), Records: w.Records, Leases: w.Records, S3: w.Steps.S3, Config: w.Config, Now: w.Now, Log: w.log()}
	if w.Org() {
		// find's own organization access, as its main makes it (a new
		// container each day), its IAM in the hub the steps' own.
		f.Org = homeIAM{Organization: rotation.NewOrgAccess(w.Steps.Config, w.Config, "find"), w: w}
	}
	plan, err := retried(ctx, invoke(w, "FindDueKeys", exec, func() (*rotation.Plan, error) {
		return f.Handle(ctx, rotation.FindInput{Request: json.RawMessage(`{}`), ExecutionName: exec})
	}))
	w.plan = plan
	if err != nil {
		return nil, nil, fmt.Errorf("%s: find: %w", exec, err)
	}
	w.emit(plan)
	var outs []Outcome
	for _, it := range plan.Items {
		res, detail := w.Flow(ctx, rotation.Task{Execution: exec, Item: it})
		outs = append(outs, Outcome{Item: it, Result: res, Detail: detail})
		if between != nil {
			between()
		}
	}
	w.WindowsDue(ctx)
	w.GraceDue(ctx)
	return plan, outs, nil
}

// homeIAM is find's organization access with the steps' IAM (StepIAM,
// when set) in the hub.
type homeIAM struct {
	rotation.Organization
	w *World
}

func (o homeIAM) IAM(ctx context.Context, account string) (rotation.FindIAM, error) {
	if account == "" || account == o.Home() {
		return o.w.stepIAM(), nil
	}
	return o.Organization.IAM(ctx, account)
}

// stepFuncs are the steps that act in a key's account.
type stepFuncs struct {
	create     func(context.Context, rotation.Task) (*rotation.NewKey, error)
	deliver    func(context.Context, rotation.Task) (*rotation.Delivery, error)
	check      func(context.Context, rotation.Task) (*rotation.Adoption, error)
	deactivate func(context.Context, rotation.Task) (*rotation.Deactivation, error)
	delete     func(context.Context, rotation.Task) (*rotation.Cleanup, error)
}

// build makes the steps acting in a's account, as the functions' mains
// do: IAM and Secrets Manager in the account, records, mail and topic in
// the hub.
func (w *World) build(a lambdastep.Account) stepFuncs {
	inner, secrets := w.stepIAM(), w.Steps.Secrets
	if a.ID != "" {
		inner, secrets = iam.NewFromConfig(a.AWS), secretsmanager.NewFromConfig(a.AWS)
	}
	iamc := recordingIAM{StepIAM: inner, w: w, account: a.ID}
	if a.Config.StoreRoleARN == "" {
		// The stack's setting: create-and-store's role.
		a.Config.StoreRoleARN = "arn:aws:iam::123456789012:role/KeyRotor-create-and-store"
	}
	return stepFuncs{
		create: (&rotation.Creator{IAM: iamc, Secrets: secrets, Records: w.Records, Topic: w.topic(), Verify: rotation.STSVerifier(w.Steps.Config), Config: a.Config, Now: w.Now, Log: w.log()}).Handle,
		deliver: (&rotation.Deliverer{Records: w.Records, Documents: w.documents(), Secrets: secrets, Topic: w.topic(), Env: w.Delivery,
			Config: a.Config, Now: w.Now, Log: w.log()}).Handle,
		check:      (&rotation.Watcher{IAM: iamc, Records: w.Records, Mail: w.mail(), Topic: w.topic(), Config: a.Config, Region: "us-east-1", Now: w.Now, Log: w.log()}).Handle,
		deactivate: (&rotation.Deactivator{IAM: iamc, Records: w.Records, Topic: w.topic(), Config: a.Config, Now: w.Now, Log: w.log()}).Handle,
		delete:     (&rotation.Deleter{IAM: iamc, Records: w.Records, Topic: w.topic(), Config: a.Config, Now: w.Now, Log: w.log()}).Handle,
	}
}

// documents is the world's destination documents, or none.
func (w *World) documents() rotation.Documents {
	if w.Destinations == nil {
		return noDocuments{}
	}
	return w.Destinations
}

// noDocuments: no user has destinations.
type noDocuments struct{}

func (noDocuments) Get(context.Context, string, string) (*delivery.Document, error) { return nil, nil }

// steps are the per-account steps: in one account built for each use (as
// before: Config and StepIAM may change between runs); in an organization
// lambdastep.PerAccount's, built once per account as a warm function's.
func (w *World) steps() stepFuncs {
	if !w.Org() {
		return w.build(lambdastep.Account{Config: w.Config})
	}
	if w.orgSteps == nil {
		env := lambdastep.Env{Config: w.Config, AWS: w.Steps.Config, Log: w.log(), Now: w.Now}
		w.orgSteps = &stepFuncs{
			create: lambdastep.PerAccount(env, "create-and-store", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.NewKey, error) {
				return w.build(a).create
			}),
			deliver: lambdastep.PerAccount(env, "deliver", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Delivery, error) {
				return w.build(a).deliver
			}),
			check: lambdastep.PerAccount(env, "check-adoption", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Adoption, error) {
				return w.build(a).check
			}),
			deactivate: lambdastep.PerAccount(env, "deactivate", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Deactivation, error) {
				return w.build(a).deactivate
			}),
			delete: lambdastep.PerAccount(env, "delete", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Cleanup, error) {
				return w.build(a).delete
			}),
		}
	}
	return *w.orgSteps
}

// Flow runs one key's steps in FlowOrder.
func (w *World) Flow(ctx context.Context, t rotation.Task) (result, detail string) {
	st := w.steps()
	if t.Item.Action == policy.Rotate {
		nk, err := retried(ctx, invoke(w, "CreateAndStoreNewKey", t, func() (*rotation.NewKey, error) { return st.create(ctx, t) }))
		if err != nil {
			return "failed", "CreateAndStoreNewKey: " + err.Error()
		}
		w.emit(nk)
		t.NewKey = nk
		if nk.Skipped != "" {
			return "stopped", nk.Skipped
		}
	}
	if t.Item.Action == policy.Rotate {
		dl, err := retried(ctx, invoke(w, "DeliverNewKey", t, func() (*rotation.Delivery, error) { return st.deliver(ctx, t) }))
		if err != nil {
			return "failed", "DeliverNewKey: " + err.Error()
		}
		w.emit(dl)
		t.Delivery = dl
	}
	n := &rotation.Notifier{Records: w.Records, Mail: w.mail(), Topic: w.topic(), Config: w.Config, Region: "us-east-1", Now: w.Now, Log: w.log()}
	no, err := retried(ctx, invoke(w, "NotifyOwner", t, func() (*rotation.Notice, error) { return n.Handle(ctx, t) }))
	if err != nil {
		return "failed", "NotifyOwner: " + err.Error()
	}
	w.emit(no)
	t.Notice = no
	switch {
	case t.Delivery != nil && !t.Delivery.Complete:
		// DeliveryIncomplete: nothing is deactivated; the next run
		// delivers the rest.
		return "delivery-incomplete", fmt.Sprint(t.Delivery.Left)
	case no.Adoption != nil:
		// StartAdoptionWindow: the key's own execution, started once; its
		// first check runs at once.
		name := no.Adoption.Execution
		if w.starts[name]++; w.starts[name] > 1 {
			return "adopting", name + " (already started)"
		}
		pw := &PendingWindow{Name: name, Task: rotation.Task{Execution: name, Item: t.Item, Adoption: no.Adoption}, NextCheck: w.Now()}
		if res, detail, done := w.runWindow(ctx, pw); done {
			return res, detail
		}
		w.window = append(w.window, pw)
		return "adopting", name
	case no.Accepted:
	case no.Skipped != "":
		return "stopped", no.Skipped
	default:
		return "notice-not-sent", no.Waiting
	}
	de, err := retried(ctx, invoke(w, "DeactivateOldKey", t, func() (*rotation.Deactivation, error) { return st.deactivate(ctx, t) }))
	if err != nil {
		return "failed", "DeactivateOldKey: " + err.Error()
	}
	w.emit(de)
	t.Deactivation = de
	switch de.Next {
	case rotation.NextGrace:
		w.starts[de.GraceExecution]++
		if w.starts[de.GraceExecution] == 1 {
			w.grace = append(w.grace, PendingGrace{Name: de.GraceExecution, Task: rotation.Task{Execution: t.Execution, Item: t.Item, Deactivation: de}})
		}
		return "grace", de.GraceExecution
	case rotation.NextDelete:
		cl, err := w.delete(ctx, t)
		if err != nil {
			return "failed", "DeleteOldKey: " + err.Error()
		}
		if cl.Deleted {
			return "deleted", cl.Reason
		}
		return "kept", cl.Reason
	}
	return "stopped", de.Note
}

func (w *World) delete(ctx context.Context, t rotation.Task) (*rotation.Cleanup, error) {
	del := w.steps().delete
	cl, err := retried(ctx, invoke(w, "DeleteOldKey", t, func() (*rotation.Cleanup, error) { return del(ctx, t) }))
	if err == nil {
		w.emit(cl)
	}
	return cl, err
}

// runWindow runs an adoption window's checks that are due (the state
// machine's CheckAdoption after each WaitForNextCheck), and after the
// switch-over its deactivation, leaving the grace period pending. done
// reports that the window's execution ended (result says how) or only
// waits for its grace period.
func (w *World) runWindow(ctx context.Context, pw *PendingWindow) (result, detail string, done bool) {
	st := w.steps()
	for !w.Now().Before(pw.NextCheck) {
		a, err := retried(ctx, invoke(w, "CheckAdoption", pw.Task, func() (*rotation.Adoption, error) { return st.check(ctx, pw.Task) }))
		if err != nil {
			// The window's execution fails (alarmed); its lease passes and
			// a later daily execution hands the window to a new one.
			return "failed", "CheckAdoption: " + err.Error(), true
		}
		w.emit(a)
		pw.Task.Adoption = a
		switch a.Next {
		case rotation.NextWait:
			pw.NextCheck = a.NextCheck
			continue
		case rotation.NextDeactivate:
		default:
			return "stopped", a.Note, true
		}
		de, err := retried(ctx, invoke(w, "DeactivateAfterSwitchOver", pw.Task, func() (*rotation.Deactivation, error) { return st.deactivate(ctx, pw.Task) }))
		if err != nil {
			return "failed", "DeactivateAfterSwitchOver: " + err.Error(), true
		}
		w.emit(de)
		t := rotation.Task{Execution: pw.Name, Item: pw.Task.Item, Deactivation: de}
		switch de.Next {
		case rotation.NextGrace:
			w.grace = append(w.grace, PendingGrace{Name: pw.Name, Task: t})
			return "grace", pw.Name + " (switched over: " + a.SwitchOver + ")", true
		case rotation.NextDelete:
			cl, err := w.delete(ctx, t)
			if err != nil {
				return "failed", "DeleteOldKey: " + err.Error(), true
			}
			return "deleted", cl.Reason, true
		}
		return "stopped", de.Note, true
	}
	return "adopting", pw.Name, false
}

// WindowsDue runs the adoption checks whose time has come.
func (w *World) WindowsDue(ctx context.Context) (failed []string) {
	var left []*PendingWindow
	for _, pw := range w.window {
		res, detail, done := w.runWindow(ctx, pw)
		if !done {
			left = append(left, pw)
		}
		if res == "failed" {
			failed = append(failed, pw.Name+": "+detail)
		}
	}
	w.window = left
	return failed
}

// GraceDue runs the grace-and-delete executions whose Wait has ended. One
// that fails stays failed (alarmed; the next daily run finishes it).
func (w *World) GraceDue(ctx context.Context) (failed []string) {
	var left []PendingGrace
	for _, g := range w.grace {
		if w.Now().Before(g.Task.Deactivation.DeleteAfter) {
			left = append(left, g)
			continue
		}
		if _, err := w.delete(ctx, g.Task); err != nil {
			failed = append(failed, g.Name+": "+err.Error())
		}
	}
	w.grace = left
	return failed
}

// retried runs a step as the definition's Retry lists do: the retryable
// named errors again (a little later), anything else fails the step.
func retried[T any](ctx context.Context, f func() (T, error)) (T, error) {
	retry := map[string]bool{failures.Name(&failures.NewKeyNotReadyError{}): true, failures.Name(&failures.ReportNotReadyError{}): true}
	for _, n := range failures.Retryable() {
		retry[n] = true
	}
	var v T
	var err error
	for attempt := range 12 {
		v, err = f()
		if err == nil {
			return v, nil
		}
		named := failures.Boundary(err)
		if !retry[failures.Name(named)] {
			return v, named
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(time.Duration(50*(attempt+1)) * time.Millisecond):
		}
	}
	return v, err
}

// Sent are the mails and admin messages moto holds.
type Sent struct {
	Mails    []Mail
	Messages []string
}

// Mail is one SES send moto accepted.
type Mail struct {
	To      []string
	Subject string
	Body    string
}

// OwnerNotices counts the owner notices of the rotation of key id among
// mails: the mails whose subject names the key ("Your AWS access key X has
// been replaced", "Your unused AWS access key X is being retired"). Other
// mails may name it in their text without being its notice: the rotation
// of the user's other key says that it removed this one first, to make
// room. A reminder's subject names no key.
func OwnerNotices(mails []Mail, id string) int {
	n := 0
	for _, m := range mails {
		if strings.Contains(m.Subject, id) {
			n++
		}
	}
	return n
}

// ReadSent returns the mails SES accepted (or may have) and the admin
// messages, as the steps' clients saw them. (moto's /moto-api/data.json
// also lists them, but fails with a 500 on large accounts.)
func (w *World) ReadSent(context.Context) (*Sent, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return &Sent{Mails: append([]Mail(nil), w.sent.Mails...), Messages: append([]string(nil), w.sent.Messages...)}, nil
}

// Keys lists every user's keys (status by id), users by Ref, each in its
// account; users that do not exist are absent.
func (w *World) Keys(ctx context.Context, users []string) (map[string]map[string]iamtypes.StatusType, error) {
	out := map[string]map[string]iamtypes.StatusType{}
	for _, u := range users {
		acct, name := SplitRef(u)
		ks, err := w.PeopleIn(acct).IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(name)})
		var nse *iamtypes.NoSuchEntityException
		if errors.As(err, &nse) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m := map[string]iamtypes.StatusType{}
		for _, k := range ks.AccessKeyMetadata {
			m[aws.ToString(k.AccessKeyId)] = k.Status
		}
		out[u] = m
	}
	return out, nil
}

// Works proves a key with sts:GetCallerIdentity.
func (w *World) Works(ctx context.Context, id, secret string) bool {
	_, ok := w.KeyAccount(ctx, id, secret)
	return ok
}

// KeyAccount proves a key with sts:GetCallerIdentity and returns the
// account it acts in.
func (w *World) KeyAccount(ctx context.Context, id, secret string) (string, bool) {
	cfg := w.People.Config.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
	out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return "", false
	}
	return aws.ToString(out.Account), true
}

// Outputs is every step output and log line so far (for the secret scan).
func (w *World) Outputs() []byte {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append(append([]byte{}, w.out.Bytes()...), w.logs.Bytes()...)
}

// rng is the simulation's seeded generator.
type rng = rand.Rand

func sortedUsers(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for u := range m {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// containsAny reports whether s mentions any of ids.
func containsAny(s string, ids ...string) bool {
	for _, id := range ids {
		if id != "" && strings.Contains(s, id) {
			return true
		}
	}
	return false
}

// PlanSays is what the last daily run's find made of a credential: the
// item it planned, or the list that reported it and why.
func (w *World) PlanSays(keyID string) string {
	p := w.plan
	if p == nil {
		return "the last daily run's find failed"
	}
	for _, it := range p.Items {
		if it.OldKey.ID == keyID {
			return fmt.Sprintf("planned: %s (%s)", it.Action, it.Reason)
		}
	}
	for name, l := range map[string][]rotation.Skipped{"blocked": p.Blocked, "exempt": p.Exempt, "held": p.Held, "attention": p.Attention, "in flight": p.InFlight, "adopting": p.Adopting} {
		for _, s := range l {
			if s.KeyID == keyID {
				return fmt.Sprintf("%s: %s", name, s.Reason)
			}
		}
	}
	return "not in the last plan (not a candidate)"
}
