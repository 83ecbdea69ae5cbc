package operator

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/shared/ledger"
)

// TestBuildStatusPerAccount: in organization mode (records of member
// accounts) each rotation names its account and the accounts are counted;
// in a single account there is no account column.
func TestBuildStatusPerAccount(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name    string
		records map[string]*ledger.Record
		want    []AccountStatus
		table   []string
	}{
		{name: "one account", records: map[string]*ledger.Record{
			"AKIA1": {ID: "AKIA1", User: "a", State: ledger.Deactivated, DeleteAfter: now.Add(48 * time.Hour)},
		}, table: []string{"In grace (old key Inactive) (1)", "USER  KEY", "2027-01-03 00:00Z"}},
		{name: "organization", records: map[string]*ledger.Record{
			"AKIA1": {ID: "AKIA1", Account: "111122223333", User: "a", State: ledger.Deactivated, DeleteAfter: now.Add(time.Hour)},
			"AKIA2": {ID: "AKIA2", Account: "111122223333", User: "b", State: ledger.Held, HeldUntil: now.Add(time.Hour), Attention: "x"},
			"AKIA3": {ID: "AKIA3", User: "c", State: ledger.Adopting},
			"AKIA4": {ID: "AKIA4", Account: "444455556666", User: "d", State: ledger.Deleted},
		}, want: []AccountStatus{{Account: "", Adopting: 1}, {Account: "111122223333", InGrace: 1, Held: 1, Attention: 1}},
			table: []string{"ACCOUNT       USER", "(this account)", "By account", "111122223333    0          0         1         1     1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := BuildStatus("KeyRotor", tc.records, nil, "", now)
			if !reflect.DeepEqual(st.Accounts, tc.want) {
				t.Errorf("Accounts = %+v; want %+v", st.Accounts, tc.want)
			}
			var b bytes.Buffer
			if err := st.WriteTable(&b); err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.table {
				if !strings.Contains(b.String(), s) {
					t.Errorf("table lacks %q:\n%s", s, b.String())
				}
			}
		})
	}
}
