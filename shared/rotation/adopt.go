package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/notice"
)

// AdoptionIAM is the part of IAM the adoption check calls.
type AdoptionIAM interface {
	ListKeysAPI
	GetAccessKeyLastUsed(ctx context.Context, in *iam.GetAccessKeyLastUsedInput, optFns ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error)
}

var _ AdoptionIAM = (*iam.Client)(nil)

// proofGranularity is how close to keyrotor's own proof call a use of the
// new key through STS may be and still be that proof: IAM records a key's
// use at most every 15 minutes ("Getting credential reports", IAM User
// Guide), so the proof's own use may be reported a little after it. A use
// of any other service is never the proof (sts:GetCallerIdentity).
const proofGranularity = 15 * time.Minute

// Watcher is the CheckAdoption step: during a rotation's adoption window,
// run once per check by the key's own execution (a Wait loop in the state
// machine, no Lambda between checks), it reads both keys' last use and
// decides:
//   - adopted: the new key was used by something other than keyrotor's
//     proof, and the old key was not used since the check that first saw
//     that: deactivate now (switched over on evidence);
//   - the window ended: deactivate now (on the deadline), telling the
//     admins where the old key was last used;
//   - otherwise wait for the next check, reminding the owner at the
//     configured points of the window.
//
// A person's action ends or holds the rotation as in the rest of the flow.
type Watcher struct {
	IAM     AdoptionIAM
	Records Records
	Mail    MailAPI
	Topic   PublishAPI
	Config  config.Config
	Region  string
	Now     func() time.Time
	Log     *slog.Logger
	Metrics *metrics.Emitter // switch-overs and refused reminders; nil: none
}

// Handle runs one check of t's adoption window.
func (w *Watcher) Handle(ctx context.Context, t Task) (*Adoption, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	if t.Execution == "" {
		return nil, &failures.InvalidInputError{Field: "execution", Msg: "missing: the state machine passes the key's own execution name"}
	}
	log := logOf(w.Log).With("user", it.User, "oldKeyId", it.OldKey.ID)
	now := nowOf(w.Now).UTC().Truncate(time.Second)
	rc := rotationCtx{recs: w.Records, topic: w.Topic, cfg: w.Config, execution: t.Execution, now: now, log: log}
	rec, stop, err := rc.open(ctx, it, ledger.Continue, ledger.Facts{})
	if err != nil {
		return nil, err
	}
	res := &Adoption{Execution: t.Execution, Next: NextStop}
	if stop != "" {
		res.Note = stop
		return res, nil
	}
	switch {
	case rec.State == ledger.Deactivated:
		// A re-run after the switch-over: deactivate answers from the record.
		res.Next = NextDeactivate
		return res, nil
	case rec.State != ledger.Adopting || rec.Adoption == nil:
		res.Note = fmt.Sprintf("rotation %d is %s, not in an adoption window", rec.Rotation, rec.State)
		return res, nil
	}
	ad := rec.Adoption
	res.Until = ad.Until
	keys, exists, err := liveKeys(ctx, w.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if !exists {
		res.Note = fmt.Sprintf("user %s was deleted", it.User)
		return res, rc.end(ctx, rec, it.OldKey.ID, res.Note, false, false)
	}
	nk, ok := findKey(keys, rec.NewKeyID)
	if !ok && now.Sub(rec.NewKeyCreated) < newKeyVisibleWindow {
		// IAM is eventually consistent: the first check runs right after
		// the key was created and may not see it listed yet.
		return nil, &failures.NotVisibleYetError{What: fmt.Sprintf("new key %s of %s", rec.NewKeyID, it.User)}
	}
	if !ok || nk.Status != types.StatusTypeActive {
		res.Note = fmt.Sprintf("the new key %s was deleted or deactivated by a person during the adoption window; the old key %s stays Active so the user is not locked out", rec.NewKeyID, it.OldKey.ID)
		return res, rc.end(ctx, rec, it.OldKey.ID, res.Note, true, true)
	}
	old, ok := findKey(keys, it.OldKey.ID)
	if !ok {
		res.Note = fmt.Sprintf("the old key %s was deleted by a person during the adoption window", it.OldKey.ID)
		return res, rc.end(ctx, rec, it.OldKey.ID, res.Note, false, true)
	}
	// A verdict recorded earlier (this check re-run, or the window handed
	// to a new execution) is acted on only while it still holds: a person
	// who switched the old key back on undid their own switch-over.
	if stop, err := rc.apply(ctx, rec, it.OldKey.ID, ledger.Decide(rec, ledger.Continue, ledger.Facts{Now: now, Kind: string(it.Action), OldKnown: true, OldActive: old.Status == types.StatusTypeActive, Lag: rc.cfg.StatusLagOverride})); stop != "" || err != nil {
		res.Note = stop
		return res, err
	}
	oldUse, err := w.lastUse(ctx, it.OldKey.ID)
	if err != nil {
		return nil, err
	}
	if ad.SwitchOver == ledger.SwitchEvidence && !sameUse(oldUse, ad.OldAtNewSeen) {
		// The old key was used after the evidence was taken: it was no
		// evidence. The window goes on (to its deadline at the latest).
		rec.Log(now, rec.State, t.Execution, fmt.Sprintf("switch-over on evidence withdrawn: the old key was used since (%s)", oldUse))
		ad.SwitchOver, ad.SwitchedAt, ad.NewSeenAt, ad.OldAtNewSeen = "", time.Time{}, time.Time{}, nil
	}
	if ad.SwitchOver != "" {
		res.Next, res.SwitchOver = NextDeactivate, ad.SwitchOver
		return w.describe(res, ad), nil
	}
	newUse, err := w.lastUse(ctx, rec.NewKeyID)
	if err != nil {
		return nil, err
	}
	ad.Checks++
	ad.OldLastUsed, ad.NewLastUsed = oldUse, newUse
	proof := rec.ProofAt
	if proof.IsZero() {
		proof = rec.NewKeyCreated
	}
	newInUse := newUse != nil && newUse.At.After(proof) && (newUse.Service != "sts" || newUse.At.After(proof.Add(proofGranularity)))
	adopted := false
	every, recording := w.Config.CheckEvery(), w.Config.Recording()
	switch {
	case !newInUse:
	case ad.NewSeenAt.IsZero() || !sameUse(oldUse, ad.OldAtNewSeen):
		// First seen in use, or the old key was used again since: the
		// old key must stay unused until a later check.
		ad.NewSeenAt, ad.OldAtNewSeen = now, oldUse
	default:
		// Evidence takes two scheduled checks at least one recording
		// interval apart (IAM records a use up to 15 minutes late): a
		// retry of the check that saw the new key in use, seconds later,
		// is the same check, whatever its invocation.
		adopted = !scheduledCheck(rec, now, every).Before(scheduledCheck(rec, ad.NewSeenAt, every).Add(recording)) &&
			!now.Before(ad.NewSeenAt.Add(recording))
	}
	res.NewKeyInUse = newInUse
	switch {
	case old.Status != types.StatusTypeActive:
		// A person switched the old key off: their act is the verdict
		// (whatever the evidence), so switching it back on is theirs too.
		ad.SwitchOver = ledger.SwitchPerson
	case adopted:
		ad.SwitchOver = ledger.SwitchEvidence
	case !now.Before(ad.Until) && !rec.Evidence:
		ad.SwitchOver = ledger.SwitchDeadline
	case !now.Before(ad.Until):
		// A delivered key switches over on evidence only: past the
		// deadline the old key stays Active, the admins are told once,
		// and the checks go on until the new key is seen in use (or a
		// person switches the old key off).
		what := fmt.Sprintf("the adoption window of the new key %s ended on %s without evidence that it is in use where it was delivered (%s): the old key %s stays Active and keyrotor keeps checking. "+
			"Find out why nothing uses the new key; deactivating the old key yourself switches over", rec.NewKeyID, ad.Until.UTC().Format(time.RFC3339), deliveredText(rec), it.OldKey.ID)
		if err := rc.attention(ctx, rec, it.OldKey.ID, what); err != nil {
			return nil, err
		}
	}
	if ad.SwitchOver != "" {
		ad.SwitchedAt = now
		rec.Log(now, rec.State, t.Execution, fmt.Sprintf("switched over (%s): old key last used %s, new key last used %s", ad.SwitchOver, oldUse, newUse))
		rec.LeaseUntil = now.Add(LeaseDuration)
		if err := w.Records.Put(ctx, rec); err != nil {
			return nil, err
		}
		m := notice.AdminSwitchOver(userIn(w.Config, it.Account, it.AccountAlias, it.User), it.OldKey.ID, rec.NewKeyID, ad.SwitchOver, oldUse.String(), w.newUseText(newUse, newInUse))
		if _, err := publish(ctx, w.Topic, w.Config.AdminTopicARN, m); err != nil {
			log.WarnContext(ctx, "could not tell the admins about the switch-over", "error", err.Error())
		}
		w.Metrics.Emit(map[string]float64{
			metrics.SwitchOverEvidence: metrics.Flag(ad.SwitchOver == ledger.SwitchEvidence),
			metrics.SwitchOverDeadline: metrics.Flag(ad.SwitchOver == ledger.SwitchDeadline),
			metrics.SwitchOverPerson:   metrics.Flag(ad.SwitchOver == ledger.SwitchPerson),
		})
		log.InfoContext(ctx, "switched over", "how", ad.SwitchOver, "oldLastUsed", oldUse.String(), "newLastUsed", newUse.String())
		res.Next, res.SwitchOver = NextDeactivate, ad.SwitchOver
		return w.describe(res, ad), nil
	}
	point, due := w.reminderDue(ad, now)
	if due {
		// Recorded before sending: a reminder is never sent twice, at the
		// cost of one lost if this step fails right after.
		ad.Reminders = append(ad.Reminders, point)
	}
	res.NextCheck = nextCheck(rec, now, w.Config.CheckEvery())
	rec.LeaseUntil = res.NextCheck.Add(LeaseDuration)
	if err := w.Records.Put(ctx, rec); err != nil {
		return nil, err
	}
	if due {
		res.Reminded = w.remind(ctx, t, rec, newInUse, log)
	}
	res.Next = NextWait
	return w.describe(res, ad), nil
}

func (w *Watcher) describe(res *Adoption, ad *ledger.Adoption) *Adoption {
	res.OldLastUsed, res.NewLastUsed, res.Checks = ad.OldLastUsed.String(), ad.NewLastUsed.String(), ad.Checks
	return res
}

func (w *Watcher) newUseText(u *ledger.Use, inUse bool) string {
	if !inUse {
		return "not yet (only keyrotor's own check)"
	}
	return u.String()
}

// lastUse reads a key's last use (nil: never used).
func (w *Watcher) lastUse(ctx context.Context, id string) (*ledger.Use, error) {
	out, err := w.IAM.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(id)})
	if err != nil {
		return nil, fmt.Errorf("get last use of %s: %w", id, err)
	}
	u := out.AccessKeyLastUsed
	if u == nil || u.LastUsedDate == nil {
		return nil, nil
	}
	return &ledger.Use{At: u.LastUsedDate.UTC(), Service: aws.ToString(u.ServiceName), Region: aws.ToString(u.Region)}, nil
}

// sameUse reports whether two last uses are the same (the key was not used
// in between).
func sameUse(a, b *ledger.Use) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.At.Equal(b.At)
}

// scheduledCheck is the scheduled check an invocation at now runs (every
// interval from the notice; the window's end for the last one), whenever
// it actually runs (retries, a Lambda backlog).
func scheduledCheck(rec *ledger.Record, now time.Time, every time.Duration) time.Time {
	base, until := rec.NoticeAt, rec.Adoption.Until
	if !now.Before(until) && !rec.Evidence {
		return until
	}
	if base.IsZero() || base.After(now) || every <= 0 {
		return now
	}
	return base.Add(now.Sub(base) / every * every)
}

// nextCheck is the next check after now on the window's schedule (every
// interval from the notice, so retries do not drift it), at the latest the
// window's end while it runs.
func nextCheck(rec *ledger.Record, now time.Time, every time.Duration) time.Time {
	base, until := rec.NoticeAt, rec.Adoption.Until
	if base.IsZero() || base.After(now) {
		base = now
	}
	n := now.Sub(base)/every + 1
	next := base.Add(n * every)
	if next.After(until) && now.Before(until) {
		next = until
	}
	// Past the end (a delivered key, checked until it is seen in use):
	// the schedule goes on.
	return next
}

// reminderDue returns the reminder point (seconds before the window's end)
// that is due now and was not yet sent; when several are, the latest (the
// others are skipped: one reminder per check).
func (w *Watcher) reminderDue(ad *ledger.Adoption, now time.Time) (int64, bool) {
	var due []int64
	for _, p := range w.Config.Reminders() {
		s := int64(p / time.Second)
		if !now.Before(ad.Until.Add(-p)) && !slices.Contains(ad.Reminders, s) {
			due = append(due, s)
		}
	}
	if len(due) == 0 {
		return 0, false
	}
	// Points passed together make one reminder: the others count as sent.
	ad.Reminders = append(ad.Reminders, due[1:]...)
	return due[0], true
}

// remind mails the owner (or, with no address, tells the admins) that the
// switch has not happened yet. A failed reminder is logged, not retried:
// reminders stay bounded.
func (w *Watcher) remind(ctx context.Context, t Task, rec *ledger.Record, newInUse bool, log *slog.Logger) string {
	it := t.Item
	o := notice.Owner{User: it.User, Action: string(it.Action), Reason: it.Reason, Region: w.Region,
		Account: ownerAccount(w.Config, it), AccountAlias: it.AccountAlias,
		OldKey:   notice.Key{ID: it.OldKey.ID, Created: it.OldKey.Created, AgeDays: it.OldKey.AgeDays, LastUsed: it.OldKey.LastUsed},
		NewKeyID: rec.NewKeyID, SecretName: rec.SecretName, StopsWorking: rec.Adoption.Until, DeleteAfter: rec.Adoption.Until.Add(w.Config.GracePeriod),
		Window: &notice.Window{Every: w.Config.CheckEvery(), Grace: w.Config.GracePeriod, OldLastUsed: rec.Adoption.OldLastUsed.String(), NewLastUsed: w.newUseText(rec.Adoption.NewLastUsed, newInUse)}}
	if it.Email == "" {
		m := notice.AdminAttention(userIn(w.Config, it.Account, it.AccountAlias, it.User), it.OldKey.ID, fmt.Sprintf("the adoption window ends at %s and the new key %s is not in use yet (old key last used %s); the user has no owner address: please tell the owner.",
			rec.Adoption.Until.UTC().Format(time.RFC3339), rec.NewKeyID, rec.Adoption.OldLastUsed))
		if _, err := publish(ctx, w.Topic, w.Config.AdminTopicARN, m); err != nil {
			log.WarnContext(ctx, "reminder to the admins failed", "error", err.Error())
			return "failed"
		}
		return "admins"
	}
	n := &Notifier{Mail: w.Mail, Config: w.Config, Region: w.Region}
	m, err := notice.OwnerReminder(o)
	if err != nil {
		log.ErrorContext(ctx, "render reminder", "error", err.Error())
		return "failed"
	}
	_, err = n.sendMail(ctx, it.Email, m)
	w.Metrics.Emit(map[string]float64{metrics.MailsRefused: metrics.Flag(err != nil && definite(err))})
	if err != nil {
		log.WarnContext(ctx, "reminder not sent", "to", it.Email, "error", err.Error())
		return "failed"
	}
	log.InfoContext(ctx, "owner reminded", "to", it.Email, "until", rec.Adoption.Until.Format(time.RFC3339))
	return "sent"
}

// deliveredText lists the destinations a rotation delivered its new key to.
func deliveredText(rec *ledger.Record) string {
	var out []string
	for _, d := range rec.Deliveries {
		if d.State == ledger.DeliveryVerified {
			out = append(out, d.Where)
		}
	}
	if len(out) == 0 {
		return "no destination"
	}
	return strings.Join(out, "; ")
}
