package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/shared/audit"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// callerCredentials gives the operator commands the caller's credentials
// the way a person has them (the SDK's default chain: here the
// environment).
func callerCredentials(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
}

// planRows are a plan's work and skipped users as "action user key".
func planRows(p *rotation.Plan) []string {
	var rows []string
	for _, it := range p.Items {
		rows = append(rows, fmt.Sprintf("%s %s %s", it.Action, it.User, it.OldKey.ID))
	}
	for _, l := range [][]rotation.Skipped{p.Blocked, p.Exempt, p.Held, p.Attention, p.InFlight, p.Adopting} {
		for _, s := range l {
			rows = append(rows, fmt.Sprintf("%s %s %s", s.Action, s.User, s.KeyID))
		}
	}
	sort.Strings(rows)
	return rows
}

// TestSlowE2EOperatorCommands: against the emulated stack, with the
// caller's credentials and no table name typed:
//   - `keyrotor plan` shows the same items as a dry run of the state
//     machine, and its table names each due key with its action and age;
//   - after those local runs, `keyrotor hold` records a person's hold (its
//     history, nothing in IAM changed) and refuses bad --days and keys it
//     cannot hold, changing nothing;
//   - `keyrotor status` shows each rotation in its section with its date
//     (held until, delete after, window ends), what needs attention with
//     the fix, and the dashboard's figures computed from the account.
func TestSlowE2EOperatorCommands(t *testing.T) {
	requireBuild(t)
	a := awstest.New(t)
	callerCredentials(t)
	keys := seed(t, a)

	if code, _, errOut := keyrotor(t, "", "status", "--endpoint", a.Endpoint); code != 1 || !strings.Contains(errOut, "stack KeyRotor not found") || !strings.Contains(errOut, "keyrotor run") {
		t.Fatalf("status before any run: exit %d, %q; want 1 naming the stack and `keyrotor run`", code, errOut)
	}

	// plan = a dry run of the state machine.
	code, out, errOut := keyrotor(t, "", "plan", "--endpoint", a.Endpoint, "--template", template, "--bin", binDir, "--json")
	if code != 0 {
		t.Fatalf("plan --json: exit %d\n%s", code, errOut)
	}
	var planned rotation.Plan
	if err := json.Unmarshal([]byte(out), &planned); err != nil {
		t.Fatalf("plan --json is not a plan: %v\n%s", err, out)
	}
	code, out, errOut = keyrotor(t, `{"dryRun":true}`, runArgs(t, a.Endpoint, "--input", "-")...)
	if code != 0 {
		t.Fatalf("dry run: exit %d\n%s", code, errOut)
	}
	var dry rotation.Plan
	if err := json.Unmarshal([]byte(out), &dry); err != nil {
		t.Fatal(err)
	}
	if got, want := planRows(&planned), planRows(&dry); !slices.Equal(got, want) || len(got) == 0 {
		t.Errorf("plan shows %v; the dry run %v", got, want)
	}
	code, out, errOut = keyrotor(t, "", "plan", "--endpoint", a.Endpoint, "--template", template, "--bin", binDir)
	if code != 0 {
		t.Fatalf("plan: exit %d\n%s", code, errOut)
	}
	lines := strings.Split(out, "\n")
	for _, u := range account {
		var want []string
		switch u.expected {
		case "rotate", "retire":
			want = []string{u.expected, u.name, keys[u.name], fmt.Sprintf("%dd", u.ageDays)}
		case "blocked", "exempt":
			want = []string{u.expected, u.name}
		}
		found := false
		for _, l := range lines {
			f := strings.Fields(l)
			found = found || len(f) > len(want) && slices.Equal(f[:len(want)], want)
		}
		if want != nil && !found {
			t.Errorf("plan table has no row %v:\n%s", want, out)
		}
		if want == nil && strings.Contains(out, " "+u.name+" ") {
			t.Errorf("plan table lists %s (nothing due):\n%s", u.name, out)
		}
	}

	// The account's Active keys with their ages, as the runs' find read
	// them.
	type activeKey struct {
		user, id string
		age      int
		exempt   bool
	}
	var active []activeKey
	for _, u := range account {
		out, err := a.IAM.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: aws.String(u.name)})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range out.AccessKeyMetadata {
			if k.Status == iamtypes.StatusTypeActive {
				active = append(active, activeKey{u.name, aws.ToString(k.AccessKeyId), policy.AgeDays(aws.ToTime(k.CreateDate), time.Now()), u.exempt})
			}
		}
	}

	// The local runs recorded the stack's outputs: they lead to its table.
	stack, err := operator.FindStack(context.Background(), cloudformation.NewFromConfig(a.Config), local.StackName, "us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	table, err := stack.Output(operator.OutputTable)
	if err != nil {
		t.Fatal(err)
	}
	store := &ledger.Store{API: a.DynamoDB, Table: table}
	ctx := context.Background()

	// A rotation that deleted its old key.
	if err := store.Put(ctx, &ledger.Record{ID: "AKIADELETED000000001", User: "alice", Action: "rotate", Rotation: 1, State: ledger.Deleted, History: []ledger.Entry{}}); err != nil {
		t.Fatal(err)
	}

	// hold: refusals change nothing.
	for _, tc := range []struct {
		name, want string
		args       []string
	}{
		{"no days", "--days is required", []string{"--key", keys["exempt"]}},
		{"zero days", "--days 0: want a whole number of days from 1 to 365", []string{"--key", keys["exempt"], "--days", "0"}},
		{"past the bound", "--days 366", []string{"--key", keys["exempt"], "--days", "366"}},
		{"unknown key", "no such access key", []string{"--key", "AKIANOSUCHKEY0000000", "--days", "3"}},
		{"deleted key", "the key was deleted", []string{"--key", "AKIADELETED000000001", "--days", "3"}},
	} {
		before, _ := store.Get(ctx, tc.args[1])
		code, _, errOut := keyrotor(t, "", append([]string{"hold", "--endpoint", a.Endpoint}, tc.args...)...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("hold %s: exit %d, %q; want 2 and %q", tc.name, code, errOut, tc.want)
		}
		if after, _ := store.Get(ctx, tc.args[1]); fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("hold %s changed the record: %+v -> %+v", tc.name, before, after)
		}
	}
	freshKeys := a.Keys(t, "fresh")
	code, out, errOut = keyrotor(t, "", "hold", "--endpoint", a.Endpoint, "--key", keys["fresh"], "--days", "10", "--reason", "release freeze", "--json")
	if code != 0 {
		t.Fatalf("hold: exit %d\n%s", code, errOut)
	}
	held, err := store.Get(ctx, keys["fresh"])
	if err != nil || held == nil {
		t.Fatalf("no record after hold: %v", err)
	}
	last := held.History[len(held.History)-1]
	if held.State != ledger.Held || held.User != "fresh" || time.Until(held.HeldUntil) < 10*day-time.Hour || time.Until(held.HeldUntil) > 10*day ||
		last.State != ledger.Held || !strings.Contains(last.Note, "release freeze") {
		t.Fatalf("held record %+v (last entry %+v); want held by fresh for 10 days, the reason in its history", held, last)
	}
	if after := a.Keys(t, "fresh"); fmt.Sprint(after) != fmt.Sprint(freshKeys) {
		t.Errorf("hold changed fresh's keys: %v -> %v", freshKeys, after)
	}

	// Rotations in the other states, as the steps leave them.
	now := time.Now().UTC()
	others := []*ledger.Record{
		{ID: "AKIAGRACE00000000001", User: "bob", Action: "rotate", Rotation: 1, State: ledger.Deactivated,
			DeactivatedAt: now.Add(-2 * day), DeleteAfter: now.Add(5 * day), History: []ledger.Entry{}},
		{ID: "AKIAADOPT00000000001", User: "no-mail", Action: "rotate", Rotation: 1, State: ledger.Adopting, NewKeyID: "AKIANEW0000000000001",
			Adoption: &ledger.Adoption{Until: now.Add(3 * day), Execution: "no-mail-AKIAADOPT-r1"}, History: []ledger.Entry{}},
		{ID: "AKIAREFUSED000000001", User: "unused", Action: "rotate", Rotation: 2, State: ledger.Notified, Owner: "daily-1", LeaseUntil: now.Add(time.Hour),
			Attention: "the owner's mail to u@example.com was refused (MessageRejected); Fix the address (tag email) or SES", History: []ledger.Entry{}},
	}
	for _, r := range others {
		if err := store.Put(ctx, r); err != nil {
			t.Fatal(err)
		}
	}

	code, out, errOut = keyrotor(t, "", "status", "--endpoint", a.Endpoint, "--json")
	if code != 0 {
		t.Fatalf("status --json: exit %d\n%s", code, errOut)
	}
	var st operator.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	records, err := store.All(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		section []operator.Rotation
		until   time.Time
	}{
		keys["fresh"]:          {st.Held, records[keys["fresh"]].HeldUntil},
		"AKIAGRACE00000000001": {st.InGrace, records["AKIAGRACE00000000001"].DeleteAfter},
		"AKIAADOPT00000000001": {st.Adopting, records["AKIAADOPT00000000001"].Adoption.Until},
		"AKIAREFUSED000000001": {st.InFlight, records["AKIAREFUSED000000001"].LeaseUntil},
	}
	for id, w := range want {
		var got *operator.Rotation
		for i := range w.section {
			if w.section[i].Key == id {
				got = &w.section[i]
			}
		}
		if got == nil || !got.Until.Equal(w.until) || got.User != records[id].User {
			t.Errorf("status of %s = %+v; want user %s until %s in its section", id, got, records[id].User, w.until)
		}
	}
	if len(st.Held) != 1 || len(st.InGrace) != 1 || len(st.Adopting) != 1 || len(st.InFlight) != 1 {
		t.Errorf("status: %d held, %d in grace, %d adopting, %d in flight; want 1 each", len(st.Held), len(st.InGrace), len(st.Adopting), len(st.InFlight))
	}
	if len(st.Attention) != 1 || st.Attention[0].Key != "AKIAREFUSED000000001" || !strings.Contains(st.Attention[0].Note, "Fix the address") {
		t.Errorf("needing attention = %+v; want the refused mail with its fix", st.Attention)
	}

	// The figures: keys by age band and the oldest key to rotate as the
	// account was when the last run's find read it, rotations by state
	// from the records.
	wantFig := metrics.Figures{InFlight: 1, Adopting: 1, InGrace: 1, Held: 1, Attention: 1}
	for _, k := range active {
		switch audit.Band(k.age) {
		case "fresh":
			wantFig.KeysFresh++
		case "aging":
			wantFig.KeysAging++
		default:
			wantFig.KeysOld++
		}
		if !k.exempt && (wantFig.Oldest == nil || k.age > wantFig.Oldest.AgeDays) {
			wantFig.Oldest = &metrics.Key{User: k.user, ID: k.id, AgeDays: k.age}
		}
	}
	if fmt.Sprint(st.Figures.Values()) != fmt.Sprint(wantFig.Values()) || st.Figures.Oldest == nil || *st.Figures.Oldest != *wantFig.Oldest {
		t.Errorf("figures %+v (oldest %+v); want %+v (oldest %+v)", st.Figures, st.Figures.Oldest, wantFig, wantFig.Oldest)
	}

	// The table says the same.
	code, out, errOut = keyrotor(t, "", "status", "--endpoint", a.Endpoint)
	if code != 0 {
		t.Fatalf("status: exit %d\n%s", code, errOut)
	}
	for _, s := range []string{
		fmt.Sprintf("%d fresh (< 90 days), %d aging (90-365), %d old (> 365)", wantFig.KeysFresh, wantFig.KeysAging, wantFig.KeysOld),
		fmt.Sprintf("Oldest key to rotate: %s (user %s), %d days", wantFig.Oldest.ID, wantFig.Oldest.User, wantFig.Oldest.AgeDays),
		"Rotations: 1 in flight, 1 adopting, 1 in grace, 1 held, 1 needing attention",
		"Held by a person (1)", "In grace (old key Inactive) (1)", "Needing attention (what to do) (1)",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("status table lacks %q:\n%s", s, out)
		}
	}
	for id, date := range map[string]time.Time{keys["fresh"]: held.HeldUntil, "AKIAGRACE00000000001": now.Add(5 * day)} {
		row := ""
		for _, l := range strings.Split(out, "\n") {
			if strings.Contains(l, id) {
				row = l
			}
		}
		if !strings.Contains(row, date.UTC().Format("2006-01-02")) {
			t.Errorf("status row of %s = %q; want its date %s", id, row, date.UTC().Format("2006-01-02"))
		}
	}
}

// assertDashboardMetrics: every metric of every widget of the synthesized
// dashboard is one the functions emitted during the local run whose work
// directory is work (its functions' logs), or Step Functions' own.
func assertDashboardMetrics(t *testing.T, work string) map[string][]float64 {
	t.Helper()
	tmpl, err := local.ReadTemplate(template)
	if err != nil {
		t.Fatal(err)
	}
	widgets, err := tmpl.DashboardMetrics(local.Resolver{
		Ref:    func(id string) (string, bool) { return id, true },
		GetAtt: func(id, attr string) (string, bool) { return id + "." + attr, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(work, "logs", "*.log"))
	emitted := map[string][]float64{}
	for _, l := range logs {
		b, err := os.ReadFile(l)
		if err != nil {
			t.Fatal(err)
		}
		for name, vs := range metrics.Parse(b) {
			emitted[name] = append(emitted[name], vs...)
		}
	}
	if len(widgets) == 0 {
		t.Fatal("the template has no dashboard")
	}
	for _, m := range widgets {
		switch {
		case m.Namespace == "AWS/States":
		case m.Namespace != metrics.Namespace || m.Dimensions[metrics.Dimension] != metrics.Service:
			t.Errorf("widget %q graphs %s, which the functions do not emit", m.Widget, m)
		case len(emitted[m.Name]) == 0:
			t.Errorf("widget %q graphs %s; the run emitted no %s (emitted: %v)", m.Widget, m, m.Name, emitted)
		}
	}
	return emitted
}

// TestOperatorCommandsUsage: help goes to stdout with exit 0; a usage
// error or bad input exits 2 on stderr naming the flag, before any AWS
// call.
func TestOperatorCommandsUsage(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		out, inErr string
	}{
		{name: "status help", args: []string{"status", "-h"}, code: 0, out: "usage: keyrotor status"},
		{name: "plan help", args: []string{"plan", "--help"}, code: 0, out: "usage: keyrotor plan"},
		{name: "hold help", args: []string{"hold", "-h"}, code: 0, out: "usage: keyrotor hold"},
		{name: "unknown flag", args: []string{"status", "--table", "x"}, code: 2, inErr: "flag provided but not defined: -table"},
		{name: "stray argument", args: []string{"status", "now"}, code: 2, inErr: `unexpected argument "now"`},
		{name: "hold without key", args: []string{"hold", "--days", "3"}, code: 2, inErr: "--key is required"},
		{name: "hold without days", args: []string{"hold", "--key", "AKIA1"}, code: 2, inErr: "--days is required"},
		{name: "plan bad as-of", args: []string{"plan", "--as-of", "tomorrow"}, code: 2, inErr: "asOf"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := keyrotor(t, "", tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.inErr) {
				t.Errorf("keyrotor %v: exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout with %q, stderr with %q", tc.args, code, out, errOut, tc.code, tc.out, tc.inErr)
			}
			if tc.code == 0 && errOut != "" {
				t.Errorf("help wrote to stderr: %q", errOut)
			}
		})
	}
}
