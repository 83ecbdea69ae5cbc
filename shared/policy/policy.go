// Package policy decides, from facts about a user's credentials, what
// keyrotor does with each: rotate, retire, leave alone, or report as exempt
// or blocked. It is pure (no AWS calls) and shared by the find function and
// the audit report, so both always agree.
//
// Precedence for an Active key: exempt user > retire (unused for the unused
// threshold; a never-used key counts from its creation) > rotate (older than
// the max age) > ok. Retirement wins over rotation because a key nobody uses
// needs no replacement. Rotation and retirement never both act on one key.
package policy

import (
	"fmt"
	"math"
	"time"
)

// Action is keyrotor's decision for one credential.
type Action string

// The decisions.
const (
	Rotate  Action = "rotate"  // replace the key: new key stored, old one deactivated then deleted
	Retire  Action = "retire"  // unused: deactivate then delete, no replacement
	Exempt  Action = "exempt"  // the user is exempt (tag or group)
	Blocked Action = "blocked" // due, but keyrotor may not act; admins are told why
	OK      Action = "ok"      // nothing to do
	// Held: a person acted on the key's rotation (re-activated the old
	// key...); keyrotor keeps its hands off until the hold passes. Decided
	// from the rotation record, reported by find and the audit report.
	Held Action = "held"
	// RetirePassword removes an unused console password (login profile)
	// after notice and grace; only when password retirement is enabled.
	RetirePassword Action = "retire-password"

	// The audit report's decisions beyond the plan's actions. Each is what
	// the plan did or would do with the credential.

	// Manual: keyrotor never acts on it and a person must: the root
	// user's credentials, a console password to retire while
	// retirePasswords is off. The reason says what to do.
	Manual Action = "manual"
	// Gone: the user or key was deleted after the credential report was
	// generated; nothing is left to act on.
	Gone Action = "gone"
	// Adopting: the key's rotation is in its adoption window; InFlight:
	// another execution drives its rotation; InGrace: keyrotor
	// deactivated it and deletes it when the grace period ends.
	Adopting Action = "adopting"
	InFlight Action = "in-flight"
	InGrace  Action = "in-grace"
)

// Day is the unit of every threshold: 24 hours, as AWS Config's
// access-keys-rotated and Security Hub's IAM.3 and IAM.22 count them.
const Day = 24 * time.Hour

// Older reports whether more than days x 24 h passed from t to asOf (a key
// 90.5 days old is older than 90 days).
func Older(t, asOf time.Time, days int) bool {
	return !t.IsZero() && asOf.Sub(t) > time.Duration(days)*Day
}

// Idle reports whether days x 24 h or more passed from t to asOf.
func Idle(t, asOf time.Time, days int) bool {
	return !t.IsZero() && asOf.Sub(t) >= time.Duration(days)*Day
}

// Key is what keyrotor knows about one access key.
type Key struct {
	ID       string
	Active   bool
	Created  time.Time
	LastUsed time.Time // zero: never used
	// DeactivatedAt is when keyrotor deactivated this key (from the user's
	// ledger tag); zero when keyrotor did not.
	DeactivatedAt time.Time
	// ReplacedBy is the key keyrotor created to replace this one, when a
	// rotation of this key is under way.
	ReplacedBy string
}

// User is what keyrotor knows about one IAM user.
type User struct {
	Name         string
	Keys         []Key // live, at most two
	Exempt       bool
	ExemptReason string
}

// Decision is the verdict for one key.
type Decision struct {
	KeyID  string
	Action Action
	Reason string
	// RemoveFirst names the user's other key, Inactive and deactivated by
	// keyrotor more than a grace period ago, that create-and-store deletes
	// before creating the new key (a user may hold only two keys).
	RemoveFirst string
}

// Rules holds the thresholds.
type Rules struct {
	MaxKeyAgeDays int
	UnusedDays    int
	Grace         time.Duration
}

// AgeDays is the whole number of days from t to asOf (never negative).
func AgeDays(t, asOf time.Time) int {
	if t.IsZero() || asOf.Before(t) {
		return 0
	}
	return int(math.Floor(asOf.Sub(t).Hours() / 24))
}

// Age says how old t is at asOf: whole days, with the hours when they
// decide a threshold ("90 days 22 hours").
func Age(t, asOf time.Time) string {
	d := AgeDays(t, asOf)
	h := int(asOf.Sub(t).Hours()) - d*24
	if t.IsZero() || h <= 0 {
		return fmt.Sprintf("%d days", d)
	}
	return fmt.Sprintf("%d days %d hours", d, h)
}

// KeyOnly decides for one key without looking at the user's other key:
// Retire, Rotate or OK. Inactive keys are always OK here (their clean-up is
// the rotation's own delete step).
func (r Rules) KeyOnly(k Key, asOf time.Time) Decision {
	d := Decision{KeyID: k.ID, Action: OK}
	if !k.Active {
		d.Reason = "inactive"
		return d
	}
	idle, since := k.LastUsed, "last used"
	if idle.IsZero() {
		idle, since = k.Created, "never used; created"
	}
	if Idle(idle, asOf, r.UnusedDays) {
		d.Action = Retire
		d.Reason = fmt.Sprintf("unused for %s (%s %s), threshold %d days", Age(idle, asOf), since, idle.UTC().Format("2006-01-02"), r.UnusedDays)
		return d
	}
	if Older(k.Created, asOf, r.MaxKeyAgeDays) {
		d.Action = Rotate
		d.Reason = fmt.Sprintf("key is %s old, max age %d days", Age(k.Created, asOf), r.MaxKeyAgeDays)
		return d
	}
	if k.LastUsed.IsZero() {
		d.Reason = fmt.Sprintf("key is %s old, never used", Age(k.Created, asOf))
		return d
	}
	d.Reason = fmt.Sprintf("key is %s old and in use", Age(k.Created, asOf))
	return d
}

// Decide returns one decision per key of u, applying exemption and the
// two-key rule: keyrotor never deletes an Active key outside the rotation of
// that key, so a due key whose user also holds another Active key is
// blocked, unless that other key is the replacement keyrotor itself created
// for it (a rotation under way, which continues). An Inactive other key that
// keyrotor deactivated more than a grace period ago may be removed first.
func (r Rules) Decide(u User, asOf time.Time) []Decision {
	out := make([]Decision, 0, len(u.Keys))
	for i, k := range u.Keys {
		d := r.KeyOnly(k, asOf)
		if u.Exempt && d.Action != OK {
			d.Action, d.Reason = Exempt, u.ExemptReason
		}
		if d.Action == Rotate {
			for j, o := range u.Keys {
				if j == i {
					continue
				}
				d = r.twoKeys(d, k, o, asOf)
			}
		}
		out = append(out, d)
	}
	return out
}

func (r Rules) twoKeys(d Decision, k, other Key, asOf time.Time) Decision {
	switch {
	case other.Active && k.ReplacedBy == other.ID:
		d.Reason += fmt.Sprintf("; rotation under way, replacement %s exists", other.ID)
	case other.Active:
		d.Action = Blocked
		d.Reason = fmt.Sprintf("due (%s) but the user's other key %s is also Active; keyrotor never deletes an Active key outside its own rotation: deactivate or delete one key", d.Reason, other.ID)
	case other.DeactivatedAt.IsZero():
		d.Action = Blocked
		d.Reason = fmt.Sprintf("due (%s) but the user's other key %s is Inactive and was not deactivated by keyrotor: delete it, or re-activate it for its owner", d.Reason, other.ID)
	case asOf.Before(other.DeactivatedAt.Add(r.Grace)):
		d.Action = Blocked
		d.Reason = fmt.Sprintf("due (%s) but the user's other key %s is in its grace period until %s", d.Reason, other.ID, other.DeactivatedAt.Add(r.Grace).UTC().Format(time.RFC3339))
	default:
		d.RemoveFirst = other.ID
		d.Reason += fmt.Sprintf("; Inactive key %s, deactivated by keyrotor %s, is removed first", other.ID, other.DeactivatedAt.UTC().Format(time.RFC3339))
	}
	return d
}

// Password decides for a console password: Retire when it is unused for the
// unused threshold (never used: counted from its last change), else OK.
func (r Rules) Password(enabled bool, lastUsed, lastChanged, asOf time.Time) Decision {
	d := Decision{KeyID: "password", Action: OK, Reason: "in use"}
	if !enabled {
		d.Reason = "no console password"
		return d
	}
	idle, since := lastUsed, "last used"
	if idle.IsZero() {
		idle, since = lastChanged, "never used; set"
		d.Reason = "never used"
		if !lastChanged.IsZero() {
			d.Reason = fmt.Sprintf("never used; set %s ago", Age(lastChanged, asOf))
		}
	}
	if Idle(idle, asOf, r.UnusedDays) {
		d.Action = Retire
		d.Reason = fmt.Sprintf("console password unused for %s (%s %s), threshold %d days", Age(idle, asOf), since, idle.UTC().Format("2006-01-02"), r.UnusedDays)
	}
	return d
}
