package operator

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

// RefusedError is a request the command refuses, naming the flag and the
// fix; nothing was changed.
type RefusedError struct{ Msg string }

func (e *RefusedError) Error() string { return e.Msg }

// Records reads and writes rotation records (shared/ledger.Store).
type Records interface {
	Get(ctx context.Context, id string) (*ledger.Record, error)
	Put(ctx context.Context, r *ledger.Record) error
}

var _ Records = (*ledger.Store)(nil)

// KeyOwners finds the user of an access key in the caller's account.
type KeyOwners interface {
	GetAccessKeyLastUsed(ctx context.Context, in *iam.GetAccessKeyLastUsedInput, optFns ...func(*iam.Options)) (*iam.GetAccessKeyLastUsedOutput, error)
}

// heldRetention keeps a held record this long after its hold (DynamoDB
// TTL), as the steps keep a finished one (shared/rotation).
const heldRetention = 400 * 24 * time.Hour

// HoldRequest is a person's hold on a key.
type HoldRequest struct {
	Key    string // the access key id
	Days   int    // 1 to config.MaxHoldDays
	Reason string
	Now    time.Time
}

// Hold records a person's hold on a key in its rotation record: keyrotor
// leaves the key alone until the hold passes (or `keyrotor release`): every
// step reads the record first and stops at a hold, as after a person's
// re-activation. Nothing in IAM changes (the old key stays Active or
// Inactive as it is; a new key already made stays).
//
//   - A key with no record (never rotated) gets one, in state held
//     (rotation 0): its first rotation starts when the hold passes.
//   - A held rotation's hold is replaced (longer or shorter).
//   - A rotation that notified its owner, runs its adoption window or its
//     grace period is held where it is: nothing more is done to it (no
//     deactivation, no deletion); the next rotation after the hold reuses
//     its new key.
//   - Refused, changing nothing: a rotation creating its new key right now
//     (try again in a minute), a deleted key, a rotation ended for good.
func Hold(ctx context.Context, recs Records, owners KeyOwners, req HoldRequest) (*ledger.Record, error) {
	if req.Days < 1 || req.Days > config.MaxHoldDays {
		return nil, &RefusedError{fmt.Sprintf("--days %d: want a whole number of days from 1 to %d (holdDays' bounds)", req.Days, config.MaxHoldDays)}
	}
	rec, err := recs.Get(ctx, req.Key)
	if err != nil {
		return nil, err
	}
	until := req.Now.Add(time.Duration(req.Days) * 24 * time.Hour)
	note := fmt.Sprintf("held by a person for %d days, until %s", req.Days, until.UTC().Format(time.RFC3339))
	if req.Reason != "" {
		note += ": " + req.Reason
	}
	switch {
	case rec == nil:
		if owners == nil {
			return nil, &RefusedError{fmt.Sprintf("--key %s: keyrotor has no record of this key", req.Key)}
		}
		out, err := owners.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(req.Key)})
		if err != nil {
			if strings.Contains(err.Error(), "NoSuchEntity") || strings.Contains(err.Error(), "AccessDenied") {
				return nil, &RefusedError{fmt.Sprintf("--key %s: no such access key in this account and keyrotor has no record of it (a member account's key: run with that account's credentials, or hold it after its first rotation)", req.Key)}
			}
			return nil, fmt.Errorf("find the user of key %s: %w", req.Key, err)
		}
		rec = &ledger.Record{ID: req.Key, User: aws.ToString(out.UserName), Action: "rotate", Rotation: 0, History: []ledger.Entry{}}
	case rec.State == ledger.Deleted:
		return nil, &RefusedError{fmt.Sprintf("--key %s: the key was deleted by rotation %d; there is nothing to hold", req.Key, rec.Rotation)}
	case rec.State == ledger.Ended && rec.HeldUntil.IsZero():
		return nil, &RefusedError{fmt.Sprintf("--key %s: rotation %d ended for good (%s); there is nothing to hold", req.Key, rec.Rotation, rec.Outcome)}
	case rec.State == ledger.Creating || rec.State == ledger.Created || rec.State == ledger.Stored:
		return nil, &RefusedError{fmt.Sprintf("--key %s: rotation %d is creating its new key right now (%s, execution %s); try again in a minute, once the owner is told", req.Key, rec.Rotation, rec.State, rec.Owner)}
	}
	rec.HeldUntil = until
	rec.Outcome = note
	rec.Owner, rec.LeaseUntil = "", time.Time{}
	rec.ExpiresAt = until.Add(heldRetention).Unix()
	rec.Move(req.Now, ledger.Held, "keyrotor hold", note)
	if err := recs.Put(ctx, rec); err != nil {
		var conflict *failures.ConflictError
		if errors.As(err, &conflict) {
			return nil, fmt.Errorf("--key %s: the rotation changed while it was being held (a step ran); nothing was held: run the command again", req.Key)
		}
		return nil, err
	}
	return rec, nil
}
