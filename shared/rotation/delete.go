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
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/notice"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// DeleteIAM is the part of IAM delete calls.
type DeleteIAM interface {
	ListKeysAPI
	DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, optFns ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error)
	GetAccessKeyLastUsed(ctx context.Context, in *iam.GetAccessKeyLastUsedInput, optFns ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error)
	GetUser(ctx context.Context, in *iam.GetUserInput, optFns ...func(*iam.Options)) (*iam.GetUserOutput, error)
	// The console password's set time: a person's new password is not
	// the one noticed.
	GetLoginProfile(ctx context.Context, in *iam.GetLoginProfileInput, optFns ...func(*iam.Options)) (*iam.GetLoginProfileOutput, error)
	DeleteLoginProfile(ctx context.Context, in *iam.DeleteLoginProfileInput, optFns ...func(*iam.Options)) (*iam.DeleteLoginProfileOutput, error)
}

var _ DeleteIAM = (*iam.Client)(nil)

// Deleter is the delete step: the end of a key's grace-and-delete
// execution (or of a resumed rotation whose grace is already over).
type Deleter struct {
	IAM     DeleteIAM
	Records Records
	Topic   PublishAPI
	Config  config.Config
	Now     func() time.Time
	Log     *slog.Logger
}

// Handle deletes the old key only if its rotation record shows keyrotor
// deactivated it in this rotation, the grace period from that deactivation
// has passed, the key is still Inactive and (for a rotation) the new key is
// still Active. Otherwise it deletes nothing and says why; a key a person
// re-activated holds the rotation and the admins are told. A key already
// gone is success.
func (d *Deleter) Handle(ctx context.Context, t Task) (*Cleanup, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	res := &Cleanup{KeyID: it.OldKey.ID}
	if skip := t.Skip(); skip != "" {
		res.Reason = skip
		return res, nil
	}
	log := logOf(d.Log).With("user", it.User, "oldKeyId", it.OldKey.ID)
	now := nowOf(d.Now).UTC().Truncate(time.Second)
	rc := rotationCtx{recs: d.Records, topic: d.Topic, cfg: d.Config, execution: t.Execution, now: now, log: log}
	rec, err := rc.getScoped(ctx, RecordID(it), it)
	if err != nil {
		return nil, err
	}
	want := 0
	if t.Deactivation != nil {
		want = t.Deactivation.Rotation
	}
	switch {
	case rec == nil:
		res.Reason = "not deleted: keyrotor has no record of deactivating it, so it is not keyrotor's to delete"
		return res, nil
	case want != 0 && rec.Rotation != want:
		res.Reason = fmt.Sprintf("not deleted: rotation %d of this key is the current one, not %d", rec.Rotation, want)
		return res, nil
	case rec.State == ledger.Deleted:
		res.Deleted, res.Reason = true, "already deleted: "+rec.Outcome
		return res, nil
	case rec.State != ledger.Deactivated:
		res.Reason = fmt.Sprintf("not deleted: the rotation is %s (%s)", rec.State, rec.Outcome)
		return res, nil
	case now.Before(rec.DeleteAfter):
		res.Reason = fmt.Sprintf("not deleted: its grace period runs until %s; it is not deleted early", rec.DeleteAfter.Format(time.RFC3339))
		return res, nil
	}
	keys, exists, err := liveKeys(ctx, d.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if !exists {
		res.Reason = fmt.Sprintf("user %s no longer exists; nothing to delete", it.User)
		return res, rc.end(ctx, rec, it.OldKey.ID, res.Reason, false, false)
	}
	if it.Action == policy.RetirePassword {
		return d.password(ctx, rc, t, rec, log)
	}
	old, ok := findKey(keys, it.OldKey.ID)
	if !ok {
		res.Deleted, res.Reason = true, "old key already deleted"
		return res, d.done(ctx, rc, rec, "the old key was already deleted when its grace period ended")
	}
	// A key a person re-activated during its grace is theirs: held. It
	// may be Inactive again by now; its use since it was switched off
	// shows the re-activation all the same.
	facts := ledger.Facts{Now: now, Kind: string(it.Action), OldKnown: true, OldActive: old.Status == types.StatusTypeActive, Lag: rc.cfg.StatusLagOverride}
	used, err := d.IAM.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(it.OldKey.ID)})
	switch {
	case isNoSuchEntity(err):
		res.Deleted, res.Reason = true, "old key already deleted"
		return res, d.done(ctx, rc, rec, "the old key was already deleted when its grace period ended")
	case err != nil:
		return nil, fmt.Errorf("get last use of %s: %w", it.OldKey.ID, err)
	case used.AccessKeyLastUsed != nil:
		facts.OldLastUsed = aws.ToTime(used.AccessKeyLastUsed.LastUsedDate)
	}
	if stop, err := rc.apply(ctx, rec, it.OldKey.ID, ledger.Decide(rec, ledger.Continue, facts)); stop != "" || err != nil {
		res.Reason = "not deleted: " + stop
		return res, err
	}
	if it.Action == policy.Rotate {
		if k, ok := findKey(keys, rec.NewKeyID); !ok || k.Status != types.StatusTypeActive {
			res.Reason = fmt.Sprintf("not deleted: the new key %s that replaced it was deleted or deactivated by a person, so the old key is kept (Inactive) in case it is needed", rec.NewKeyID)
			return res, rc.end(ctx, rec, it.OldKey.ID, res.Reason, true, true)
		}
	}
	if _, err := d.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(it.User), AccessKeyId: aws.String(it.OldKey.ID)}); err != nil && !isNoSuchEntity(err) {
		return nil, fmt.Errorf("delete key %s of %s: %w", it.OldKey.ID, it.User, err)
	}
	log.InfoContext(ctx, "deleted old key")
	res.Deleted, res.Reason = true, fmt.Sprintf("deleted after its grace period (deactivated %s)", rec.DeactivatedAt.Format(time.RFC3339))
	return res, d.done(ctx, rc, rec, res.Reason)
}

func (d *Deleter) done(ctx context.Context, rc rotationCtx, rec *ledger.Record, why string) error {
	rec.Outcome = why
	rec.Owner, rec.LeaseUntil = "", time.Time{}
	rec.ExpiresAt = rc.now.Add(finishedRetention).Unix()
	rec.Move(rc.now, ledger.Deleted, rc.execution, why)
	return d.Records.Put(ctx, rec)
}

// password removes an unused console password after its grace period:
// the password noticed (a person's new password is theirs: the retirement
// is held), unless it was used since the notice.
func (d *Deleter) password(ctx context.Context, rc rotationCtx, t Task, rec *ledger.Record, log *slog.Logger) (*Cleanup, error) {
	it := t.Item
	res := &Cleanup{KeyID: it.OldKey.ID}
	out, err := d.IAM.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(it.User)})
	if isNoSuchEntity(err) {
		res.Reason = fmt.Sprintf("user %s no longer exists; nothing to delete", it.User)
		return res, rc.end(ctx, rec, it.OldKey.ID, res.Reason, false, false)
	}
	if err != nil {
		return nil, fmt.Errorf("get user %s: %w", it.User, err)
	}
	lp, err := d.IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(it.User)})
	if isNoSuchEntity(err) {
		// Removed during its grace (by a person, or by a delete whose
		// answer was lost after it removed it): nothing is left to do.
		res.Deleted, res.Reason = true, "console password already removed"
		return res, d.done(ctx, rc, rec, "the console password was already removed when its grace period ended")
	}
	if err != nil {
		return nil, fmt.Errorf("get login profile of %s: %w", it.User, err)
	}
	// A password set after the one the rotation names (its id's time, the
	// report's password_last_changed, whole seconds) is a person's new one.
	set, noticed := aws.ToTime(lp.LoginProfile.CreateDate).Truncate(time.Second), passwordSetAt(rec.ID)
	if noticed.Unix() == 0 {
		noticed = it.OldKey.Created
	}
	if stop, err := rc.apply(ctx, rec, it.OldKey.ID, ledger.Decide(rec, ledger.Continue, ledger.Facts{Now: rc.now, Kind: string(it.Action), PasswordReset: set.After(noticed), Lag: rc.cfg.StatusLagOverride})); stop != "" || err != nil {
		res.Reason = "not deleted: " + stop
		return res, err
	}
	if used := aws.ToTime(out.User.PasswordLastUsed); used.After(rec.DeactivatedAt) {
		res.Reason = fmt.Sprintf("not deleted: the password was used on %s, after the notice; it is kept", used.UTC().Format(time.RFC3339))
		if _, err := publish(ctx, d.Topic, d.Config.AdminTopicARN, notice.AdminAttention(userIn(d.Config, it.Account, it.AccountAlias, it.User), "console password", res.Reason)); err != nil {
			return nil, err
		}
		return res, rc.end(ctx, rec, it.OldKey.ID, res.Reason, false, false)
	}
	if _, err := d.IAM.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(it.User)}); err != nil && !isNoSuchEntity(err) {
		return nil, fmt.Errorf("delete login profile of %s: %w", it.User, err)
	}
	log.InfoContext(ctx, "removed console password")
	res.Deleted, res.Reason = true, fmt.Sprintf("console password removed after its grace period (notice %s)", rec.DeactivatedAt.Format(time.RFC3339))
	return res, d.done(ctx, rc, rec, res.Reason)
}
