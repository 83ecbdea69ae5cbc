package audit

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const oneDay = 24 * time.Hour

// seedAccount creates, with moto's clock moved back, users covering every
// decision: keys used and never used, young and old, two keys, an Inactive
// key, an exempt user, console passwords with and without MFA.
func seedAccount(t *testing.T, a *awstest.Account) {
	t.Helper()
	ctx := context.Background()
	t.Cleanup(func() { a.Clock(t, 0) })
	at := func(d time.Duration) { a.Clock(t, d) }

	at(-400 * oneDay)
	a.User(t, "old-used")
	id, secret := a.KeyWithSecret(t, "old-used")
	at(-2 * oneDay)
	a.Use(t, id, secret)

	at(-60 * oneDay)
	a.User(t, "never-used")
	a.Key(t, "never-used")

	at(-100 * oneDay)
	a.User(t, "two")
	id, secret = a.KeyWithSecret(t, "two")
	at(-95 * oneDay)
	a.Key(t, "two")
	at(-1 * oneDay)
	a.Use(t, id, secret)

	at(-200 * oneDay)
	a.User(t, "inactive")
	a.SetKeyStatus(t, "inactive", a.Key(t, "inactive"), false)
	a.User(t, "exempt", "keyrotor:exempt", "true")
	a.Key(t, "exempt")

	at(-100 * oneDay)
	a.User(t, "console-old")
	login(t, a, "console-old")

	at(-10 * oneDay)
	a.User(t, "young-unused")
	a.Key(t, "young-unused")
	a.User(t, "console-mfa")
	login(t, a, "console-mfa")
	mfa(t, a, "console-mfa")
	a.User(t, "mfa-keys")
	id, secret = a.KeyWithSecret(t, "mfa-keys")
	mfa(t, a, "mfa-keys")
	at(-1 * oneDay)
	a.Use(t, id, secret)
	at(0)
	if _, err := a.IAM.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("nothing")}); err != nil {
		t.Fatal(err)
	}
}

func login(t *testing.T, a *awstest.Account, user string) {
	t.Helper()
	if _, err := a.IAM.CreateLoginProfile(context.Background(), &iam.CreateLoginProfileInput{UserName: aws.String(user), Password: aws.String("Sup3r-secret-pass!")}); err != nil {
		t.Fatal(err)
	}
}

func mfa(t *testing.T, a *awstest.Account, user string) {
	t.Helper()
	ctx := context.Background()
	dev, err := a.IAM.CreateVirtualMFADevice(ctx, &iam.CreateVirtualMFADeviceInput{VirtualMFADeviceName: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.IAM.EnableMFADevice(ctx, &iam.EnableMFADeviceInput{UserName: aws.String(user), SerialNumber: dev.VirtualMFADevice.SerialNumber,
		AuthenticationCode1: aws.String("123456"), AuthenticationCode2: aws.String("654321")}); err != nil {
		t.Fatal(err)
	}
}

// assess runs find's discovery, waiting out the credential report's
// generation (moto answers the first GenerateCredentialReport with STARTED).
func assess(t *testing.T, a *awstest.Account, asOf time.Time) *rotation.Assessment {
	t.Helper()
	f := &rotation.Finder{IAM: a.IAM, Config: config.Default()}
	for i := 0; ; i++ {
		as, err := f.Assess(context.Background(), asOf, nil)
		var nr *failures.ReportNotReadyError
		if errors.As(err, &nr) && i < 5 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		return as
	}
}

// TestMotoReportMatchesAccount: the report holds one row per access key and
// console password in the account, each with the account's own facts, and
// the decision the policy makes.
func TestMotoReportMatchesAccount(t *testing.T) {
	a := awstest.New(t)
	seedAccount(t, a)
	ctx := context.Background()
	rep := Build(assess(t, a, time.Now()), rules, false)

	byUser := map[string][]Row{}
	for _, r := range rep.Rows {
		byUser[r.User] = append(byUser[r.User], r)
	}
	// Row by row against the live account.
	users, err := a.IAM.ListUsers(ctx, &iam.ListUsersInput{})
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, u := range users.Users {
		name := aws.ToString(u.UserName)
		rows := byUser[name]
		mfas, err := a.IAM.ListMFADevices(ctx, &iam.ListMFADevicesInput{UserName: u.UserName})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			if r.ARN != aws.ToString(u.Arn) || r.MFAActive != (len(mfas.MFADevices) > 0) {
				t.Errorf("%s/%s: arn %s, mfa %v; the account says %s, %d MFA devices", name, r.Credential, r.ARN, r.MFAActive, aws.ToString(u.Arn), len(mfas.MFADevices))
			}
		}
		keys, err := a.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: u.UserName})
		if err != nil {
			t.Fatal(err)
		}
		for i, k := range keys.AccessKeyMetadata {
			want++
			created := aws.ToTime(k.CreateDate).UTC().Format(time.RFC3339)
			var r *Row
			for j := range rows {
				if rows[j].Created == created && rows[j].Credential != "password" {
					r = &rows[j]
				}
			}
			if r == nil {
				t.Errorf("%s: no row for key %s created %s; rows %+v", name, aws.ToString(k.AccessKeyId), created, rows)
				continue
			}
			if (r.KeyID != aws.ToString(k.AccessKeyId) && r.KeyID != "") || r.Credential != fmt.Sprintf("access_key_%d", i+1) {
				t.Errorf("%s: key %s shows as %s %s", name, aws.ToString(k.AccessKeyId), r.Credential, r.KeyID)
			}
			lu, err := a.IAM.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: k.AccessKeyId})
			if err != nil {
				t.Fatal(err)
			}
			wantUsed := "never"
			if d := lu.AccessKeyLastUsed.LastUsedDate; d != nil {
				wantUsed = d.UTC().Format(time.RFC3339)
			}
			if r.Status != string(k.Status) || r.LastUsed != wantUsed {
				t.Errorf("%s/%s: status %s, last used %s; the account says %s, %s", name, r.Credential, r.Status, r.LastUsed, k.Status, wantUsed)
			}
		}
		_, err = a.IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: u.UserName})
		hasPassword := err == nil
		gotPassword := false
		for _, r := range rows {
			gotPassword = gotPassword || r.Credential == "password"
		}
		if hasPassword {
			want++
		}
		if gotPassword != hasPassword {
			t.Errorf("%s: password row %v; login profile %v", name, gotPassword, hasPassword)
		}
	}
	if len(rep.Rows) != want {
		t.Errorf("report has %d rows; the account has %d keys and passwords", len(rep.Rows), want)
	}

	// The decisions, with ages from moto's clock.
	type w struct {
		decision string
		age      int
		lastUsed bool
		mfa      bool
	}
	wantRows := map[string][]w{
		"old-used":     {{"rotate", 400, true, false}},
		"never-used":   {{"retire", 60, false, false}},
		"two":          {{"blocked", 100, true, false}, {"retire", 95, false, false}},
		"inactive":     {{"ok", 200, false, false}},
		"exempt":       {{"exempt", 200, false, false}},
		"console-old":  {{"manual", 100, false, false}},
		"young-unused": {{"ok", 10, false, false}},
		"console-mfa":  {{"ok", 10, false, true}},
		"mfa-keys":     {{"ok", 10, true, true}},
		"nothing":      nil,
	}
	for user, ws := range wantRows {
		rows := byUser[user]
		if len(rows) != len(ws) {
			t.Errorf("%s: %d rows %+v; want %d", user, len(rows), rows, len(ws))
			continue
		}
		for _, ww := range ws {
			found := false
			for _, r := range rows {
				found = found || (string(r.Decision) == ww.decision && r.AgeDays == ww.age && (r.LastUsed != "never") == ww.lastUsed && r.MFAActive == ww.mfa)
			}
			if !found {
				t.Errorf("%s: no row with decision %s, age %d, used %v, mfa %v; rows %+v", user, ww.decision, ww.age, ww.lastUsed, ww.mfa, rows)
			}
		}
	}
	if r := byUser["console-old"]; len(r) == 1 && !strings.Contains(r[0].Reason, "reports it only") {
		t.Errorf("console-old password reason %q; want it reported only", r[0].Reason)
	}
	if r := byUser["young-unused"]; len(r) == 1 && (r[0].Credential != "access_key_1" || r[0].KeyID != "" || r[0].LastUsed != "never") {
		t.Errorf("young-unused row = %+v; want a never-used key shown by slot (find did not check it)", r[0])
	}
}

// TestMotoS3Writer: the writer puts the CSV and JSON under
// reports/<UTC date>/<execution>/ with their content types, and the objects
// hold the report.
func TestMotoS3Writer(t *testing.T) {
	a := awstest.New(t)
	seedAccount(t, a)
	a.Bucket(t, "keyrotor-reports")
	ctx := context.Background()
	as := assess(t, a, time.Now())
	ref, err := NewS3Writer(a.S3, "keyrotor-reports", false, "").WriteReport(ctx, "nightly-2026", []*rotation.Assessment{as}, rules)
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Format("2006-01-02")
	if ref.Bucket != "keyrotor-reports" || ref.CSV != "reports/"+today+"/nightly-2026/credentials.csv" ||
		ref.JSON != "reports/"+today+"/nightly-2026/credentials.json" || ref.Rows != 10 {
		t.Fatalf("WriteReport = %+v", ref)
	}
	get := func(key, ctype string) []byte {
		obj, err := a.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(ref.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer obj.Body.Close()
		if got := aws.ToString(obj.ContentType); got != ctype {
			t.Errorf("%s content type %q; want %q", key, got, ctype)
		}
		b, _ := io.ReadAll(obj.Body)
		return b
	}
	want := Build(as, rules, false)
	recs, err := csv.NewReader(strings.NewReader(string(get(ref.CSV, "text/csv; charset=utf-8")))).ReadAll()
	if err != nil || len(recs) != len(want.Rows)+1+len(Decisions)+len(Bands) || strings.Join(recs[0], ",") != strings.Join(Columns, ",") {
		t.Fatalf("CSV object: %d records, %v, header %v", len(recs), err, recs[0])
	}
	for i, r := range want.Rows {
		if recs[i+1][0] != r.User || recs[i+1][2] != r.Credential || recs[i+1][10] != string(r.Decision) {
			t.Errorf("CSV row %d = %v; want %s/%s %s", i+1, recs[i+1], r.User, r.Credential, r.Decision)
		}
	}
	var got Report
	if err := json.Unmarshal(get(ref.JSON, "application/json"), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Rows) != len(want.Rows) || !got.AsOf.Equal(want.AsOf) || got.GeneratedAt.IsZero() {
		t.Fatalf("JSON object: %d rows, asOf %v, generated %v", len(got.Rows), got.AsOf, got.GeneratedAt)
	}
	for i := range want.Rows {
		if got.Rows[i] != want.Rows[i] && want.Rows[i].Source != "live" { // live rows carry their read time
			t.Errorf("JSON row %d = %+v; want %+v", i, got.Rows[i], want.Rows[i])
		}
	}
}
