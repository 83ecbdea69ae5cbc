package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// DeactivateIAM is the part of IAM deactivate calls.
type DeactivateIAM interface {
	ListKeysAPI
	// A retirement's premise: the key is still unused since the notice.
	GetAccessKeyLastUsed(ctx context.Context, in *iam.GetAccessKeyLastUsedInput, optFns ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error)
	UpdateAccessKey(ctx context.Context, in *iam.UpdateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.UpdateAccessKeyOutput, error)
}

var _ DeactivateIAM = (*iam.Client)(nil)

// Deactivator is the deactivate step.
type Deactivator struct {
	IAM     DeactivateIAM
	Records Records
	Topic   PublishAPI
	Config  config.Config
	Now     func() time.Time
	Log     *slog.Logger
}

// Handle deactivates exactly the planned old key, only once its notice went
// out and (rotate items) the new key is Active, and records when. A re-run
// reuses the recorded time, so the grace period is never shortened or
// extended. An old key found Active again after keyrotor deactivated it was
// re-activated by a person: that is final for the rotation, which is held
// and never deactivates it again.
func (d *Deactivator) Handle(ctx context.Context, t Task) (*Deactivation, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	res := &Deactivation{KeyID: it.OldKey.ID, Next: NextStop}
	if skip := t.Skip(); skip != "" {
		res.Note = skip
		return res, nil
	}
	if t.Execution == "" {
		return nil, &failures.InvalidInputError{Field: "execution", Msg: "missing: the state machine passes $$.Execution.Name"}
	}
	log := logOf(d.Log).With("user", it.User, "oldKeyId", it.OldKey.ID)
	now := nowOf(d.Now).UTC().Truncate(time.Second)
	rc := rotationCtx{recs: d.Records, topic: d.Topic, cfg: d.Config, execution: t.Execution, now: now, log: log}
	rec, stop, err := rc.open(ctx, it, ledger.Deactivate, ledger.Facts{})
	if err != nil {
		return nil, err
	}
	if stop != "" {
		res.Note = stop
		return res, nil
	}
	// (open asked ledger.Decide: the notice went out, and with a window
	// only its verdict deactivates.)
	res.Rotation = rec.Rotation
	keys, exists, err := liveKeys(ctx, d.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if !exists {
		res.Note = fmt.Sprintf("user %s was deleted", it.User)
		return res, rc.end(ctx, rec, it.OldKey.ID, res.Note, false, false)
	}
	if it.Action == policy.Rotate {
		nk, ok := findKey(keys, rec.NewKeyID)
		switch {
		case !ok && now.Sub(rec.NewKeyCreated) < newKeyVisibleWindow:
			return nil, &failures.NotVisibleYetError{What: fmt.Sprintf("new key %s of %s", rec.NewKeyID, it.User)}
		case !ok || nk.Status != types.StatusTypeActive:
			res.Note = fmt.Sprintf("the new key %s was deleted or deactivated by a person; the old key %s stays Active so the user is not locked out", rec.NewKeyID, it.OldKey.ID)
			return res, rc.end(ctx, rec, it.OldKey.ID, res.Note, true, true)
		}
	}
	if it.Action == policy.RetirePassword {
		// A password has no Inactive state: the notice starts the grace,
		// and delete removes the login profile afterwards.
		if rec.State != ledger.Deactivated {
			d.record(rec, now, t, "console password: removed after the grace period")
			if err := d.Records.Put(ctx, rec); err != nil {
				return nil, err
			}
			out := d.result(rec, now)
			out.Next = NextGrace
			return out, nil
		}
		return d.result(rec, now), nil
	}
	old, ok := findKey(keys, it.OldKey.ID)
	if !ok {
		if rec.State == ledger.Deactivated {
			// Deleted during its grace (by a person, or by a grace step
			// whose record write was lost): nothing is left to do.
			res.Note = "old key already deleted"
			return res, rc.end(ctx, rec, it.OldKey.ID, "the old key was deleted during its grace period", false, false)
		}
		res.Note = fmt.Sprintf("the old key %s was deleted by a person", it.OldKey.ID)
		return res, rc.end(ctx, rec, it.OldKey.ID, res.Note, false, true)
	}
	// A person's re-activation is final: after keyrotor deactivated the
	// key, or after the person's own deactivation the window took for its
	// verdict (the verdict must still hold when it is acted on).
	active := old.Status == types.StatusTypeActive
	used := false
	if it.Action == policy.Retire && active && rec.State != ledger.Deactivated && !rec.NoticeAt.IsZero() {
		// A retirement retires an unused key: one used since its owner was
		// told (the owner still needs it) is not switched off, however the
		// rotation got here (a resumed item, a takeover).
		out, err := d.IAM.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(it.OldKey.ID)})
		if err != nil {
			return nil, fmt.Errorf("get last use of %s: %w", it.OldKey.ID, err)
		}
		if u := out.AccessKeyLastUsed; u != nil && u.LastUsedDate != nil && u.LastUsedDate.After(rec.NoticeAt) {
			used = true
		}
	}
	if stop, err := rc.apply(ctx, rec, it.OldKey.ID, ledger.Decide(rec, ledger.Deactivate, ledger.Facts{Now: now, Kind: string(it.Action), OldKnown: true, OldActive: active, UsedSinceNotice: used, Lag: rc.cfg.StatusLagOverride})); stop != "" || err != nil {
		res.Note = stop
		return res, err
	}
	if rec.State == ledger.Deactivated {
		return d.result(rec, now), nil
	}
	if old.Status == types.StatusTypeActive {
		if _, err := d.IAM.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{
			UserName: aws.String(it.User), AccessKeyId: aws.String(it.OldKey.ID), Status: types.StatusTypeInactive,
		}); err != nil {
			return nil, fmt.Errorf("deactivate key %s of %s: %w", it.OldKey.ID, it.User, err)
		}
		log.InfoContext(ctx, "deactivated old key")
		d.record(rec, now, t, "deactivated the old key")
	} else {
		d.record(rec, now, t, "the old key was already Inactive (deactivated by a person); its grace period starts now")
	}
	if err := d.Records.Put(ctx, rec); err != nil {
		return nil, err
	}
	out := d.result(rec, now)
	// A fresh deactivation always goes through its grace execution, even
	// with a zero grace period; only a resumed rotation deletes inline.
	out.Next = NextGrace
	log.InfoContext(ctx, "old key inactive", "deactivatedAt", rec.DeactivatedAt.Format(time.RFC3339), "deleteAfter", rec.DeleteAfter.Format(time.RFC3339))
	return out, nil
}

func (d *Deactivator) record(rec *ledger.Record, now time.Time, t Task, note string) {
	rec.DeactivatedAt, rec.DeleteAfter = now, now.Add(d.Config.GracePeriod)
	if rec.GraceExecution == "" {
		// Named once per rotation and kept: a rotation in flight under an
		// earlier release's naming keeps its execution's name, so a re-run
		// never starts a second grace execution under a new name.
		rec.GraceExecution = executionName(rec.Account, t.Item.User, rec.ID, rec.Rotation, 0)
	}
	if rec.Adoption != nil {
		// The window's own execution goes on with the grace period.
		rec.GraceExecution = rec.Adoption.Execution
	}
	rec.Move(now, ledger.Deactivated, t.Execution, note)
}

// result tells the state machine what follows the deactivation.
func (d *Deactivator) result(rec *ledger.Record, now time.Time) *Deactivation {
	res := &Deactivation{KeyID: rec.ID, DeactivatedAt: rec.DeactivatedAt, DeleteAfter: rec.DeleteAfter,
		GraceExecution: rec.GraceExecution, Rotation: rec.Rotation, Next: NextGrace}
	if !now.Before(rec.DeleteAfter) {
		res.Next = NextDelete
	}
	return res
}
