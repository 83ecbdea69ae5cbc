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

// TestStatusDestinations: a rotation whose user has destinations shows
// each one with how far its delivery got (delivered and read back when,
// failed and why, a write begun, pending), in the table and the JSON; a
// finished rotation's destinations are not listed, nor a rotation without
// any.
func TestStatusDestinations(t *testing.T) {
	now := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	verified := now.Add(-time.Hour)
	records := map[string]*ledger.Record{
		"AKIA1": {ID: "AKIA1", User: "ci", State: ledger.Stored, LeaseUntil: now.Add(time.Minute), Owner: "run-1",
			Attention: "delivery: 1 of 4 destinations of user ci do not hold the new key",
			Deliveries: []ledger.Delivery{
				{Where: "github repository secret octo/app: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY", State: ledger.DeliveryVerified, VerifiedAt: verified},
				{Where: "gitlab project group/app variables AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (scope *)", State: ledger.DeliveryFailed, Reason: "HTTP 500: 500 Internal Server Error"},
				{Where: "ssm parameters /ci/id, /ci/secret (keyrotor's account, keyrotor's region)", State: ledger.DeliveryWriting, WriteAt: verified},
				{Where: "circleci project gh/octo/app", State: ledger.DeliveryPending},
			}},
		"AKIA2": {ID: "AKIA2", User: "plain", State: ledger.Deactivated, DeleteAfter: now.Add(time.Hour)},
		"AKIA3": {ID: "AKIA3", User: "done", State: ledger.Deleted,
			Deliveries: []ledger.Delivery{{Where: "github repository secret octo/old: X, Y", State: ledger.DeliveryVerified, VerifiedAt: verified}}},
	}
	st := BuildStatus("KeyRotor", records, nil, "", now)
	var b bytes.Buffer
	if err := st.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	table := b.String()
	for _, want := range []string{
		"New keys' destinations (1)",
		"USER  KEY    DESTINATION",
		"failed: HTTP 500: 500 Internal Server Error",
		"write begun 2026-12-31T23:00:00Z, not read back yet",
		"circleci project gh/octo/app",
		"pending",
	} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	for _, line := range strings.Split(table, "\n") {
		if strings.Contains(line, "github repository secret octo/app") && !strings.HasSuffix(line, "  delivered, read back 2026-12-31T23:00:00Z") {
			t.Errorf("the GitHub destination's line %q; want it delivered, read back at its time", line)
		}
	}
	if strings.Contains(table, "octo/old") {
		t.Errorf("table lists a finished rotation's destinations:\n%s", table)
	}
	if n := strings.Count(table, "gitlab project group/app"); n != 1 {
		t.Errorf("the GitLab destination is listed %d times (the rotation is in flight and needs attention); want once:\n%s", n, table)
	}
	if got := st.InFlight[0].Destinations; len(got) != 4 || got[1].Reason != "HTTP 500: 500 Internal Server Error" {
		t.Errorf("InFlight[0].Destinations = %+v; want the record's four, with the failure's reason", got)
	}
}
