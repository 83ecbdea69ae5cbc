package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/credreport"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// FindIAM is the part of IAM the find step calls.
type FindIAM interface {
	credreport.API
	ListKeysAPI
	ListTagsAPI
	GetAccessKeyLastUsed(ctx context.Context, in *iam.GetAccessKeyLastUsedInput, optFns ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error)
	GetGroup(ctx context.Context, in *iam.GetGroupInput, optFns ...func(*iam.Options)) (*iam.GetGroupOutput, error)
	GetUser(ctx context.Context, in *iam.GetUserInput, optFns ...func(*iam.Options)) (*iam.GetUserOutput, error)
	ListUsers(ctx context.Context, in *iam.ListUsersInput, optFns ...func(*iam.Options)) (*iam.ListUsersOutput, error)
}

var _ FindIAM = (*iam.Client)(nil)

// PutObjectAPI writes an S3 object.
type PutObjectAPI interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// Candidate is a user whose report row shows a key that may be due, with
// the live facts gathered for it.
type Candidate struct {
	Row       credreport.Row
	User      policy.User
	Email     string
	Decisions []policy.Decision
	// Facts are what find learned of each live key beyond policy.Key, by
	// key id: its credential report slot and where it was last used.
	Facts map[string]KeyFacts
	// ReadAt is when the live facts were read.
	ReadAt time.Time
}

// KeyFacts place a live key in the credential report.
type KeyFacts struct {
	// Slot is the key's report slot (access_key_1 or _2); 0: the key is
	// not in the report (created after it was generated).
	Slot                            int
	LastUsedService, LastUsedRegion string
	// Match says why the slot is not certain ("" when it is): two keys
	// created in the same second, or a key newer than the report. The last
	// use of such a key is read live (GetAccessKeyLastUsed).
	Match string
}

// Verdict is what the plan did, or would do, with one credential: the
// audit report's decision for it.
type Verdict struct {
	User   string
	KeyID  string // access key id, or "password"
	Action policy.Action
	Reason string
	// Attention is a condition a person must clear (the record's).
	Attention string
}

// Assessment is everything find learned: the report rows and, for the
// candidates, the live facts and decisions. The audit report is built from it.
type Assessment struct {
	// Account and AccountAlias name the assessed account in organization
	// mode ("": keyrotor's own account).
	Account      string
	AccountAlias string
	AsOf         time.Time
	ReportTime   time.Time
	Rows         []credreport.Row
	Candidates   map[string]*Candidate // by user name
	// Records are the rotation records by old credential ID.
	Records map[string]*ledger.Record
	// Root is the credential report's root user row (nil when the report
	// has none, as moto's): keyrotor never acts on it; the audit reports
	// it.
	Root *credreport.Row
	// Restricted: the assessment covers named users only (no root row).
	Restricted bool
	// Gone are the users of the report the live check found deleted.
	Gone map[string]bool
	// Exempt are the users known exempt without a live check, with the
	// reason: the exempt group's members, the users under
	// excludedUserPaths and, when TagsRead, the users tagged exempt.
	Exempt map[string]string
	// TagsRead: find read the tags of every user with a credential (a dry
	// run: the audit and `keyrotor plan`), so Exempt holds every user
	// tagged exempt. Otherwise (the daily run) it read the tags of the
	// users it checked live only: one call per user is what a run must
	// not pay for users with nothing due.
	TagsRead bool
	// Newer are the users IAM lists that the credential report does not
	// have (created after it was generated), with their keys read live.
	Newer []NewUser
	// Verdicts are the plan's verdicts on the credentials it considered,
	// by VerdictKey (nil: the assessment was not planned).
	Verdicts map[string]Verdict
}

// NewUser is a user created after the credential report, as IAM lists
// it now.
type NewUser struct {
	Name, ARN        string
	Created          time.Time
	PasswordLastUsed time.Time
	Keys             []policy.Key
	ReadAt           time.Time
}

// VerdictKey indexes Assessment.Verdicts: a user's credential (key id or
// "password").
func VerdictKey(user, keyID string) string { return strings.ToLower(user) + "\x00" + keyID }

func (a *Assessment) verdict(v Verdict) {
	if a.Verdicts == nil {
		a.Verdicts = map[string]Verdict{}
	}
	if old, ok := a.Verdicts[VerdictKey(v.User, v.KeyID)]; ok && v.Attention == "" {
		v.Attention = old.Attention
	}
	a.Verdicts[VerdictKey(v.User, v.KeyID)] = v
}

// ReportWriter writes the audit report of a run; nil disables it.
type ReportWriter interface {
	WriteReport(ctx context.Context, execution string, as []*Assessment, rules policy.Rules) (*ReportRef, error)
}

// FigureWriter publishes the figures of a run's assessments (the
// dashboard's metrics: shared/audit.FigureEmitter); nil disables them. Dry
// runs publish none: a preview (asOf) is not the account's state.
type FigureWriter interface {
	WriteFigures(ctx context.Context, as []*Assessment, rules policy.Rules, now time.Time) error
}

// RecordLister lists every rotation record (shared/ledger.Store).
type RecordLister interface {
	All(ctx context.Context) (map[string]*ledger.Record, error)
}

var _ RecordLister = (*ledger.Store)(nil)

// ExecutionsAPI tells whether an execution still runs (Step Functions).
type ExecutionsAPI interface {
	DescribeExecution(ctx context.Context, in *sfn.DescribeExecutionInput, optFns ...func(*sfn.Options)) (*sfn.DescribeExecutionOutput, error)
}

var _ ExecutionsAPI = (*sfn.Client)(nil)

// Finder is the find step.
type Finder struct {
	// Executions, with Leases, lets find release the lease of a rotation
	// whose owner execution no longer runs (failed, aborted, timed out),
	// so this execution takes it over at once; nil: leases pass with time.
	Executions ExecutionsAPI
	Leases     Records
	IAM        FindIAM
	// Records lists the rotation records; nil: none (the audit command
	// without a table).
	Records RecordLister
	S3      PutObjectAPI // nil: no plan object is written (unit tests)
	Report  ReportWriter // nil: no audit report
	Figures FigureWriter // nil: no metrics
	Config  config.Config
	Now     func() time.Time
	Log     *slog.Logger
	// Destinations, when set, are the users' destination documents: a
	// rotation whose user's document no longer validates is not started
	// (blocked, with the field and the fix), since its new key could be
	// delivered nowhere and its old key would stay Active.
	Destinations DestinationDocuments
	// InlineItemsLimit bounds the JSON size of Plan.Items (default
	// InlineItemsBytes).
	InlineItemsLimit int
	// Workers checks candidates concurrently (default 8).
	Workers int
	// Org, when set, is the organization mode: find plans every account
	// in scope, reached through Org (nil: the one account of IAM).
	Org Organization
	// AccountWorkers assesses accounts concurrently (default
	// AccountWorkers).
	AccountWorkers int
}

// FindInput is the find function's payload: the execution input, untouched,
// and the execution name from the context object.
type FindInput struct {
	Request       json.RawMessage `json:"request"`
	ExecutionName string          `json:"executionName"`
	// ExecutionID is this execution's ARN ($$.Execution.Id): the owners of
	// rotations are executions of the same state machine.
	ExecutionID string `json:"executionId,omitempty"`
}

var userNameRE = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)

// ParseRequest decodes and checks the execution input strictly: unknown
// fields (names are case-sensitive), wrong types, malformed names or times
// are errors naming the field.
func ParseRequest(raw []byte) (Request, error) {
	var r Request
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return r, nil
	}
	var fields map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&fields); err != nil {
		return Request{}, inputError(err)
	}
	if dec.More() {
		return Request{}, &failures.InvalidInputError{Msg: "trailing data after the JSON object"}
	}
	for _, name := range sortedKeys(fields) {
		v := fields[name]
		var err error
		switch name {
		case "dryRun":
			err = json.Unmarshal(v, &r.DryRun)
		case "users":
			err = json.Unmarshal(v, &r.Users)
			if err == nil && r.Users == nil {
				r.Users = []string{}
			}
		case "asOf":
			err = json.Unmarshal(v, &r.AsOf)
		case "accounts":
			err = json.Unmarshal(v, &r.Accounts)
			if err == nil && r.Accounts == nil {
				r.Accounts = []string{}
			}
		default:
			return Request{}, &failures.InvalidInputError{Field: name, Msg: "unknown field; the input accepts only dryRun (bool), users (list of user names), asOf (RFC 3339 time) and accounts (list of account ids, organization mode)"}
		}
		if err != nil {
			return Request{}, &failures.InvalidInputError{Field: name, Msg: fmt.Sprintf("wrong type: got %s, want %s", strings.TrimSpace(string(v)), kindOf(name))}
		}
	}
	if r.Users != nil && len(r.Users) == 0 {
		return Request{}, &failures.InvalidInputError{Field: "users", Msg: "empty list: omit the field to consider every user, or name at least one user"}
	}
	seen := map[string]bool{}
	for i, u := range r.Users {
		if !userNameRE.MatchString(u) {
			return Request{}, &failures.InvalidInputError{Field: fmt.Sprintf("users[%d]", i), Msg: fmt.Sprintf("%q is not an IAM user name (1-64 characters: letters, digits and +=,.@_-)", u)}
		}
		if seen[strings.ToLower(u)] {
			return Request{}, &failures.InvalidInputError{Field: fmt.Sprintf("users[%d]", i), Msg: fmt.Sprintf("%q is listed twice", u)}
		}
		seen[strings.ToLower(u)] = true
	}
	if r.Accounts != nil && len(r.Accounts) == 0 {
		return Request{}, &failures.InvalidInputError{Field: "accounts", Msg: "empty list: omit the field to consider every account in scope, or name at least one account id"}
	}
	for i, a := range r.Accounts {
		if !config.IsAccountID(a) {
			return Request{}, &failures.InvalidInputError{Field: fmt.Sprintf("accounts[%d]", i), Msg: fmt.Sprintf("%q is not a 12-digit AWS account id", a)}
		}
	}
	if r.AsOf != "" {
		if _, err := time.Parse(time.RFC3339, r.AsOf); err != nil {
			return Request{}, &failures.InvalidInputError{Field: "asOf", Msg: fmt.Sprintf("%q is not an RFC 3339 time; write it like 2026-11-23T00:00:00Z", r.AsOf)}
		}
		if !r.DryRun {
			// A real run acts on the keys as they are now: an asOf in the
			// future would retire keys in use and rotate young ones.
			return Request{}, &failures.InvalidInputError{Field: "asOf", Msg: "asOf is for previews only: add \"dryRun\": true to see what keyrotor would do then, or leave asOf out for a real run; nothing was changed"}
		}
	}
	return r, nil
}

func inputError(err error) error {
	var ute *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &ute):
		return &failures.InvalidInputError{Msg: fmt.Sprintf("the execution input must be a JSON object like {\"dryRun\":true}, got %s", ute.Value)}
	case errors.As(err, &se):
		return &failures.InvalidInputError{Msg: fmt.Sprintf("not valid JSON at byte %d: %v", se.Offset, se)}
	}
	return &failures.InvalidInputError{Msg: "not valid JSON: " + err.Error()}
}

func kindOf(field string) string {
	switch field {
	case "dryRun":
		return "true or false"
	case "users":
		return "a list of IAM user names"
	case "asOf":
		return "an RFC 3339 time string"
	case "accounts":
		return "a list of 12-digit account ids (strings)"
	}
	return "another type"
}

// Handle runs the find step.
func (f *Finder) Handle(ctx context.Context, in FindInput) (*Plan, error) {
	req, err := ParseRequest(in.Request)
	if err != nil {
		return nil, err
	}
	now := nowOf(f.Now)
	asOf := now
	if req.AsOf != "" {
		asOf, _ = time.Parse(time.RFC3339, req.AsOf)
	}
	plan := &Plan{
		ExecutionName: in.ExecutionName, AsOf: asOf, DryRun: req.DryRun, Pass: 1,
		ToleratedFailurePercentage: 100, Items: []Item{}, Blocked: []Skipped{}, Exempt: []Skipped{},
		Held: []Skipped{}, Attention: []Skipped{}, InFlight: []Skipped{}, Adopting: []Skipped{},
	}
	var assessments []*Assessment
	if f.Org != nil {
		if assessments, err = f.planOrganization(ctx, plan, req, in, now, asOf); err != nil {
			return nil, err
		}
	} else {
		if len(req.Accounts) > 0 {
			return nil, &failures.InvalidInputError{Field: "accounts", Msg: "this deployment rotates one account (no organizationScope): leave accounts out"}
		}
		a, err := f.assess(ctx, asOf, req.Users, true, req.DryRun)
		if err != nil {
			return nil, err
		}
		// Records of member accounts (the deployment ran in organization
		// mode before) are not this account's: reported, never planned.
		stranded := map[string]int{}
		for id, rec := range a.Records {
			if rec.Account != "" {
				if rec.State.InFlight() {
					stranded[rec.Account]++
				}
				delete(a.Records, id)
			}
		}
		for _, acct := range sortedKeys(stranded) {
			plan.Attention = append(plan.Attention, Skipped{Account: acct, Action: "attention", Reason: fmt.Sprintf(
				"%d rotations in account %s were started in organization mode and are not finished: set organizationScope again to finish them (this deployment rotates one account)", stranded[acct], acct)})
		}
		if !req.DryRun {
			if err := f.releaseDead(ctx, a.Records, in, now); err != nil {
				return nil, err
			}
		}
		if err := f.planAccount(ctx, plan, a, req, in, now); err != nil {
			return nil, err
		}
		assessments = []*Assessment{a}
	}
	if err := f.checkDestinations(ctx, plan); err != nil {
		return nil, err
	}
	rules := f.rules()
	for _, it := range plan.Items {
		if it.Action == policy.Rotate {
			plan.Counts.Rotate++
		} else {
			plan.Counts.Retire++
		}
	}
	plan.Counts.Blocked, plan.Counts.Exempt = len(plan.Blocked), len(plan.Exempt)
	plan.Counts.Held, plan.Counts.Attention, plan.Counts.InFlight = len(plan.Held), len(plan.Attention), len(plan.InFlight)
	plan.Counts.Adopting = len(plan.Adopting)

	if f.S3 != nil && f.Config.ReportBucket != "" {
		plan.Bucket = f.Config.ReportBucket
		plan.ItemsKey = fmt.Sprintf("plans/%s/%s/items.json", now.UTC().Format("2006-01-02"), SafeKey(in.ExecutionName))
		body, _ := json.Marshal(plan.Items)
		if _, err := f.S3.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(plan.Bucket), Key: aws.String(plan.ItemsKey),
			Body: bytes.NewReader(body), ContentType: aws.String("application/json"),
		}); err != nil {
			return nil, fmt.Errorf("write plan items to s3://%s/%s: %w", plan.Bucket, plan.ItemsKey, err)
		}
	}
	if f.Report != nil {
		ref, err := f.Report.WriteReport(ctx, in.ExecutionName, assessments, rules)
		if err != nil {
			return nil, fmt.Errorf("write audit report: %w", err)
		}
		plan.Report = ref
	}
	if f.Figures != nil && !req.DryRun {
		// A metric never fails a run.
		if err := f.Figures.WriteFigures(ctx, assessments, rules, now); err != nil {
			logOf(f.Log).WarnContext(ctx, "could not emit the figures", "error", err.Error())
		}
	}
	f.trimInline(plan)
	plan.Blocked, plan.BlockedTruncated = capSkipped(plan.Blocked)
	plan.Exempt, plan.ExemptTruncated = capSkipped(plan.Exempt)
	plan.Held, plan.HeldTruncated = capSkipped(plan.Held)
	plan.Attention, plan.AttentionTruncated = capSkipped(plan.Attention)
	plan.InFlight, _ = capSkipped(plan.InFlight)
	plan.Adopting, plan.AdoptingTruncated = capSkipped(plan.Adopting)
	logOf(f.Log).InfoContext(ctx, "plan ready", "execution", in.ExecutionName, "asOf", asOf.Format(time.RFC3339),
		"dryRun", req.DryRun, "users", plan.Counts.Users, "candidates", plan.Counts.Candidates,
		"rotate", plan.Counts.Rotate, "retire", plan.Counts.Retire, "blocked", plan.Counts.Blocked, "exempt", plan.Counts.Exempt)
	return plan, nil
}

// planAccount adds to plan the work of one assessed account: the due keys'
// items (or why they wait), and the rotations no due key leads to.
func (f *Finder) planAccount(ctx context.Context, plan *Plan, a *Assessment, req Request, in FindInput, now time.Time) error {
	asOf := a.AsOf
	plan.Counts.Users += len(a.Rows)
	plan.Counts.Candidates += len(a.Candidates)
	seen := map[string]bool{}
	for _, name := range sortedKeys(a.Candidates) {
		c := a.Candidates[name]
		for _, d := range c.Decisions {
			switch d.Action {
			case policy.Rotate, policy.Retire, policy.RetirePassword:
				it := itemFor(c, d, asOf)
				it.Account, it.AccountAlias = a.Account, a.AccountAlias
				seen[RecordID(it)] = true
				v := f.planItem(plan, it, a.Records[RecordID(it)], now, in.ExecutionName)
				v.User, v.KeyID = name, d.KeyID
				a.verdict(v)
			case policy.Blocked:
				if rec := a.Records[d.KeyID]; rec != nil && !rec.State.InFlight() && now.Before(rec.HeldUntil) {
					// A person's hold comes first: after re-activating
					// the old key its user holds two Active keys, which
					// is the hold, not a condition to report.
					it := itemFor(c, d, asOf)
					it.Account, it.AccountAlias = a.Account, a.AccountAlias
					v := f.planItem(plan, it, rec, now, in.ExecutionName)
					v.User, v.KeyID = name, d.KeyID
					a.verdict(v)
					continue
				}
				plan.Blocked = append(plan.Blocked, Skipped{Account: a.Account, User: name, UserARN: c.Row.ARN, KeyID: d.KeyID, Action: d.Action, Reason: d.Reason})
				a.verdict(Verdict{User: name, KeyID: d.KeyID, Action: d.Action, Reason: d.Reason})
			case policy.Exempt:
				plan.Exempt = append(plan.Exempt, Skipped{Account: a.Account, User: name, UserARN: c.Row.ARN, KeyID: d.KeyID, Action: d.Action, Reason: d.Reason})
				a.verdict(Verdict{User: name, KeyID: d.KeyID, Action: d.Action, Reason: d.Reason})
			case policy.OK:
				if rec := a.Records[d.KeyID]; !c.User.Exempt || rec != nil && rec.State.InFlight() {
					a.verdict(Verdict{User: name, KeyID: d.KeyID, Action: d.Action, Reason: d.Reason})
					continue
				}
				// An exempt user's key that is not due is exempt too: the
				// plan never acts on it, whatever its age.
				reason := c.User.ExemptReason + " (otherwise: " + d.Reason + ")"
				plan.Exempt = append(plan.Exempt, Skipped{Account: a.Account, User: name, UserARN: c.Row.ARN, KeyID: d.KeyID, Action: policy.Exempt, Reason: reason})
				a.verdict(Verdict{User: name, KeyID: d.KeyID, Action: policy.Exempt, Reason: reason})
			default:
				a.verdict(Verdict{User: name, KeyID: d.KeyID, Action: d.Action, Reason: d.Reason})
			}
		}
		if c.User.Exempt && c.Row.PasswordEnabled && !hasDecision(c.Decisions, "password") {
			d := f.rules().Password(true, c.Row.PasswordLastUsed, c.Row.PasswordLastChanged, asOf)
			reason := c.User.ExemptReason + " (otherwise: " + d.Reason + ")"
			plan.Exempt = append(plan.Exempt, Skipped{Account: a.Account, User: name, UserARN: c.Row.ARN, KeyID: "password", Action: policy.Exempt, Reason: reason})
			a.verdict(Verdict{User: name, KeyID: "password", Action: policy.Exempt, Reason: reason})
		}
	}
	// Rotations no due key leads to: a key in its grace period whose
	// grace-and-delete execution is overdue, a rotation whose execution
	// stopped before deactivating (its key or user may be gone since).
	// Their record holds what the steps need to finish them.
	if len(req.Users) == 0 {
		if err := f.planRecords(ctx, plan, a, in, now, seen); err != nil {
			return err
		}
	}
	planExempt(plan, a)
	return nil
}

// planExempt lists the credentials of the users known exempt that find
// did not check live (nothing due): a key the report has (by its slot,
// access_key_1 or _2: the report has no key ids) or a key of a user created
// since (by its id), and a console password. The plan counts what the audit
// reports exempt. A credential the plan has a verdict on (a rotation record
// in its grace period) keeps that verdict, as in the audit.
func planExempt(plan *Plan, a *Assessment) {
	skip := func(user, arn, cred, reason string) {
		plan.Exempt = append(plan.Exempt, Skipped{Account: a.Account, User: user, UserARN: arn, KeyID: cred, Action: policy.Exempt, Reason: reason})
	}
	rows := slices.Clone(a.Rows)
	sort.SliceStable(rows, func(i, j int) bool { return strings.ToLower(rows[i].User) < strings.ToLower(rows[j].User) })
	for _, r := range rows {
		reason, ok := a.Exempt[r.User]
		if !ok || a.Gone[r.User] || a.Candidates[r.User] != nil {
			continue
		}
		recorded := 0 // the user's keys with a verdict: its Inactive slots, in the audit
		for _, v := range a.Verdicts {
			if strings.EqualFold(v.User, r.User) && v.KeyID != "password" {
				recorded++
			}
		}
		for _, k := range r.Keys {
			switch {
			case !k.Present():
			case !k.Active && recorded > 0:
				recorded--
			default:
				skip(r.User, r.ARN, "access_key_"+strconv.Itoa(k.Slot), reason)
			}
		}
		if _, ok := a.Verdicts[VerdictKey(r.User, "password")]; r.PasswordEnabled && !ok {
			skip(r.User, r.ARN, "password", reason)
		}
	}
	for _, nu := range a.Newer {
		reason, ok := a.Exempt[nu.Name]
		if !ok {
			continue
		}
		for _, k := range nu.Keys {
			if _, ok := a.Verdicts[VerdictKey(nu.Name, k.ID)]; !ok {
				skip(nu.Name, nu.ARN, k.ID, reason)
			}
		}
	}
}

func hasDecision(ds []policy.Decision, id string) bool {
	for _, d := range ds {
		if d.KeyID == id {
			return true
		}
	}
	return false
}

// planRecords plans the rotations no due key leads to, from their records.
func (f *Finder) planRecords(ctx context.Context, plan *Plan, a *Assessment, in FindInput, now time.Time, seen map[string]bool) error {
	for _, id := range sortedKeys(a.Records) {
		rec := a.Records[id]
		if seen[id] || !rec.State.InFlight() {
			continue
		}
		v := Verdict{User: rec.User, KeyID: id, Attention: rec.Attention}
		if strings.HasPrefix(id, "password:") {
			v.KeyID = "password"
		}
		switch {
		case rec.State == ledger.Adopting && rec.LeaseHeldByOther(in.ExecutionName, now):
			v.Action, v.Reason = policy.Adopting, adoptingReason(rec)
		case rec.LeaseHeldByOther(in.ExecutionName, now):
			v.Action, v.Reason = policy.InFlight, fmt.Sprintf("rotation %d is in flight in execution %s", rec.Rotation, rec.Owner)
		case rec.State == ledger.Deactivated && now.Before(rec.DeleteAfter.Add(overdue)):
			v.Action, v.Reason = policy.InGrace, fmt.Sprintf("deactivated by keyrotor %s (rotation %d); deleted after %s",
				rec.DeactivatedAt.UTC().Format(time.RFC3339), rec.Rotation, rec.DeleteAfter.UTC().Format(time.RFC3339))
		}
		if v.Action != "" {
			a.verdict(v)
			if v.Action == policy.InGrace {
				plan.Counts.InGrace++
			}
			continue
		}
		it := Item{Account: rec.Account, AccountAlias: a.AccountAlias, User: rec.User, Action: policy.Action(rec.Action),
			Reason: fmt.Sprintf("resume rotation %d (%s)", rec.Rotation, rec.State), OldKey: KeyRef{ID: rec.ID}}
		// Its owner's address, for a notice still to send: without it
		// the notice would go to the admins as "no owner address".
		// A user deleted since has none; the steps end the rotation.
		tags, err := userTags(ctx, f.IAM, rec.User)
		if err != nil && !isNoSuchEntity(err) {
			return err
		}
		it.Email = strings.TrimSpace(tags[f.Config.EmailTag])
		if it.Action == policy.RetirePassword {
			it.OldKey = KeyRef{ID: "password", Created: passwordSetAt(rec.ID)}
		}
		if rec.Attention != "" {
			plan.Attention = append(plan.Attention, Skipped{Account: rec.Account, User: rec.User, KeyID: rec.ID, Action: "attention", Reason: rec.Attention})
		}
		plan.Items = append(plan.Items, it)
		plan.Counts.Resumed++
		v.Action, v.Reason = it.Action, it.Reason
		a.verdict(v)
	}
	return nil
}

// releaseDead ends the lease of every rotation whose owner execution no
// longer runs, so that this execution takes it over now rather than when
// the lease passes.
func (f *Finder) releaseDead(ctx context.Context, recs map[string]*ledger.Record, in FindInput, now time.Time) error {
	i := strings.LastIndexByte(in.ExecutionID, ':')
	if f.Executions == nil || f.Leases == nil || i < 0 {
		return nil
	}
	status := map[string]string{}
	for _, id := range sortedKeys(recs) {
		rec := recs[id]
		if !rec.LeaseHeldByOther(in.ExecutionName, now) {
			continue
		}
		if rec.Adoption != nil && rec.Owner == rec.Adoption.Execution {
			// The window's own execution (another state machine) renews
			// its lease at every check; a stopped one's lease passes.
			continue
		}
		st, ok := status[rec.Owner]
		if !ok {
			out, err := f.Executions.DescribeExecution(ctx, &sfn.DescribeExecutionInput{ExecutionArn: aws.String(in.ExecutionID[:i+1] + rec.Owner)})
			var nf *sfntypes.ExecutionDoesNotExist
			switch {
			case errors.As(err, &nf):
				st = "gone"
			case err != nil:
				return fmt.Errorf("describe execution %s: %w", rec.Owner, err)
			default:
				st = string(out.Status)
			}
			status[rec.Owner] = st
		}
		if st == string(sfntypes.ExecutionStatusRunning) {
			continue
		}
		rec.Log(now, rec.State, in.ExecutionName, fmt.Sprintf("lease of execution %s released: it is %s", rec.Owner, st))
		rec.LeaseUntil = time.Time{}
		if err := f.Leases.Put(ctx, rec); err != nil {
			var cf *failures.ConflictError
			if errors.As(err, &cf) {
				continue // someone else moved it: planned from the old read, the steps re-read
			}
			return err
		}
	}
	return nil
}

// overdue is how long after its deleteAfter time a rotation still waiting
// in its grace period is taken for stuck (its grace-and-delete execution
// failed or was never started) and finished by the day's execution.
const overdue = 24 * time.Hour

// planItem decides, from the rotation record of a due key, whether this
// execution starts or resumes its rotation (an item) or reports it, and
// returns that verdict. Holds are judged at now, the time the plan acts.
func (f *Finder) planItem(plan *Plan, it Item, rec *ledger.Record, now time.Time, execution string) Verdict {
	var v Verdict
	if rec != nil && rec.Attention != "" {
		plan.Attention = append(plan.Attention, Skipped{Account: it.Account, User: it.User, UserARN: it.UserARN, KeyID: it.OldKey.ID, Action: "attention", Reason: rec.Attention})
		v.Attention = rec.Attention
	}
	skip := func(to *[]Skipped, action policy.Action, reason string) Verdict {
		*to = append(*to, Skipped{Account: it.Account, User: it.User, UserARN: it.UserARN, KeyID: it.OldKey.ID, Action: action, Reason: reason})
		v.Action, v.Reason = action, reason
		return v
	}
	switch {
	case rec == nil:
	case !rec.State.InFlight() && now.Before(rec.HeldUntil):
		return skip(&plan.Held, policy.Held, fmt.Sprintf("held until %s: %s", rec.HeldUntil.UTC().Format(time.RFC3339), rec.Outcome))
	case rec.State == ledger.Adopting && rec.LeaseHeldByOther(execution, now):
		return skip(&plan.Adopting, policy.Adopting, adoptingReason(rec))
	case rec.LeaseHeldByOther(execution, now):
		return skip(&plan.InFlight, policy.InFlight, fmt.Sprintf("rotation %d is in flight in execution %s", rec.Rotation, rec.Owner))
	case rec.State.InFlight():
		it.Reason = fmt.Sprintf("resume rotation %d (%s): %s", rec.Rotation, rec.State, it.Reason)
		plan.Counts.Resumed++
	}
	plan.Items = append(plan.Items, it)
	v.Action, v.Reason = it.Action, it.Reason
	return v
}

// adoptingReason describes a rotation in its adoption window.
func adoptingReason(rec *ledger.Record) string {
	ad := rec.Adoption
	inUse := "not in use yet"
	if !ad.NewSeenAt.IsZero() {
		inUse = "in use since about " + ad.NewSeenAt.UTC().Format(time.RFC3339)
	}
	return fmt.Sprintf("adoption window until %s (execution %s): new key %s %s; old key last used %s; new key last used %s",
		ad.Until.UTC().Format(time.RFC3339), ad.Execution, rec.NewKeyID, inUse, ad.OldLastUsed, ad.NewLastUsed)
}

// passwordSetAt reads the time back from a ledger.PasswordID.
func passwordSetAt(id string) time.Time {
	i := strings.LastIndexByte(id, ':')
	var sec int64
	fmt.Sscan(id[i+1:], &sec)
	return time.Unix(sec, 0).UTC()
}

// InlineListLimit bounds each list a state carries (blocked, exempt, held,
// attention): Step Functions fails a state whose input or output exceeds
// 256 KiB (States.DataLimitExceeded, not caught by States.ALL, repeated by
// Redrive). The counts stay whole and the audit report in S3 lists all.
const InlineListLimit = 25

// InlineItemsBytes bounds the plan's inline copy of its items; the map
// reads them all from S3.
const InlineItemsBytes = 16 << 10

func capSkipped(s []Skipped) ([]Skipped, bool) {
	if len(s) <= InlineListLimit {
		return s, false
	}
	return s[:InlineListLimit], true
}

func (f *Finder) trimInline(p *Plan) {
	limit := f.InlineItemsLimit
	if limit == 0 {
		limit = InlineItemsBytes
	}
	size := 0
	for i, it := range p.Items {
		b, _ := json.Marshal(it)
		size += len(b) + 1
		if size > limit {
			p.Items, p.ItemsTruncated = p.Items[:i], true
			return
		}
	}
}

// Assess reads the credential report and checks the candidates live: the
// work of discovery, as the daily run does it (the tags of the candidates
// only; Handle's dry run, which the audit command uses, reads every
// user's). users, when not empty, restricts it; naming a user that is not
// in the report is an error.
func (f *Finder) Assess(ctx context.Context, asOf time.Time, users []string) (*Assessment, error) {
	return f.assess(ctx, asOf, users, true, false)
}

// assess is Assess; strict false keeps the named users an account has and
// ignores the others (organization mode: a user is in some accounts);
// allTags reads the tags of every user with a credential (a dry run), so
// that a user tagged exempt is known exempt whether or not anything is
// due.
func (f *Finder) assess(ctx context.Context, asOf time.Time, users []string, strict, allTags bool) (*Assessment, error) {
	rows, generated, err := credreport.Fetch(ctx, f.IAM)
	if err != nil {
		return nil, err
	}
	var root *credreport.Row
	for _, r := range rows {
		if r.IsRoot() && len(users) == 0 {
			root = &r
		}
	}
	rows = withoutRoot(rows)
	if len(users) > 0 {
		if rows, err = restrict(rows, users, strict); err != nil {
			return nil, err
		}
	}
	a := &Assessment{AsOf: asOf, ReportTime: generated, Rows: rows, Root: root, Candidates: map[string]*Candidate{},
		Records: map[string]*ledger.Record{}, Gone: map[string]bool{}, Restricted: len(users) > 0}
	if len(users) == 0 {
		// The live listing (a page per 1,000 users): users deleted and
		// created since the report, which may be hours old.
		if err := f.compareListing(ctx, a); err != nil {
			return nil, err
		}
	}
	if f.Records != nil {
		if a.Records, err = f.Records.All(ctx); err != nil {
			return nil, err
		}
	}
	rules := f.rules()
	var due []credreport.Row
	for _, row := range rows {
		if a.Gone[row.User] {
			continue
		}
		if mayBeDue(row, rules, asOf) || f.passwordDue(row, rules, asOf) {
			due = append(due, row)
		}
	}
	// The exemptions known without a call per user: the paths (in the
	// ARN) and the exempt group (one listing), with checkLive's
	// precedence.
	a.Exempt = map[string]string{}
	for _, u := range a.users() {
		if p := f.Config.UnderExcludedPath(u.arn); p != "" {
			a.Exempt[u.name] = fmt.Sprintf("under excluded path %s (excludedUserPaths)", p)
		}
	}
	var exemptGroup map[string]bool
	if f.Config.ExemptGroup != "" {
		if exemptGroup, err = f.groupMembers(ctx, f.Config.ExemptGroup); err != nil {
			return nil, err
		}
		for u := range exemptGroup {
			a.Exempt[u] = fmt.Sprintf("member of exempt group %s", f.Config.ExemptGroup)
		}
	}
	// Candidates are checked by a few workers: at IAM's latency a few
	// thousand due users would otherwise take minutes one by one.
	var mu sync.Mutex
	err = each(ctx, f.Workers, due, func(ctx context.Context, row credreport.Row) error {
		c, err := f.checkLive(ctx, row, exemptGroup, a.Records, rules, asOf)
		if err != nil {
			return err
		}
		mu.Lock()
		defer mu.Unlock()
		if c != nil {
			a.Candidates[row.User] = c
		} else {
			a.Gone[row.User] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if allTags {
		if err := f.readTags(ctx, a); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// liveUser is a user of an assessment: a report row or a user created since.
type liveUser struct {
	name, arn string
	// creds: the user has a credential (an access key, Active or not, or
	// a console password).
	creds bool
}

// users are the assessment's users that exist (not gone): the report's
// rows, then the users created since.
func (a *Assessment) users() []liveUser {
	var out []liveUser
	for _, r := range a.Rows {
		if a.Gone[r.User] {
			continue
		}
		creds := r.PasswordEnabled
		for _, k := range r.Keys {
			creds = creds || k.Present()
		}
		out = append(out, liveUser{r.User, r.ARN, creds})
	}
	for _, nu := range a.Newer {
		out = append(out, liveUser{nu.Name, nu.ARN, len(nu.Keys) > 0})
	}
	return out
}

// readTags reads the tags of every user with a credential whose tags find
// has not read (the candidates' were), and adds the users tagged exempt to
// a.Exempt. A user deleted since the report is gone. Only a dry run pays
// this call per user; a throttled call is retried by the SDK as every
// other, and an error beyond its retries fails the assessment (the state
// machine's Retry, or the audit's exit 1) rather than report a user ok.
func (f *Finder) readTags(ctx context.Context, a *Assessment) error {
	var todo []liveUser
	for _, u := range a.users() {
		if u.creds && a.Candidates[u.name] == nil {
			todo = append(todo, u)
		}
	}
	reason := fmt.Sprintf("tagged %s=%s", f.Config.ExemptTag, config.ExemptTagValue)
	var mu sync.Mutex
	err := each(ctx, f.Workers, todo, func(ctx context.Context, u liveUser) error {
		tags, err := userTags(ctx, f.IAM, u.name)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case isNoSuchEntity(err):
			a.Gone[u.name] = true // deleted since the report (or the listing)
		case err != nil:
			return err
		case strings.EqualFold(tags[f.Config.ExemptTag], config.ExemptTagValue):
			a.Exempt[u.name] = reason // checkLive's precedence: the tag first
		}
		return nil
	})
	if err != nil {
		return err
	}
	a.TagsRead = true
	return nil
}

// each runs work on every item, a few at once (workers; 0: 8): at IAM's
// latency a few thousand users would otherwise take minutes one by one.
// The first error stops the rest and is returned.
func each[T any](ctx context.Context, n int, items []T, work func(context.Context, T) error) error {
	if len(items) == 0 {
		return nil
	}
	workers := min(max(n, 1), len(items))
	if n == 0 {
		workers = min(8, len(items))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var once sync.Once
	var firstErr error
	next := make(chan T)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for it := range next {
				if err := work(ctx, it); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
feed:
	for _, it := range items {
		select {
		case next <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	return firstErr
}

// compareListing lists the account's users live: a user of the report IAM
// no longer lists is gone; a user IAM lists that the report lacks was
// created since, and its keys are read live.
func (f *Finder) compareListing(ctx context.Context, a *Assessment) error {
	inReport := make(map[string]bool, len(a.Rows))
	for _, r := range a.Rows {
		inReport[strings.ToLower(r.User)] = true
	}
	listed := map[string]bool{}
	p := iam.NewListUsersPaginator(f.IAM, &iam.ListUsersInput{MaxItems: aws.Int32(1000)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("list users: %w", err)
		}
		for _, u := range out.Users {
			name := aws.ToString(u.UserName)
			listed[strings.ToLower(name)] = true
			if inReport[strings.ToLower(name)] {
				continue
			}
			nu := NewUser{Name: name, ARN: aws.ToString(u.Arn), Created: aws.ToTime(u.CreateDate), PasswordLastUsed: aws.ToTime(u.PasswordLastUsed), ReadAt: nowOf(f.Now).UTC()}
			keys, exists, err := liveKeys(ctx, f.IAM, name)
			if err != nil {
				return err
			}
			if !exists {
				continue
			}
			for _, k := range keys {
				pk := policy.Key{ID: aws.ToString(k.AccessKeyId), Active: k.Status == types.StatusTypeActive, Created: aws.ToTime(k.CreateDate)}
				used, err := f.IAM.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: k.AccessKeyId})
				if err != nil {
					return fmt.Errorf("get last use of %s: %w", pk.ID, err)
				}
				if used.AccessKeyLastUsed != nil {
					pk.LastUsed = aws.ToTime(used.AccessKeyLastUsed.LastUsedDate)
				}
				nu.Keys = append(nu.Keys, pk)
			}
			a.Newer = append(a.Newer, nu)
		}
	}
	for _, r := range a.Rows {
		if !listed[strings.ToLower(r.User)] {
			a.Gone[r.User] = true
		}
	}
	return nil
}

// mayBeDue reports whether the report row shows an Active key that the
// policy would act on. It is cheap (no calls) and errs on the side of
// checking: the live data decides.
func mayBeDue(row credreport.Row, r policy.Rules, asOf time.Time) bool {
	for _, k := range row.Keys {
		if !k.Present() || !k.Active {
			continue
		}
		d := r.KeyOnly(policy.Key{ID: "report", Active: true, Created: k.LastRotated, LastUsed: k.LastUsed}, asOf)
		if d.Action != policy.OK {
			return true
		}
	}
	return false
}

// passwordDue reports whether the row shows a console password to retire
// (only when password retirement is enabled).
func (f *Finder) passwordDue(row credreport.Row, r policy.Rules, asOf time.Time) bool {
	return f.Config.RetirePasswords && row.PasswordEnabled &&
		r.Password(true, row.PasswordLastUsed, row.PasswordLastChanged, asOf).Action == policy.Retire
}

func (f *Finder) checkLive(ctx context.Context, row credreport.Row, exemptGroup map[string]bool, records map[string]*ledger.Record, rules policy.Rules, asOf time.Time) (*Candidate, error) {
	keys, exists, err := liveKeys(ctx, f.IAM, row.User)
	if err != nil {
		return nil, err
	}
	if !exists {
		return nil, nil // deleted since the report
	}
	tags, err := userTags(ctx, f.IAM, row.User)
	if isNoSuchEntity(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	readAt := nowOf(f.Now).UTC()
	u := policy.User{Name: row.User}
	switch {
	case strings.EqualFold(tags[f.Config.ExemptTag], config.ExemptTagValue):
		u.Exempt, u.ExemptReason = true, fmt.Sprintf("tagged %s=%s", f.Config.ExemptTag, config.ExemptTagValue)
	case exemptGroup[row.User]:
		u.Exempt, u.ExemptReason = true, fmt.Sprintf("member of exempt group %s", f.Config.ExemptGroup)
	case f.Config.UnderExcludedPath(row.ARN) != "":
		u.Exempt, u.ExemptReason = true, fmt.Sprintf("under excluded path %s (excludedUserPaths)", f.Config.UnderExcludedPath(row.ARN))
	}
	facts, err := f.matchSlots(ctx, row, keys)
	if err != nil {
		return nil, err
	}
	for _, k := range keys {
		pk := policy.Key{ID: aws.ToString(k.AccessKeyId), Active: k.Status == types.StatusTypeActive, Created: aws.ToTime(k.CreateDate)}
		if rec := records[pk.ID]; rec != nil {
			// The rotation record says what keyrotor did to this key.
			if rec.State == ledger.Deactivated {
				pk.DeactivatedAt = rec.DeactivatedAt
			}
			pk.ReplacedBy = rec.NewKeyID
			if pk.ReplacedBy == "" {
				pk.ReplacedBy = rec.PrevNewKeyID
			}
		}
		pk.LastUsed = facts[pk.ID].lastUsed
		u.Keys = append(u.Keys, pk)
	}
	decisions := rules.Decide(u, asOf)
	// A retirement rests on "unused": confirm it live, the report may be
	// hours old.
	for _, d := range decisions {
		if d.Action != policy.Retire {
			continue
		}
		out, err := f.IAM.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(d.KeyID)})
		if err != nil {
			return nil, fmt.Errorf("get last use of %s: %w", d.KeyID, err)
		}
		if out.AccessKeyLastUsed != nil && out.AccessKeyLastUsed.LastUsedDate != nil {
			for j := range u.Keys {
				if u.Keys[j].ID == d.KeyID {
					u.Keys[j].LastUsed = *out.AccessKeyLastUsed.LastUsedDate
				}
			}
		}
		decisions = rules.Decide(u, asOf)
	}
	if f.passwordDue(row, rules, asOf) {
		d, err := f.livePassword(ctx, row, u, rules, asOf)
		if err != nil {
			return nil, err
		}
		if d.Action != policy.OK {
			decisions = append(decisions, d)
		}
	}
	c := &Candidate{Row: row, User: u, Email: strings.TrimSpace(tags[f.Config.EmailTag]), Decisions: decisions, Facts: map[string]KeyFacts{}, ReadAt: readAt}
	for id, kf := range facts {
		c.Facts[id] = kf.KeyFacts
	}
	return c, nil
}

// livePassword confirms an unused console password with the live GetUser
// (the report may be hours old).
func (f *Finder) livePassword(ctx context.Context, row credreport.Row, u policy.User, rules policy.Rules, asOf time.Time) (policy.Decision, error) {
	out, err := f.IAM.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(row.User)})
	if isNoSuchEntity(err) {
		return policy.Decision{Action: policy.OK}, nil
	}
	if err != nil {
		return policy.Decision{}, fmt.Errorf("get user %s: %w", row.User, err)
	}
	d := rules.Password(true, aws.ToTime(out.User.PasswordLastUsed), row.PasswordLastChanged, asOf)
	switch {
	case d.Action != policy.Retire:
		return d, nil
	case u.Exempt:
		d.Action, d.Reason = policy.Exempt, u.ExemptReason
	default:
		d.Action = policy.RetirePassword
	}
	return d, nil
}

// liveFacts are a live key's KeyFacts with its last use.
type liveFacts struct {
	KeyFacts
	lastUsed time.Time
}

// matchSlots places the live keys in the report's slots. The report has no
// key ids; its last_rotated is the creation time, to the second, so a key
// whose creation second is its own takes that slot's last use. Keys created
// in the same second, and keys newer than the report, cannot be told apart
// by the report: their last use is read live (GetAccessKeyLastUsed, what
// IAM itself gives for the key id) and their slots follow the live
// listing's order, which the facts say.
func (f *Finder) matchSlots(ctx context.Context, row credreport.Row, keys []types.AccessKeyMetadata) (map[string]liveFacts, error) {
	out := make(map[string]liveFacts, len(keys))
	second := func(k types.AccessKeyMetadata) int64 { return aws.ToTime(k.CreateDate).Unix() }
	taken := map[int]bool{}
	for i, k := range keys {
		id := aws.ToString(k.AccessKeyId)
		var slots []credreport.Key
		for _, rk := range row.Keys {
			if rk.Present() && rk.LastRotated.Unix() == second(k) && !taken[rk.Slot] {
				slots = append(slots, rk)
			}
		}
		var twins []string
		for j, o := range keys {
			if j != i && second(o) == second(k) {
				twins = append(twins, aws.ToString(o.AccessKeyId))
			}
		}
		if len(slots) > 0 && len(twins) == 0 {
			rk := slots[0]
			taken[rk.Slot] = true
			out[id] = liveFacts{KeyFacts{Slot: rk.Slot, LastUsedService: rk.LastUsedService, LastUsedRegion: rk.LastUsedRegion}, rk.LastUsed}
			continue
		}
		lf := liveFacts{}
		if len(slots) > 0 {
			lf.Slot = slots[0].Slot
			taken[lf.Slot] = true
			lf.Match = fmt.Sprintf("created in the same second as %s: the credential report cannot tell them apart, so the slot follows the live listing's order and the last use is read live", strings.Join(twins, ", "))
		} else {
			lf.Match = "created after the credential report was generated: listed live, its last use read live"
		}
		used, err := f.IAM.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(id)})
		if err != nil {
			return nil, fmt.Errorf("get last use of %s: %w", id, err)
		}
		if lu := used.AccessKeyLastUsed; lu != nil {
			lf.lastUsed = aws.ToTime(lu.LastUsedDate)
			if lu.ServiceName != nil && aws.ToString(lu.ServiceName) != "N/A" {
				lf.LastUsedService = aws.ToString(lu.ServiceName)
			}
			if lu.Region != nil && aws.ToString(lu.Region) != "N/A" {
				lf.LastUsedRegion = aws.ToString(lu.Region)
			}
		}
		out[id] = lf
	}
	return out, nil
}

func (f *Finder) groupMembers(ctx context.Context, group string) (map[string]bool, error) {
	m := map[string]bool{}
	p := iam.NewGetGroupPaginator(f.IAM, &iam.GetGroupInput{GroupName: aws.String(group)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if isNoSuchEntity(err) {
			return nil, &failures.StepError{Msg: fmt.Sprintf("exempt group %q does not exist: create it or change the exemptGroup setting (%s)", group, config.EnvExemptGroup)}
		}
		if err != nil {
			return nil, fmt.Errorf("get exempt group %s: %w", group, err)
		}
		for _, u := range out.Users {
			m[aws.ToString(u.UserName)] = true
		}
	}
	return m, nil
}

func itemFor(c *Candidate, d policy.Decision, asOf time.Time) Item {
	it := Item{User: c.Row.User, UserARN: c.Row.ARN, Email: c.Email, Action: d.Action, Reason: d.Reason, RemoveFirst: d.RemoveFirst}
	if d.Action == policy.RetirePassword {
		it.OldKey = KeyRef{ID: d.KeyID, Created: c.Row.PasswordLastChanged.UTC(), AgeDays: policy.AgeDays(c.Row.PasswordLastChanged, asOf)}
		return it
	}
	for _, k := range c.User.Keys {
		if k.ID != d.KeyID {
			continue
		}
		it.OldKey = KeyRef{ID: k.ID, Created: k.Created.UTC(), AgeDays: policy.AgeDays(k.Created, asOf)}
		if !k.LastUsed.IsZero() {
			lu := k.LastUsed.UTC()
			it.OldKey.LastUsed = &lu
		}
		it.OldKey.LastUsedService = c.Facts[k.ID].LastUsedService
	}
	return it
}

func withoutRoot(rows []credreport.Row) []credreport.Row {
	out := rows[:0:0]
	for _, r := range rows {
		if !r.IsRoot() {
			out = append(out, r)
		}
	}
	return out
}

func restrict(rows []credreport.Row, users []string, strict bool) ([]credreport.Row, error) {
	byName := make(map[string]credreport.Row, len(rows))
	for _, r := range rows {
		byName[strings.ToLower(r.User)] = r
	}
	out := make([]credreport.Row, 0, len(users))
	for i, u := range users {
		r, ok := byName[strings.ToLower(u)]
		if !ok && !strict {
			continue
		}
		if !ok {
			return nil, &failures.InvalidInputError{Field: fmt.Sprintf("users[%d]", i), Msg: fmt.Sprintf("no IAM user named %q in the credential report (a user created in the last 4 hours may not be in it yet)", u)}
		}
		out = append(out, r)
	}
	return out, nil
}

func (f *Finder) rules() policy.Rules {
	return policy.Rules{MaxKeyAgeDays: f.Config.MaxKeyAgeDays, UnusedDays: f.Config.UnusedDays, Grace: f.Config.GracePeriod}
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// SafeKey makes a name (an execution, a user) safe inside an S3 key.
func SafeKey(s string) string {
	if s == "" {
		return "manual"
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// DestinationDocuments reads many users' destination documents at once
// (delivery.Store.GetMany): a document that no longer validates is an
// error of its own user.
type DestinationDocuments interface {
	GetMany(ctx context.Context, refs []delivery.Ref) (map[delivery.Ref]*delivery.Document, map[delivery.Ref]error, error)
}

// checkDestinations blocks the rotate items whose user's destinations
// document does not validate, or names an AWS destination in an account
// out of scope (CheckDestinationAccounts), one read per 100 items.
func (f *Finder) checkDestinations(ctx context.Context, plan *Plan) error {
	if f.Destinations == nil {
		return nil
	}
	var refs []delivery.Ref
	for _, it := range plan.Items {
		if it.Action == policy.Rotate {
			refs = append(refs, delivery.Ref{Account: homeless(f.Config, it.Account), User: it.User})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	good, bad, err := f.Destinations.GetMany(ctx, refs)
	if err != nil {
		return fmt.Errorf("read the users' destinations: %w", err)
	}
	// A document that validates may still name an AWS destination in an
	// account this deployment may not write.
	for ref, doc := range good {
		if derr := CheckDestinationAccounts(f.Config, ref.Account, doc); derr != nil {
			if bad == nil {
				bad = map[delivery.Ref]error{}
			}
			bad[ref] = derr
		}
	}
	if len(bad) == 0 {
		return nil
	}
	kept := plan.Items[:0]
	for _, it := range plan.Items {
		derr, invalid := bad[delivery.Ref{Account: homeless(f.Config, it.Account), User: it.User}]
		if it.Action != policy.Rotate || !invalid {
			kept = append(kept, it)
			continue
		}
		plan.Blocked = append(plan.Blocked, Skipped{Account: it.Account, User: it.User, UserARN: it.UserARN, KeyID: it.OldKey.ID, Action: policy.Blocked,
			Reason: fmt.Sprintf("its destinations document does not validate (%s): no new key is created until it does; fix it with `keyrotor destinations set --user %s`", derr.Error(), it.User)})
	}
	plan.Items = kept
	return nil
}

// homeless is the account as records and documents name it: "" for the
// account keyrotor runs in.
func homeless(cfg config.Config, account string) string {
	if org.IsHome(cfg, account) {
		return ""
	}
	return account
}
