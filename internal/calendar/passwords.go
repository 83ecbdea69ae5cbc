package calendar

// Console passwords (issue 18): with Options.Passwords some seeded users
// also have a console password, never used (moto records no console
// sign-in), and retirePasswords is on, so the daily runs plan
// retire-password items: notice, grace, removal, with the lost answers of
// every step. People re-set a password after its notice (the password's
// re-activation), remove it themselves, give a user whose password
// keyrotor removed a new one, and delete users. After each day the
// invariants below are checked on the account and the records.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// The people's acts on passwords, per retirement and day.
const (
	pwResetChance    = 0.08 // a retirement noticed and in flight: the person sets a new password
	pwRemoveChance   = 0.02 // ... or removes the password themselves
	pwDeleteUser     = 0.01 // ... or deletes the user
	pwRecreateChance = 0.10 // a password keyrotor removed: the user is given a new one
)

// passwords are the simulation's console passwords: the truth of when
// each user's password was set, and what happened to them.
type passwords struct {
	r *rand.Rand
	// sets are the times each user's passwords were set (GetLoginProfile's
	// CreateDate read back at once), by the seed and by people, in order.
	sets map[string][]time.Time
	// Counts (Report.Passwords) say how much of the path was exercised.
	counts  map[string]int
	counted map[string]bool // retirements (id#rotation) counted by outcome
}

// seedPasswords gives a share (o.Passwords) of the seeded users a console
// password set long enough ago to be due on the first days or during the
// run, and turns retirePasswords on.
func seedPasswords(ctx context.Context, w *World, seeded *Seeded, o Options) (*passwords, error) {
	pw := &passwords{r: rand.New(rand.NewPCG(uint64(o.Seed), 6)), sets: map[string][]time.Time{}, counts: map[string]int{}, counted: map[string]bool{}}
	w.Config.RetirePasswords = true
	unused := w.Config.UnusedDays
	// Due on a day before the quiet days: some retirements are still in
	// their grace at the end, and the final check finds them in flight.
	span := max(1, o.Days-o.Quiet)
	for _, ref := range seeded.Users {
		if pw.r.Float64() >= o.Passwords {
			continue
		}
		age := unused + 1 + pw.r.IntN(4) // due on the first day
		if pw.r.IntN(3) == 0 {
			age = unused - pw.r.IntN(span) // due during the run
		}
		if err := w.SetClock(w.offset - time.Duration(age)*Day); err != nil {
			return nil, err
		}
		acct, name := SplitRef(ref)
		c := w.PeopleIn(acct).IAM
		if _, err := c.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String(name), Password: aws.String(fmt.Sprintf("Seeded-pass-%d!", pw.r.Uint32()))}); err != nil {
			return nil, fmt.Errorf("seed console password of %s: %w", ref, err)
		}
		set, err := setTime(ctx, c, name)
		if err != nil {
			return nil, err
		}
		pw.sets[ref] = append(pw.sets[ref], set)
		pw.counts["seeded"]++
	}
	return pw, w.SetClock(w.offset)
}

// setTime reads back when the user's current password was set.
func setTime(ctx context.Context, c *iam.Client, user string) (time.Time, error) {
	lp, err := c.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(user)})
	if err != nil {
		return time.Time{}, fmt.Errorf("read console password of %s: %w", user, err)
	}
	return aws.ToTime(lp.LoginProfile.CreateDate), nil
}

// setAt is the time the password of ref that existed at t was set (zero:
// none known).
func (pw *passwords) setAt(ref string, t time.Time) time.Time {
	var s time.Time
	for _, x := range pw.sets[ref] {
		if !x.After(t) {
			s = x
		}
	}
	return s
}

// DeleteLoginProfile notes keyrotor's removal of a console password in the
// world's truth (a call whose outcome is unknown may have removed it).
func (r recordingIAM) DeleteLoginProfile(ctx context.Context, in *iam.DeleteLoginProfileInput, optFns ...func(*iam.Options)) (*iam.DeleteLoginProfileOutput, error) {
	out, err := r.StepIAM.DeleteLoginProfile(ctx, in, optFns...)
	if err == nil || failures.IsTransient(err) {
		r.w.act("keyrotor", "delete-password", r.w.Ref(r.account, aws.ToString(in.UserName)), "", "console password")
	}
	return out, err
}

// act plays the people's acts on passwords for the day.
func (pw *passwords) act(ctx context.Context, w *World, p *people, rep *Report) {
	if pw == nil {
		return
	}
	recs, err := w.Records.All(ctx)
	if err != nil {
		return
	}
	done := func(ref, what string) {
		w.act("person", what, ref, "", "console password")
		rep.PersonActs++
		pw.counts[what]++
	}
	seen := map[string]bool{} // one act per user and day
	for _, id := range sortedKeys(recs) {
		rec := recs[id]
		ref := w.RecRef(rec)
		if rec.Action != string(policy.RetirePassword) || p.gone[ref] || seen[ref] {
			continue
		}
		acct, name := SplitRef(ref)
		c := w.PeopleIn(acct).IAM
		user := aws.String(name)
		n := pw.r.Float64()
		switch {
		case rec.State.InFlight() && rec.Notice == ledger.NoticeAccepted && n < pwResetChance:
			// The owner was told; they (or an admin for them) set a new
			// password: half by UpdateLoginProfile, half by deleting the
			// login profile and creating a new one.
			seen[ref] = true
			pass := aws.String(fmt.Sprintf("Reset-pass-%d!", pw.r.Uint32()))
			if pw.r.IntN(2) == 0 {
				if _, err := c.UpdateLoginProfile(ctx, &iam.UpdateLoginProfileInput{UserName: user, Password: pass}); err != nil {
					continue
				}
			} else {
				if _, err := c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: user}); err != nil {
					continue
				}
				if _, err := c.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: user, Password: pass}); err != nil {
					done(ref, "remove-password")
					continue
				}
			}
			if t, err := setTime(ctx, c, name); err == nil {
				pw.sets[ref] = append(pw.sets[ref], t)
			}
			done(ref, "reset-password")
		case rec.State.InFlight() && n < pwResetChance+pwRemoveChance:
			seen[ref] = true
			if _, err := c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: user}); err == nil {
				done(ref, "remove-password")
			}
		case rec.State.InFlight() && n < pwResetChance+pwRemoveChance+pwDeleteUser:
			seen[ref] = true
			if ks, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: user}); err == nil {
				for _, k := range ks.AccessKeyMetadata {
					c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: user, AccessKeyId: k.AccessKeyId})
				}
			}
			c.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: user})
			if _, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: user}); err == nil {
				p.gone[ref] = true
				p.touched[ref] = w.Now()
				done(ref, "delete-user")
			}
		case rec.State == ledger.Deleted && n < pwRecreateChance:
			// The password keyrotor removed is needed after all: the user
			// is given a new one (the password's re-activation).
			seen[ref] = true
			if _, err := c.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: user}); !isNoSuchEntity(err) {
				continue
			}
			if _, err := c.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: user, Password: aws.String(fmt.Sprintf("Again-pass-%d!", pw.r.Uint32()))}); err != nil {
				continue
			}
			if t, err := setTime(ctx, c, name); err == nil {
				pw.sets[ref] = append(pw.sets[ref], t)
			}
			done(ref, "create-password")
		}
	}
}

func isNoSuchEntity(err error) bool {
	var nse *iamtypes.NoSuchEntityException
	return errors.As(err, &nse)
}

// check asserts the password invariants over the day's acts, the records,
// the mails and the account; fail reports a violation.
func (pw *passwords) check(ctx context.Context, w *World, p *people, rep *Report, recs map[string]*ledger.Record, sent *Sent, start int, final bool, fail func(string, ...any)) {
	if pw == nil {
		return
	}
	byUser := map[string][]*ledger.Record{} // the users' password retirements
	for _, id := range sortedKeys(recs) {
		if rec := recs[id]; rec.Action == string(policy.RetirePassword) {
			byUser[w.RecRef(rec)] = append(byUser[w.RecRef(rec)], rec)
		}
	}
	history := func(ref string) string {
		var out []string
		for _, a := range w.Acts {
			if a.User == ref && strings.Contains(a.What, "password") {
				out = append(out, fmt.Sprintf("%s %s %s", stamp(a.At), a.By, a.What))
			}
		}
		for _, rec := range byUser[ref] {
			out = append(out, fmt.Sprintf("record %s: rotation %d %s notice %q at %s, deactivated %s: %s", rec.ID, rec.Rotation, rec.State, rec.Notice, stamp(rec.NoticeAt), stamp(rec.DeactivatedAt), rec.Outcome))
		}
		return strings.Join(out, "; ")
	}
	// (p1) A console password is removed only after an accepted notice of
	// that password's retirement and a full grace from its start; (p2)
	// never a password a person set after the notice (the noticed
	// password's set time is its record's id: it is the removed one).
	for _, a := range w.Acts[start:] {
		if a.By != "keyrotor" || a.What != "delete-password" {
			continue
		}
		pw.counts["removed by keyrotor"]++
		rep.Checks["password removed after notice and grace"]++
		rep.Checks["no re-set password removed"]++
		set := pw.setAt(a.User, a.At)
		var noticed, early *ledger.Record
		for _, rec := range byUser[a.User] {
			if rec.Notice != ledger.NoticeAccepted || rec.NoticeAt.After(a.At) {
				continue
			}
			if passwordIDTime(rec.ID).Equal(set.Truncate(time.Second)) {
				noticed = rec
				if rec.DeactivatedAt.IsZero() || a.At.Before(rec.DeactivatedAt.Add(w.Config.GracePeriod)) || rec.DeactivatedAt.Before(rec.NoticeAt) {
					early = rec
				}
			}
		}
		switch {
		case set.IsZero():
			fail("keyrotor removed the console password of %s at %s, which had none the simulation set (%s)", a.User, stamp(a.At), history(a.User))
		case noticed == nil && len(pw.sets[a.User]) > 1 && !set.Equal(pw.sets[a.User][0]):
			fail("keyrotor removed the console password of %s at %s that a person set on %s, after the notice of the one before (%s)", a.User, stamp(a.At), stamp(set), history(a.User))
		case noticed == nil:
			fail("keyrotor removed the console password of %s (set %s) at %s without an accepted notice of its retirement (%s)", a.User, stamp(set), stamp(a.At), history(a.User))
		case early != nil:
			fail("keyrotor removed the console password of %s at %s before the grace of %s from its start %s (%s)", a.User, stamp(a.At), w.Config.GracePeriod, stamp(early.DeactivatedAt), history(a.User))
		}
	}
	// (p3) At most one owner mail per password retirement (a send whose
	// outcome was unknown may be repeated).
	for _, ref := range sortedKeys(byUser) {
		acct, name := SplitRef(ref)
		want := "Hello " + name + ","
		if w.Org() {
			want = name + " in account " + w.AccountID(acct)
		}
		n := 0
		for _, m := range sent.Mails {
			if strings.Contains(m.Subject, "console password") && strings.Contains(m.Body, want) {
				n++
			}
		}
		limit := 0
		for _, rec := range byUser[ref] {
			limit += rec.Rotation
			for _, h := range rec.History {
				if strings.Contains(h.Note, "is unknown") {
					limit++
				}
			}
		}
		rep.Checks["one owner mail per password retirement"]++
		if n > limit {
			fail("%d owner mails about the console password of %s over %d retirements (%s)", n, ref, limit, history(ref))
		}
	}
	// What happened to the retirements, once each.
	for _, ref := range sortedKeys(byUser) {
		for _, rec := range byUser[ref] {
			tag := rotationTag(rec)
			if rec.Notice == ledger.NoticeAccepted && !pw.counted[tag+" noticed"] {
				pw.counted[tag+" noticed"] = true
				pw.counts["retirements noticed"]++
			}
			if rec.State.InFlight() || pw.counted[tag] {
				continue
			}
			pw.counted[tag] = true
			switch {
			case rec.State == ledger.Deleted:
				pw.counts["retirements done"]++
			case strings.Contains(rec.Outcome, "re-set by a person"):
				pw.counts["retirements held: re-set by a person"]++
			default:
				pw.counts["retirements ended otherwise"]++
			}
		}
	}
	// (p4) Nothing ended silently: a password retirement that ended
	// (neither done nor held, no person needed) while the same password is
	// still there restarts once it is due again (a week's slack, as for
	// keys); and after the quiet days every due password is retired or in
	// a retirement.
	for _, ref := range sortedKeys(pw.sets) {
		if p.gone[ref] {
			continue
		}
		acct, name := SplitRef(ref)
		lp, err := w.PeopleIn(acct).IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(name)})
		if err != nil {
			continue // removed (or unreadable today)
		}
		set := aws.ToTime(lp.LoginProfile.CreateDate).Truncate(time.Second)
		due := w.Now().Sub(set) >= time.Duration(w.Config.UnusedDays+2)*Day
		var rec *ledger.Record
		for _, r := range byUser[ref] {
			if passwordIDTime(r.ID).Equal(set) {
				rec = r
			}
		}
		switch {
		case rec != nil && !rec.State.InFlight() && rec.State != ledger.Deleted:
			// (Not met in this simulation: a retirement ends here with the
			// password still there only if it was used after the notice,
			// which moto cannot record; a person's new password has its
			// own id, and a deleted user is skipped.)
			rep.Checks["password retirement restarts when due"]++
			if !due || w.Now().Before(rec.HeldUntil.Add(endedSlack)) || rec.Attention != "" || w.Now().Sub(rec.History[len(rec.History)-1].At) < endedSlack {
				continue
			}
			fail("the console password of %s (set %s) is due, and its retirement %d %s on %s without a hold or a person needed: it never restarts (%s)", ref, stamp(set), rec.Rotation, rec.State, stamp(rec.History[len(rec.History)-1].At), history(ref))
		case final && due && rec == nil:
			rep.Checks["due password retired"]++
			fail("the console password of %s (set %s) is due and was never planned for retirement (%s)", ref, stamp(set), history(ref))
		case final && due:
			rep.Checks["due password retired"]++
		}
	}
}

// passwordIDTime reads the set time back from a ledger.PasswordID (an
// organization's member records are prefixed with the account).
func passwordIDTime(id string) time.Time {
	i := strings.LastIndexByte(id, ':')
	var sec int64
	fmt.Sscan(id[i+1:], &sec)
	return time.Unix(sec, 0).UTC()
}

// passwordLine prints what the simulation did with console passwords.
func (r *Report) passwordLine() string {
	if len(r.Passwords) == 0 {
		return ""
	}
	names := make([]string, 0, len(r.Passwords))
	for k := range r.Passwords {
		names = append(names, k)
	}
	sort.Strings(names)
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%s %d", k, r.Passwords[k]))
	}
	return "  console passwords: " + strings.Join(parts, ", ") + "\n"
}
