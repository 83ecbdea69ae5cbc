package calendar

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// Options shape a simulation.
type Options struct {
	Days  int   // simulated days of the daily schedule
	Users int   // users in the account
	Seed  int64 // the same seed replays the same simulation
	// People is the chance per user and day that a person acts on it.
	People float64
	// MailOutage is the chance per day that SES refuses every mail (the
	// sender identity is gone for the day: sandbox, quota, a bad change).
	MailOutage float64
	// Faults is called once per day with the day's number; it sets the
	// faults of the steps' AWS calls (nil: none). Quiet days get none.
	Faults func(day int, on bool)
	// Quiet is the number of final days with no people and no faults:
	// every due key must be rotated by their end.
	Quiet int
	// Adoption is the adoption window (0: none): Simulate sets
	// w.Config.AdoptionWindow to it, and every user's owner runs a
	// pipeline (see pipelines) that uses its keys each day before the
	// day's run.
	Adoption time.Duration
	// OutageDay, in an organization (World.Members), is the day on which
	// the first member is unreachable (-1: none): Deny(account, true)
	// before that day's run, Deny(account, false) after it. The other
	// accounts must be rotated that day; the member's rotations converge
	// afterwards.
	OutageDay int
	Deny      func(account string, on bool)
	// LostAnswers is the chance per step invocation that its answer is
	// lost after it committed (World.Lost): a third of those fail the
	// step for good (a later execution takes over), the rest are retried.
	LostAnswers float64
	// Delivery is the share of every account's users (whose seeded key is
	// used) with destinations (see destinations.go); it needs Adoption > 0 (the
	// pipelines read their key from the destinations). DestFaults is the
	// chance per destination call that it fails before it takes effect (a
	// 500, a 429, no connection), DestLost the chance per write that its
	// answer is lost after it took effect, and DestDown the chance per day
	// and service (GitHub, SSM) that it is down for the day.
	Delivery                       float64
	DestFaults, DestLost, DestDown float64
	// Passwords is the share of seeded users with an unused console
	// password, and retirePasswords on (see passwords.go; 0: none).
	Passwords float64
	Progress  io.Writer
}

// Report is what a simulation did and checked.
type Report struct {
	Seed                   int64
	Days, Users            int
	Deactivations, Deletes int
	Mails, PersonActs      int
	Held, Attention        int
	FailedRuns             int
	// Adoption is the adoption window simulated (0: none); Pipelines
	// counts the owners' pipelines by kind, and Evidence, Deadline and
	// Person the rotations that switched over each way.
	Adoption                   time.Duration
	Pipelines                  map[string]int
	Evidence, Deadline, Person int
	Checks                     map[string]int // invariant -> instances checked
	// Delivered counts the users with destinations; DestFaults the faults
	// of destination calls by kind, with the values written again in a
	// rotation (a violation) and the pipelines' calls that failed on a
	// half-written destination.
	Delivered int
	// DeliveredMembers counts those of member accounts, and
	// DeliveredMemberSSM those of them with SSM parameters in their own
	// member account (written through its member role).
	DeliveredMembers, DeliveredMemberSSM int
	DestFaults                           map[string]int
	Violations                           []string
	// Accounts counts, by account id, what keyrotor did there (an
	// organization; one account: the default account's).
	Accounts map[string]*AccountCounts
	// Passwords counts what happened to console passwords (passwords.go).
	Passwords map[string]int
}

// AccountCounts is what keyrotor did in one account.
type AccountCounts struct {
	Users, Created, Deactivated, Deleted int
}

// Seeded is what Seed created: the users (by Ref: in an organization
// spread over the hub and the members, the same names in several
// accounts) and each one's first key with its secret (an owner's pipeline
// uses it; keyrotor never sees it).
type Seeded struct {
	Users []string
	Keys  map[string]SeedKey // user (Ref) -> its seeded key
}

// SeedKey is a user's seeded key; Unused keys were used once, long ago
// (retirement candidates: no pipeline uses them).
type SeedKey struct {
	ID, Secret string
	Unused     bool
}

// Seed creates the account's users: keys of ages spread over the
// simulation, so rotations fall on many days; some keys unused (retired),
// some owners without an address. It returns the users and their keys'
// secrets (for the owners' pipelines).
func Seed(ctx context.Context, w *World, o Options) (*Seeded, error) {
	r := rand.New(rand.NewPCG(uint64(o.Seed), 1))
	seeded := &Seeded{Keys: map[string]SeedKey{}}
	accounts := w.Accounts()
	for i := range o.Users {
		// User i is in account i mod the accounts, named by its index
		// there: user-000 is in every account (one account: as before).
		acct, j := accounts[i%len(accounts)], i/len(accounts)
		name := fmt.Sprintf("user-%03d", j)
		switch j % 17 {
		case 5:
			name = fmt.Sprintf("svc+%d,ops=x.%d@team_y", j, j) // every legal character
		case 9:
			// IAM's longest user name (64), with every legal character.
			name = fmt.Sprintf("long-%03d+=,.@_-", j)
			name += strings.Repeat("x", 64-len(name))
		}
		iamc := w.PeopleIn(acct).IAM
		age := 80 + r.IntN(o.Days+15)
		unused := r.IntN(10) == 0
		in := &iam.CreateUserInput{UserName: aws.String(name)}
		if r.IntN(12) != 0 {
			in.Tags = []iamtypes.Tag{{Key: aws.String(w.Config.EmailTag), Value: aws.String(fmt.Sprintf("owner%d@example.com", i))}}
		}
		if err := w.SetClock(w.offset - time.Duration(age)*Day); err != nil {
			return nil, err
		}
		if _, err := iamc.CreateUser(ctx, in); err != nil {
			return nil, err
		}
		k, err := iamc.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
		if err != nil {
			return nil, err
		}
		used := w.offset - Day
		if unused {
			used = w.offset - time.Duration(age-1)*Day
		}
		if err := w.SetClock(used); err != nil {
			return nil, err
		}
		if in, ok := w.KeyAccount(ctx, aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)); !ok || in != w.AccountID(acct) {
			return nil, fmt.Errorf("seed key of %s does not work in account %s (acts in %q)", name, w.AccountID(acct), in)
		}
		ref := w.Ref(acct, name)
		seeded.Users = append(seeded.Users, ref)
		seeded.Keys[ref] = SeedKey{ID: aws.ToString(k.AccessKey.AccessKeyId), Secret: aws.ToString(k.AccessKey.SecretAccessKey), Unused: unused}
	}
	return seeded, w.SetClock(w.offset)
}

// Simulate plays o.Days days over the seeded users and checks the
// invariants after each. It returns the report; a violation is in
// Report.Violations.
func Simulate(ctx context.Context, w *World, seeded *Seeded, o Options) (*Report, error) {
	users := seeded.Users
	r := rand.New(rand.NewPCG(uint64(o.Seed), 2))
	rep := &Report{Seed: o.Seed, Days: o.Days, Users: len(users), Adoption: o.Adoption, Checks: map[string]int{}, Accounts: map[string]*AccountCounts{}}
	for _, a := range w.Accounts() {
		rep.Accounts[w.AccountID(a)] = &AccountCounts{}
	}
	for _, u := range users {
		a, _ := SplitRef(u)
		rep.Accounts[w.AccountID(a)].Users++
	}
	w.Config.AdoptionWindow = o.Adoption
	if o.Delivery > 0 && o.Adoption > 0 {
		w.Config.DeliveryParameters = []string{"/ci/*"}
	}
	if err := w.Config.Validate(); err != nil {
		return rep, err
	}
	p := &people{w: w, r: r, users: users, touched: map[string]time.Time{}, used: map[string]time.Time{}, gone: map[string]bool{}, created: map[string]string{}, createdBy: map[string]string{}, seeded: seeded,
		// The acts across kinds draw from their own generator: the
		// people's draws above stay those of earlier versions.
		x: rand.New(rand.NewPCG(uint64(o.Seed), 5)), undo: map[string]string{}}
	if o.LostAnswers > 0 {
		w.Lost = &LostAnswers{Rate: o.LostAnswers, Final: 1.0 / 3, R: rand.New(rand.NewPCG(uint64(o.Seed), 4))}
	}
	if o.Passwords > 0 {
		pw, err := seedPasswords(ctx, w, seeded, o)
		if err != nil {
			return rep, err
		}
		p.pw, rep.Passwords = pw, pw.counts
	}
	if o.Adoption > 0 {
		// Its own generator: the people's draws stay those of a run
		// without a window.
		p.pipes = newPipelines(rand.New(rand.NewPCG(uint64(o.Seed), 3)), seeded, o.Adoption)
		if o.Delivery > 0 {
			d, err := setupDestinations(ctx, w, seeded, o)
			if err != nil {
				return rep, err
			}
			defer d.gh.Close()
			p.dest, p.pipes.dest = d, d
			for ref := range d.by {
				p.pipes.by[ref].kind = pipeDelivered
			}
			rep.Delivered = len(d.by)
			for _, u := range d.by {
				if u.account != "" {
					rep.DeliveredMembers++
					if u.ssm {
						rep.DeliveredMemberSSM++
					}
				}
			}
			defer func() {
				rep.DestFaults = d.Injected()
				rep.DestFaults["pipeline calls on a half-written destination"] = d.HalfWritten
			}()
		}
		rep.Pipelines = p.pipes.mix()
	}
	for day := 0; day < o.Days; day++ {
		began := time.Now()
		quiet := day >= o.Days-o.Quiet
		if p.pipes != nil {
			// The owners' pipelines work before the day's run.
			p.pipes.work(ctx, w, p, day)
		}
		if o.Faults != nil {
			o.Faults(day, !quiet)
		}
		if p.dest != nil {
			p.dest.day(!quiet, o.DestDown)
		}
		if w.Lost != nil {
			w.Lost.Rate = map[bool]float64{true: 0, false: o.LostAnswers}[quiet]
		}
		outage := !quiet && r.Float64() < o.MailOutage
		if outage {
			if _, err := w.People.SES.DeleteEmailIdentity(ctx, &sesv2.DeleteEmailIdentityInput{EmailIdentity: aws.String(w.Config.Sender)}); err != nil {
				return rep, err
			}
		}
		between := func() {
			if !quiet && r.Float64() < o.People/4 {
				p.act(ctx, rep)
			}
		}
		denied := ""
		if w.Org() && day == o.OutageDay && o.Deny != nil {
			denied = w.Members[0].ID
			o.Deny(denied, true)
		}
		start := len(w.Acts)
		plan, outs, err := w.RunDay(ctx, between)
		if denied != "" {
			o.Deny(denied, false)
			checkOutage(w, rep, day, denied, plan, outs)
		}
		if err != nil {
			// A find that faults past its retries fails the day's
			// execution (alarmed); the next day's run picks everything up.
			if quiet {
				return rep, err
			}
			rep.FailedRuns++
			// The keys' own executions (adoption windows, grace periods)
			// are not the daily execution's: they run all the same.
			w.WindowsDue(ctx)
			w.GraceDue(ctx)
		}
		if outage {
			if _, err := w.People.SES.CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(w.Config.Sender)}); err != nil {
				return rep, err
			}
		}
		if !quiet {
			for range len(users) {
				if r.Float64() < o.People {
					p.act(ctx, rep)
				}
			}
			p.answerAdmins(ctx, rep)
			// Across kinds: between a failed step and the takeover, and
			// undoing their own deactivation during a window.
			p.actAcross(ctx, rep, outs)
			p.pw.act(ctx, w, p, rep)
		}
		before := len(rep.Violations)
		if err := check(ctx, w, p, rep, day, start, quiet && day == o.Days-1); err != nil {
			return rep, err
		}
		if o.Progress != nil {
			for _, v := range rep.Violations[before:] {
				fmt.Fprintf(o.Progress, "  VIOLATION %s\n", v)
			}
		}
		if o.Progress != nil {
			failed := 0
			for _, out := range outs {
				if out.Result == "failed" {
					failed++
				}
			}
			items := 0
			if plan != nil {
				items = len(plan.Items)
			}
			accts := ""
			if plan != nil {
				for _, ap := range plan.Accounts {
					accts += fmt.Sprintf(" %s:%s/%d", ap.Account, ap.Status, ap.Items)
					if ap.Status != rotation.AccountPlanned {
						accts += fmt.Sprintf("(%.60s)", ap.Reason)
					}
				}
			}
			fmt.Fprintf(o.Progress, "day %2d: %3d items, %2d failed, %d violations so far%s (%.1fs)%s\n", day, items, failed, len(rep.Violations), map[bool]string{true: " (mail outage)", false: ""}[outage], time.Since(began).Seconds(), accts)
		}
		if err := w.Advance(Day); err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// checkOutage checks the day a member was unreachable: find reported it
// unreachable and planned the others, and the others' keys were rotated
// (not every one of their items failed).
func checkOutage(w *World, rep *Report, day int, denied string, plan *rotation.Plan, outs []Outcome) {
	fail := func(format string, args ...any) {
		rep.Violations = append(rep.Violations, fmt.Sprintf("day %d (member %s unreachable): ", day, denied)+fmt.Sprintf(format, args...))
	}
	rep.Checks["others rotated while a member is unreachable"]++
	if plan == nil {
		return // the day's find failed (faults): counted in FailedRuns
	}
	for _, ap := range plan.Accounts {
		switch {
		case ap.Account == denied && ap.Status != rotation.AccountUnreachable:
			fail("find reported the denied member %s as %q (%s), not unreachable", ap.Account, ap.Status, ap.Reason)
		case ap.Account != denied && ap.Status == rotation.AccountUnreachable:
			fail("find reported account %s unreachable (%s) while only %s was denied", ap.Account, ap.Reason, denied)
		}
	}
	items, done := map[string]int{}, map[string]int{}
	why := map[string][]string{}
	for _, out := range outs {
		a := w.AccountID(out.Item.Account)
		if a == denied {
			fail("find planned %s of %s in the denied member", out.Item.OldKey.ID, out.Item.User)
			continue
		}
		if out.Result == "failed" && strings.Contains(out.Detail, "(simulated lost answer)") {
			// An answer the simulation lost for good fails the item
			// whatever the outage: not the outage's doing.
			continue
		}
		items[a]++
		if out.Result != "failed" {
			done[a]++
		} else {
			why[a] = append(why[a], out.Detail)
		}
	}
	for a, n := range items {
		if done[a] == 0 {
			fail("every one of the %d items of account %s failed: %q", n, a, why[a])
		}
	}
}

// people act on the accounts as a seeded generator says; users are Refs.
type people struct {
	w         *World
	r         *rand.Rand
	users     []string
	touched   map[string]time.Time // user -> last time a person changed its keys
	used      map[string]time.Time // key -> last time a person used it on re-activating it
	gone      map[string]bool      // deleted users
	created   map[string]string    // keys people created: id -> secret
	createdBy map[string]string    // keys people created: id -> user
	seeded    *Seeded
	pipes     *pipelines        // the owners' pipelines (nil: no adoption window)
	dest      *destinations     // the users' destinations (nil: none)
	x         *rand.Rand        // the acts across kinds' own draws
	undo      map[string]string // keys a person deactivated in a window: id -> user, to switch back on
	pw        *passwords        // console passwords (nil: none)
}

// secretOf is the secret of a key the people know (seeded or their own).
func (p *people) secretOf(id string) string {
	if s, ok := p.created[id]; ok {
		return s
	}
	for _, k := range p.seeded.Keys {
		if k.ID == id {
			return k.Secret
		}
	}
	return ""
}

// actAcross plays the people's acts on rotations of every kind: a person
// re-activates a key keyrotor deactivated (a retired key too) and uses it
// at once; deactivates an old key during its adoption window to see what
// breaks, and switches it back on a day later; and acts on a user whose
// flow just failed, before a later execution takes the rotation over.
func (p *people) actAcross(ctx context.Context, rep *Report, outs []Outcome) {
	recs, err := p.w.Records.All(ctx)
	if err != nil {
		return
	}
	touch := func(ref, what, id string, active bool) bool {
		acct, u := SplitRef(ref)
		c := p.w.PeopleIn(acct).IAM
		st := iamtypes.StatusTypeInactive
		if active {
			st = iamtypes.StatusTypeActive
		}
		if _, err := c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(u), AccessKeyId: aws.String(id), Status: st}); err != nil {
			return false
		}
		p.touched[ref] = p.w.Now()
		p.w.act("person", what, ref, id, "across kinds")
		rep.PersonActs++
		if active {
			if s := p.secretOf(id); s != "" {
				if _, ok := p.w.KeyAccount(ctx, id, s); ok { // used at once: the pipeline needed it
					p.used[id] = p.w.Now()
				}
			}
		}
		return true
	}
	// Undo yesterday's deactivations in a window.
	for _, id := range sortedKeys(p.undo) {
		if p.x.IntN(2) == 0 {
			touch(p.undo[id], "reactivate", id, true)
			delete(p.undo, id)
		}
	}
	for _, id := range sortedKeys(recs) {
		rec := recs[id]
		ref := p.w.RecRef(rec)
		if p.gone[ref] || rec.Action == string(policy.RetirePassword) {
			continue
		}
		switch {
		case rec.State == ledger.Deactivated && p.x.Float64() < 0.03:
			touch(ref, "reactivate", rec.ID, true)
		case rec.State == ledger.Ended && p.x.Float64() < 0.1:
			// A key whose rotation ended (a person switched it off before
			// it was replaced...) is switched back on.
			if keys, err := p.w.Keys(ctx, []string{ref}); err == nil && keys[ref][rec.ID] == iamtypes.StatusTypeInactive {
				touch(ref, "reactivate", rec.ID, true)
			}
		case rec.State == ledger.Adopting && rec.Adoption != nil && rec.Adoption.SwitchOver == "" && p.x.Float64() < 0.03:
			if touch(ref, "deactivate", rec.ID, false) {
				p.undo[rec.ID] = ref
			}
		}
	}
	for _, o := range outs {
		if o.Result != "failed" || p.x.Float64() >= 0.3 {
			continue
		}
		ref := p.w.Ref(o.Item.Account, o.Item.User)
		if p.gone[ref] || o.Item.Action == policy.RetirePassword {
			continue
		}
		keys, err := p.w.Keys(ctx, []string{ref})
		if err != nil {
			continue
		}
		if st, ok := keys[ref][o.Item.OldKey.ID]; ok {
			touch(ref, map[bool]string{true: "deactivate", false: "reactivate"}[st == iamtypes.StatusTypeActive], o.Item.OldKey.ID, st != iamtypes.StatusTypeActive)
		}
	}
}

func (p *people) act(ctx context.Context, rep *Report) {
	ref := p.users[p.r.IntN(len(p.users))]
	if p.gone[ref] {
		return
	}
	acct, u := SplitRef(ref)
	c := p.w.PeopleIn(acct).IAM
	ks, err := c.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(u)})
	if err != nil {
		return
	}
	keys := ks.AccessKeyMetadata
	var pick iamtypes.AccessKeyMetadata
	if len(keys) > 0 {
		pick = keys[p.r.IntN(len(keys))]
	}
	id := aws.ToString(pick.AccessKeyId)
	done := ""
	switch n := p.r.IntN(100); {
	case n < 35 && id != "" && pick.Status == iamtypes.StatusTypeInactive: // a pipeline broke: switch the old key back on
		if _, err := c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(u), AccessKeyId: aws.String(id), Status: iamtypes.StatusTypeActive}); err == nil {
			done = "reactivate"
		}
	case n < 45 && id != "" && pick.Status == iamtypes.StatusTypeActive:
		if _, err := c.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(u), AccessKeyId: aws.String(id), Status: iamtypes.StatusTypeInactive}); err == nil {
			done = "deactivate"
		}
	case n < 55 && id != "":
		if _, err := c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(u), AccessKeyId: aws.String(id)}); err == nil {
			done = "delete"
		}
	case n < 65 && len(keys) < 2:
		out, err := c.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(u)})
		if err == nil {
			id = aws.ToString(out.AccessKey.AccessKeyId)
			p.created[id] = aws.ToString(out.AccessKey.SecretAccessKey)
			p.createdBy[id] = ref
			done = "create"
		}
	case n < 85: // tags of their own, up to IAM's limit (the proxy enforces it)
		var tags []iamtypes.Tag
		for i := range 5 + p.r.IntN(20) {
			tags = append(tags, iamtypes.Tag{Key: aws.String(fmt.Sprintf("team-%d-%d", p.r.IntN(1000), i)), Value: aws.String("x")})
		}
		c.TagUser(ctx, &iam.TagUserInput{UserName: aws.String(u), Tags: tags})
		return
	case n < 88:
		for _, k := range keys {
			c.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(u), AccessKeyId: k.AccessKeyId})
		}
		if _, err := c.DeleteUser(ctx, &iam.DeleteUserInput{UserName: aws.String(u)}); err == nil {
			p.gone[ref] = true
			done = "delete-user"
		}
	}
	if done != "" {
		p.touched[ref] = p.w.Now()
		p.w.act("person", done, ref, id, "")
		rep.PersonActs++
	}
}

// answerAdmins does what the admins' messages ask: a key keyrotor cannot
// prove it created is deleted by a person.
func (p *people) answerAdmins(ctx context.Context, rep *Report) {
	recs, err := p.w.Records.All(ctx)
	if err != nil {
		return
	}
	for _, rec := range recs {
		if !strings.Contains(rec.Attention, "cannot prove it created") {
			continue
		}
		id := strings.Fields(strings.TrimPrefix(rec.Attention, "key "))[0]
		ref := p.w.RecRef(rec)
		if _, err := p.w.PeopleIn(rec.Account).IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(rec.User), AccessKeyId: aws.String(id)}); err == nil {
			p.touched[ref] = p.w.Now()
			p.w.act("person", "delete", ref, id, "as the admins' message asked")
			rep.PersonActs++
		}
	}
}

// check asserts the invariants over the day's acts and the account.
func check(ctx context.Context, w *World, p *people, rep *Report, day, start int, final bool) error {
	fail := func(format string, args ...any) {
		rep.Violations = append(rep.Violations, fmt.Sprintf("day %d: ", day)+fmt.Sprintf(format, args...))
	}
	recs, err := w.Records.All(ctx)
	if err != nil {
		return err
	}
	sent, err := w.ReadSent(ctx)
	if err != nil {
		return err
	}
	lastPerson := func(key string, before time.Time, what ...string) time.Time {
		var t time.Time
		for _, a := range w.Acts {
			if a.By == "person" && a.KeyID == key && a.At.Before(before) && (len(what) == 0 || contains(what, a.What)) {
				t = a.At
			}
		}
		return t
	}
	// 1. No Active key deactivated without an accepted notice for that
	// rotation after the last human change.
	// 2. No key deleted before the grace from its own deactivation, nor a
	// key a person re-activated since.
	for _, a := range w.Acts[start:] {
		if a.By != "keyrotor" {
			continue
		}
		acct, _ := SplitRef(a.User)
		counts := rep.Accounts[w.AccountID(acct)]
		if counts == nil {
			counts = &AccountCounts{}
			rep.Accounts[w.AccountID(acct)] = counts
		}
		switch a.What {
		case "create":
			counts.Created++
		case "deactivate":
			counts.Deactivated++
			rep.Checks["notice before deactivation"]++
			rep.Deactivations++
			rec := recs[a.KeyID]
			switch {
			case rec == nil:
				fail("keyrotor deactivated %s of %s with no rotation record", a.KeyID, a.User)
			case rec.Notice != ledger.NoticeAccepted || rec.NoticeAt.After(a.At):
				fail("keyrotor deactivated %s of %s at %s without an accepted notice (notice %q at %s)", a.KeyID, a.User, a.At, rec.Notice, rec.NoticeAt)
			case rec.NoticeAt.Before(lastPerson(a.KeyID, a.At, "reactivate")) && offBefore(w, rec, a.KeyID, lastPerson(a.KeyID, a.At, "reactivate")):
				// No key a person re-activated is deactivated again by the
				// same rotation (a new rotation's notice comes first):
				// switched off in this rotation (by keyrotor, or by a
				// person whose act a check took for the verdict), then
				// back on by a person.
				var acts, hist []string
				for _, b := range w.Acts {
					if b.KeyID == a.KeyID {
						acts = append(acts, fmt.Sprintf("%s %s %s", stamp(b.At), b.By, b.What))
					}
				}
				for _, h := range rec.History {
					hist = append(hist, fmt.Sprintf("%s %s %s", stamp(h.At), h.State, h.Note))
				}
				fail("keyrotor deactivated %s of %s after a person re-activated it, with no new notice (rotation %d, %s; acts %q; history %q)", a.KeyID, a.User, rec.Rotation, rec.Action, acts, hist)
			case rec.NoticeChannel == "mail" && !mailMentions(sent, a.KeyID):
				fail("the notice of %s is recorded as mailed but no mail mentions it", a.KeyID)
			}
		case "delete":
			counts.Deleted++
			rep.Checks["no early or unproven delete"]++
			rep.Deletes++
			var deact time.Time
			for _, b := range w.Acts {
				if b.By == "keyrotor" && b.What == "deactivate" && b.KeyID == a.KeyID && !b.At.After(a.At) {
					deact = b.At
				}
			}
			if rec := recs[a.KeyID]; deact.IsZero() && rec != nil {
				// A person deactivated the old key (in its adoption window:
				// the switch-over, or before a switch-over on evidence):
				// its grace runs from keyrotor's recording that, after the
				// person's act (the one before keyrotor recorded it: the
				// person may have switched it on and off again since).
				if pd := lastPerson(a.KeyID, rec.DeactivatedAt.Add(2*time.Second), "deactivate"); !pd.IsZero() && !rec.DeactivatedAt.IsZero() {
					deact = rec.DeactivatedAt
				}
			}
			switch {
			case deact.IsZero():
				// Only a key keyrotor itself created and could not keep.
				// (Its history says so, or the truth: an attempt whose
				// record write failed deletes the key it created, with no
				// history.)
				if _, ok := p.created[a.KeyID]; ok || !createdByKeyrotor(recs, a.KeyID) && !w.createdByKeyrotor(a.KeyID, a.User) {
					var acts []string
					for _, b := range w.Acts {
						if b.KeyID == a.KeyID {
							acts = append(acts, fmt.Sprintf("%s %s %s %s", stamp(b.At), b.By, b.What, b.Detail))
						}
					}
					var hist []string
					if rec := recs[a.KeyID]; rec != nil {
						for _, h := range rec.History {
							hist = append(hist, fmt.Sprintf("%s %s %s", stamp(h.At), h.State, h.Note))
						}
					}
					_, byPerson := p.created[a.KeyID]
					fail("keyrotor deleted %s of %s, which it never deactivated nor created (created by a person: %v; acts on it %q; record %s, history %q)", a.KeyID, a.User, byPerson, acts, summary(recs[a.KeyID]), hist)
				}
			case a.At.Before(deact.Add(w.Config.GracePeriod)):
				fail("keyrotor deleted %s of %s at %s, before the grace from its deactivation at %s", a.KeyID, a.User, a.At, deact)
			case lastPerson(a.KeyID, a.At, "reactivate").After(deact) && p.used[a.KeyID].After(deact):
				// Re-activated and used after keyrotor's switch-off: the
				// use shows it (an Inactive key cannot be used), whatever
				// the person did after.
				fail("keyrotor deleted %s of %s, which a person re-activated and used (%s) after it was switched off (%s): (record %s)", a.KeyID, a.User, stamp(p.used[a.KeyID]), stamp(deact), summary(recs[a.KeyID]))
			case lastPerson(a.KeyID, a.At, "reactivate").After(deact) && !lastPerson(a.KeyID, a.At, "deactivate").After(lastPerson(a.KeyID, a.At, "reactivate")):
				// (A person who switched it off again after re-activating
				// it left it as keyrotor did: their last act stands.)
				var acts []string
				for _, b := range w.Acts {
					if b.KeyID == a.KeyID {
						acts = append(acts, fmt.Sprintf("%s %s %s", stamp(b.At), b.By, b.What))
					}
				}
				fail("keyrotor deleted %s of %s, which a person re-activated after keyrotor deactivated it (acts %q; record %s)", a.KeyID, a.User, acts, summary(recs[a.KeyID]))
			}
		}
	}
	users := map[string]bool{}
	for _, u := range p.users {
		if !p.gone[u] {
			users[u] = true
		}
	}
	keys, err := w.Keys(ctx, sortedUsers(users))
	if err != nil {
		return err
	}
	// 3. No user left without an Active key unless an unused key was
	// retired after notice (or a person changed its keys).
	for u, ks := range keys {
		rep.Checks["user keeps an Active key"]++
		active := false
		for _, st := range ks {
			active = active || st == iamtypes.StatusTypeActive
		}
		if active || !p.touched[u].IsZero() {
			continue
		}
		retired := false
		for _, rec := range recs {
			retired = retired || w.RecRef(rec) == u && rec.Action != "rotate"
		}
		if !retired {
			fail("user %s has no Active key, no person touched it and no unused key was retired (keys %v)", u, ks)
		}
	}
	// 4. Every stored secret holds a key that works (unless a person
	// changed that key or user). A new key in its adoption window is not
	// used here: that use would be the adoption the window watches for
	// (only the owners' pipelines use it; its status is still checked).
	adopting := map[string]bool{}
	for _, rec := range recs {
		if rec.State == ledger.Adopting && rec.NewKeyID != "" {
			adopting[rec.NewKeyID] = true
		}
	}
	// 8. Nothing keyrotor writes lands in the wrong account: a secret in
	// an account is of a user keyrotor rotates in that account (a record of
	// that account and user), holds a key of that user there, and in a
	// member is under the member's own key.
	var secrets []string
	for _, acct := range w.Accounts() {
		c := w.PeopleIn(acct).Secrets
		sp := secretsmanager.NewListSecretsPaginator(c, &secretsmanager.ListSecretsInput{})
		for sp.HasMorePages() {
			page, err := sp.NextPage(ctx)
			if err != nil {
				return err
			}
			for _, s := range page.SecretList {
				if s.DeletedDate != nil {
					continue
				}
				v, err := c.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: s.ARN})
				if err != nil {
					continue
				}
				var sk rotation.StoredKey
				if json.Unmarshal([]byte(aws.ToString(v.SecretString)), &sk) != nil || sk.AccessKeyID == "" {
					continue
				}
				secrets = append(secrets, sk.SecretAccessKey)
				ref := w.Ref(acct, sk.UserName)
				if w.Org() {
					rep.Checks["secret in its user's account"]++
					mine, other := false, ""
					for _, rec := range recs {
						mine = mine || w.RecRef(rec) == ref
						if rec.NewKeyID == sk.AccessKeyID && w.RecRef(rec) != ref {
							other = w.RecRef(rec)
						}
					}
					switch {
					case !mine:
						fail("secret %s in account %s holds %s of %s, but keyrotor has no rotation of %s in that account", aws.ToString(s.Name), w.AccountID(acct), sk.AccessKeyID, sk.UserName, sk.UserName)
					case other != "":
						fail("secret %s in account %s holds %s, the new key of %s's rotation", aws.ToString(s.Name), w.AccountID(acct), sk.AccessKeyID, other)
					case acct != "" && !strings.Contains(aws.ToString(s.KmsKeyId), "KeyRotorMember"):
						fail("secret %s in member %s is encrypted with %q, not the member's key (alias/KeyRotorMember)", aws.ToString(s.Name), acct, aws.ToString(s.KmsKeyId))
					}
				}
				rep.Checks["stored secret works"]++
				if !users[ref] || !lastPerson(sk.AccessKeyID, w.Now().Add(time.Second)).IsZero() {
					continue
				}
				st, ok := keys[ref][sk.AccessKeyID]
				switch {
				case !ok:
					fail("secret of %s holds %s, which no longer exists and no person deleted", ref, sk.AccessKeyID)
				case st != iamtypes.StatusTypeActive:
					fail("secret of %s holds %s, which is %s and no person deactivated", ref, sk.AccessKeyID, st)
				case adopting[sk.AccessKeyID]:
				default:
					if in, works := w.KeyAccount(ctx, sk.AccessKeyID, sk.SecretAccessKey); !works {
						fail("secret of %s holds %s, which does not work", ref, sk.AccessKeyID)
					} else if in != w.AccountID(acct) {
						fail("secret of %s in account %s holds %s, which acts in account %s", ref, w.AccountID(acct), sk.AccessKeyID, in)
					}
				}
			}
		}
	}
	// 9. No key keyrotor created for a user in an account where it has no
	// rotation for that user: every key of a user is its seeded key, one a
	// person created for it, or one a rotation of that user in that
	// account names (a create whose answer was lost excepted).
	explained := map[string]string{} // key id -> the user (Ref) it is explained for
	for ref, k := range p.seeded.Keys {
		explained[k.ID] = ref
	}
	for id, ref := range p.createdBy {
		explained[id] = ref
	}
	for _, rec := range recs {
		ref := w.RecRef(rec)
		explained[rec.ID] = ref
		if rec.NewKeyID != "" {
			explained[rec.NewKeyID] = ref
		}
	}
	rotated := map[string]bool{} // users (Refs) keyrotor has a rotation of
	for _, rec := range recs {
		rotated[w.RecRef(rec)] = true
	}
	lost := map[string]bool{}
	for _, a := range w.Acts {
		switch {
		case a.By != "keyrotor":
		case a.What == "create-unknown":
			lost[a.User] = true
		case a.What == "create" && rotated[a.User]:
			// Created for a rotation of that user in that account, and
			// left unrecorded (its record write failed, and so did its
			// removal).
			if _, ok := explained[a.KeyID]; !ok {
				explained[a.KeyID] = a.User
			}
		}
	}
	for _, ref := range sortedKeys(keys) {
		for _, id := range sortedKeys(keys[ref]) {
			rep.Checks["key in its rotation's account"]++
			owner, ok := explained[id]
			if !ok {
				for _, rec := range recs {
					for _, h := range rec.History {
						if strings.Contains(h.Note, id) {
							owner, ok = w.RecRef(rec), true
						}
					}
				}
			}
			switch {
			case ok && owner != ref:
				fail("key %s of %s: the key of %s's rotation or seed (another account or user)", id, ref, owner)
			case !ok && !lost[ref]:
				fail("key %s of %s was created by neither a person, the seed nor a rotation of %s in its account", id, ref, ref)
			}
		}
	}
	// 5. At most one owner notice per rotation (a send whose outcome was
	// unknown may be repeated by the next run: counted). An adoption
	// window's reminders are bounded by check (c) below.
	rep.Mails = len(sent.Mails)
	notices := make([]Mail, 0, len(sent.Mails))
	for _, m := range sent.Mails {
		if !strings.Contains(m.Body, "A reminder: ") {
			notices = append(notices, m)
		}
	}
	for _, rec := range recs {
		rep.Checks["one owner mail per rotation"]++
		unknown := 0
		for _, h := range rec.History {
			if strings.Contains(h.Note, "is unknown") {
				unknown++
			}
		}
		n := OwnerNotices(notices, rec.ID)
		if w.Org() {
			// In an organization every mail about a key names its user's
			// account: "alice in account <id>".
			want := rec.User + " in account " + w.AccountID(rec.Account)
			for _, m := range sent.Mails {
				if !strings.Contains(m.Body, rec.ID) {
					continue
				}
				rep.Checks["mail names the user's account"]++
				if !strings.Contains(m.Body, want) {
					fail("a mail about %s of %s does not say %q", rec.ID, w.RecRef(rec), want)
				}
			}
		}
		if n > rec.Rotation+unknown {
			var subjects []string
			for _, m := range notices {
				if strings.Contains(m.Subject, rec.ID) {
					subjects = append(subjects, fmt.Sprint(m.To, " ", m.Subject))
				}
			}
			fail("%d owner mails mention %s over %d rotations (%d unknown outcomes; to %v; history %+v)", n, rec.ID, rec.Rotation, unknown, subjects, rec.History)
		}
	}
	// 6. After the quiet days: no due, unblocked, unheld key left
	// unrotated for more than two days.
	if final {
		maxAge := time.Duration(w.Config.MaxKeyAgeDays+2) * Day
		for u := range users {
			acct, name := SplitRef(u)
			ks, err := w.PeopleIn(acct).IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(name)})
			if err != nil {
				continue
			}
			// Blocked is policy's word (the two-key rule), from the same
			// facts find uses: live keys and the rotation records.
			rules := policy.Rules{MaxKeyAgeDays: w.Config.MaxKeyAgeDays, UnusedDays: w.Config.UnusedDays, Grace: w.Config.GracePeriod}
			pu := policy.User{Name: name}
			for _, k := range ks.AccessKeyMetadata {
				pk := policy.Key{ID: aws.ToString(k.AccessKeyId), Active: k.Status == iamtypes.StatusTypeActive, Created: aws.ToTime(k.CreateDate), LastUsed: w.Now()}
				if r := recs[pk.ID]; r != nil {
					if r.State == ledger.Deactivated {
						pk.DeactivatedAt = r.DeactivatedAt
					}
					pk.ReplacedBy = r.NewKeyID
				}
				pu.Keys = append(pu.Keys, pk)
			}
			blocked := map[string]bool{}
			for _, d := range rules.Decide(pu, w.Now()) {
				blocked[d.KeyID] = d.Action == policy.Blocked
			}
			for _, k := range ks.AccessKeyMetadata {
				id := aws.ToString(k.AccessKeyId)
				if k.Status != iamtypes.StatusTypeActive || w.Now().Sub(aws.ToTime(k.CreateDate)) < maxAge {
					continue
				}
				rep.Checks["due key rotated"]++
				rec := recs[id]
				switch {
				case rec != nil && rec.State == ledger.Held, rec != nil && rec.Attention != "", rec != nil && rec.State == ledger.Ended && w.Now().Before(rec.HeldUntil):
				case blocked[id]: // the two-key rule: a person must act first
				case rec != nil && rec.State.InFlight():
				default:
					fail("user %s key %s is due (created %s) and was not rotated (record %+v)", u, id, aws.ToTime(k.CreateDate).Format(time.DateOnly), summary(rec))
				}
			}
		}
	}
	// Delivery (issue 21): (a) to (c) in destinations.go.
	if p.dest != nil {
		if err := p.dest.check(ctx, w, p, rep, recs, keys, fail); err != nil {
			return err
		}
	}
	// Console passwords: (p1) to (p4) in passwords.go.
	p.pw.check(ctx, w, p, rep, recs, sent, start, final, fail)
	// Adoption windows: (a) to (d).
	if p.pipes != nil {
		p.pipes.check(w, p, rep, recs, sent, users, start, final, fail)
	}
	// 10. No step panics, on any input (names of every legal length and
	// character included).
	rep.Checks["no step panics"]++
	w.mu.Lock()
	panics := append([]string(nil), w.Panics...)
	w.Panics = nil
	w.mu.Unlock()
	for _, pn := range panics {
		fail("%s", pn)
	}
	// 11. Nothing ended silently: a due key (older than the max age by two
	// days), Active, not blocked, whose rotation is over but neither held
	// nor needing a person, is a rotation that ended and never restarts.
	// A week's slack: daily runs fail under the faults and lost answers
	// (find's own, a key's flow), and one that ended for good fails this
	// every day after.
	for _, ref := range sortedKeys(keys) {
		acct, name := SplitRef(ref)
		for _, id := range sortedKeys(keys[ref]) {
			rec := recs[id]
			if keys[ref][id] != iamtypes.StatusTypeActive || rec == nil || rec.State.InFlight() || rec.State == ledger.Deleted {
				continue
			}
			rep.Checks["nothing ended silently"]++
			// The slack runs from the later of the rotation's end and a
			// person's last act on the user's keys (a key switched back on,
			// or the user's other key deleted, after today's find is first
			// seen by tomorrow's).
			since := rec.History[len(rec.History)-1].At
			if pa := p.touched[ref]; pa.After(since) {
				since = pa
			}
			if w.Now().Before(rec.HeldUntil.Add(endedSlack)) || rec.Attention != "" || w.Now().Sub(since) < endedSlack {
				continue
			}
			ks, err := w.PeopleIn(acct).IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(name)})
			if err != nil {
				continue
			}
			var created time.Time
			for _, k := range ks.AccessKeyMetadata {
				if aws.ToString(k.AccessKeyId) == id {
					created = aws.ToTime(k.CreateDate)
				}
			}
			if len(ks.AccessKeyMetadata) > 1 || created.IsZero() || w.Now().Sub(created) < time.Duration(w.Config.MaxKeyAgeDays+2)*Day {
				continue // the two-key rule blocks it, or it is not due
			}
			fail("user %s key %s is due and Active, and its rotation %d %s on %s without a hold or a person needed: it never restarts (%s; find's last plan: %s)", ref, id, rec.Rotation, rec.State, stamp(rec.History[len(rec.History)-1].At), summary(rec), w.PlanSays(id))
		}
	}
	// 7. No secret in any output: step outputs and logs, mails, messages.
	for _, s := range p.created {
		secrets = append(secrets, s)
	}
	for _, u := range p.seeded.Users {
		secrets = append(secrets, p.seeded.Keys[u].Secret)
	}
	corpus := string(w.Outputs())
	for _, m := range sent.Mails {
		corpus += m.Body
	}
	corpus += strings.Join(sent.Messages, "\n")
	// The rotation records too: their history and the deliveries'
	// reasons are what `keyrotor status` shows.
	for _, id := range sortedKeys(recs) {
		b, _ := json.Marshal(recs[id])
		corpus += string(b)
	}
	for _, s := range secrets {
		rep.Checks["secret absent from outputs"]++
		if s != "" && strings.Contains(corpus, s) {
			fail("a secret access key appears in an output")
		}
	}
	if p.dest != nil {
		// What the destinations hold (read from them, not from Secrets
		// Manager) and the GitHub token the deliver step read.
		for _, s := range p.dest.secrets(ctx) {
			rep.Checks["delivered secret absent from outputs"]++
			if s != "" && strings.Contains(corpus, s) {
				fail("a delivered secret or the destination's token appears in an output")
			}
		}
	}
	rep.Held, rep.Attention = 0, 0
	for _, rec := range recs {
		if rec.State == ledger.Held {
			rep.Held++
		}
		if rec.Attention != "" {
			rep.Attention++
		}
	}
	return nil
}

// endedSlack is how long a due key's finished rotation may wait for its
// restart (failed daily runs) before it counts as ended for good.
const endedSlack = 7 * Day

// offBefore reports whether rec's rotation saw key switched off before
// the re-activation at r: keyrotor deactivated it after the notice, or a
// check recorded a person's deactivation as the window's verdict. (A
// person switching a key off and on between two looks is invisible to
// keyrotor: IAM keeps no status history.)
func offBefore(w *World, rec *ledger.Record, key string, r time.Time) bool {
	for _, b := range w.Acts {
		if b.By == "keyrotor" && b.What == "deactivate" && b.KeyID == key && !b.At.Before(rec.NoticeAt) && b.At.Before(r) {
			return true
		}
	}
	ad := rec.Adoption
	return ad != nil && ad.SwitchOver == ledger.SwitchPerson && ad.SwitchedAt.Before(r)
}

// sameUse reports whether two recorded last uses are the same.
func sameUse(a, b *ledger.Use) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.At.Equal(b.At)
}

// createdByKeyrotor reports whether keyrotor created key for user (a Ref),
// by the truth of its IAM calls.
func (w *World) createdByKeyrotor(key, user string) bool {
	for _, a := range w.Acts {
		if a.By == "keyrotor" && a.What == "create" && a.KeyID == key && a.User == user {
			return true
		}
	}
	return false
}

func createdByKeyrotor(recs map[string]*ledger.Record, key string) bool {
	for _, rec := range recs {
		for _, h := range rec.History {
			if strings.Contains(h.Note, key) && (strings.Contains(h.Note, "created new key") || strings.Contains(h.Note, "deleted new key")) {
				return true
			}
		}
	}
	return false
}

func mailMentions(s *Sent, id string) bool {
	for _, m := range s.Mails {
		if strings.Contains(m.Body, id) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func summary(rec *ledger.Record) string {
	if rec == nil {
		return "none"
	}
	return fmt.Sprintf("rotation %d %s: %s", rec.Rotation, rec.State, rec.Outcome)
}

// String prints the report: the seed (to replay), the counts checked and
// every violation.
func (r *Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "seed %d: %d days, %d users; keyrotor deactivated %d keys and deleted %d; %d owner mails; people acted %d times; %d held, %d needing attention; %d daily runs failed\n",
		r.Seed, r.Days, r.Users, r.Deactivations, r.Deletes, r.Mails, r.PersonActs, r.Held, r.Attention, r.FailedRuns)
	if r.Adoption > 0 {
		var mix []string
		for _, k := range sortedKeys(r.Pipelines) {
			mix = append(mix, fmt.Sprintf("%d %s", r.Pipelines[k], k))
		}
		fmt.Fprintf(&b, "  adoption window %s; pipelines: %s; switched over on evidence %d, on the deadline %d, by a person %d\n",
			r.Adoption, strings.Join(mix, ", "), r.Evidence, r.Deadline, r.Person)
	}
	if r.Delivered > 0 {
		var fs []string
		for _, k := range sortedKeys(r.DestFaults) {
			fs = append(fs, fmt.Sprintf("%s %d", k, r.DestFaults[k]))
		}
		fmt.Fprintf(&b, "  %d users with destinations (%d in member accounts, %d of them with SSM parameters in their own account); %s\n",
			r.Delivered, r.DeliveredMembers, r.DeliveredMemberSSM, strings.Join(fs, ", "))
	}
	b.WriteString(r.passwordLine())
	names := make([]string, 0, len(r.Checks))
	for k := range r.Checks {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		fmt.Fprintf(&b, "  checked %-30s %d times\n", k, r.Checks[k])
	}
	if len(r.Accounts) > 1 {
		for _, a := range sortedKeys(r.Accounts) {
			c := r.Accounts[a]
			fmt.Fprintf(&b, "  account %s: %d users; keyrotor created %d keys, deactivated %d, deleted %d\n", a, c.Users, c.Created, c.Deactivated, c.Deleted)
		}
	}
	for _, v := range r.Violations {
		fmt.Fprintf(&b, "  VIOLATION %s\n", v)
	}
	return b.String()
}

// Pipeline kinds: what an owner's pipeline does once a rotation of a key it
// uses has mailed the owner (with an adoption window).
const (
	pipeSwitches = "switches"          // to the new key on a random day of the window
	pipeNever    = "never switches"    // keeps using the old key only
	pipeBoth     = "keeps using both"  // adds the new key on a random day, keeps the old one
	pipeNone     = "none (unused key)" // the seeded key is unused (a retirement): nothing uses it
	// pipeDelivered reads its key from the user's destinations each day
	// and uses what each holds: adoption with no person in the loop.
	pipeDelivered = "reads its destinations"
)

// pipeline is one owner's automation: every day, before the day's run, it
// signs a call with each key it uses that is Active (a key a person
// deleted or deactivated is not usable; moto would accept it and record a
// use IAM never would).
type pipeline struct {
	kind  string
	after int               // switches, keeps using both: days after the notice
	keys  map[string]string // the keys it uses: id -> secret
	done  map[string]bool   // the rotations (id#rotation) it took the new key of
}

// pipelines are the owners' pipelines, the truth of which keys they used
// when, and what the adoption checks have seen so far.
type pipelines struct {
	by       map[string]*pipeline   // user -> its pipeline
	uses     map[string][]time.Time // key id -> the times a pipeline used it
	dayStart []time.Time            // day -> the clock when the pipelines worked

	mailsSeen int             // sent.Mails attributed so far
	mails     map[string]int  // id#rotation -> owner mails (notices and reminders)
	reminders map[string]int  // id#rotation -> reminder mails
	judged    map[string]bool // id#rotation whose switch-over was counted
	blamed    map[string]bool // id#rotation whose end on a person's action was checked

	dest *destinations // the users' destinations (nil: none)
}

func newPipelines(r *rand.Rand, s *Seeded, window time.Duration) *pipelines {
	ps := &pipelines{by: map[string]*pipeline{}, uses: map[string][]time.Time{}, mails: map[string]int{}, reminders: map[string]int{}, judged: map[string]bool{}, blamed: map[string]bool{}}
	days := int((window + Day - 1) / Day)
	for _, u := range s.Users {
		k := s.Keys[u]
		n, after := r.IntN(100), 1+r.IntN(days)
		pl := &pipeline{after: after, keys: map[string]string{k.ID: k.Secret}, done: map[string]bool{}}
		switch {
		case k.Unused:
			pl.kind, pl.keys = pipeNone, map[string]string{}
		case n < 70:
			pl.kind = pipeSwitches
		case n < 85:
			pl.kind = pipeNever
		default:
			pl.kind = pipeBoth
		}
		ps.by[u] = pl
	}
	return ps
}

func (ps *pipelines) mix() map[string]int {
	m := map[string]int{}
	for _, pl := range ps.by {
		m[pl.kind]++
	}
	return m
}

func rotationTag(rec *ledger.Record) string { return fmt.Sprintf("%s#%d", rec.ID, rec.Rotation) }

// stamp prints a simulated time.
func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func stamps(ts []time.Time) string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = stamp(t)
	}
	return "[" + strings.Join(out, " ") + "]"
}

// dayOf is the simulated day at t (-1 before the first).
func (ps *pipelines) dayOf(t time.Time) int {
	d := -1
	for i, s := range ps.dayStart {
		if !s.After(t) {
			d = i
		}
	}
	return d
}

// work plays the day's pipelines: each takes up the new key of a rotation
// of a key it uses when its day has come (reading the secret as an owner
// does), then uses its Active keys.
func (ps *pipelines) work(ctx context.Context, w *World, p *people, day int) {
	ps.dayStart = append(ps.dayStart, w.Now())
	recs, err := w.Records.All(ctx)
	if err != nil {
		recs = nil // no switching today; the keys are still used
	}
	var live []string
	for _, u := range p.users {
		if !p.gone[u] {
			live = append(live, u)
		}
	}
	for _, u := range live {
		pl := ps.by[u]
		if pl.kind == pipeDelivered {
			pl.keys = map[string]string{}
			for _, v := range ps.dest.holds(ctx, u) {
				if v[0] != "" && v[1] != "" {
					pl.keys[v[0]] = v[1]
				}
			}
			continue
		}
		if pl.kind == pipeNone || pl.kind == pipeNever {
			continue
		}
		for _, id := range sortedKeys(pl.keys) {
			rec := recs[id]
			if rec == nil || rec.Action != string(policy.Rotate) || rec.NewKeyID == "" || rec.SecretName == "" ||
				rec.Notice != ledger.NoticeAccepted || rec.NoticeAt.IsZero() || pl.done[rotationTag(rec)] {
				continue
			}
			if day < ps.dayOf(rec.NoticeAt)+pl.after {
				continue
			}
			v, err := w.PeopleIn(rec.Account).Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(rec.SecretName)})
			if err != nil {
				continue
			}
			var sk rotation.StoredKey
			if json.Unmarshal([]byte(aws.ToString(v.SecretString)), &sk) != nil || sk.AccessKeyID != rec.NewKeyID || sk.SecretAccessKey == "" {
				continue
			}
			pl.done[rotationTag(rec)] = true
			pl.keys[sk.AccessKeyID] = sk.SecretAccessKey
			if pl.kind == pipeSwitches {
				delete(pl.keys, id)
			}
		}
	}
	keys, err := w.Keys(ctx, live)
	if err != nil {
		return
	}
	for _, u := range live {
		pl := ps.by[u]
		for _, id := range sortedKeys(pl.keys) {
			st, exists := keys[u][id]
			if pl.kind == pipeDelivered {
				ps.dest.usable++
				if st != iamtypes.StatusTypeActive && lastActBy(w, id) == "keyrotor" {
					ps.dest.Broken = append(ps.dest.Broken, fmt.Sprintf("user %s: its pipeline's call failed: a destination holds %s, which keyrotor left %s",
						u, id, map[bool]string{true: string(st), false: "deleted"}[exists]))
				}
			}
			if st != iamtypes.StatusTypeActive {
				continue // deleted or Inactive: not usable
			}
			cfg := w.People.Config.Copy()
			cfg.Credentials = credentials.NewStaticCredentialsProvider(id, pl.keys[id], "")
			c := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.DisableLogOutputChecksumValidationSkipped = true })
			if _, err := c.ListBuckets(ctx, &s3.ListBucketsInput{}); err == nil {
				ps.uses[id] = append(ps.uses[id], w.Now())
			} else if pl.kind == pipeDelivered {
				ps.dest.HalfWritten++
			}
		}
	}
}

// lastActBy is who last switched key off or on, or deleted it ("" none).
func lastActBy(w *World, key string) string {
	by := ""
	for _, a := range w.Acts {
		if a.KeyID == key && a.What != "create" {
			by = a.By
		}
	}
	return by
}

// usedBetween reports whether a pipeline used key in [from, to].
func (ps *pipelines) usedBetween(key string, from, to time.Time) bool {
	for _, t := range ps.uses[key] {
		if !t.Before(from) && !t.After(to) {
			return true
		}
	}
	return false
}

// check asserts the adoption window's invariants over the day's acts and
// the records; fail reports a violation.
func (ps *pipelines) check(w *World, p *people, rep *Report, recs map[string]*ledger.Record, sent *Sent, users map[string]bool, start int, final bool, fail func(string, ...any)) {
	adoption := func(rec *ledger.Record) string {
		b, _ := json.Marshal(rec.Adoption)
		return fmt.Sprintf("rotation %d %s, adoption %s", rec.Rotation, rec.State, b)
	}
	// (a) The old key is deactivated only after the window's verdict, and
	// not before the window's end unless on evidence or by a person.
	for _, a := range w.Acts[start:] {
		if a.By != "keyrotor" || a.What != "deactivate" {
			continue
		}
		rec := recs[a.KeyID]
		if rec == nil || rec.Action != string(policy.Rotate) {
			continue
		}
		rep.Checks["deactivation after switch-over"]++
		ad := rec.Adoption
		switch {
		case ad == nil:
			fail("keyrotor deactivated %s of %s at %s outside an adoption window (window %s configured; %s)", a.KeyID, a.User, stamp(a.At), w.Config.AdoptionWindow, summary(rec))
		case ad.SwitchOver == "" || ad.SwitchedAt.IsZero():
			fail("keyrotor deactivated %s of %s at %s before its window switched over (%s)", a.KeyID, a.User, stamp(a.At), adoption(rec))
		case ad.SwitchedAt.After(a.At):
			fail("keyrotor deactivated %s of %s at %s, before the switch-over at %s (%s)", a.KeyID, a.User, stamp(a.At), stamp(ad.SwitchedAt), adoption(rec))
		case a.At.Before(ad.Until) && ad.SwitchOver != ledger.SwitchEvidence && ad.SwitchOver != ledger.SwitchPerson:
			fail("keyrotor deactivated %s of %s at %s, before the window's end %s, on a %q switch-over (%s)", a.KeyID, a.User, stamp(a.At), stamp(ad.Until), ad.SwitchOver, adoption(rec))
		}
	}
	// (b) Evidence only where the user's pipeline used the new key and,
	// on the day of the switch-over, not the old one (every check runs a
	// day after the previous, so a use of the old key that day comes
	// after the check that saw the new key in use).
	for _, id := range sortedKeys(recs) {
		rec := recs[id]
		ad := rec.Adoption
		if ad == nil || ad.SwitchOver == "" || ps.judged[rotationTag(rec)] {
			continue
		}
		ps.judged[rotationTag(rec)] = true
		switch ad.SwitchOver {
		case ledger.SwitchEvidence:
			rep.Evidence++
		case ledger.SwitchDeadline:
			rep.Deadline++
		case ledger.SwitchPerson:
			rep.Person++
		}
		if ad.SwitchOver != ledger.SwitchEvidence {
			continue
		}
		rep.Checks["evidence only after a switch"]++
		rep.Checks["evidence across two checks 15m apart"]++
		if ad.SwitchedAt.Sub(ad.NewSeenAt) < w.Config.Recording() || !sameUse(ad.OldAtNewSeen, ad.OldLastUsed) {
			fail("user %s key %s switched over on evidence at %s from a check at %s: not two checks at least %s apart with the old key's last use unchanged (%s)", w.RecRef(rec), rec.ID, stamp(ad.SwitchedAt), stamp(ad.NewSeenAt), w.Config.Recording(), adoption(rec))
		}
		kind := "none"
		if pl := ps.by[w.RecRef(rec)]; pl != nil {
			kind = pl.kind
		}
		d := ps.dayOf(ad.SwitchedAt)
		switch {
		case !ps.usedBetween(rec.NewKeyID, rec.NewKeyCreated, ad.SwitchedAt):
			fail("user %s key %s switched over on evidence, but its pipeline (%s) never used the new key %s before %s (uses %s; %s)", w.RecRef(rec), rec.ID, kind, rec.NewKeyID, stamp(ad.SwitchedAt), stamps(ps.uses[rec.NewKeyID]), adoption(rec))
		case d >= 0 && ps.usedBetween(rec.ID, ps.dayStart[d], ad.SwitchedAt):
			fail("user %s key %s switched over on evidence on day %d, but its pipeline (%s) used the old key that day before the check (uses %s; %s)", w.RecRef(rec), rec.ID, d, kind, stamps(ps.uses[rec.ID]), adoption(rec))
		}
	}
	// (c) At most the notice and one reminder per point mailed per
	// rotation (a notice whose outcome was unknown may be sent again).
	for _, m := range sent.Mails[ps.mailsSeen:] {
		reminder := strings.Contains(m.Body, "A reminder: ")
		for id, rec := range recs {
			if strings.Contains(m.Body, id) {
				ps.mails[rotationTag(rec)]++
				if reminder {
					ps.reminders[rotationTag(rec)]++
				}
			}
		}
	}
	ps.mailsSeen = len(sent.Mails)
	for _, id := range sortedKeys(recs) {
		rec := recs[id]
		if rec.Adoption == nil {
			continue
		}
		rep.Checks["owner mails per window"]++
		unknown := 0
		for _, h := range rec.History {
			if strings.Contains(h.Note, "is unknown") {
				unknown++
			}
		}
		tag := rotationTag(rec)
		if n, limit := ps.mails[tag], 1+len(w.Config.Reminders())+unknown; n > limit || ps.reminders[tag] > len(rec.Adoption.Reminders) {
			fail("user %s key %s: %d owner mails (%d reminders) in rotation %d; at most %d (%d reminder points, %d unknown outcomes), reminders at most the %d points recorded (%s)",
				w.RecRef(rec), rec.ID, n, ps.reminders[tag], rec.Rotation, limit, len(w.Config.Reminders()), unknown, len(rec.Adoption.Reminders), adoption(rec))
		}
	}
	// (e) A window ended or held on a person's action (a key deleted,
	// deactivated or re-activated) only after a person acted on the
	// user's keys.
	for _, id := range sortedKeys(recs) {
		rec := recs[id]
		if rec.Adoption == nil || !(rec.State == ledger.Held || rec.State == ledger.Ended && !rec.HeldUntil.IsZero()) || ps.blamed[rotationTag(rec)] {
			continue
		}
		ps.blamed[rotationTag(rec)] = true
		rep.Checks["person blamed only if acted"]++
		var end time.Time
		for _, h := range rec.History {
			if h.State == rec.State {
				end = h.At.Add(time.Second) // history times are whole seconds
			}
		}
		acted := false
		for _, a := range w.Acts {
			acted = acted || a.By == "person" && a.User == w.RecRef(rec) && !a.At.After(end)
		}
		if !acted {
			fail("user %s key %s: rotation %d %s on a person's action (%q), but no person acted on %s's keys (%s)", w.RecRef(rec), rec.ID, rec.Rotation, rec.State, rec.Outcome, rec.User, adoption(rec))
		}
	}
	// (d) After the quiet days (no faults, no people): no window still
	// running two days after its end.
	if final {
		for _, id := range sortedKeys(recs) {
			rec := recs[id]
			if rec.Adoption == nil || !users[w.RecRef(rec)] {
				continue
			}
			rep.Checks["window ends after its Until"]++
			if rec.State == ledger.Adopting && w.Now().After(rec.Adoption.Until.Add(2*Day)) {
				fail("user %s key %s is still in its adoption window, which ended %s (%s)", w.RecRef(rec), rec.ID, stamp(rec.Adoption.Until), adoption(rec))
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
