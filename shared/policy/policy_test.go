package policy

import (
	"strings"
	"testing"
	"time"
)

var asOf = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func daysAgo(n int) time.Time { return asOf.Add(-time.Duration(n) * 24 * time.Hour) }

var rules = Rules{MaxKeyAgeDays: 90, UnusedDays: 45, Grace: 7 * 24 * time.Hour}

func TestKeyOnly(t *testing.T) {
	tests := []struct {
		name string
		key  Key
		want Action
	}{
		{"young and used", Key{ID: "K", Active: true, Created: daysAgo(10), LastUsed: daysAgo(1)}, OK},
		{"old and used", Key{ID: "K", Active: true, Created: daysAgo(120), LastUsed: daysAgo(1)}, Rotate},
		{"exactly max age is not due", Key{ID: "K", Active: true, Created: daysAgo(90), LastUsed: daysAgo(1)}, OK},
		{"one day past max age", Key{ID: "K", Active: true, Created: daysAgo(91), LastUsed: daysAgo(1)}, Rotate},
		{"old and unused: retire wins", Key{ID: "K", Active: true, Created: daysAgo(400), LastUsed: daysAgo(60)}, Retire},
		{"never used, younger than threshold", Key{ID: "K", Active: true, Created: daysAgo(44)}, OK},
		{"never used, at threshold", Key{ID: "K", Active: true, Created: daysAgo(45)}, Retire},
		{"inactive old key is left to its rotation", Key{ID: "K", Active: false, Created: daysAgo(400)}, OK},
		{"used 44 days ago", Key{ID: "K", Active: true, Created: daysAgo(50), LastUsed: daysAgo(44)}, OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rules.KeyOnly(tt.key, asOf); got.Action != tt.want {
				t.Errorf("KeyOnly(%+v) = %v (%s); want %v", tt.key, got.Action, got.Reason, tt.want)
			}
		})
	}
}

func TestDecideTwoKeys(t *testing.T) {
	due := Key{ID: "OLD", Active: true, Created: daysAgo(120), LastUsed: daysAgo(1)}
	tests := []struct {
		name        string
		other       Key
		want        Action
		removeFirst string
		reason      string
	}{
		{"other active", Key{ID: "OTHER", Active: true, Created: daysAgo(5), LastUsed: daysAgo(1)}, Blocked, "", "also Active"},
		{"other is our replacement", Key{ID: "NEW", Active: true, Created: daysAgo(0)}, Rotate, "", "rotation under way"},
		{"other inactive, not ours", Key{ID: "OTHER", Active: false, Created: daysAgo(200)}, Blocked, "", "not deactivated by keyrotor"},
		{"other inactive, ours, in grace", Key{ID: "OTHER", Active: false, Created: daysAgo(200), DeactivatedAt: daysAgo(3)}, Blocked, "", "grace period"},
		{"other inactive, ours, past grace", Key{ID: "OTHER", Active: false, Created: daysAgo(200), DeactivatedAt: daysAgo(8)}, Rotate, "OTHER", "removed first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := due
			if tt.other.ID == "NEW" {
				k.ReplacedBy = "NEW"
			}
			got := rules.Decide(User{Name: "alice", Keys: []Key{k, tt.other}}, asOf)[0]
			if got.Action != tt.want || got.RemoveFirst != tt.removeFirst || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("Decide = %+v; want action %v, removeFirst %q, reason containing %q", got, tt.want, tt.removeFirst, tt.reason)
			}
		})
	}
}

func TestDecideExempt(t *testing.T) {
	u := User{Name: "svc", Exempt: true, ExemptReason: "tagged keyrotor:exempt=true", Keys: []Key{
		{ID: "A", Active: true, Created: daysAgo(300), LastUsed: daysAgo(1)},
		{ID: "B", Active: true, Created: daysAgo(3), LastUsed: daysAgo(1)},
	}}
	got := rules.Decide(u, asOf)
	if got[0].Action != Exempt || got[0].Reason != u.ExemptReason {
		t.Errorf("Decide(exempt)[0] = %+v; want exempt with the tag reason", got[0])
	}
	if got[1].Action != OK {
		t.Errorf("Decide(exempt)[1] = %+v; want ok (a fine key is reported ok, not exempt)", got[1])
	}
}

func TestAgeDays(t *testing.T) {
	if got := AgeDays(daysAgo(3).Add(time.Hour), asOf); got != 2 {
		t.Errorf("AgeDays(2d23h) = %d; want 2", got)
	}
	if got := AgeDays(asOf.Add(time.Hour), asOf); got != 0 {
		t.Errorf("AgeDays(future) = %d; want 0", got)
	}
}

// TestThresholdsAreDurations: ages are judged as durations (asOf - created
// > 90 x 24 h), as AWS Config's access-keys-rotated and Security Hub's
// IAM.3 judge them, not on floored days (issue 20, defect 3).
func TestThresholdsAreDurations(t *testing.T) {
	tests := []struct {
		name   string
		key    Key
		want   Action
		reason string
	}{
		{"90.9 days old is past 90 days", Key{ID: "K", Active: true, Created: daysAgo(90).Add(-22 * time.Hour), LastUsed: daysAgo(1)}, Rotate, "90 days 22 hours old"},
		{"exactly 90 x 24 h is not past", Key{ID: "K", Active: true, Created: daysAgo(90), LastUsed: daysAgo(1)}, OK, "90 days old and in use"},
		{"one second past 90 x 24 h", Key{ID: "K", Active: true, Created: daysAgo(90).Add(-time.Second), LastUsed: daysAgo(1)}, Rotate, "max age 90 days"},
		{"unused 44 days 23 hours is not idle", Key{ID: "K", Active: true, Created: daysAgo(80), LastUsed: daysAgo(45).Add(time.Hour)}, OK, "in use"},
		{"never used, young: not in use", Key{ID: "K", Active: true, Created: daysAgo(0)}, OK, "0 days old, never used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rules.KeyOnly(tt.key, asOf)
			if got.Action != tt.want || !strings.Contains(got.Reason, tt.reason) {
				t.Errorf("KeyOnly(%+v) = %v (%s); want %v with %q", tt.key, got.Action, got.Reason, tt.want, tt.reason)
			}
		})
	}
}

// TestPasswordNeverUsed: a never-used password is never "in use" (issue 20,
// defect 5).
func TestPasswordNeverUsed(t *testing.T) {
	tests := []struct {
		name              string
		lastUsed, changed time.Time
		want              Action
		reason, notReason string
	}{
		{"never used, set 3 days ago", time.Time{}, daysAgo(3), OK, "never used", "in use"},
		{"never used, set 45 days ago", time.Time{}, daysAgo(45), Retire, "never used; set", "in use"},
		{"used yesterday", daysAgo(1), daysAgo(100), OK, "in use", "never"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rules.Password(true, tt.lastUsed, tt.changed, asOf)
			if got.Action != tt.want || !strings.Contains(got.Reason, tt.reason) || strings.Contains(got.Reason, tt.notReason) {
				t.Errorf("Password = %v (%s); want %v with %q, without %q", got.Action, got.Reason, tt.want, tt.reason, tt.notReason)
			}
		})
	}
}
