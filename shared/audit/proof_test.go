package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// realReport serves a credential report written in AWS's own format in
// place of moto's: moto's report has no root row, no signing certificates,
// no last-used regions or services, and is rebuilt on every call, where
// IAM's is up to 4 hours old. Every other call goes to moto.
type realReport struct {
	*iam.Client
	body []byte
	at   time.Time
}

func (r *realReport) GenerateCredentialReport(context.Context, *iam.GenerateCredentialReportInput, ...func(*iam.Options)) (*iam.GenerateCredentialReportOutput, error) {
	return &iam.GenerateCredentialReportOutput{State: types.ReportStateTypeComplete}, nil
}

func (r *realReport) GetCredentialReport(context.Context, *iam.GetCredentialReportInput, ...func(*iam.Options)) (*iam.GetCredentialReportOutput, error) {
	return &iam.GetCredentialReportOutput{Content: r.body, GeneratedTime: aws.Time(r.at), ReportFormat: types.ReportFormatTypeTextCsv}, nil
}

// reportLine is one user of a real-format report.
type reportLine struct {
	user, arn, created                       string
	passwordEnabled, pwUsed, pwChanged       string
	mfa                                      string
	k1Active, k1Rotated, k1Used, k1Reg, k1Sv string
	k2Active, k2Rotated, k2Used, k2Reg, k2Sv string
	c1Active, c1Rotated, c2Active, c2Rotated string
}

func (l reportLine) csv() string {
	na := func(s string) string {
		if s == "" {
			return "N/A"
		}
		return s
	}
	b := func(s string) string {
		if s == "" {
			return "false"
		}
		return s
	}
	return strings.Join([]string{l.user, l.arn, l.created, b(l.passwordEnabled), na(l.pwUsed), na(l.pwChanged), "N/A", b(l.mfa),
		b(l.k1Active), na(l.k1Rotated), na(l.k1Used), na(l.k1Reg), na(l.k1Sv),
		b(l.k2Active), na(l.k2Rotated), na(l.k2Used), na(l.k2Reg), na(l.k2Sv),
		b(l.c1Active), na(l.c1Rotated), b(l.c2Active), na(l.c2Rotated)}, ",")
}

const realHeader = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated"

// captured keeps the assessments find hands its report writer.
type captured struct{ as []*rotation.Assessment }

func (c *captured) WriteReport(_ context.Context, _ string, as []*rotation.Assessment, _ policy.Rules) (*rotation.ReportRef, error) {
	c.as = as
	return &rotation.ReportRef{}, nil
}

// TestMotoAuditAgreesWithPlan is the auditor's test (issue 20): a
// real-format credential report generated 3 hours before the run (a root
// row, the placeholders N/A, no_information and not_supported, signing
// certificates, two keys created in one second, a user deleted since, a
// key created since) goes through find, the audit and a dry-run plan
// against moto. Every row is asserted, and the audit and the plan agree:
// every planned item and skipped key has its row with the plan's decision,
// and every row that claims an action is in the plan.
func TestMotoAuditAgreesWithPlan(t *testing.T) {
	a := awstest.New(t)
	ctx := context.Background()
	t.Cleanup(func() { a.Clock(t, 0) })
	now := time.Now().UTC()
	at := func(d time.Duration) { a.Clock(t, d) }
	ts := func(t time.Time) string { return t.UTC().Format(time.RFC3339) }
	arn := func(u string) string { return "arn:aws:iam::" + awstest.DefaultAccount + ":user/" + u }
	created := func(user, id string) time.Time {
		out, err := a.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range out.AccessKeyMetadata {
			if aws.ToString(k.AccessKeyId) == id {
				return aws.ToTime(k.CreateDate)
			}
		}
		t.Fatalf("no key %s for %s", id, user)
		return time.Time{}
	}
	recs := a.Records(t, "rotations")
	cfg := config.Default()
	cfg.ExemptGroup = "break-glass"
	if _, err := a.IAM.CreateGroup(ctx, &iam.CreateGroupInput{GroupName: aws.String("break-glass")}); err != nil {
		t.Fatal(err)
	}
	var lines []reportLine

	// rotate-me: 120 days old, used yesterday.
	at(-120 * oneDay)
	a.User(t, "rotate-me", "email", "r@example.com")
	rotateID, secret := a.KeyWithSecret(t, "rotate-me")
	at(-oneDay)
	a.Use(t, rotateID, secret)
	lines = append(lines, reportLine{user: "rotate-me", arn: arn("rotate-me"), created: ts(now.Add(-120 * oneDay)), pwUsed: "no_information",
		k1Active: "true", k1Rotated: ts(created("rotate-me", rotateID)), k1Used: ts(now.Add(-oneDay)), k1Reg: "eu-west-1", k1Sv: "s3"})

	// almost-due: 90 days 22 hours old, used: past IAM.3's 90 days.
	at(-90*oneDay - 22*time.Hour)
	a.User(t, "Almost-due")
	almostID, secret := a.KeyWithSecret(t, "Almost-due")
	at(-2 * oneDay)
	a.Use(t, almostID, secret)
	lines = append(lines, reportLine{user: "Almost-due", arn: arn("Almost-due"), created: ts(now.Add(-91 * oneDay)),
		k1Active: "true", k1Rotated: ts(created("Almost-due", almostID)), k1Used: ts(now.Add(-2 * oneDay)), k1Reg: "us-east-1", k1Sv: "sts"})

	// twins: two keys created in the same second, 100 days ago; the first
	// is used, the second never. The report cannot tell them apart.
	at(-100 * oneDay)
	a.User(t, "twins")
	var twinA, twinB, twinSecret string
	for try := 0; ; try++ {
		twinA, twinSecret = a.KeyWithSecret(t, "twins")
		twinB = a.Key(t, "twins")
		if created("twins", twinA).Unix() == created("twins", twinB).Unix() {
			break
		}
		if try == 5 {
			t.Fatal("could not create two keys in one second")
		}
		for _, id := range []string{twinA, twinB} {
			a.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("twins"), AccessKeyId: aws.String(id)})
		}
	}
	at(-2 * oneDay)
	a.Use(t, twinA, twinSecret)
	twinAt := ts(created("twins", twinA))
	lines = append(lines, reportLine{user: "twins", arn: arn("twins"), created: ts(now.Add(-100 * oneDay)),
		k1Active: "true", k1Rotated: twinAt, k1Used: ts(now.Add(-2 * oneDay)), k1Reg: "us-east-1", k1Sv: "sts",
		k2Active: "true", k2Rotated: twinAt})

	// held-user: due, but a person re-activated the old key after its
	// rotation: held for 2 more days.
	at(-150 * oneDay)
	a.User(t, "held-user")
	heldID, secret := a.KeyWithSecret(t, "held-user")
	at(-oneDay)
	a.Use(t, heldID, secret)
	lines = append(lines, reportLine{user: "held-user", arn: arn("held-user"), created: ts(now.Add(-150 * oneDay)),
		k1Active: "true", k1Rotated: ts(created("held-user", heldID)), k1Used: ts(now.Add(-oneDay)), k1Reg: "us-east-1", k1Sv: "ec2"})
	if err := recs.Put(ctx, &ledger.Record{ID: heldID, User: "held-user", Action: "rotate", Rotation: 1, State: ledger.Held,
		HeldUntil: now.Add(2 * oneDay), Outcome: "the old key was re-activated by a person"}); err != nil {
		t.Fatal(err)
	}

	// in-grace: keyrotor deactivated the old key 2 days ago; its new key
	// is young and used. Nothing is due: the user is not checked live.
	at(-200 * oneDay)
	a.User(t, "in-grace")
	graceOld := a.Key(t, "in-grace")
	at(-2 * oneDay)
	graceNew, secret := a.KeyWithSecret(t, "in-grace")
	a.Use(t, graceNew, secret)
	a.SetKeyStatus(t, "in-grace", graceOld, false)
	lines = append(lines, reportLine{user: "in-grace", arn: arn("in-grace"), created: ts(now.Add(-200 * oneDay)),
		k1Active: "false", k1Rotated: ts(created("in-grace", graceOld)), k1Used: ts(now.Add(-3 * oneDay)), k1Reg: "us-east-1", k1Sv: "s3",
		k2Active: "true", k2Rotated: ts(created("in-grace", graceNew)), k2Used: ts(now.Add(-2 * oneDay)), k2Reg: "us-east-1", k2Sv: "s3"})
	if err := recs.Put(ctx, &ledger.Record{ID: graceOld, User: "in-grace", Action: "rotate", Rotation: 1, State: ledger.Deactivated,
		NewKeyID: graceNew, DeactivatedAt: now.Add(-2 * oneDay), DeleteAfter: now.Add(5 * oneDay)}); err != nil {
		t.Fatal(err)
	}

	// exempt users: tagged (a due key) and in the exempt group (a young
	// key: exempt all the same).
	at(-300 * oneDay)
	a.User(t, "tagged-exempt", "keyrotor:exempt", "true")
	taggedID, secret := a.KeyWithSecret(t, "tagged-exempt")
	at(-10 * oneDay)
	a.Use(t, taggedID, secret)
	a.User(t, "group-exempt")
	groupID := a.Key(t, "group-exempt")
	if _, err := a.IAM.AddUserToGroup(ctx, &iam.AddUserToGroupInput{GroupName: aws.String("break-glass"), UserName: aws.String("group-exempt")}); err != nil {
		t.Fatal(err)
	}
	// quiet-exempt: tagged exempt, its key 10 days old and in use: nothing
	// is due, so the daily run never checks it live (issue 20, last gap).
	a.User(t, "quiet-exempt", "keyrotor:exempt", "true")
	quietID, quietSecret := a.KeyWithSecret(t, "quiet-exempt")
	lines = append(lines,
		reportLine{user: "tagged-exempt", arn: arn("tagged-exempt"), created: ts(now.Add(-300 * oneDay)),
			k1Active: "true", k1Rotated: ts(created("tagged-exempt", taggedID)), k1Used: ts(now.Add(-10 * oneDay)), k1Reg: "us-east-1", k1Sv: "iam"},
		reportLine{user: "group-exempt", arn: arn("group-exempt"), created: ts(now.Add(-10 * oneDay)),
			k1Active: "true", k1Rotated: ts(created("group-exempt", groupID))})
	at(-2 * oneDay)
	a.Use(t, quietID, quietSecret)
	lines = append(lines, reportLine{user: "quiet-exempt", arn: arn("quiet-exempt"), created: ts(now.Add(-10 * oneDay)),
		k1Active: "true", k1Rotated: ts(created("quiet-exempt", quietID)), k1Used: ts(now.Add(-2 * oneDay)), k1Reg: "us-east-1", k1Sv: "s3"})

	// console: a password set 100 days ago, never used, no MFA; signing
	// certificates, one of them 400 days old and Active.
	at(-100 * oneDay)
	a.User(t, "console-user")
	login(t, a, "console-user")
	lines = append(lines, reportLine{user: "console-user", arn: arn("console-user"), created: ts(now.Add(-100 * oneDay)),
		passwordEnabled: "true", pwUsed: "no_information", pwChanged: ts(now.Add(-100 * oneDay)),
		c1Active: "true", c1Rotated: ts(now.Add(-400 * oneDay)), c2Active: "false", c2Rotated: ts(now.Add(-30 * oneDay))})

	// newer-key: its second key was created after the report.
	at(-100 * oneDay)
	a.User(t, "newer-key")
	newerOld, secret := a.KeyWithSecret(t, "newer-key")
	at(-oneDay)
	a.Use(t, newerOld, secret)
	at(-time.Hour)
	newerNew := a.Key(t, "newer-key")
	lines = append(lines, reportLine{user: "newer-key", arn: arn("newer-key"), created: ts(now.Add(-100 * oneDay)),
		k1Active: "true", k1Rotated: ts(created("newer-key", newerOld)), k1Used: ts(now.Add(-oneDay)), k1Reg: "us-east-1", k1Sv: "s3"})

	// A user whose name a spreadsheet would evaluate.
	at(-5 * oneDay)
	a.User(t, "=1+2")
	formulaID := a.Key(t, "=1+2")
	lines = append(lines, reportLine{user: "=1+2", arn: arn("=1+2"), created: ts(now.Add(-5 * oneDay)),
		k1Active: "true", k1Rotated: ts(created("=1+2", formulaID))})
	at(0)

	// Zebra: IAM compares names case-insensitively, so does the order.
	a.User(t, "Zebra")
	zebraID := a.Key(t, "Zebra")
	lines = append(lines, reportLine{user: "Zebra", arn: arn("Zebra"), created: ts(now.Add(-5 * oneDay)),
		k1Active: "true", k1Rotated: ts(created("Zebra", zebraID))})

	// created-since: in IAM, not in the report (created 1 hour ago).
	at(-time.Hour)
	a.User(t, "created-since")
	createdID := a.Key(t, "created-since")
	at(0)

	// deleted-quiet: in the report with nothing due, gone from IAM.
	lines = append(lines, reportLine{user: "deleted-quiet", arn: arn("deleted-quiet"), created: ts(now.Add(-10 * oneDay)),
		k1Active: "true", k1Rotated: ts(now.Add(-10 * oneDay)), k1Used: ts(now.Add(-5 * oneDay)), k1Reg: "us-east-1", k1Sv: "s3"})

	// deleted-since: in the report, gone from IAM.
	lines = append(lines, reportLine{user: "deleted-since", arn: arn("deleted-since"), created: ts(now.Add(-400 * oneDay)),
		k1Active: "true", k1Rotated: ts(now.Add(-400 * oneDay)), k1Used: ts(now.Add(-5 * oneDay)), k1Reg: "us-east-1", k1Sv: "s3"})

	// The root user: an access key 2,000 days old used yesterday, no MFA,
	// signed in 10 days ago.
	root := reportLine{user: "<root_account>", arn: "arn:aws:iam::" + awstest.DefaultAccount + ":root", created: ts(now.Add(-3000 * oneDay)),
		passwordEnabled: "not_supported", pwUsed: ts(now.Add(-10 * oneDay)), pwChanged: "not_supported", mfa: "false",
		k1Active: "true", k1Rotated: ts(now.Add(-2000 * oneDay)), k1Used: ts(now.Add(-oneDay)), k1Reg: "us-east-1", k1Sv: "iam"}

	var body strings.Builder
	body.WriteString(realHeader + "\n" + root.csv() + "\n")
	for _, l := range lines {
		body.WriteString(l.csv() + "\n")
	}
	reportAt := now.Add(-3 * time.Hour).Truncate(time.Second)
	api := &realReport{Client: a.IAM, body: []byte(body.String()), at: reportAt}

	plan := func(asOf time.Time) (*rotation.Plan, *Report) {
		t.Helper()
		var got captured
		f := &rotation.Finder{IAM: api, Records: recs, Config: cfg, Report: &got, Now: func() time.Time { return now }}
		req, _ := json.Marshal(map[string]any{"dryRun": true, "asOf": asOf.Format(time.RFC3339)})
		p, err := f.Handle(ctx, rotation.FindInput{Request: req, ExecutionName: "audit-proof"})
		if err != nil {
			t.Fatal(err)
		}
		return p, BuildAll(got.as, rules, cfg.RetirePasswords, "")
	}
	p, rep := plan(now)

	type want struct {
		decision          policy.Action
		iam3, iam22, iam4 string
		reason, flag      string
	}
	wants := map[string]want{
		"<root_account>/access_key_1": {policy.Manual, "", "", Failed, "never acts on the root user", "root access key (CIS 1.4, IAM.4)"},
		"<root_account>/password":     {policy.Manual, "", "", Failed, "root user has no MFA", "root without MFA (CIS 1.5, IAM.9)"},
		"rotate-me/" + rotateID:       {policy.Rotate, Failed, Passed, "", "hours old, max age 90 days", ""},
		"Almost-due/" + almostID:      {policy.Rotate, Failed, Passed, "", "90 days 2", ""},
		"twins/" + twinA:              {policy.Blocked, Failed, Passed, "", "same second", "two active access keys (CIS 1.13)"},
		"twins/" + twinB:              {policy.Retire, Failed, Failed, "", "never used", "two active access keys (CIS 1.13)"},
		"held-user/" + heldID:         {policy.Held, Failed, Passed, "", "held until", ""},
		"in-grace/" + graceOld:        {policy.InGrace, "", "", "", "deleted after", ""},
		"in-grace/access_key_2":       {policy.OK, Passed, Passed, "", "in use", ""},
		"tagged-exempt/" + taggedID:   {policy.Exempt, Failed, Passed, "", "tagged keyrotor:exempt=true", ""},
		"group-exempt/access_key_1":   {policy.Exempt, Passed, Passed, "", "member of exempt group break-glass", ""},
		"quiet-exempt/access_key_1":   {policy.Exempt, Passed, Passed, "", "tagged keyrotor:exempt=true", ""},
		"console-user/password":       {policy.Manual, "", Failed, "", "reports it only", "console access without MFA (CIS 1.10)"},
		"console-user/cert_1":         {policy.Manual, "", "", "", "does not manage certificates", ""},
		"console-user/cert_2":         {policy.OK, "", "", "", "does not manage certificates", ""},
		"newer-key/" + newerOld:       {policy.Blocked, Failed, Passed, "", "also Active", "two active access keys (CIS 1.13)"},
		"newer-key/" + newerNew:       {policy.OK, Passed, Passed, "", "created after the credential report", "two active access keys (CIS 1.13)"},
		"=1+2/access_key_1":           {policy.OK, Passed, Passed, "", "never used", ""},
		"Zebra/access_key_1":          {policy.OK, Passed, Passed, "", "never used", ""},
		"created-since/" + createdID:  {policy.OK, Passed, Passed, "", "after the credential report", ""},
		"deleted-quiet/access_key_1":  {policy.Gone, "", "", "", "deleted after the credential report", ""},
		"deleted-since/access_key_1":  {policy.Gone, "", "", "", "deleted after the credential report", ""},
	}
	got := map[string]Row{}
	for _, r := range rep.Rows {
		k := r.User + "/" + credOf(r)
		if _, dup := got[k]; dup {
			t.Errorf("two rows for %s", k)
		}
		got[k] = r
	}
	for k, w := range wants {
		r, ok := got[k]
		if !ok {
			t.Errorf("no row for %s; rows %v", k, keysOf(got))
			continue
		}
		if r.Decision != w.decision || r.IAM3 != w.iam3 || r.IAM22 != w.iam22 || r.IAM4 != w.iam4 || !strings.Contains(r.Reason, w.reason) || !strings.Contains(r.Flags, w.flag) {
			t.Errorf("row %s = %s (%s) IAM.3 %q IAM.22 %q IAM.4 %q flags %q;\nwant %s with %q, IAM.3 %q IAM.22 %q IAM.4 %q flags %q",
				k, r.Decision, r.Reason, r.IAM3, r.IAM22, r.IAM4, r.Flags, w.decision, w.reason, w.iam3, w.iam22, w.iam4, w.flag)
		}
		if r.ReadAt == "" || r.Source == "" {
			t.Errorf("row %s does not say when its data was read: %q %q", k, r.Source, r.ReadAt)
		}
	}
	if len(got) != len(wants) {
		t.Errorf("%d rows %v; want %d", len(got), keysOf(got), len(wants))
	}
	if r := got["twins/"+twinB]; r.LastUsed != "never" {
		t.Errorf("the never-used twin shows last used %s; want never (not its twin's use)", r.LastUsed)
	}
	if r := got["<root_account>/access_key_1"]; r.User != rep.Rows[0].User {
		t.Errorf("first row %s; want the root user first", rep.Rows[0].User)
	}
	if !rep.ReportTime.Equal(reportAt) {
		t.Errorf("credential report time %v; want %v", rep.ReportTime, reportAt)
	}

	// One truth: the plan's every item and skipped key has its row with
	// the plan's decision, and every row that claims an action is planned.
	planned := map[string]policy.Action{}
	for _, it := range p.Items {
		planned[it.User+"/"+it.OldKey.ID] = it.Action
	}
	for _, s := range [][]rotation.Skipped{p.Held, p.Blocked, p.Exempt, p.Adopting, p.InFlight} {
		for _, x := range s {
			planned[x.User+"/"+x.KeyID] = x.Action
		}
	}
	for k, action := range planned {
		if r, ok := got[k]; !ok || r.Decision != action {
			t.Errorf("plan: %s %s; audit row %+v", k, action, r)
		}
	}
	acts := map[policy.Action]bool{policy.Rotate: true, policy.Retire: true, policy.RetirePassword: true, policy.Held: true, policy.Blocked: true,
		policy.Adopting: true, policy.InFlight: true}
	for k, r := range got {
		if acts[r.Decision] && planned[k] != r.Decision {
			t.Errorf("audit: %s %s; the plan has %q", k, r.Decision, planned[k])
		}
	}
	if p.Counts.InGrace != 1 || rep.Summary.Decisions["in-grace"] != 1 {
		t.Errorf("in grace: plan %d, audit %d; want 1 each", p.Counts.InGrace, rep.Summary.Decisions["in-grace"])
	}
	if rep.Summary.Decisions["held"] != 1 || rep.Summary.Decisions["retire"] != 1 || rep.Summary.Decisions["manual"] != 4 {
		t.Errorf("summary = %v", rep.Summary.Decisions)
	}
	if strings.Join(rep.Summary.TwoActiveKeys, ",") != "newer-key,twins" || strings.Join(rep.Summary.ConsoleWithoutMFA, ",") != "console-user" {
		t.Errorf("flagged users: two keys %v, console without MFA %v", rep.Summary.TwoActiveKeys, rep.Summary.ConsoleWithoutMFA)
	}

	// The outputs: the credential report's time on each, the summary
	// counts, the formula neutralised, case-insensitive order.
	var table, csvOut bytes.Buffer
	rep.WriteTable(&table, false)
	rep.WriteCSV(&csvOut)
	for _, s := range []string{"credential report generated " + ts(reportAt) + ", 3h0m0s before as of", "1 held", "4 manual", "2 gone", "1 in-grace",
		"users with two active keys (CIS 1.13): newer-key, twins", "console users without MFA (CIS 1.10): console-user"} {
		if !strings.Contains(table.String(), s) {
			t.Errorf("table lacks %q:\n%s", s, table.String())
		}
	}
	csvRecs, err := csv.NewReader(&csvOut).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, r := range csvRecs[1:] {
		if r[2] != "summary" && (len(users) == 0 || users[len(users)-1] != r[0]) {
			users = append(users, r[0])
		}
		if r[21] != ts(reportAt) || r[22] == "" {
			t.Errorf("CSV row %v lacks the report times", r)
		}
	}
	wantOrder := "<root_account>,'=1+2,Almost-due,console-user,created-since,deleted-quiet,deleted-since,group-exempt,held-user,in-grace,newer-key,quiet-exempt,rotate-me,tagged-exempt,twins,Zebra"
	if strings.Join(users, ",") != wantOrder {
		t.Errorf("CSV users in order %s; want %s", strings.Join(users, ","), wantOrder)
	}

	// Each defect of issue 20, as it failed before the fix (the same
	// checks failed on the code before, one by one).
	t.Run("defect 1: root row", func(t *testing.T) {
		for _, r := range rep.Rows {
			if r.User == "<root_account>" {
				return
			}
		}
		t.Errorf("no row for the root user")
	})
	t.Run("defect 2: deleted user", func(t *testing.T) {
		if r := got["deleted-since/access_key_1"]; r.Decision == policy.Rotate {
			t.Errorf("deleted-since: %s (%s); want gone, not rotate", r.Decision, r.Reason)
		}
	})
	t.Run("defect 3: 90.9 days", func(t *testing.T) {
		if r := got["Almost-due/"+almostID]; r.Decision != policy.Rotate {
			t.Errorf("Almost-due (90 days 22 hours): %s (%s); want rotate (IAM.3 FAILED)", r.Decision, r.Reason)
		}
	})
	table.Reset()
	csvOut.Reset()
	rep.WriteTable(&table, false)
	rep.WriteCSV(&csvOut)
	t.Run("defect 4: summary counts held, reported-only password not retire", func(t *testing.T) {
		if !strings.Contains(table.String(), "held") || got["console-user/password"].Decision == policy.Retire {
			t.Errorf("summary: %s; console-user password %s", table.String()[strings.LastIndex(table.String(), "\n\n"):], got["console-user/password"].Decision)
		}
	})
	t.Run("defect 5: exempt group member exempt, never-used not in use", func(t *testing.T) {
		if r := got["group-exempt/access_key_1"]; r.Decision != policy.Exempt || strings.Contains(r.Reason, "in use") {
			t.Errorf("group-exempt: %s (%s); want exempt, not 'in use' (never used)", r.Decision, r.Reason)
		}
		if r := got["=1+2/access_key_1"]; strings.Contains(r.Reason, "in use") && r.LastUsed == "never" {
			t.Errorf("=1+2: %q beside last used never", r.Reason)
		}
	})
	t.Run("defect 6: twins", func(t *testing.T) {
		if r := got["twins/"+twinB]; r.LastUsed != "never" || r.Decision != policy.Retire {
			t.Errorf("never-used twin: last used %s, %s (%s); want never, retire", r.LastUsed, r.Decision, r.Reason)
		}
	})
	t.Run("defect 7: CSV formula", func(t *testing.T) {
		if strings.Contains(csvOut.String(), "\n=1+2,") {
			t.Errorf("CSV cell =1+2 is a formula")
		}
	})
	t.Run("defect 8: credential report time in the table", func(t *testing.T) {
		if !strings.Contains(table.String(), ts(reportAt)) {
			t.Errorf("table does not name the credential report's time %s", ts(reportAt))
		}
	})
	t.Run("defect 9: held at the plan's time; case-insensitive order", func(t *testing.T) {
		p2, rep2 := plan(now.Add(5 * oneDay))
		for _, r := range rep2.Rows {
			if credOf(r) == heldID && r.Decision != policy.Held {
				t.Errorf("preview: held-user %s while the plan holds it (%d held)", r.Decision, len(p2.Held))
			}
		}
		var users []string
		for _, r := range rep.Rows {
			if len(users) == 0 || users[len(users)-1] != r.User {
				users = append(users, r.User)
			}
		}
		if i, j := strings.Index(strings.Join(users, ","), "Zebra"), strings.Index(strings.Join(users, ","), "console-user"); i < j {
			t.Errorf("order %v: Zebra before console-user (case-sensitive)", users)
		}
	})

	t.Run("defect 10: tag-exempt user with nothing due", func(t *testing.T) {
		// Find read a user's tags only when it checked the user live (a
		// credential due): quiet-exempt showed ok, as if keyrotor would
		// rotate its key when due, which it never will.
		const reason = "tagged keyrotor:exempt=true"
		if r := got["quiet-exempt/access_key_1"]; r.Decision != policy.Exempt || !strings.Contains(r.Reason, reason) {
			t.Errorf("quiet-exempt: %s (%s); want exempt, %s", r.Decision, r.Reason, reason)
		}
		var csvBuf, jsonBuf, tableBuf bytes.Buffer
		rep.WriteCSV(&csvBuf)
		rep.WriteJSON(&jsonBuf)
		rep.WriteTable(&tableBuf, false)
		recs, err := csv.NewReader(&csvBuf).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		var csvRow []string
		csvCount := ""
		for _, r := range recs[1:] {
			if r[0] == "quiet-exempt" {
				csvRow = r
			}
			if r[2] == "summary" && r[10] == string(policy.Exempt) {
				csvCount = r[23]
			}
		}
		if csvRow == nil || csvRow[10] != string(policy.Exempt) || !strings.Contains(csvRow[11], reason) {
			t.Errorf("CSV row of quiet-exempt = %v; want decision exempt, reason %q", csvRow, reason)
		}
		var fromJSON Report
		if err := json.Unmarshal(jsonBuf.Bytes(), &fromJSON); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range fromJSON.Rows {
			if r.User == "quiet-exempt" {
				found = true
				if r.Decision != policy.Exempt || !strings.Contains(r.Reason, reason) {
					t.Errorf("JSON row of quiet-exempt = %s (%s); want exempt, %s", r.Decision, r.Reason, reason)
				}
			}
		}
		if !found {
			t.Errorf("JSON has no row for quiet-exempt")
		}
		tableLine := ""
		for _, l := range strings.Split(tableBuf.String(), "\n") {
			if strings.HasPrefix(l, "quiet-exempt ") {
				tableLine = l
			}
		}
		if !strings.Contains(tableLine, " exempt ") || !strings.Contains(tableLine, reason) {
			t.Errorf("table line of quiet-exempt = %q; want exempt, %s", tableLine, reason)
		}
		// tagged-exempt, group-exempt and quiet-exempt: one key each.
		if n := rep.Summary.Decisions[string(policy.Exempt)]; n != 3 || fromJSON.Summary.Decisions[string(policy.Exempt)] != 3 || csvCount != "3" ||
			!strings.Contains(tableBuf.String(), " 3 exempt,") {
			t.Errorf("exempt counted %d (JSON %d, CSV %q, table %q); want 3", n, fromJSON.Summary.Decisions[string(policy.Exempt)], csvCount,
				tableBuf.String()[strings.LastIndex(tableBuf.String(), "credentials:"):])
		}
		// The plan counts them as the audit does.
		listed := map[string]bool{}
		for _, s := range p.Exempt {
			listed[s.User] = true
		}
		if p.Counts.Exempt != rep.Summary.Decisions[string(policy.Exempt)] || !listed["quiet-exempt"] || !listed["group-exempt"] {
			t.Errorf("plan: %d exempt %v; want the audit's %d, quiet-exempt and group-exempt among them", p.Counts.Exempt, p.Exempt, rep.Summary.Decisions[string(policy.Exempt)])
		}
	})

	// Held is judged when the plan acts, in both: a preview 5 days ahead
	// (past the hold) still shows the key held, as the plan does.
	p, rep = plan(now.Add(5 * oneDay))
	if len(p.Held) != 1 {
		t.Errorf("preview plan held %v; want held-user", p.Held)
	}
	for _, r := range rep.Rows {
		if r.KeyID == heldID && r.Decision != policy.Held {
			t.Errorf("preview audit: held-user %s (%s); want held, as the plan", r.Decision, r.Reason)
		}
	}
}

func keysOf(m map[string]Row) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
