package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/demo"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/audit"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

// seedAudit: never-used keys, two keys, passwords with and without MFA,
// an exempt user with a due key and one with nothing due.
func seedAudit(t *testing.T, a *awstest.Account) map[string]string {
	t.Helper()
	ctx := context.Background()
	keys := map[string]string{}
	a.Clock(t, -400*day)
	a.User(t, "ancient")
	id, secret := a.KeyWithSecret(t, "ancient")
	keys["ancient"] = id
	a.Clock(t, -2*day)
	a.Use(t, id, secret)
	a.Clock(t, -60*day)
	a.User(t, "never-used")
	keys["never-used"] = a.Key(t, "never-used")
	a.Clock(t, -100*day)
	a.User(t, "two", "email", "two@example.com")
	id1, s1 := a.KeyWithSecret(t, "two")
	keys["two"] = id1
	a.Clock(t, -5*day)
	keys["two#2"] = a.Key(t, "two")
	a.Clock(t, -1*day)
	a.Use(t, id1, s1)
	a.Clock(t, -200*day)
	a.User(t, "exempt", "keyrotor:exempt", "true")
	id, secret = a.KeyWithSecret(t, "exempt")
	keys["exempt"] = id
	a.Clock(t, -1*day)
	a.Use(t, id, secret)
	a.User(t, "inactive")
	keys["inactive"] = a.Key(t, "inactive")
	a.SetKeyStatus(t, "inactive", keys["inactive"], false)
	a.Clock(t, -100*day)
	a.User(t, "console-old")
	if _, err := a.IAM.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String("console-old"), Password: aws.String("0ld-secret-pass!")}); err != nil {
		t.Fatal(err)
	}
	a.Clock(t, -30*day)
	a.User(t, "console")
	if _, err := a.IAM.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String("console"), Password: aws.String("Sup3r-secret-pass!")}); err != nil {
		t.Fatal(err)
	}
	a.User(t, "console-mfa")
	if _, err := a.IAM.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String("console-mfa"), Password: aws.String("An0ther-secret-pass!")}); err != nil {
		t.Fatal(err)
	}
	mfa, err := a.IAM.CreateVirtualMFADevice(ctx, &iam.CreateVirtualMFADeviceInput{VirtualMFADeviceName: aws.String("console-mfa")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.IAM.EnableMFADevice(ctx, &iam.EnableMFADeviceInput{UserName: aws.String("console-mfa"), SerialNumber: mfa.VirtualMFADevice.SerialNumber,
		AuthenticationCode1: aws.String("123456"), AuthenticationCode2: aws.String("654321")}); err != nil {
		t.Fatal(err)
	}
	a.Clock(t, -10*day)
	a.User(t, "quiet-exempt", "keyrotor:exempt", "true")
	id, secret = a.KeyWithSecret(t, "quiet-exempt")
	keys["quiet-exempt"] = id
	a.Clock(t, -2*day)
	a.Use(t, id, secret)
	a.Clock(t, 0)
	t.Cleanup(func() { a.Clock(t, 0) })
	return keys
}

func TestMotoAuditFormats(t *testing.T) {
	a := awstest.New(t)
	keys := seedAudit(t, a)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	base := []string{"audit", "--endpoint", a.Endpoint, "--cdk-json", "../../cdk.json"}

	code, out, errOut := keyrotor(t, "", append(base, "--format", "csv")...)
	if code != 0 {
		t.Fatalf("audit csv exit %d: %s", code, errOut)
	}
	// moto answers the first GenerateCredentialReport with STARTED, as IAM
	// does when no report exists: the command waits for it.
	if !strings.Contains(errOut, "waiting for the credential report") {
		t.Errorf("audit stderr = %q; want the waiting message", errOut)
	}
	recs, err := csv.NewReader(strings.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(audit.Columns, ",") {
		t.Fatalf("header = %v; want %v", recs[0], audit.Columns)
	}
	type row struct{ status, decision, lastUsed, mfa string }
	got := map[string]row{}
	for _, r := range recs[1:] {
		cred := r[2]
		if r[13] != "" {
			cred = r[13] // the key id, where known
		}
		if cred != "summary" {
			got[r[0]+"/"+cred] = row{r[3], r[10], r[6], r[9]}
		}
	}
	want := map[string]row{
		"ancient/" + keys["ancient"]:       {"Active", "rotate", "", "false"},
		"never-used/" + keys["never-used"]: {"Active", "retire", "never", "false"},
		"two/" + keys["two"]:               {"Active", "blocked", "", "false"},
		"two/" + keys["two#2"]:             {"Active", "ok", "never", "false"},
		"exempt/" + keys["exempt"]:         {"Active", "exempt", "", "false"},
		"quiet-exempt/access_key_1":        {"Active", "exempt", "", "false"},
		"inactive/access_key_1":            {"Inactive", "ok", "never", "false"},
		"console-old/password":             {"enabled", "manual", "never", "false"},
		"console/password":                 {"enabled", "ok", "never", "false"},
		"console-mfa/password":             {"enabled", "ok", "never", "true"},
	}
	if len(got) != len(want) {
		t.Errorf("report has %d rows %v; want %d", len(got), got, len(want))
	}
	for k, w := range want {
		g, ok := got[k]
		if w.lastUsed == "" {
			w.lastUsed = g.lastUsed // a real date; checked below
		}
		if !ok || g != w {
			t.Errorf("row %s = %+v; want %+v", k, g, w)
		}
	}
	// quiet-exempt's key is 10 days old: nothing is due, and it is exempt
	// all the same, in every format, with why (issue 20, defect 10).
	for _, r := range recs[1:] {
		if r[0] == "quiet-exempt" && !strings.Contains(r[11], "tagged keyrotor:exempt=true") {
			t.Errorf("CSV quiet-exempt reason %q; want the tag", r[11])
		}
		if r[2] == "summary" && r[10] == "exempt" && r[23] != "2" {
			t.Errorf("CSV summary: %s exempt; want 2 (exempt, quiet-exempt)", r[23])
		}
	}
	if lu := got["ancient/"+keys["ancient"]].lastUsed; !strings.HasPrefix(lu, time.Now().Add(-2*day).UTC().Format("2006-01")) {
		t.Errorf("ancient last used = %q; want about two days ago", lu)
	}

	code, out, _ = keyrotor(t, "", append(base, "--format", "json", "--users", "ancient,never-used")...)
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || len(rep.Rows) != 2 {
		t.Fatalf("json: exit %d, %v, %d rows", code, err, len(rep.Rows))
	}
	code, out, _ = keyrotor(t, "", append(base, "--format", "json", "--users", "quiet-exempt")...)
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || len(rep.Rows) != 1 || rep.Rows[0].Decision != "exempt" ||
		!strings.Contains(rep.Rows[0].Reason, "tagged keyrotor:exempt=true") || rep.Summary.Decisions["exempt"] != 1 {
		t.Fatalf("json --users quiet-exempt: exit %d, %v, %+v; want exempt, tagged", code, err, rep.Rows)
	}
	code, out, _ = keyrotor(t, "", append(base, "--format", "table", "--color", "never")...)
	quiet := ""
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "quiet-exempt ") {
			quiet = l
		}
	}
	if code != 0 || !strings.Contains(quiet, " exempt ") || !strings.Contains(quiet, "tagged keyrotor:exempt=true") || !strings.Contains(out, " 2 exempt,") {
		t.Fatalf("table: quiet-exempt %q, or not 2 exempt:\n%s", quiet, out)
	}
	code, out, _ = keyrotor(t, "", append(base, "--format", "table", "--color", "always")...)
	if code != 0 || !strings.Contains(out, "\x1b[31m400d") || !strings.Contains(out, "\x1b[33m100d") || !strings.Contains(out, "\x1b[32m60d") || !strings.Contains(out, "credentials:") {
		t.Fatalf("table without age bands:\n%s", out)
	}
	// Plain table: no colour unless asked, and NO_COLOR wins over auto.
	t.Setenv("NO_COLOR", "1")
	if code, out, _ = keyrotor(t, "", base...); code != 0 || strings.Contains(out, "\x1b[") || !strings.Contains(out, "USER") {
		t.Fatalf("default table (not a terminal, NO_COLOR set):\n%s", out)
	}
	// --as-of ages the account: 300 days on, console's never-used password
	// (set 30 days ago) is 330 days old and due for retirement, which a
	// person does (retirePasswords is off).
	later := time.Now().Add(300 * day).UTC().Format(time.RFC3339)
	code, out, _ = keyrotor(t, "", append(base, "--format", "json", "--users", "console", "--as-of", later)...)
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil || len(rep.Rows) != 1 || rep.Rows[0].Decision != "manual" || rep.Rows[0].AgeDays != 330 {
		t.Fatalf("json --as-of %s: exit %d, %v, %+v", later, code, err, rep.Rows)
	}
	for _, bad := range [][]string{{"--format", "xml"}, {"--as-of", "tomorrow"}, {"--as-of", ""}, {"--users", ""}, {"--users", " , "},
		{"--users", "bad name"}, {"--users", "nobody"}, {"--color", "sometimes"}, {"--cdk-json", "missing.json"}} {
		if code, _, errOut := keyrotor(t, "", append(base[:len(base)-2:len(base)-2], bad...)...); code != 2 || !strings.Contains(errOut, bad[0]) {
			t.Errorf("audit %v: exit %d %q; want 2 naming the flag", bad, code, errOut)
		}
	}
	if code, _, errOut := keyrotor(t, "", "audit", "stray"); code != 2 || !strings.Contains(errOut, "stray") {
		t.Errorf("audit stray: exit %d %q; want 2", code, errOut)
	}
	if code, out, _ := keyrotor(t, "", "audit", "-h"); code != 0 || !strings.Contains(out, "--format") && !strings.Contains(out, "-format") {
		t.Errorf("audit -h: exit %d %q; want 0 and the usage on stdout", code, out)
	}
}

// TestMotoAuditChangesNothing: every call the audit makes is a read
// (GenerateCredentialReport only asks IAM to build the report), and the
// account's keys, tags and login profiles are as before.
func TestMotoAuditChangesNothing(t *testing.T) {
	a := awstest.New(t)
	seedAudit(t, a)
	p, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	before := map[string]any{}
	for _, u := range []string{"ancient", "never-used", "two", "exempt", "quiet-exempt", "console"} {
		before[u] = fmt.Sprint(a.Keys(t, u), a.Tags(t, u))
	}
	for _, format := range []string{"table", "csv", "json"} {
		if code, _, errOut := keyrotor(t, "", "audit", "--endpoint", p.URL(), "--format", format, "--cdk-json", "../../cdk.json"); code != 0 {
			t.Fatalf("audit --format %s: exit %d: %s", format, code, errOut)
		}
	}
	reads := map[string]bool{"GenerateCredentialReport": true, "GetCredentialReport": true, "ListAccessKeys": true, "ListUserTags": true,
		"GetAccessKeyLastUsed": true, "GetGroup": true, "GetUser": true, "ListUsers": true}
	calls := p.Calls()
	if calls["GetCredentialReport"] == 0 || calls["ListAccessKeys"] == 0 {
		t.Fatalf("the proxy saw %v; want the audit's calls", calls)
	}
	for op := range calls {
		if !reads[op] {
			t.Errorf("audit called %s, which is not a read", op)
		}
	}
	for u, b := range before {
		if now := fmt.Sprint(a.Keys(t, u), a.Tags(t, u)); now != b {
			t.Errorf("%s changed: %s -> %s", u, b, now)
		}
	}
	if _, err := a.IAM.GetLoginProfile(context.Background(), &iam.GetLoginProfileInput{UserName: aws.String("console")}); err != nil {
		t.Errorf("console's login profile: %v", err)
	}
}

// TestSlowE2EReportObjects: a run writes the report as CSV and JSON under a
// key naming the date and the execution, and the output names them.
func TestSlowE2EReportObjects(t *testing.T) {
	requireBuild(t)
	a := awstest.New(t)
	seed(t, a)
	code, out, errOut := keyrotor(t, "", append(runArgs(t, a.Endpoint), "--name", "report-run")...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sum struct {
		Report struct{ Bucket, CSV, JSON string }
	}
	json.Unmarshal([]byte(out), &sum)
	day := time.Now().UTC().Format("2006-01-02")
	if sum.Report.CSV != "reports/"+day+"/report-run/credentials.csv" || sum.Report.JSON != "reports/"+day+"/report-run/credentials.json" {
		t.Fatalf("report objects = %+v", sum.Report)
	}
	for key, ctype := range map[string]string{sum.Report.CSV: "text/csv", sum.Report.JSON: "application/json"} {
		obj, err := a.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(sum.Report.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if !strings.HasPrefix(aws.ToString(obj.ContentType), ctype) {
			t.Errorf("%s content type %s", key, aws.ToString(obj.ContentType))
		}
		obj.Body.Close()
	}
	_, notes := a.Sent(t)
	linked := false
	for _, n := range notes {
		linked = linked || strings.Contains(n.Message, sum.Report.CSV)
	}
	if !linked {
		t.Error("no admin message links to the report")
	}
}

// TestMotoAuditDemoAccount: keyrotor audit on the demo's account, with a
// rotation held by a person in the rotation table (--table), shows the
// held key as held (not blocked), the exempt user as exempt, and says
// that moto's credential report has no root row (issue 20).
func TestMotoAuditDemoAccount(t *testing.T) {
	a := awstest.New(t)
	ctx := context.Background()
	if _, err := demo.Seed(ctx, a.IAM, a.Config, func(d time.Duration) error { a.Clock(t, d); return nil }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Clock(t, 0) })
	// two-keys: a person re-activated the old key after keyrotor's
	// rotation: held for 3 more days.
	out, err := a.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("two-keys")})
	if err != nil {
		t.Fatal(err)
	}
	first := out.AccessKeyMetadata[0]
	for _, k := range out.AccessKeyMetadata {
		if k.CreateDate.Before(*first.CreateDate) {
			first = k
		}
	}
	old := aws.ToString(first.AccessKeyId)
	recs := a.Records(t, "demo-rotations")
	if err := recs.Put(ctx, &ledger.Record{ID: old, User: "two-keys", Action: "rotate", Rotation: 1, State: ledger.Held,
		HeldUntil: time.Now().Add(3 * day), Outcome: "the old key was re-activated by a person"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	code, stdout, errOut := keyrotor(t, "", "audit", "--endpoint", a.Endpoint, "--cdk-json", "../../cdk.json", "--table", "demo-rotations", "--format", "json")
	if code != 0 {
		t.Fatalf("audit: exit %d: %s", code, errOut)
	}
	var rep audit.Report
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, r := range rep.Rows {
		switch {
		case r.KeyID == old:
			seen["held"] = true
			if r.Decision != "held" || !strings.Contains(r.Reason, "re-activated by a person") {
				t.Errorf("two-keys' held key: %s (%s); want held", r.Decision, r.Reason)
			}
		case r.User == "break-glass":
			seen["exempt"] = true
			if r.Decision != "exempt" {
				t.Errorf("break-glass: %s (%s); want exempt", r.Decision, r.Reason)
			}
		}
	}
	if !seen["held"] || !seen["exempt"] {
		t.Errorf("rows for the held key and the exempt user: %v", seen)
	}
	if !strings.Contains(strings.Join(rep.Notes, "\n"), "no root row") {
		t.Errorf("notes %q; want the missing root row named", rep.Notes)
	}
	if rep.Summary.Decisions["held"] != 1 || rep.Summary.Decisions["exempt"] != 1 {
		t.Errorf("summary %v; want 1 held, 1 exempt", rep.Summary.Decisions)
	}
}
