package ledger

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDecide walks the whole table: every state (and none), every event,
// every kind of step, with and without a start, the old credential unknown,
// Active or Inactive, a hold running or over, the notice out or not, a
// window's verdict of each kind. Each row of want is a rule; every cell
// of the walk must match exactly one rule, so a state, an event or a guard
// added later without its rule fails here.
func TestDecide(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	type cell struct {
		state          State // "" : no record
		action, kind   string
		ev             Event
		start          bool
		oldKnown, oldA bool
		heldLive       bool
		notice         bool
		verdict        string
		recent         bool // keyrotor's deactivation was within ledger.StatusLag
		undelivered    bool // a destination does not hold the new key yet
		usedAfter      bool // the old key was used after it was switched off (past the lag)
		reset          bool // a person set a new console password
	}
	// want returns the decision's shape for a cell: "begin", "stop",
	// "go", "hold", "end", "end+begin".
	rules := []struct {
		name  string
		match func(c cell) bool
		want  string
	}{
		{"no record: a due first step begins", func(c cell) bool { return c.state == "" && c.ev == Due && c.start }, "begin"},
		{"no record: nothing else acts", func(c cell) bool { return c.state == "" }, "stop"},
		{"a hold running stops every step", func(c cell) bool { return !c.state.InFlight() && c.heldLive }, "stop"},
		{"a finished rotation: only a due first step acts", func(c cell) bool { return !c.state.InFlight() && (c.ev != Due || !c.start) }, "stop"},
		{"a deleted credential is never due again", func(c cell) bool { return c.state == Deleted }, "stop"},
		{"held (over) or ended: due again, a new rotation begins", func(c cell) bool { return !c.state.InFlight() }, "begin"},
		{"listed Active right after keyrotor deactivated it: IAM may lag, wait", func(c cell) bool {
			return c.state == Deactivated && c.oldKnown && c.oldA && c.action != "retire-password" && c.recent
		}, "wait"},
		{"re-activated after keyrotor deactivated it: held", func(c cell) bool {
			return c.state == Deactivated && c.oldKnown && c.oldA && c.action != "retire-password"
		}, "hold"},
		{"re-activated after the person's own switch-over: the verdict is stale, held", func(c cell) bool {
			return c.state == Adopting && c.verdict == SwitchPerson && c.oldKnown && c.oldA && c.action != "retire-password"
		}, "hold"},
		{"used after it was switched off: a person re-activated it since (Inactive again or not), held", func(c cell) bool {
			return c.state == Deactivated && c.usedAfter && c.action != "retire-password"
		}, "hold"},
		{"a console password re-set by a person: the retirement is held", func(c cell) bool {
			return c.state.InFlight() && c.reset && c.action == "retire-password"
		}, "hold"},
		{"a retirement met by another kind's due step ends; the new kind begins if it may", func(c cell) bool {
			return c.ev == Due && c.kind != c.action && c.action != "rotate" && c.start
		}, "end+begin"},
		{"... or just ends", func(c cell) bool { return c.ev == Due && c.kind != c.action && c.action != "rotate" }, "end"},
		{"no deactivation before the notice went out", func(c cell) bool { return c.ev == Deactivate && !c.notice }, "stop"},
		{"no deactivation while a destination lacks the new key", func(c cell) bool {
			return c.ev == Deactivate && c.undelivered && c.state != Deactivated
		}, "stop"},
		{"no deactivation in a window without its verdict", func(c cell) bool { return c.ev == Deactivate && c.state == Adopting && c.verdict == "" }, "stop"},
		{"otherwise the rotation goes on", func(c cell) bool { return true }, "go"},
	}
	states := []State{"", Started, Creating, Created, Stored, Notified, Adopting, Deactivated, Deleted, Held, Ended}
	kinds := []string{"rotate", "retire", "retire-password"}
	n := 0
	for _, st := range states {
		for _, action := range kinds {
			for _, kind := range kinds {
				for _, ev := range []Event{Due, Continue, Deactivate} {
					for _, start := range []bool{false, true} {
						for _, old := range []string{"unknown", "active", "inactive"} {
							for _, held := range []bool{false, true} {
								for _, notice := range []bool{false, true} {
									for _, vr := range []string{"", SwitchEvidence, SwitchDeadline, SwitchPerson, "recent"} {
										for _, uu := range [][3]bool{{false, false, false}, {true, false, false}, {false, true, false}, {false, false, true}} {
											undelivered, usedAfter, reset := uu[0], uu[1], uu[2]
											verdict, recent := vr, vr == "recent"
											if recent {
												verdict = ""
											}
											c := cell{state: st, action: action, kind: kind, ev: ev, start: start, oldKnown: old != "unknown", oldA: old == "active", heldLive: held, notice: notice, verdict: verdict, recent: recent, undelivered: undelivered, usedAfter: usedAfter, reset: reset}
											if usedAfter && (st == "" || recent) {
												continue // a use is "after" only of a switch-off past the lag
											}
											if recent && st != Deactivated {
												continue
											}
											if st == "" && (held || notice || verdict != "" || action != kind) {
												continue // no record has none of these
											}
											if st != Adopting && verdict != "" {
												continue // only a window has a verdict
											}
											if undelivered && (st == "" || action != "rotate") {
												continue // only a replacement is delivered
											}
											if reset && (st == "" || old != "unknown") {
												continue // a password's set time is read with no key status, of a rotation
											}
											var rec *Record
											if st != "" {
												rec = &Record{ID: "AKIAOLD", Action: action, State: st, Rotation: 1, DeactivatedAt: now.Add(-time.Hour)}
												if recent {
													rec.DeactivatedAt = now.Add(-10 * time.Second)
												}
												if held {
													rec.HeldUntil = now.Add(time.Hour)
												} else if st == Held {
													rec.HeldUntil = now.Add(-time.Hour)
												}
												if notice {
													rec.Notice = NoticeAccepted
												}
												if st == Adopting {
													rec.Adoption = &Adoption{Until: now.Add(24 * time.Hour), SwitchOver: verdict}
												}
												rec.Deliveries = []Delivery{{Where: "github repository secret o/r", State: DeliveryVerified}}
												if undelivered {
													rec.Deliveries = append(rec.Deliveries, Delivery{Where: "ssm parameters /a, /b", State: DeliveryFailed})
												}
											}
											f := Facts{Now: now, Kind: kind, Start: start, OldKnown: c.oldKnown, OldActive: c.oldA, OldLastUsed: now.Add(-2 * time.Hour), PasswordReset: reset}
											if usedAfter {
												f.OldLastUsed = now.Add(-time.Minute)
											}
											d := Decide(rec, ev, f)
											var got string
											switch {
											case d.End != "" && d.Hold && !d.Begin && d.Stop == "":
												got = "hold"
											case d.End != "" && d.Begin && !d.Hold && d.Stop == "":
												got = "end+begin"
											case d.End != "" && !d.Hold && !d.Begin && d.Stop == "":
												got = "end"
											case d.End == "" && d.Begin && !d.Hold && d.Stop == "":
												got = "begin"
											case d.End == "" && !d.Begin && !d.Hold && d.Stop != "" && d.Wait == "":
												got = "stop"
											case d.End == "" && !d.Begin && !d.Hold && d.Stop == "" && d.Wait != "":
												got = "wait"
											case d == Decision{}:
												got = "go"
											default:
												t.Fatalf("%+v: an impossible decision %+v", c, d)
											}
											for _, r := range rules {
												if r.match(c) {
													if got != r.want {
														t.Errorf("Decide(%+v) = %s (%+v); want %s (%s)", c, got, d, r.want, r.name)
													}
													break
												}
											}
											if d.Go() != (got == "go" || got == "begin" || got == "end+begin") {
												t.Errorf("Decide(%+v).Go() = %v for %s", c, d.Go(), got)
											}
											n++
										}
									}
								}
							}
						}
					}
				}
			}
		}
	}
	if n < 1000 {
		t.Fatalf("walked %d cells; the table is not walked whole", n)
	}
}

// TestDecideSaysWhy: every end and stop says why, in words a person reads
// in the history and the summary.
func TestDecideSaysWhy(t *testing.T) {
	now := time.Date(2026, 12, 1, 6, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		rec  *Record
		ev   Event
		f    Facts
		want string
	}{
		{"retired key re-activated", &Record{Action: "retire", State: Deactivated, DeactivatedAt: now.Add(-48 * time.Hour)}, Due, Facts{Kind: "rotate", Start: true, OldKnown: true, OldActive: true}, "re-activated by a person"},
		{"listed Active seconds after keyrotor's deactivation", &Record{Action: "rotate", State: Deactivated, DeactivatedAt: now.Add(-time.Second)}, Deactivate, Facts{OldKnown: true, OldActive: true}, "IAM may not show the change yet"},
		{"retirement used", &Record{Action: "retire", State: Notified}, Due, Facts{Kind: "rotate", Start: true, OldKnown: true, OldActive: true}, "used after its retirement"},
		{"stale person verdict", &Record{Action: "rotate", State: Adopting, Adoption: &Adoption{SwitchOver: SwitchPerson}}, Continue, Facts{OldKnown: true, OldActive: true}, "verdict no longer holds"},
		{"held", &Record{State: Held, HeldUntil: now.Add(time.Hour), Outcome: "x"}, Due, Facts{Start: true}, "held until"},
		{"deleted", &Record{State: Deleted, Rotation: 2}, Due, Facts{Start: true}, "rotation 2 already deleted"},
		{"notice", &Record{State: Stored}, Deactivate, Facts{}, "notice has not gone out"},
		{"retirement used since its notice", &Record{Action: "retire", State: Notified, Notice: NoticeAccepted}, Deactivate, Facts{OldKnown: true, OldActive: true, UsedSinceNotice: true}, "used after its owner was told"},
		{"console password re-set", &Record{Action: "retire-password", State: Deactivated, Notice: NoticeAccepted, NoticeAt: now.Add(-48 * time.Hour)}, Continue, Facts{PasswordReset: true}, "re-set by a person"},
		{"used after the switch-off", &Record{Action: "rotate", State: Deactivated, DeactivatedAt: now.Add(-48 * time.Hour)}, Continue, Facts{OldKnown: true, OldLastUsed: now.Add(-time.Hour)}, "a person re-activated it since"},
		{"undelivered", &Record{State: Notified, Notice: NoticeAccepted, Deliveries: []Delivery{{Where: "gitlab project a/b", State: DeliveryFailed}}}, Deactivate, Facts{}, "not delivered to gitlab project a/b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.f.Now = now
			d := Decide(tt.rec, tt.ev, tt.f)
			if got := d.End + d.Stop + d.Wait; !strings.Contains(got, tt.want) {
				t.Fatalf("Decide = %s; want it to say %q", fmt.Sprintf("%+v", d), tt.want)
			}
		})
	}
}
