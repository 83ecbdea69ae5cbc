package operator

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// TestMotoHold: a person's hold by the state of the key's rotation: what
// is held (and how the record reads after), what is refused (naming the
// flag, nothing changed), and never an IAM change.
func TestMotoHold(t *testing.T) {
	a := awstest.New(t)
	store := a.Records(t, "rotations")
	ctx := context.Background()
	now := time.Now().UTC()
	a.User(t, "carol")
	unrotated := a.Key(t, "carol")
	tests := []struct {
		name    string
		rec     *ledger.Record // nil: no record
		key     string
		days    int
		refused string // "": held
	}{
		{name: "never rotated: a record in state held", key: unrotated, days: 5},
		{name: "held: the hold is replaced", key: "AKIAHELD", days: 3,
			rec: &ledger.Record{ID: "AKIAHELD", User: "dave", Rotation: 1, State: ledger.Held, HeldUntil: now.Add(20 * 24 * time.Hour)}},
		{name: "in grace: held where it is", key: "AKIAGRACE", days: 30,
			rec: &ledger.Record{ID: "AKIAGRACE", User: "erin", Rotation: 1, State: ledger.Deactivated, Owner: "grace-x", DeleteAfter: now.Add(time.Hour)}},
		{name: "adopting: held where it is", key: "AKIAADOPT", days: 365,
			rec: &ledger.Record{ID: "AKIAADOPT", User: "erin", Rotation: 1, State: ledger.Adopting}},
		{name: "zero days", key: unrotated, days: 0, refused: "--days 0: want a whole number of days from 1 to 365"},
		{name: "past the bound", key: "AKIAHELD2", days: 366, refused: "--days 366",
			rec: &ledger.Record{ID: "AKIAHELD2", User: "dave", Rotation: 1, State: ledger.Held, HeldUntil: now.Add(time.Hour)}},
		{name: "creating its new key", key: "AKIACREATING", days: 3, refused: "creating its new key right now",
			rec: &ledger.Record{ID: "AKIACREATING", User: "fay", Rotation: 1, State: ledger.Creating, Owner: "daily"}},
		{name: "deleted", key: "AKIADELETED", days: 3, refused: "the key was deleted",
			rec: &ledger.Record{ID: "AKIADELETED", User: "fay", Rotation: 2, State: ledger.Deleted}},
		{name: "ended for good", key: "AKIAENDED", days: 3, refused: "ended for good",
			rec: &ledger.Record{ID: "AKIAENDED", User: "fay", Rotation: 1, State: ledger.Ended, Outcome: "the user was deleted"}},
		{name: "unknown key", key: "AKIANOSUCHKEY0000000", days: 3, refused: "no such access key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rec != nil {
				tc.rec.History = []ledger.Entry{}
				if err := store.Put(ctx, tc.rec); err != nil {
					t.Fatal(err)
				}
			}
			before, _ := store.Get(ctx, tc.key)
			keys := a.Keys(t, "carol")
			rec, err := Hold(ctx, store, a.IAM, HoldRequest{Key: tc.key, Days: tc.days, Reason: "freeze", Now: now})
			after, _ := store.Get(ctx, tc.key)
			if tc.refused != "" {
				var r *RefusedError
				if !errors.As(err, &r) || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("Hold(%s, %d) = %v; want refused: %q", tc.key, tc.days, err, tc.refused)
				}
				if before == nil && after != nil || before != nil && after.Version != before.Version {
					t.Fatalf("a refused hold changed the record: %+v -> %+v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatalf("Hold(%s, %d) = %v", tc.key, tc.days, err)
			}
			until := now.Add(time.Duration(tc.days) * 24 * time.Hour)
			last := after.History[len(after.History)-1]
			if after.State != ledger.Held || !after.HeldUntil.Equal(until) || after.Owner != "" || last.Execution != "keyrotor hold" || !strings.Contains(last.Note, "freeze") || rec.Version != after.Version {
				t.Errorf("after Hold: %+v (last entry %+v); want held until %s by a person, the lease released", after, last, until)
			}
			if before == nil && (after.User != "carol" || after.Rotation != 0) {
				t.Errorf("new record for a key never rotated: user %q rotation %d; want carol, 0", after.User, after.Rotation)
			}
			if got := a.Keys(t, "carol"); len(got) != len(keys) || got[unrotated] != "Active" {
				t.Errorf("Hold changed IAM: %v -> %v", keys, got)
			}
		})
	}
}
