package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/shared/credreport"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var (
	asOf  = time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	rules = policy.Rules{MaxKeyAgeDays: 90, UnusedDays: 45, Grace: 7 * 24 * time.Hour}
)

func ago(d int) time.Time { return asOf.AddDate(0, 0, -d) }

// fixture is an assessment with every decision: candidates (checked live,
// with key ids) and users find did not check (keys named by slot).
func fixture() *rotation.Assessment {
	alice := credreport.Row{User: "alice", ARN: "arn:aws:iam::123456789012:user/alice", MFAActive: true,
		PasswordEnabled: true, PasswordLastUsed: ago(2), PasswordLastChanged: ago(30),
		Keys: [2]credreport.Key{{Slot: 1, Active: true, LastRotated: ago(120), LastUsed: ago(1), LastUsedService: "s3", LastUsedRegion: "us-east-1"}, {Slot: 2}}}
	bob := credreport.Row{User: "bob", ARN: "arn:aws:iam::123456789012:user/bob",
		Keys: [2]credreport.Key{{Slot: 1, Active: true, LastRotated: ago(200), LastUsed: ago(3), LastUsedService: "iam", LastUsedRegion: "us-east-1"},
			{Slot: 2, Active: true, LastRotated: ago(10), LastUsed: ago(1), LastUsedService: "sts", LastUsedRegion: "eu-west-1"}}}
	dave := credreport.Row{User: "dave", ARN: "arn:aws:iam::123456789012:user/dave",
		Keys: [2]credreport.Key{{Slot: 1, Active: true, LastRotated: ago(60)}, {Slot: 2}}}
	erin := credreport.Row{User: "erin", ARN: "arn:aws:iam::123456789012:user/erin",
		PasswordEnabled: true, PasswordLastChanged: ago(500),
		Keys: [2]credreport.Key{{Slot: 1, Active: true, LastRotated: ago(400), LastUsed: ago(1)}, {Slot: 2}}}
	return &rotation.Assessment{AsOf: asOf, ReportTime: asOf.Add(-time.Hour), Rows: []credreport.Row{
		alice, bob,
		{User: "carol", ARN: "arn:aws:iam::123456789012:user/carol", MFAActive: true,
			Keys: [2]credreport.Key{{Slot: 1, Active: true, LastRotated: ago(10), LastUsed: ago(1), LastUsedService: "ec2", LastUsedRegion: "eu-central-1"},
				{Slot: 2, Active: false, LastRotated: ago(500)}}},
		dave, erin,
		{User: "frank", ARN: "arn:aws:iam::123456789012:user/frank", PasswordEnabled: true, PasswordLastChanged: ago(400)},
		{User: "g,ina", ARN: "arn:aws:iam::123456789012:user/g,ina"},
	}, Candidates: map[string]*rotation.Candidate{
		"alice": {Row: alice, User: policy.User{Name: "alice", Keys: []policy.Key{{ID: "AKIAALICE0000000001", Active: true, Created: ago(120), LastUsed: ago(1)}}},
			Decisions: []policy.Decision{{KeyID: "AKIAALICE0000000001", Action: policy.Rotate, Reason: "key is 120 days old, max age 90 days"}}},
		"bob": {Row: bob, User: policy.User{Name: "bob", Keys: []policy.Key{{ID: "AKIABOB00000000000A", Active: true, Created: ago(200), LastUsed: ago(3)}, {ID: "AKIABOB00000000000B", Active: true, Created: ago(10), LastUsed: ago(1)}}},
			Decisions: []policy.Decision{{KeyID: "AKIABOB00000000000A", Action: policy.Blocked, Reason: "due (key is 200 days old, max age 90 days) but the user's other key AKIABOB00000000000B is also Active"},
				{KeyID: "AKIABOB00000000000B", Action: policy.OK, Reason: "key is 10 days old and in use"}}},
		"dave": {Row: dave, User: policy.User{Name: "dave", Keys: []policy.Key{{ID: "AKIADAVE00000000001", Active: true, Created: ago(60)}}},
			Decisions: []policy.Decision{{KeyID: "AKIADAVE00000000001", Action: policy.Retire, Reason: "unused for 60 days (never used; created 2026-09-24), threshold 45 days"}}},
		"erin": {Row: erin, User: policy.User{Name: "erin", Exempt: true, ExemptReason: "tagged keyrotor:exempt=true", Keys: []policy.Key{{ID: "AKIAERIN00000000001", Active: true, Created: ago(400), LastUsed: ago(1)}}},
			Decisions: []policy.Decision{{KeyID: "AKIAERIN00000000001", Action: policy.Exempt, Reason: "tagged keyrotor:exempt=true"}}},
	}}
}

type want struct{ status, decision, reason string }

func TestBuild(t *testing.T) {
	tests := []struct {
		name            string
		retirePasswords bool
		edit            func(a *rotation.Assessment)
		want            map[string]want // user/credential -> status, decision, a part of the reason
	}{
		{"every decision", false, nil, map[string]want{
			"alice/AKIAALICE0000000001": {"Active", "rotate", "120 days old"},
			"alice/password":            {"enabled", "ok", "in use"},
			"bob/AKIABOB00000000000A":   {"Active", "blocked", "also Active"},
			"bob/AKIABOB00000000000B":   {"Active", "ok", "in use"},
			"carol/access_key_1":        {"Active", "ok", "10 days old and in use"},
			"carol/access_key_2":        {"Inactive", "ok", "inactive"},
			"dave/AKIADAVE00000000001":  {"Active", "retire", "never used"},
			"erin/AKIAERIN00000000001":  {"Active", "exempt", "tagged"},
			"erin/password":             {"enabled", "exempt", "tagged keyrotor:exempt=true (otherwise: console password unused"},
			"frank/password":            {"enabled", "manual", "reports it only (retirePasswords is off): remove the login profile, or turn retirePasswords on; no MFA device"},
		}},
		{"passwords retired", true, func(a *rotation.Assessment) {
			// find checked frank live: its verdict is retire-password.
			a.Candidates["frank"] = &rotation.Candidate{Row: a.Rows[5], User: policy.User{Name: "frank"},
				Decisions: []policy.Decision{{KeyID: "password", Action: policy.RetirePassword, Reason: "console password unused for 400 days"}}}
		}, map[string]want{
			"frank/password": {"enabled", "retire-password", "console password unused"},
			"erin/password":  {"enabled", "exempt", "tagged"},
		}},
		{"password used since the report", true, func(a *rotation.Assessment) {
			a.Candidates["frank"] = &rotation.Candidate{Row: a.Rows[5], User: policy.User{Name: "frank"}}
		}, map[string]want{
			"frank/password": {"enabled", "ok", "confirmed live"},
		}},
		{"non-candidate decided from the report", false, func(a *rotation.Assessment) {
			delete(a.Candidates, "dave")
		}, map[string]want{
			"dave/access_key_1": {"Active", "retire", "never used; created"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := fixture()
			if tt.edit != nil {
				tt.edit(a)
			}
			rep := Build(a, rules, tt.retirePasswords)
			got := map[string]Row{}
			for _, r := range rep.Rows {
				got[r.User+"/"+credOf(r)] = r
			}
			for k, w := range tt.want {
				g, ok := got[k]
				if !ok || g.Status != w.status || string(g.Decision) != w.decision || !strings.Contains(g.Reason, w.reason) {
					t.Errorf("Build row %s = %+v; want status %s, decision %s, reason containing %q", k, g, w.status, w.decision, w.reason)
				}
			}
		})
	}
}

// credOf names a row's credential in tests: its key id where known.
func credOf(r Row) string {
	if r.KeyID != "" {
		return r.KeyID
	}
	return r.Credential
}

func TestBuildRows(t *testing.T) {
	rep := Build(fixture(), rules, false)
	var keys []string
	for _, r := range rep.Rows {
		keys = append(keys, r.User+"/"+credOf(r))
	}
	wantKeys := "alice/AKIAALICE0000000001 alice/password bob/AKIABOB00000000000A bob/AKIABOB00000000000B carol/access_key_1 carol/access_key_2 " +
		"dave/AKIADAVE00000000001 erin/AKIAERIN00000000001 erin/password frank/password"
	if strings.Join(keys, " ") != wantKeys {
		t.Fatalf("Build rows = %v; want (sorted by user, then credential) %s", keys, wantKeys)
	}
	byKey := map[string]Row{}
	for _, r := range rep.Rows {
		byKey[r.User+"/"+credOf(r)] = r
	}
	for _, tt := range []struct {
		name string
		got  Row
		want Row
	}{
		{"live key, used", byKey["alice/AKIAALICE0000000001"], Row{User: "alice", ARN: "arn:aws:iam::123456789012:user/alice", Credential: "access_key_1",
			KeyID: "AKIAALICE0000000001", Status: "Active", Created: "2026-07-26T00:00:00Z", AgeDays: 120, AgeBand: "over 90", LastUsed: "2026-11-22T00:00:00Z",
			LastUsedService: "s3", LastUsedRegion: "us-east-1", MFAActive: true, Decision: policy.Rotate, Reason: "key is 120 days old, max age 90 days",
			IAM3: Failed, IAM22: Passed, Source: "live", ReadAt: "2026-11-23T00:00:00Z"}},
		{"report key, inactive", byKey["carol/access_key_2"], Row{User: "carol", ARN: "arn:aws:iam::123456789012:user/carol", Credential: "access_key_2",
			Status: "Inactive", Created: "2025-07-11T00:00:00Z", AgeDays: 500, AgeBand: "over 90", LastUsed: "never", MFAActive: true, Decision: policy.OK, Reason: "inactive",
			Source: "credential report", ReadAt: "2026-11-22T23:00:00Z"}},
		{"password, never used", byKey["frank/password"], Row{User: "frank", ARN: "arn:aws:iam::123456789012:user/frank", Credential: "password",
			Status: "enabled", Created: "2025-10-19T00:00:00Z", AgeDays: 400, AgeBand: "over 90", LastUsed: "never", Decision: policy.Manual,
			Reason: "console password unused for 400 days (never used; set 2025-10-19), threshold 45 days; keyrotor reports it only (retirePasswords is off): remove the login profile, or turn retirePasswords on; no MFA device",
			IAM22:  Failed, Flags: "console access without MFA (CIS 1.10)", Source: "credential report", ReadAt: "2026-11-22T23:00:00Z"}},
	} {
		if tt.got != tt.want {
			t.Errorf("%s: Build row = %+v; want %+v", tt.name, tt.got, tt.want)
		}
	}
	if !rep.AsOf.Equal(asOf) || !rep.ReportTime.Equal(asOf.Add(-time.Hour)) {
		t.Errorf("Build times = %v, %v", rep.AsOf, rep.ReportTime)
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestWriters(t *testing.T) {
	rep := Build(fixture(), rules, false)
	rep.GeneratedAt = asOf.Add(time.Minute)
	tests := []struct {
		name  string
		write func(io.Writer) error
	}{
		{"report.csv", rep.WriteCSV},
		{"report.json", rep.WriteJSON},
		{"table.txt", func(w io.Writer) error { return rep.WriteTable(w, false) }},
		{"table-color.txt", func(w io.Writer) error { return rep.WriteTable(w, true) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := tt.write(&b); err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, b.Bytes())
		})
	}
}

func TestCSVAndJSONRoundTrip(t *testing.T) {
	rep := &Report{AsOf: asOf, Rows: []Row{{User: "u,1", Credential: "AKIA", Status: "Active", AgeDays: 400, LastUsed: "never",
		Decision: policy.Retire, Reason: "unused, \"really\"\nsecond line"}}}
	var c bytes.Buffer
	if err := rep.WriteCSV(&c); err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(&c).ReadAll()
	if err != nil || len(recs) != 2+len(Decisions)+len(Bands) {
		t.Fatalf("CSV = %v, %v", recs, err)
	}
	if strings.Join(recs[0], ",") != strings.Join(Columns, ",") {
		t.Errorf("CSV header = %v; want %v", recs[0], Columns)
	}
	if recs[1][0] != "u,1" || recs[1][11] != rep.Rows[0].Reason || recs[1][5] != "400" {
		t.Errorf("CSV row = %q", recs[1])
	}
	var j bytes.Buffer
	if err := rep.WriteJSON(&j); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(j.Bytes(), &back); err != nil || back.Rows[0] != rep.Rows[0] {
		t.Fatalf("JSON round trip = %+v, %v", back, err)
	}
	// The JSON rows use exactly the CSV column names.
	var raw struct{ Rows []map[string]any }
	json.Unmarshal(j.Bytes(), &raw)
	// (The report's times and the summary's count are the report's own.)
	var perRow []string
	for _, c := range Columns {
		if c != "credential_report_time" && c != "generated_at" && c != "count" {
			perRow = append(perRow, c)
		}
	}
	if len(raw.Rows[0]) != len(perRow) {
		t.Errorf("JSON row has %d fields; want %d", len(raw.Rows[0]), len(perRow))
	}
	for _, c := range perRow {
		if _, ok := raw.Rows[0][c]; !ok {
			t.Errorf("JSON row lacks %q", c)
		}
	}
}

func TestBand(t *testing.T) {
	for _, tt := range []struct {
		days int
		want string
	}{{0, "fresh"}, {89, "fresh"}, {90, "aging"}, {365, "aging"}, {366, "old"}, {4000, "old"}} {
		if got := Band(tt.days); got != tt.want {
			t.Errorf("Band(%d) = %s; want %s", tt.days, got, tt.want)
		}
	}
}

func TestTableColour(t *testing.T) {
	rep := &Report{AsOf: asOf, Rows: []Row{
		{User: "a", Credential: "k1", AgeDays: 10, Decision: policy.OK},
		{User: "b", Credential: "k2", AgeDays: 100, Decision: policy.Rotate},
		{User: "c", Credential: "k3", AgeDays: 400, Decision: policy.Rotate},
	}}
	var plain, colour bytes.Buffer
	rep.WriteTable(&plain, false)
	rep.WriteTable(&colour, true)
	if strings.Contains(plain.String(), "\x1b[") {
		t.Errorf("WriteTable(color=false) has escape codes:\n%s", plain.String())
	}
	for _, s := range []string{green + "10d", yellow + "100d", red + "400d"} {
		if !strings.Contains(colour.String(), s) {
			t.Errorf("WriteTable(color=true) lacks %q:\n%s", s, colour.String())
		}
	}
	// Colour must not move the columns: without the escapes, the lines match.
	strip := strings.NewReplacer(green, "", yellow, "", red, "", reset, "")
	if strip.Replace(colour.String()) != plain.String() {
		t.Errorf("colour changes the layout:\n%s\nvs\n%s", strip.Replace(colour.String()), plain.String())
	}
}

type fakeS3 struct {
	puts []*s3.PutObjectInput
	body map[string]string
	err  error
}

func (f *fakeS3) PutObject(_ context.Context, in *s3.PutObjectInput, _ ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	b, _ := io.ReadAll(in.Body)
	if f.body == nil {
		f.body = map[string]string{}
	}
	f.body[aws.ToString(in.Key)] = string(b)
	f.puts = append(f.puts, in)
	return &s3.PutObjectOutput{}, nil
}

var _ PutObjectAPI = (*fakeS3)(nil)

func TestNewS3Writer(t *testing.T) {
	if w := NewS3Writer(&fakeS3{}, "", false, ""); w != nil {
		t.Fatalf("NewS3Writer without a bucket = %#v; want a nil interface", w)
	}
	f := &fakeS3{}
	w := NewS3Writer(f, "reports-bucket", false, "")
	w.(*S3Writer).Now = func() time.Time { return time.Date(2026, 11, 23, 23, 30, 0, 0, time.FixedZone("x", -5*3600)) }
	ref, err := w.WriteReport(context.Background(), "run/1 a", []*rotation.Assessment{fixture()}, rules)
	if err != nil {
		t.Fatal(err)
	}
	// The date is the run's UTC date (23:30 at UTC-5 is the 24th in UTC),
	// and the execution name is made safe for a key.
	want := rotation.ReportRef{Bucket: "reports-bucket", CSV: "reports/2026-11-24/run_1_a/credentials.csv", JSON: "reports/2026-11-24/run_1_a/credentials.json", Rows: 10}
	if *ref != want {
		t.Fatalf("WriteReport = %+v; want %+v", *ref, want)
	}
	types := map[string]string{}
	for _, p := range f.puts {
		types[aws.ToString(p.Key)] = aws.ToString(p.ContentType)
		if aws.ToString(p.Bucket) != "reports-bucket" {
			t.Errorf("PutObject bucket = %s", aws.ToString(p.Bucket))
		}
	}
	if types[want.CSV] != "text/csv; charset=utf-8" || types[want.JSON] != "application/json" {
		t.Errorf("content types = %v", types)
	}
	if recs, err := csv.NewReader(strings.NewReader(f.body[want.CSV])).ReadAll(); err != nil || strings.Join(recs[0], ",") != strings.Join(Columns, ",") ||
		len(recs) != 11+len(Decisions)+len(Bands) {
		t.Errorf("CSV object:\n%s", f.body[want.CSV])
	}
	var rep Report
	if err := json.Unmarshal([]byte(f.body[want.JSON]), &rep); err != nil || len(rep.Rows) != 10 {
		t.Errorf("JSON object: %v, %d rows", err, len(rep.Rows))
	}

	boom := errors.New("access denied")
	if _, err := NewS3Writer(&fakeS3{err: boom}, "b", false, "").WriteReport(context.Background(), "x", []*rotation.Assessment{fixture()}, rules); !errors.Is(err, boom) ||
		!strings.Contains(err.Error(), "s3://b/reports/") {
		t.Errorf("WriteReport error = %v; want it wrapped, naming the object", err)
	}
}

func TestEmptyReport(t *testing.T) {
	for _, rep := range []*Report{Build(&rotation.Assessment{AsOf: asOf}, rules, false), {AsOf: asOf}} {
		var j bytes.Buffer
		if err := rep.WriteJSON(&j); err != nil || !strings.Contains(j.String(), `"rows": []`) {
			t.Errorf("empty report JSON = %s, %v; want \"rows\": []", j.String(), err)
		}
	}
}

// TestCSVSafeToOpen: cells a spreadsheet would evaluate are neutralised
// with a leading quote (OWASP, CSV Injection), every cell is quoted, and an
// account id keeps its leading zero (issue 20, defect 7).
func TestCSVSafeToOpen(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"formula", "=1+2", "'=1+2"},
		{"plus", "+SUM(A1)", "'+SUM(A1)"},
		{"minus", "-2+3", "'-2+3"},
		{"at", "@cmd", "'@cmd"},
		{"tab", "\tx", "'\tx"},
		{"carriage return", "\rx", "'\rx"},
		{"plain", "alice", "alice"},
		{"inside", "a=b", "a=b"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Cell(tt.in); got != tt.want {
				t.Errorf("Cell(%q) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
	rep := BuildAll([]*rotation.Assessment{fixture()}, rules, false, "012345678901")
	var b bytes.Buffer
	if err := rep.WriteCSV(&b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "\n\"012345678901\",") {
		t.Errorf("CSV does not quote the account id:\n%s", b.String())
	}
	recs, err := csv.NewReader(&b).ReadAll()
	if err != nil || recs[1][0] != "012345678901" {
		t.Errorf("CSV account = %q, %v; want 012345678901", recs[1][0], err)
	}
}
