package audit

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/shared/credreport"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

var asOf = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)

func ago(d int) time.Time { return asOf.AddDate(0, 0, -d) }

func TestBuild(t *testing.T) {
	rules := policy.Rules{MaxKeyAgeDays: 90, UnusedDays: 45, Grace: 7 * 24 * time.Hour}
	live := credreport.Row{User: "live", ARN: "arn:live", Keys: [2]credreport.Key{{Slot: 1, Active: true, LastRotated: ago(120), LastUsed: ago(1), LastUsedService: "s3"}}}
	a := &rotation.Assessment{AsOf: asOf, Rows: []credreport.Row{
		live,
		{User: "fresh", ARN: "arn:fresh", MFAActive: true, Keys: [2]credreport.Key{{Slot: 1, Active: true, LastRotated: ago(10), LastUsed: ago(1)}}},
		{User: "console", ARN: "arn:console", PasswordEnabled: true, PasswordLastChanged: ago(400)},
		{User: "inactive", ARN: "arn:inactive", Keys: [2]credreport.Key{{}, {Slot: 2, Active: false, LastRotated: ago(500)}}},
	}, Candidates: map[string]*rotation.Candidate{"live": {Row: live,
		User:      policy.User{Name: "live", Keys: []policy.Key{{ID: "AKIALIVE", Active: true, Created: ago(120), LastUsed: ago(1)}}},
		Decisions: []policy.Decision{{KeyID: "AKIALIVE", Action: policy.Rotate, Reason: "key is 120 days old, max age 90 days"}}}}}

	tests := []struct {
		name            string
		retirePasswords bool
		want            map[string]string // user/credential -> decision
		reasonHas       map[string]string
	}{
		{"report only", false,
			map[string]string{"live/AKIALIVE": "rotate", "fresh/access_key_1": "ok", "console/password": "retire", "inactive/access_key_2": "ok"},
			map[string]string{"console/password": "reported only (retirePasswords is off)"}},
		{"passwords retired", true,
			map[string]string{"console/password": "retire"},
			map[string]string{"console/password": "removed after notice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := Build(a, rules, tt.retirePasswords)
			got := map[string]Row{}
			for _, r := range rep.Rows {
				got[r.User+"/"+r.Credential] = r
			}
			for k, d := range tt.want {
				if string(got[k].Decision) != d {
					t.Errorf("%s decision = %q; want %q", k, got[k].Decision, d)
				}
			}
			for k, s := range tt.reasonHas {
				if !strings.Contains(got[k].Reason, s) {
					t.Errorf("%s reason %q lacks %q", k, got[k].Reason, s)
				}
			}
			if r := got["live/AKIALIVE"]; r.AgeDays != 120 || r.LastUsedService != "s3" || r.Status != "Active" {
				t.Errorf("live row = %+v", r)
			}
			if r := got["console/password"]; r.LastUsed != "never" || r.AgeDays != 400 || r.MFAActive {
				t.Errorf("password row = %+v", r)
			}
		})
	}
}

func TestWriters(t *testing.T) {
	rep := &Report{AsOf: asOf, Rows: []Row{{User: "u,1", Credential: "AKIA", Status: "Active", AgeDays: 400, LastUsed: "never", Decision: policy.Retire, Reason: "unused, \"really\""}}}
	var c bytes.Buffer
	if err := rep.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(recs) != 2 || recs[1][0] != "u,1" || recs[1][11] != `unused, "really"` || strings.Join(recs[0], ",") != strings.Join(Columns, ",") {
		t.Fatalf("CSV = %v, %v", recs, err)
	}
	var j bytes.Buffer
	rep.WriteJSON(&j)
	var back Report
	if err := json.Unmarshal(j.Bytes(), &back); err != nil || back.Rows[0].Reason != rep.Rows[0].Reason {
		t.Fatalf("JSON round trip = %+v, %v", back, err)
	}
	var tb bytes.Buffer
	rep.WriteTable(&tb, false)
	if strings.Contains(tb.String(), "\x1b[") || !strings.Contains(tb.String(), "400d") {
		t.Fatalf("plain table:\n%s", tb.String())
	}
	for days, band := range map[int]string{0: "fresh", 89: "fresh", 90: "aging", 365: "aging", 366: "old"} {
		if Band(days) != band {
			t.Errorf("Band(%d) = %s; want %s", days, Band(days), band)
		}
	}
}
