package audit

import (
	"reflect"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// TestFiguresOf: keys by age band count Active keys only (never a password
// or an Inactive key or a certificate); the oldest key to rotate skips
// exempt users, a person's hold, root's keys and a user gone since; rotations are counted by what they are doing now.
func TestFiguresOf(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	key := func(user, id string, age int, status string, d policy.Action) Row {
		return Row{User: user, Credential: "access_key_1", KeyID: id, AgeDays: age, Status: status, Decision: d}
	}
	tests := []struct {
		name    string
		rows    []Row
		records map[string]*ledger.Record
		want    metrics.Figures
	}{
		{name: "empty"},
		{name: "bands and the oldest", rows: []Row{
			key("a", "AKIAA", 10, "Active", policy.OK),
			key("b", "AKIAB", 200, "Active", policy.Rotate),
			key("c", "AKIAC", 400, "Active", policy.Exempt),
			key("d", "AKIAD", 500, "Inactive", policy.Retire),
			{User: "e", Credential: "password", AgeDays: 900, Status: "enabled", Decision: policy.RetirePassword},
			{User: "f", Credential: "cert_1", AgeDays: 900, Status: "Active", Decision: policy.Manual},
			key("<root_account>", "AKIAROOT", 2000, "Active", policy.Manual),
			key("g", "AKIAG", 300, "Active", policy.Gone),
		}, want: metrics.Figures{KeysFresh: 1, KeysAging: 2, KeysOld: 2, Oldest: &metrics.Key{User: "b", ID: "AKIAB", AgeDays: 200}}},
		{name: "a hold is not the oldest", rows: []Row{
			key("a", "AKIAA", 300, "Active", policy.Rotate),
			key("b", "AKIAB", 100, "Active", policy.Rotate),
		}, records: map[string]*ledger.Record{
			"AKIAA": {ID: "AKIAA", State: ledger.Held, HeldUntil: now.Add(time.Hour)},
		}, want: metrics.Figures{KeysAging: 2, Oldest: &metrics.Key{User: "b", ID: "AKIAB", AgeDays: 100}, Held: 1}},
		{name: "rotations by state", records: map[string]*ledger.Record{
			"1": {State: ledger.Created},
			"2": {State: ledger.Notified, Attention: "mail refused"},
			"3": {State: ledger.Adopting},
			"4": {State: ledger.Deactivated},
			"5": {State: ledger.Held, HeldUntil: now.Add(time.Hour)},
			"6": {State: ledger.Held, HeldUntil: now.Add(-time.Hour)},
			"7": {State: ledger.Deleted},
			"8": {State: ledger.Ended, HeldUntil: now.Add(24 * time.Hour)},
		}, want: metrics.Figures{InFlight: 2, Adopting: 1, InGrace: 1, Held: 2, Attention: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := FiguresOf(tc.rows, tc.records, now); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("FiguresOf = %+v (oldest %+v); want %+v (oldest %+v)", got, got.Oldest, tc.want, tc.want.Oldest)
			}
		})
	}
}
