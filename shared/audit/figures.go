package audit

import (
	"context"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// FiguresOf computes the figures of the dashboard from a report's rows
// and the rotation records, as of now: the Active access keys by age band
// (Band), the oldest Active key keyrotor is to rotate (not exempt, not
// held by a person), and the rotations by state.
func FiguresOf(rows []Row, records map[string]*ledger.Record, now time.Time) metrics.Figures {
	var f metrics.Figures
	for _, r := range rows {
		// Access keys only (key ids in KeyID), not passwords or certificates.
		if !strings.HasPrefix(r.Credential, "access_key") || r.Status != "Active" {
			continue
		}
		switch Band(r.AgeDays) {
		case "fresh":
			f.KeysFresh++
		case "aging":
			f.KeysAging++
		default:
			f.KeysOld++
		}
		// Keys keyrotor does not rotate: exempt, held, root's (a person's),
		// a user gone since the report.
		if r.Decision == policy.Exempt || r.Decision == policy.Held || r.Decision == policy.Manual || r.Decision == policy.Gone {
			continue
		}
		if rec := records[r.KeyID]; rec != nil && !rec.State.InFlight() && now.Before(rec.HeldUntil) {
			continue
		}
		if f.Oldest == nil || r.AgeDays > f.Oldest.AgeDays || r.AgeDays == f.Oldest.AgeDays && r.KeyID < f.Oldest.ID {
			f.Oldest = &metrics.Key{Account: r.Account, User: r.User, ID: r.KeyID, AgeDays: r.AgeDays}
		}
	}
	for _, rec := range records {
		switch StateOf(rec, now) {
		case StateInFlight:
			f.InFlight++
		case StateAdopting:
			f.Adopting++
		case StateInGrace:
			f.InGrace++
		case StateHeld:
			f.Held++
		}
		if rec.Attention != "" {
			f.Attention++
		}
	}
	return f
}

// What a rotation record is doing now, for people (`keyrotor status`) and
// the dashboard. A record needing attention is also one of these.
const (
	StateInFlight = "in flight" // started up to notified: an execution drives it
	StateAdopting = "adopting"  // its adoption window runs (old key still Active)
	StateInGrace  = "in grace"  // old key Inactive until its delete date
	StateHeld     = "held"      // a person's hold: hands off until HeldUntil
	StateDone     = "done"      // deleted, ended, or a hold that passed
)

// StateOf says what rec is doing at now.
func StateOf(rec *ledger.Record, now time.Time) string {
	switch {
	case rec.State == ledger.Adopting:
		return StateAdopting
	case rec.State == ledger.Deactivated:
		return StateInGrace
	case rec.State.InFlight():
		return StateInFlight
	case now.Before(rec.HeldUntil):
		return StateHeld
	}
	return StateDone
}

// FigureEmitter is the find function's rotation.FigureWriter: it emits the
// figures of the run's assessments as EMF lines.
type FigureEmitter struct {
	Metrics         *metrics.Emitter
	RetirePasswords bool
	HomeAccount     string
}

var _ rotation.FigureWriter = (*FigureEmitter)(nil)

// WriteFigures implements rotation.FigureWriter.
func (e *FigureEmitter) WriteFigures(_ context.Context, as []*rotation.Assessment, rules policy.Rules, now time.Time) error {
	rep := BuildAll(as, rules, e.RetirePasswords, e.HomeAccount)
	records := map[string]*ledger.Record{}
	for _, a := range as {
		for id, rec := range a.Records {
			records[id] = rec
		}
	}
	return e.Metrics.Emit(FiguresOf(rep.Rows, records, now).Values())
}
