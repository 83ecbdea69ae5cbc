package ledger

import (
	"fmt"
	"strings"
	"time"
)

// The rotation's lifecycle in one place. Every step reads the record and
// what it sees of the account, and asks Decide what the rotation does
// next; the step then carries it out (the IAM calls, the mails, the
// record's writes). Each guard lives here once: a person acted, the notice
// went out, the verdict still holds, the hold is over, the kind of the
// rotation. A new step or a new kind of rotation cannot forget one.

// Event is what a step brings to a rotation.
type Event string

const (
	// Due: a step found the credential due (its item came from find);
	// the rotation's first step may start or restart a rotation.
	Due Event = "due"
	// Continue: a step goes on with the rotation as recorded (it never
	// starts one: a later step, the key's own execution, a resumed item).
	Continue Event = "continue"
	// Deactivate: a step is about to switch the old credential off (or
	// start its grace period).
	Deactivate Event = "deactivate"
)

// Facts are what the step saw, live, when it brings the event.
type Facts struct {
	Now time.Time
	// Kind is the step's item kind: rotate, retire or retire-password.
	Kind string
	// Start: the step is the first step of its kind (create for rotate,
	// notify for the retirements), so it may start a rotation.
	Start bool
	// OldKnown: the step read the old credential's status; OldActive is
	// that status (a console password is always "Active").
	OldKnown, OldActive bool
	// UsedSinceNotice: the step read the old key's last use, and it is
	// after the owner's notice (a retirement's premise, "unused", broke).
	UsedSinceNotice bool
	// OldLastUsed is the old key's last use, when the step read it (zero:
	// not read, or never used). An Inactive key cannot be used: a use
	// after keyrotor's switch-off (past the status lag) shows that a
	// person re-activated it since, even if it is Inactive again now.
	OldLastUsed time.Time
	// PasswordReset: the step read the console password's set time (the
	// login profile's CreateDate) and it is later than the password the
	// rotation names: a person set a new password (UpdateLoginProfile, or
	// DeleteLoginProfile and CreateLoginProfile). The password's analogue
	// of re-activating a key.
	PasswordReset bool
	// Lag replaces StatusLag (0: StatusLag): a run against an emulated
	// account, which lists every change at once, sets it shorter.
	Lag time.Duration
}

// Decision is what the rotation does next. At most one of Stop and Go is
// set when nothing ends; End (with Hold) may come before either.
type Decision struct {
	// End ends the live rotation first, saying why (recorded in its
	// history and its outcome).
	End string
	// Hold: a person acted; the ended rotation is held (hands off the
	// credential until the hold passes or a person releases it) and the
	// admins are told, with the command to release it.
	Hold bool
	// Begin starts a new rotation of the credential (generation
	// Rotation+1, or 1), with its own notice.
	Begin bool
	// Stop says why the step acts on nothing (empty: it goes on).
	Stop string
	// Wait says why the step cannot tell yet (IAM may still show a status
	// from before keyrotor's own change): it is retried, never acted on.
	Wait string
}

// Go reports whether the step goes on acting on the (possibly new)
// rotation.
func (d Decision) Go() bool { return d.Stop == "" && d.Wait == "" && !(d.End != "" && !d.Begin) }

// StatusLag is how long after keyrotor's own change of a key's status IAM
// may still list the status before it (eventual consistency): an old key
// listed Active that soon after keyrotor deactivated it is not yet a
// person's re-activation. (A step re-run after its answer was lost sees
// this.)
const StatusLag = 2 * time.Minute

func (f Facts) lag() time.Duration {
	if f.Lag > 0 {
		return f.Lag
	}
	return StatusLag
}

// Decide is the rotation's transition function: the record (nil: none
// yet) and the event, with what the step saw, give what happens next.
// It changes nothing; the caller applies the decision.
func Decide(rec *Record, ev Event, f Facts) Decision {
	if rec == nil {
		if ev == Due && f.Start {
			return Decision{Begin: true}
		}
		return Decision{Stop: "no rotation record: nothing to do"}
	}
	held := !rec.HeldUntil.IsZero() && f.Now.Before(rec.HeldUntil)
	if !rec.State.InFlight() {
		switch {
		case held:
			return Decision{Stop: fmt.Sprintf("held until %s: %s", rec.HeldUntil.UTC().Format(time.RFC3339), rec.Outcome)}
		case ev != Due || !f.Start:
			return Decision{Stop: fmt.Sprintf("rotation %d already %s: %s", rec.Rotation, rec.State, rec.Outcome)}
		case rec.State == Deleted:
			// The credential is gone: it is never due again.
			return Decision{Stop: fmt.Sprintf("rotation %d already %s: %s", rec.Rotation, rec.State, rec.Outcome)}
		}
		// Held (the hold is over) or ended: the credential is due again,
		// so a new rotation starts. Nothing ends for good while its
		// credential is there and due.
		return Decision{Begin: true}
	}

	// A rotation in flight. A person re-activating the old credential
	// after it was switched off (by keyrotor, or by a person whose act
	// the window recorded as its verdict) is final for this rotation,
	// whatever its kind.
	if f.OldKnown && f.OldActive && rec.Action != "retire-password" {
		switch {
		case rec.State == Deactivated && f.Now.Sub(rec.DeactivatedAt) < f.lag():
			return Decision{Wait: fmt.Sprintf("old key listed Active %s after keyrotor deactivated it: IAM may not show the change yet", f.Now.Sub(rec.DeactivatedAt))}
		case rec.State == Deactivated:
			return Decision{End: fmt.Sprintf("the old key was re-activated by a person after keyrotor deactivated it on %s.", rec.DeactivatedAt.UTC().Format(time.RFC3339)), Hold: true}
		case rec.State == Adopting && rec.Adoption != nil && rec.Adoption.SwitchOver == SwitchPerson:
			return Decision{End: fmt.Sprintf("the old key was re-activated by a person after they deactivated it during the adoption window (%s); the verdict no longer holds.", rec.Adoption.SwitchedAt.UTC().Format(time.RFC3339)), Hold: true}
		}
	}
	if rec.State == Deactivated && rec.Action != "retire-password" && !rec.DeactivatedAt.IsZero() && f.OldLastUsed.After(rec.DeactivatedAt.Add(f.lag())) {
		// Switched on and off again between two looks: IAM keeps no
		// status history, but the key's use shows it.
		return Decision{End: fmt.Sprintf("the old key was used on %s, after it was switched off on %s: a person re-activated it since (an Inactive key cannot be used); it is kept.", f.OldLastUsed.UTC().Format(time.RFC3339), rec.DeactivatedAt.UTC().Format(time.RFC3339)), Hold: true}
	}
	// A person setting a new console password is final for the
	// retirement of the one noticed: the new password is theirs (a
	// credential of its own, retired only once it is unused in turn).
	if f.PasswordReset && rec.Action == "retire-password" {
		return Decision{End: fmt.Sprintf("the console password was re-set by a person after its owner was told on %s that it would be removed; the new password is kept.", rec.NoticeAt.UTC().Format(time.RFC3339)), Hold: true}
	}
	// A retirement rests on "unused". A step of another kind finding it
	// (the credential is due for rotation: it was used) ends it; the
	// rotation the item asks for starts fresh, with its own notice.
	if ev == Due && f.Kind != "" && f.Kind != rec.Action && rec.Action != "rotate" {
		return Decision{End: fmt.Sprintf("the %s was used after its retirement was planned (now due to %s): not retired", credential(rec), f.Kind), Begin: f.Start}
	}
	if ev != Deactivate {
		return Decision{}
	}
	switch {
	case rec.Notice != NoticeAccepted:
		return Decision{Stop: "the owner's notice has not gone out; nothing is deactivated"}
	case rec.Action == "retire" && rec.State != Deactivated && f.UsedSinceNotice:
		return Decision{End: "the key was used after its owner was told it would be retired as unused: not retired (it is rotated when it is due)"}
	case rec.State != Deactivated && len(rec.Undelivered()) > 0:
		return Decision{Stop: fmt.Sprintf("the new key is not delivered to %s yet; nothing is deactivated until every destination holds it", strings.Join(rec.Undelivered(), ", "))}
	case rec.State == Adopting && (rec.Adoption == nil || rec.Adoption.SwitchOver == ""):
		until, exec := "", ""
		if rec.Adoption != nil {
			until, exec = rec.Adoption.Until.UTC().Format(time.RFC3339), rec.Adoption.Execution
		}
		return Decision{Stop: fmt.Sprintf("the adoption window runs until %s in execution %s; nothing is deactivated before it switches over", until, exec)}
	}
	return Decision{}
}

func credential(rec *Record) string {
	if rec.Action == "retire-password" {
		return "console password"
	}
	return "key"
}
