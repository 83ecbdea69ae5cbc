package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/notice"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// Records is the store of rotation records the steps read and write
// (shared/ledger: DynamoDB, conditional writes, strongly consistent reads).
type Records interface {
	Get(ctx context.Context, id string) (*ledger.Record, error)
	Put(ctx context.Context, r *ledger.Record) error
}

var _ Records = (*ledger.Store)(nil)

// LeaseDuration is how long an execution drives a rotation before another
// execution may take it over. A day's execution finishes its rotations up
// to deactivation within hours; the next day's execution finds the lease
// of a failed, aborted or never-redriven execution passed.
const LeaseDuration = 6 * time.Hour

// finishedRetention keeps a finished record this long (DynamoDB TTL), for
// the audit trail and so a deleted key's rotation is never repeated.
const finishedRetention = 400 * 24 * time.Hour

// RecordID names the record of an item's old credential.
//
// An access key id is unique across AWS, in every account ("IAM
// identifiers", IAM User Guide: unique IDs), so a key's record needs no
// account; a console password is named by its user and time, so a member
// account's password record is prefixed with the account.
func RecordID(it Item) string {
	if it.Action == policy.RetirePassword {
		id := ledger.PasswordID(it.User, it.OldKey.Created)
		if it.Account != "" {
			id = it.Account + "/" + id
		}
		return id
	}
	return it.OldKey.ID
}

// userIn names a user for the admins, with its account in organization
// mode (keyrotor's own account too).
func userIn(cfg config.Config, account, alias, user string) string {
	if account == "" && cfg.Organization() {
		account = cfg.HomeAccount
	}
	return notice.UserIn(user, account, alias)
}

// ownerAccount is the account an owner's mail names ("" in single-account
// mode).
func ownerAccount(cfg config.Config, it Item) string {
	if it.Account == "" && cfg.Organization() {
		return cfg.HomeAccount
	}
	return it.Account
}

// rotationCtx is what every step needs to read and move a rotation.
type rotationCtx struct {
	recs      Records
	topic     PublishAPI
	cfg       config.Config
	execution string
	now       time.Time
	log       *slog.Logger
}

// open returns the rotation record of it for this execution, moved as
// ledger.Decide says for the event the step brings (with what it saw of
// the credential in f): it starts a rotation where none is in flight and
// the credential is due, restarts one that ended or whose hold passed,
// ends or holds one a person's act or a broken premise ended. It takes
// over a rotation whose owner's lease has passed. A non-empty stop says
// why this execution must not act on the rotation.
func (c rotationCtx) open(ctx context.Context, it Item, ev ledger.Event, f ledger.Facts) (rec *ledger.Record, stop string, err error) {
	id := RecordID(it)
	rec, err = c.getScoped(ctx, id, it)
	if err != nil {
		return nil, "", err
	}
	now := c.now
	f.Now, f.Kind = now, string(it.Action)
	d := ledger.Decide(rec, ev, f)
	if rec != nil && rec.State.InFlight() && !c.ownWindow(rec) && rec.LeaseHeldByOther(c.execution, now) {
		return rec, fmt.Sprintf("rotation %d is in flight in execution %s (until %s)", rec.Rotation, rec.Owner, rec.LeaseUntil.UTC().Format(time.RFC3339)), nil
	}
	if d.End != "" {
		if d.Hold {
			err = c.hold(ctx, rec, it.OldKey.ID, d.End)
		} else {
			err = c.end(ctx, rec, it.OldKey.ID, d.End, false, false)
		}
		if err != nil {
			return nil, "", err
		}
		if !d.Begin {
			return rec, d.End, nil
		}
	}
	if d.Stop != "" {
		return rec, d.Stop, nil
	}
	if d.Wait != "" {
		return nil, "", &failures.NotVisibleYetError{What: d.Wait}
	}
	switch {
	case d.Begin && rec == nil:
		rec = &ledger.Record{ID: id, Account: it.Account, User: it.User, Action: string(it.Action), Rotation: 1, History: []ledger.Entry{}}
		rec.Move(now, ledger.Started, c.execution, "rotation 1 started: "+it.Reason)
	case d.Begin:
		prev := rec
		rec = &ledger.Record{ID: id, Account: it.Account, User: it.User, Action: string(it.Action), Rotation: prev.Rotation + 1,
			History: prev.History, Version: prev.Version, PrevNewKeyID: prev.NewKeyID}
		if rec.PrevNewKeyID == "" {
			rec.PrevNewKeyID = prev.PrevNewKeyID
		}
		rec.Move(now, ledger.Started, c.execution, fmt.Sprintf("rotation %d started (rotation %d %s: %s): %s", rec.Rotation, prev.Rotation, prev.State, prev.Outcome, it.Reason))
	case c.ownWindow(rec):
		// The key's own execution runs the adoption window it was
		// started for, from whoever handed it over.
		if rec.Owner != c.execution {
			rec.Log(now, rec.State, c.execution, "the key's own execution runs the adoption window")
		}
	case rec.Owner != c.execution:
		rec.Log(now, rec.State, c.execution, fmt.Sprintf("taken over from execution %s, whose lease had passed", rec.Owner))
	}
	rec.Owner, rec.LeaseUntil = c.execution, now.Add(LeaseDuration)
	if err := c.recs.Put(ctx, rec); err != nil {
		return nil, "", err
	}
	return rec, "", nil
}

// ownWindow reports whether this execution is the key's own execution
// running rec's adoption window.
func (c rotationCtx) ownWindow(rec *ledger.Record) bool {
	return rec.State == ledger.Adopting && rec.Adoption != nil && rec.Adoption.Execution == c.execution
}

// apply carries out a decision ledger.Decide made on a rotation already
// open: it ends or holds the rotation (keyID names the old credential for
// the admins) and returns why the step stops ("" to go on).
func (c rotationCtx) apply(ctx context.Context, rec *ledger.Record, keyID string, d ledger.Decision) (string, error) {
	if d.Wait != "" {
		return "", &failures.NotVisibleYetError{What: d.Wait}
	}
	if d.End != "" {
		if d.Hold {
			return d.End, c.hold(ctx, rec, keyID, d.End)
		}
		return d.End, c.end(ctx, rec, keyID, d.End, false, true)
	}
	return d.Stop, nil
}

// hold ends the rotation because a person acted on it: keyrotor keeps its
// hands off the old key until the hold passes (or a person releases it),
// and tells the admins.
func (c rotationCtx) hold(ctx context.Context, rec *ledger.Record, keyID, why string) error {
	rec.HeldUntil = c.now.Add(time.Duration(c.holdDays()) * 24 * time.Hour)
	rec.Outcome = why
	rec.Owner, rec.LeaseUntil = "", time.Time{}
	rec.ExpiresAt = rec.HeldUntil.Add(finishedRetention).Unix()
	rec.Move(c.now, ledger.Held, c.execution, why)
	if err := c.recs.Put(ctx, rec); err != nil {
		return err
	}
	msg := fmt.Sprintf("%s keyrotor leaves key %s alone until %s (rotation %d held); release it earlier with `keyrotor release --key %s`.",
		why, keyID, rec.HeldUntil.UTC().Format(time.RFC3339), rec.Rotation, rec.ID)
	if _, err := publish(ctx, c.topic, c.cfg.AdminTopicARN, notice.AdminAttention(userIn(c.cfg, rec.Account, "", rec.User), keyID, msg)); err != nil {
		// The hold is recorded; the message is best effort here and the
		// summary shows the hold in every run.
		c.log.WarnContext(ctx, "could not tell the admins about a hold", "error", err.Error())
	}
	return nil
}

// end finishes the rotation without deleting anything more, saying why.
// With holdToo, a person's action ended it: no new rotation of the old key
// starts before the hold period passes.
func (c rotationCtx) end(ctx context.Context, rec *ledger.Record, keyID, why string, holdToo, tell bool) error {
	rec.Outcome = why
	rec.Owner, rec.LeaseUntil = "", time.Time{}
	if holdToo {
		rec.HeldUntil = c.now.Add(time.Duration(c.holdDays()) * 24 * time.Hour)
	}
	rec.ExpiresAt = c.now.Add(finishedRetention).Unix()
	rec.Move(c.now, ledger.Ended, c.execution, why)
	if err := c.recs.Put(ctx, rec); err != nil {
		return err
	}
	if tell {
		if _, err := publish(ctx, c.topic, c.cfg.AdminTopicARN, notice.AdminAttention(userIn(c.cfg, rec.Account, "", rec.User), keyID, why)); err != nil {
			c.log.WarnContext(ctx, "could not tell the admins", "error", err.Error())
		}
	}
	return nil
}

// attention records a condition keyrotor cannot heal by itself and tells
// the admins once; every run's summary shows it until it clears.
func (c rotationCtx) attention(ctx context.Context, rec *ledger.Record, keyID, what string) error {
	if rec.Attention != what {
		rec.Attention, rec.AttentionSince, rec.AttentionTold = what, c.now, false
		rec.Log(c.now, rec.State, c.execution, "needs attention: "+what)
	}
	if !rec.AttentionTold {
		if _, err := publish(ctx, c.topic, c.cfg.AdminTopicARN, notice.AdminAttention(userIn(c.cfg, rec.Account, "", rec.User), keyID, what)); err == nil {
			rec.AttentionTold = true
		} else {
			c.log.WarnContext(ctx, "could not tell the admins; trying again next run", "error", err.Error())
		}
	}
	return c.recs.Put(ctx, rec)
}

// clearAttention forgets a condition that has cleared.
func clearAttention(rec *ledger.Record, now time.Time, execution string) {
	if rec.Attention != "" {
		rec.Log(now, rec.State, execution, "cleared: "+rec.Attention)
		rec.Attention, rec.AttentionSince, rec.AttentionTold = "", time.Time{}, false
	}
}

func (c rotationCtx) holdDays() int {
	if c.cfg.HoldDays > 0 {
		return c.cfg.HoldDays
	}
	return config.DefaultHoldDays
}

// newKeyVisibleWindow is how long after its creation a new key that IAM
// does not list yet is taken for not yet visible (eventual consistency)
// rather than deleted by a person.
const newKeyVisibleWindow = 2 * time.Minute
