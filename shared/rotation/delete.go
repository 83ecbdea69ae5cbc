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
	"github.com/keyrotor/keyrotor/shared/notice"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// DeleteIAM is the part of IAM delete calls.
type DeleteIAM interface {
	ListKeysAPI
	TagsAPI
	DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, optFns ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error)
	GetUser(ctx context.Context, in *iam.GetUserInput, optFns ...func(*iam.Options)) (*iam.GetUserOutput, error)
	DeleteLoginProfile(ctx context.Context, in *iam.DeleteLoginProfileInput, optFns ...func(*iam.Options)) (*iam.DeleteLoginProfileOutput, error)
}

var _ DeleteIAM = (*iam.Client)(nil)

// Deleter is the delete step.
type Deleter struct {
	IAM    DeleteIAM
	Topic  PublishAPI
	Config config.Config
	Now    func() time.Time
	Log    *slog.Logger
}

// Handle deletes the old key only if it is still Inactive, keyrotor
// deactivated it, its grace period has passed and (for a rotation) the new
// key still exists and is Active. Otherwise it deletes nothing, says why,
// and tells the admins. A key already gone is success.
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
	keys, exists, err := liveKeys(ctx, d.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if !exists {
		res.Reason = fmt.Sprintf("user %s no longer exists; nothing to delete", it.User)
		return res, nil
	}
	ledger, err := readLedger(ctx, d.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if it.Action == policy.RetirePassword {
		return d.password(ctx, t, ledger, log)
	}
	old, ok := findKey(keys, it.OldKey.ID)
	if !ok {
		res.Deleted, res.Reason = true, "old key already deleted"
		return res, removeTags(ctx, d.IAM, it.User, ledgerKeys(it.OldKey.ID)...)
	}
	now := nowOf(d.Now)
	at := ledger.DeactivatedAt(it.OldKey.ID)
	var refuse string
	switch {
	case old.Status == types.StatusTypeActive:
		refuse = "it was re-activated during its grace period; keyrotor leaves an Active key alone. Deactivate it again, or delete it, once its user no longer needs it"
	case at.IsZero():
		refuse = "keyrotor has no record of deactivating it, so it is not keyrotor's to delete"
	case now.Before(at.Add(d.Config.GracePeriod)):
		refuse = fmt.Sprintf("its grace period runs until %s; it is not deleted early", at.Add(d.Config.GracePeriod).UTC().Format(time.RFC3339))
	case it.Action == policy.Rotate && !activeNewKey(keys, t):
		refuse = "the new key that replaced it is gone or not Active, so the old key is kept in case it is needed"
	}
	if refuse != "" {
		res.Reason = "not deleted: " + refuse
		log.WarnContext(ctx, "old key not deleted", "reason", refuse)
		if _, err := publish(ctx, d.Topic, d.Config.AdminTopicARN, notice.AdminAttention(it.User, it.OldKey.ID, refuse)); err != nil {
			return nil, err
		}
		return res, nil
	}
	if _, err := d.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(it.User), AccessKeyId: aws.String(it.OldKey.ID)}); err != nil && !isNoSuchEntity(err) {
		return nil, fmt.Errorf("delete key %s of %s: %w", it.OldKey.ID, it.User, err)
	}
	log.InfoContext(ctx, "deleted old key")
	res.Deleted, res.Reason = true, fmt.Sprintf("deleted after its grace period (deactivated %s)", at.UTC().Format(time.RFC3339))
	return res, removeTags(ctx, d.IAM, it.User, ledgerKeys(it.OldKey.ID)...)
}

// password removes an unused console password after its grace period,
// unless it was used since the notice.
func (d *Deleter) password(ctx context.Context, t Task, ledger Ledger, log *slog.Logger) (*Cleanup, error) {
	it := t.Item
	res := &Cleanup{KeyID: it.OldKey.ID}
	at := ledger.DeactivatedAt(it.OldKey.ID)
	out, err := d.IAM.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(it.User)})
	if isNoSuchEntity(err) {
		res.Reason = fmt.Sprintf("user %s no longer exists; nothing to delete", it.User)
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get user %s: %w", it.User, err)
	}
	var refuse string
	switch used := aws.ToTime(out.User.PasswordLastUsed); {
	case at.IsZero():
		refuse = "keyrotor has no record of noticing its removal"
	case nowOf(d.Now).Before(at.Add(d.Config.GracePeriod)):
		refuse = fmt.Sprintf("its grace period runs until %s", at.Add(d.Config.GracePeriod).UTC().Format(time.RFC3339))
	case used.After(at):
		refuse = fmt.Sprintf("the password was used on %s, after the notice; it is kept", used.UTC().Format(time.RFC3339))
	}
	if refuse != "" {
		res.Reason = "not deleted: " + refuse
		if _, err := publish(ctx, d.Topic, d.Config.AdminTopicARN, notice.AdminAttention(it.User, "console password", refuse)); err != nil {
			return nil, err
		}
		return res, removeTags(ctx, d.IAM, it.User, ledgerKeys(it.OldKey.ID)...)
	}
	if _, err := d.IAM.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(it.User)}); err != nil && !isNoSuchEntity(err) {
		return nil, fmt.Errorf("delete login profile of %s: %w", it.User, err)
	}
	log.InfoContext(ctx, "removed console password")
	res.Deleted, res.Reason = true, fmt.Sprintf("console password removed after its grace period (notice %s)", at.UTC().Format(time.RFC3339))
	return res, removeTags(ctx, d.IAM, it.User, ledgerKeys(it.OldKey.ID)...)
}

func activeNewKey(keys []types.AccessKeyMetadata, t Task) bool {
	if t.NewKey == nil {
		return false
	}
	k, ok := findKey(keys, t.NewKey.KeyID)
	return ok && k.Status == types.StatusTypeActive
}
