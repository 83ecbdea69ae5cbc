package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/notice"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// ObjectsAPI is the part of S3 the summarize step uses.
type ObjectsAPI interface {
	PutObjectAPI
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

var _ ObjectsAPI = (*s3.Client)(nil)

// Outcome is what happened to one item.
type Outcome struct {
	Account    string        `json:"account,omitempty"` // as Item.Account
	User       string        `json:"user"`
	Action     policy.Action `json:"action"`
	OldKeyID   string        `json:"oldKeyId"`
	NewKeyID   string        `json:"newKeyId,omitempty"`
	SecretName string        `json:"secretName,omitempty"`
	Mail       string        `json:"mail,omitempty"`
	Deleted    bool          `json:"oldKeyDeleted"`
	// Result: rotated / retired (old key deactivated after the owner's
	// notice; its grace-and-delete execution deletes it later), adopting
	// (an adoption window started: the old key stays Active until the
	// new key is in use), deleted
	// (a resumed rotation whose grace was over), waiting (the notice did
	// not go out: nothing deactivated, tried again next run), held,
	// kept, skipped or failed.
	Result         string     `json:"result"`
	DeleteAfter    *time.Time `json:"deleteAfter,omitempty"`
	GraceExecution string     `json:"graceExecution,omitempty"`
	Reason         string     `json:"reason,omitempty"`
	Error          string     `json:"error,omitempty"`
	// Delivered and Undelivered are the new key's destinations that hold
	// it (read back) and those that do not yet, with why.
	Delivered   []string `json:"delivered,omitempty"`
	Undelivered []string `json:"undelivered,omitempty"`
}

// Totals counts outcomes.
type Totals struct {
	Rotated int `json:"rotated"`
	Retired int `json:"retired"`
	Kept    int `json:"kept"` // the old key was not deleted (reason given)
	Skipped int `json:"skipped"`
	Failed  int `json:"failed"`
	Blocked int `json:"blocked"`
	Exempt  int `json:"exempt"`
	Mails   int `json:"mails"`
	Waiting int `json:"waiting"` // notices that did not go out
	Deleted int `json:"deleted"` // old keys deleted in this execution
	// From the plan: rotations held by a person's action, conditions that
	// need a person, rotations in flight elsewhere, keys in their grace.
	Held      int `json:"held"`
	Attention int `json:"attention"`
	InFlight  int `json:"inFlight"`
	InGrace   int `json:"inGrace"`
	// Adopting: rotations in their adoption window (old key still
	// Active): started by this run, or by an earlier one.
	Adopting int `json:"adopting"`
	// Organization mode: accounts keyrotor could not reach, accounts
	// waiting for an earlier stage.
	Unreachable     int `json:"unreachableAccounts,omitempty"`
	WaitingAccounts int `json:"waitingAccounts,omitempty"`
}

// AccountTotals is one account's part of an organization-mode run.
type AccountTotals struct {
	AccountPlan
	Rotated  int `json:"rotated"`
	Retired  int `json:"retired"`
	Adopting int `json:"adopting"`
	Failed   int `json:"failed"`
	Mails    int `json:"mails"`
	// Result is what the run did in the account (Status is what find
	// planned): rotated, failed, nothing due, done (its items ended
	// otherwise: waiting, held, skipped), or the plan's status for an
	// account not planned (unreachable, failed, waiting).
	Result string `json:"result"`
}

// Account results in a summary, beside the plan's statuses.
const (
	AccountRotated    = "rotated"     // keys rotated, retired or in their adoption window; none failed
	AccountNothingDue = "nothing due" // planned, nothing to rotate
	AccountDone       = "done"        // its items ended without a rotation (waiting, held, skipped)
)

// Summary is the output of summarize (state path $.summary) and the
// execution's final output.
type Summary struct {
	ExecutionName string    `json:"executionName"`
	Pass          int       `json:"pass"`
	Totals        Totals    `json:"totals"`
	Users         []Outcome `json:"users"`
	UsersCut      bool      `json:"usersTruncated,omitempty"`
	Blocked       []Skipped `json:"blocked"`
	Exempt        []Skipped `json:"exempt"`
	Held          []Skipped `json:"held"`
	Attention     []Skipped `json:"attention"`
	// Adopting lists the rotations that earlier runs left in their
	// adoption window, with both keys' last use.
	Adopting []Skipped `json:"adopting,omitempty"`
	// Accounts: the organization mode's totals per account, with the
	// fix for each account keyrotor could not reach.
	Accounts   []AccountTotals `json:"accounts,omitempty"`
	SummaryKey string          `json:"summaryKey,omitempty"`
	Bucket     string          `json:"bucket,omitempty"`
	Report     *ReportRef      `json:"report,omitempty"`
	// RetryPlan, when present, sends the failed users through the map again
	// (pass 2, no tolerated failures).
	RetryPlan *Plan `json:"retryPlan,omitempty"`
}

// SummarizeInput is the summarize function's payload.
type SummarizeInput struct {
	Plan          Plan            `json:"plan"`
	Results       json.RawMessage `json:"results"`
	ExecutionName string          `json:"executionName"`
}

// Summarizer is the summarize step.
type Summarizer struct {
	S3     ObjectsAPI
	Topic  PublishAPI
	Config config.Config
	Now    func() time.Time
	Log    *slog.Logger
	// Metrics receives the run's results (the final pass only, so a
	// retried user counts once); nil: none.
	Metrics *metrics.Emitter
	// InlineLimit bounds Summary.Users (default SummaryUsersLimit); the S3
	// summary has all.
	InlineLimit int
}

// childResult is one child execution's result, from the inline map output
// or from the ResultWriter files.
type childResult struct {
	Task   Task
	Failed bool
	Error  string
}

// Handle totals the run, writes the summary object, and tells the admins.
func (s *Summarizer) Handle(ctx context.Context, in SummarizeInput) (*Summary, error) {
	results, err := s.results(ctx, in.Results)
	if err != nil {
		return nil, err
	}
	pass := max(in.Plan.Pass, 1)
	sum := &Summary{ExecutionName: in.ExecutionName, Pass: pass, Blocked: orEmpty(in.Plan.Blocked), Exempt: orEmpty(in.Plan.Exempt),
		Held: orEmpty(in.Plan.Held), Attention: orEmpty(in.Plan.Attention), Adopting: in.Plan.Adopting, Report: in.Plan.Report, Bucket: in.Plan.Bucket}
	if in.Plan.Bucket != "" && s.S3 != nil {
		sum.SummaryKey = fmt.Sprintf("runs/%s/%s/summary.json", in.Plan.runDay(nowOf(s.Now)), SafeKey(in.ExecutionName))
	}
	byKey := map[string]Outcome{}
	if pass > 1 && sum.SummaryKey != "" {
		var prev Summary
		if err := s.getJSON(ctx, in.Plan.Bucket, sum.SummaryKey, &prev); err != nil {
			return nil, err
		}
		for _, o := range prev.Users {
			byKey[o.Account+"/"+o.User+"/"+o.OldKeyID] = o
		}
	}
	var failed []Item
	for _, r := range results {
		o := outcomeOf(r)
		byKey[o.Account+"/"+o.User+"/"+o.OldKeyID] = o
		// An account keyrotor cannot reach, or an item out of scope, is
		// not tried again in this run: a person must fix it (the summary
		// says how).
		if r.Failed && !strings.Contains(r.Error, failures.Name(&failures.AccountUnreachableError{})) &&
			!strings.Contains(r.Error, failures.Name(&failures.OutOfScopeError{})) {
			failed = append(failed, r.Task.Item)
		}
	}
	for _, k := range sortedKeys(byKey) {
		o := byKey[k]
		sum.Users = append(sum.Users, o)
		switch o.Result {
		case "rotated":
			sum.Totals.Rotated++
		case "retired":
			sum.Totals.Retired++
		case "kept":
			sum.Totals.Kept++
		case "failed":
			sum.Totals.Failed++
		case "waiting":
			sum.Totals.Waiting++
		case "deleted":
			sum.Totals.Deleted++
		case "adopting":
			sum.Totals.Adopting++
		default:
			sum.Totals.Skipped++
		}
		if o.Mail == "sent" {
			sum.Totals.Mails++
		}
	}
	if sum.Users == nil {
		sum.Users = []Outcome{}
	}
	cleared := sum.dropCleared()
	c := in.Plan.Counts
	sum.Totals.Blocked, sum.Totals.Exempt = max(c.Blocked, len(sum.Blocked)), max(c.Exempt, len(sum.Exempt))
	sum.Totals.Held, sum.Totals.Attention, sum.Totals.InFlight, sum.Totals.InGrace = max(c.Held, len(sum.Held)), max(c.Attention-cleared, len(sum.Attention)), c.InFlight, c.InGrace
	sum.Totals.Adopting += c.Adopting
	sum.Totals.Unreachable, sum.Totals.WaitingAccounts = c.Unreachable, c.Waiting
	sum.Accounts = accountTotals(in.Plan.Accounts, sum.Users, s.Config.HomeAccount)

	if len(failed) > 0 && pass == 1 {
		rp := in.Plan
		rp.Pass, rp.ToleratedFailurePercentage, rp.Items, rp.ItemsTruncated = 2, 0, failed, false
		if len(rp.Items) > retryInlineItems {
			// The map reads the retry items from S3; the state carries a
			// few for people (256 KiB state limit).
			rp.Items, rp.ItemsTruncated = rp.Items[:retryInlineItems], true
		}
		rp.Counts.Rotate, rp.Counts.Retire = 0, 0
		for _, it := range failed {
			if it.Action == policy.Rotate {
				rp.Counts.Rotate++
			} else {
				rp.Counts.Retire++
			}
		}
		if rp.Bucket != "" && s.S3 != nil {
			rp.ItemsKey = strings.TrimSuffix(rp.ItemsKey, "items.json") + "retry-items.json"
			if err := s.putJSON(ctx, rp.Bucket, rp.ItemsKey, failed); err != nil {
				return nil, err
			}
		}
		sum.RetryPlan = &rp
	}
	if sum.SummaryKey != "" {
		if err := s.putJSON(ctx, in.Plan.Bucket, sum.SummaryKey, sum); err != nil {
			return nil, err
		}
	}
	if sum.RetryPlan == nil {
		if _, err := publish(ctx, s.Topic, s.Config.AdminTopicARN, s.adminSummary(sum)); err != nil {
			return nil, err
		}
		s.Metrics.Emit(map[string]float64{metrics.RunRotated: float64(sum.Totals.Rotated), metrics.RunRetired: float64(sum.Totals.Retired),
			metrics.RunFailed: float64(sum.Totals.Failed), metrics.RunWaiting: float64(sum.Totals.Waiting)})
	}
	limit := s.InlineLimit
	if limit == 0 {
		limit = SummaryUsersLimit
	}
	if len(sum.Users) > limit {
		sum.Users, sum.UsersCut = sum.Users[:limit], true
	}
	logOf(s.Log).InfoContext(ctx, "run summarized", "execution", in.ExecutionName, "pass", pass, "rotated", sum.Totals.Rotated,
		"retired", sum.Totals.Retired, "kept", sum.Totals.Kept, "failed", sum.Totals.Failed, "blocked", sum.Totals.Blocked)
	return sum, nil
}

// dropCleared removes from the plan's attention list each condition this
// run cleared: the rotation's notice went out in this run (the notify
// step clears the record's condition then), so the outcome, not the
// plan's stale condition, is the truth. It returns how many it removed.
func (sum *Summary) dropCleared() int {
	went := map[string]bool{}
	for _, o := range sum.Users {
		switch {
		case o.Mail == "sent", o.Result == "rotated", o.Result == "retired", o.Result == "adopting", o.Result == "deleted":
			went[o.Account+"/"+o.OldKeyID] = true
		}
	}
	kept := sum.Attention[:0:0]
	for _, a := range sum.Attention {
		if a.KeyID != "" && went[a.Account+"/"+a.KeyID] {
			continue
		}
		kept = append(kept, a)
	}
	n := len(sum.Attention) - len(kept)
	sum.Attention = kept
	return n
}

// SummaryUsersLimit bounds the summary's inline list of outcomes; the S3
// summary object lists every user.
const SummaryUsersLimit = 50

// retryInlineItems bounds the retry plan's inline copy of its items.
const retryInlineItems = 20

func orEmpty(s []Skipped) []Skipped {
	if s == nil {
		return []Skipped{}
	}
	return s
}

// runDay is the date in the run's S3 keys: the one find used for the plan.
func (p Plan) runDay(now time.Time) string {
	if parts := strings.Split(p.ItemsKey, "/"); len(parts) > 2 {
		return parts[1]
	}
	return now.UTC().Format("2006-01-02")
}

// accountTotals adds each account's outcomes to its plan line (home: the
// id of keyrotor's own account, whose items name no account).
func accountTotals(plan []AccountPlan, users []Outcome, home string) []AccountTotals {
	if plan == nil {
		return nil
	}
	out := make([]AccountTotals, len(plan))
	at := map[string]*AccountTotals{}
	for i, p := range plan {
		out[i].AccountPlan = p
		at[p.Account] = &out[i]
	}
	seen := map[string]int{}
	for _, o := range users {
		id := o.Account
		if id == "" {
			id = home
		}
		a := at[id]
		if a == nil {
			continue
		}
		seen[id]++
		switch o.Result {
		case "rotated":
			a.Rotated++
		case "retired":
			a.Retired++
		case "adopting":
			a.Adopting++
		case "failed":
			a.Failed++
		}
		if o.Mail == "sent" {
			a.Mails++
		}
	}
	for i := range out {
		a := &out[i]
		switch {
		case a.Status != AccountPlanned:
			a.Result = a.Status
		case a.Failed > 0:
			a.Result = AccountFailed
		case a.Rotated+a.Retired+a.Adopting > 0:
			a.Result = AccountRotated
		case seen[a.Account] > 0:
			a.Result = AccountDone
		default:
			a.Result = AccountNothingDue
		}
	}
	return out
}

func outcomeOf(r childResult) Outcome {
	t := r.Task
	o := Outcome{Account: t.Item.Account, User: t.Item.User, Action: t.Item.Action, OldKeyID: t.Item.OldKey.ID}
	if t.NewKey != nil {
		o.NewKeyID, o.SecretName = t.NewKey.KeyID, t.NewKey.SecretName
	}
	if t.Notice != nil {
		o.Mail = t.Notice.MailStatus
	}
	if d := t.Delivery; d != nil && d.Destinations > 0 {
		o.Delivered = d.Delivered
		for _, l := range d.Left {
			o.Undelivered = append(o.Undelivered, l.Where+": "+l.Reason)
		}
	}
	if d := t.Deactivation; d != nil && !d.DeleteAfter.IsZero() {
		da := d.DeleteAfter
		o.DeleteAfter, o.GraceExecution = &da, d.GraceExecution
	}
	switch {
	case r.Failed:
		o.Result, o.Error = "failed", r.Error
	case t.Skip() != "":
		o.Result, o.Reason = "skipped", t.Skip()
		if strings.HasPrefix(o.Reason, "held") {
			o.Result = "held"
		}
	case t.Notice != nil && t.Notice.Waiting != "" && !t.Notice.Accepted:
		o.Result, o.Reason = "waiting", t.Notice.Waiting
	case t.Notice != nil && t.Notice.MailStatus == "skipped":
		o.Result, o.Reason = "skipped", t.Notice.Skipped
	case t.Delivery != nil && t.Delivery.Skipped == "" && !t.Delivery.Complete:
		// Not every destination holds the new key: the old key stays
		// Active; the next run delivers the rest.
		o.Result, o.Reason = "waiting", fmt.Sprintf("the new key is not delivered everywhere yet (%s); the old key stays Active and the next run tries again", leftText(t.Delivery.Left))
	case t.Notice != nil && t.Notice.Adoption != nil:
		o.Result = "adopting"
		o.Reason = fmt.Sprintf("adoption window: the old key stays Active until the new key is in use, at the latest until %s; checked by execution %s",
			t.Notice.Adoption.Until.UTC().Format(time.RFC3339), t.Notice.Adoption.Execution)
	case t.Cleanup != nil && t.Cleanup.Deleted:
		o.Deleted, o.Reason, o.Result = true, t.Cleanup.Reason, "deleted"
	case t.Cleanup != nil:
		o.Result, o.Reason = "kept", t.Cleanup.Reason
	case t.Deactivation != nil && t.Deactivation.Next == NextGrace:
		o.Result = "rotated"
		if t.Item.Action != policy.Rotate {
			o.Result = "retired"
		}
		o.Reason = fmt.Sprintf("old key Inactive; to be deleted after %s by its grace-and-delete execution %s", t.Deactivation.DeleteAfter.Format(time.RFC3339), t.Deactivation.GraceExecution)
	case t.Deactivation != nil:
		o.Result, o.Reason = "skipped", t.Deactivation.Note
		if strings.Contains(o.Reason, "re-activated") {
			o.Result = "held"
		}
	default:
		o.Result = "skipped"
	}
	return o
}

// results reads the map's results: an inline array of child outputs (the
// local engine, or a map without ResultWriter), or the ResultWriter manifest.
func (s *Summarizer) results(ctx context.Context, raw json.RawMessage) ([]childResult, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '[' {
		var tasks []Task
		if err := json.Unmarshal(raw, &tasks); err != nil {
			return nil, &failures.InvalidInputError{Field: "results", Msg: "not a list of child results: " + err.Error()}
		}
		out := make([]childResult, len(tasks))
		for i, t := range tasks {
			out[i] = childResult{Task: t}
		}
		return out, nil
	}
	var w struct {
		ResultWriterDetails struct{ Bucket, Key string }
	}
	if err := json.Unmarshal(raw, &w); err != nil || w.ResultWriterDetails.Key == "" {
		return nil, &failures.InvalidInputError{Field: "results", Msg: "want the map's output: a list, or an object with ResultWriterDetails"}
	}
	var manifest struct {
		ResultFiles map[string][]struct{ Key string }
	}
	if err := s.getJSON(ctx, w.ResultWriterDetails.Bucket, w.ResultWriterDetails.Key, &manifest); err != nil {
		return nil, err
	}
	var out []childResult
	for _, status := range []string{"SUCCEEDED", "FAILED", "PENDING"} {
		for _, f := range manifest.ResultFiles[status] {
			var execs []struct {
				Input, Output, Error, Cause, Status string
			}
			if err := s.getJSON(ctx, w.ResultWriterDetails.Bucket, f.Key, &execs); err != nil {
				return nil, err
			}
			for _, e := range execs {
				var t Task
				src := e.Output
				if e.Status != "SUCCEEDED" || src == "" {
					src = e.Input
				}
				if err := json.Unmarshal([]byte(src), &t); err != nil {
					return nil, &failures.StepError{Msg: fmt.Sprintf("result file %s: child %s is not a task: %v", f.Key, e.Status, err)}
				}
				r := childResult{Task: t, Failed: e.Status != "SUCCEEDED"}
				if r.Failed {
					r.Error = strings.TrimSpace(e.Error + ": " + e.Cause)
				}
				out = append(out, r)
			}
		}
	}
	return out, nil
}

func (s *Summarizer) adminSummary(sum *Summary) notice.Admin {
	var b strings.Builder
	t := sum.Totals
	fmt.Fprintf(&b, "keyrotor run %s: %d rotated, %d retired, %d old keys kept, %d skipped, %d failed, %d blocked, %d exempt; %d owner mails sent.\n",
		sum.ExecutionName, t.Rotated, t.Retired, t.Kept, t.Skipped, t.Failed, t.Blocked, t.Exempt, t.Mails)
	if t.Adopting > 0 {
		fmt.Fprintf(&b, "%d rotations in their adoption window: each old key stays Active until its new key is in use (or the window ends).\n", t.Adopting)
	}
	if len(sum.Accounts) > 0 {
		fmt.Fprintf(&b, "\nAccounts (%d; %d unreachable, %d waiting for an earlier stage):\n", len(sum.Accounts), t.Unreachable, t.WaitingAccounts)
		for _, a := range sum.Accounts {
			name := a.Account
			if a.Alias != "" {
				name += " (" + a.Alias + ")"
			}
			switch a.Status {
			case AccountPlanned:
				fmt.Fprintf(&b, "- %s, stage %d: %s: %d rotated, %d retired, %d adopting, %d failed\n", name, a.Stage, a.Result, a.Rotated, a.Retired, a.Adopting, a.Failed)
			default:
				fmt.Fprintf(&b, "- %s, stage %d: %s: %s\n", name, a.Stage, a.Status, a.Reason)
			}
		}
	}
	if len(sum.Blocked) > 0 {
		b.WriteString("\nBlocked (keyrotor could not act; please look):\n")
		for _, x := range sum.Blocked {
			fmt.Fprintf(&b, "- %s key %s: %s\n", userIn(s.Config, x.Account, "", x.User), x.KeyID, x.Reason)
		}
	}
	for _, l := range []struct {
		title string
		list  []Skipped
	}{{"Needs a person (reported once, shown until fixed)", sum.Attention}, {"Held (a person acted; keyrotor keeps its hands off)", sum.Held},
		{"In their adoption window (old key still Active until the new key is in use)", sum.Adopting}} {
		if len(l.list) > 0 {
			b.WriteString("\n" + l.title + ":\n")
			for _, x := range l.list {
				fmt.Fprintf(&b, "- %s key %s: %s\n", userIn(s.Config, x.Account, "", x.User), x.KeyID, x.Reason)
			}
		}
	}
	var trouble []string
	for _, o := range sum.Users {
		if o.Result == "failed" || o.Result == "kept" {
			trouble = append(trouble, fmt.Sprintf("- %s key %s: %s %s%s", userIn(s.Config, o.Account, "", o.User), o.OldKeyID, o.Result, o.Reason, o.Error))
		}
	}
	sort.Strings(trouble)
	if len(trouble) > 0 {
		b.WriteString("\nNeeds attention:\n" + strings.Join(trouble, "\n") + "\n")
	}
	if r := sum.Report; r != nil {
		fmt.Fprintf(&b, "\nCredential report: s3://%s/%s (CSV) and s3://%s/%s (JSON)\n", r.Bucket, r.CSV, r.Bucket, r.JSON)
		fmt.Fprintf(&b, "https://s3.console.aws.amazon.com/s3/object/%s?prefix=%s\n", r.Bucket, r.CSV)
	}
	if sum.SummaryKey != "" {
		fmt.Fprintf(&b, "Run summary: s3://%s/%s\n", sum.Bucket, sum.SummaryKey)
	}
	subject := fmt.Sprintf("keyrotor: %d rotated, %d retired, %d blocked, %d failed", t.Rotated, t.Retired, t.Blocked, t.Failed)
	if t.Unreachable > 0 {
		subject += fmt.Sprintf(", %d accounts unreachable", t.Unreachable)
	}
	return notice.Admin{Subject: subject, Body: b.String()}
}

func (s *Summarizer) getJSON(ctx context.Context, bucket, key string, v any) error {
	out, err := s.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	var nk *s3types.NoSuchKey
	if errors.As(err, &nk) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		return fmt.Errorf("read s3://%s/%s: %w", bucket, key, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return &failures.StepError{Msg: fmt.Sprintf("s3://%s/%s is not the expected JSON: %v", bucket, key, err)}
	}
	return nil
}

func (s *Summarizer) putJSON(ctx context.Context, bucket, key string, v any) error {
	b, _ := json.MarshalIndent(v, "", "  ")
	_, err := s.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(b), ContentType: aws.String("application/json")})
	if err != nil {
		return fmt.Errorf("write s3://%s/%s: %w", bucket, key, err)
	}
	return nil
}
