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
	"github.com/keyrotor/keyrotor/shared/policy"
)

// DeactivateIAM is the part of IAM deactivate calls.
type DeactivateIAM interface {
	ListKeysAPI
	TagsAPI
	UpdateAccessKey(ctx context.Context, in *iam.UpdateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.UpdateAccessKeyOutput, error)
}

var _ DeactivateIAM = (*iam.Client)(nil)

// Deactivator is the deactivate step.
type Deactivator struct {
	IAM    DeactivateIAM
	Config config.Config
	Now    func() time.Time
	Log    *slog.Logger
}

// Handle deactivates exactly the planned old key, only once the new key
// exists and is Active (rotate items), records when on the user, and returns
// when the key may be deleted. The recorded time is reused on every re-run,
// so a retry or Redrive never extends the grace period.
func (d *Deactivator) Handle(ctx context.Context, t Task) (*Deactivation, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	now := nowOf(d.Now).UTC().Truncate(time.Second)
	if skip := t.Skip(); skip != "" {
		return &Deactivation{KeyID: it.OldKey.ID, DeactivatedAt: now, DeleteAfter: now, Note: skip}, nil
	}
	log := logOf(d.Log).With("user", it.User, "oldKeyId", it.OldKey.ID)
	keys, exists, err := liveKeys(ctx, d.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if !exists {
		return &Deactivation{KeyID: it.OldKey.ID, DeactivatedAt: now, DeleteAfter: now, Note: fmt.Sprintf("user %s no longer exists", it.User)}, nil
	}
	if it.Action == policy.Rotate {
		if t.NewKey == nil || t.NewKey.KeyID == "" {
			return nil, &failures.InvalidInputError{Field: "newKey.keyId", Msg: "a rotate item reaches deactivate only after create-and-store"}
		}
		nk, ok := findKey(keys, t.NewKey.KeyID)
		if !ok || nk.Status != types.StatusTypeActive {
			return nil, &failures.StepError{Msg: fmt.Sprintf("new key %s of %s is missing or not Active; the old key %s stays Active so the user is not locked out", t.NewKey.KeyID, it.User, it.OldKey.ID)}
		}
	}
	ledger, err := readLedger(ctx, d.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if it.Action == policy.RetirePassword {
		// A password has no Inactive state: the notice time starts the
		// grace, and delete removes the login profile afterwards.
		at := ledger.DeactivatedAt(it.OldKey.ID)
		if at.IsZero() {
			at = now
			if err := writeTag(ctx, d.IAM, it.User, tagDeactivated+it.OldKey.ID, at.Format(time.RFC3339)); err != nil {
				return nil, err
			}
		}
		return &Deactivation{KeyID: it.OldKey.ID, DeactivatedAt: at, DeleteAfter: at.Add(d.Config.GracePeriod), Note: "console password: removed after the grace period"}, nil
	}
	old, ok := findKey(keys, it.OldKey.ID)
	if !ok {
		at := ledger.DeactivatedAt(it.OldKey.ID)
		if at.IsZero() {
			at = now
		}
		return &Deactivation{KeyID: it.OldKey.ID, DeactivatedAt: at, DeleteAfter: at.Add(d.Config.GracePeriod), Note: "old key already deleted"}, nil
	}
	if old.Status == types.StatusTypeActive {
		if _, err := d.IAM.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{
			UserName: aws.String(it.User), AccessKeyId: aws.String(it.OldKey.ID), Status: types.StatusTypeInactive,
		}); err != nil {
			return nil, fmt.Errorf("deactivate key %s of %s: %w", it.OldKey.ID, it.User, err)
		}
		log.InfoContext(ctx, "deactivated old key")
	}
	at := ledger.DeactivatedAt(it.OldKey.ID)
	if at.IsZero() {
		at = now
		if err := writeTag(ctx, d.IAM, it.User, tagDeactivated+it.OldKey.ID, at.Format(time.RFC3339)); err != nil {
			return nil, err
		}
	}
	res := &Deactivation{KeyID: it.OldKey.ID, DeactivatedAt: at, DeleteAfter: at.Add(d.Config.GracePeriod)}
	log.InfoContext(ctx, "old key inactive", "deactivatedAt", at.Format(time.RFC3339), "deleteAfter", res.DeleteAfter.Format(time.RFC3339))
	return res, nil
}
