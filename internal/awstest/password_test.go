package awstest_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/credreport"
)

// TestMotoPasswordSetDates: the emulator dates a console password when it
// is set, as IAM does (internal/motoserver/clock.py): GetLoginProfile's
// CreateDate and the credential report's password_last_changed move with
// each CreateLoginProfile (after a DeleteLoginProfile) and
// UpdateLoginProfile. moto 5.2.1 alone dates both with the user's creation,
// so a password a person re-set looked like the one keyrotor noticed.
func TestMotoPasswordSetDates(t *testing.T) {
	a := awstest.New(t)
	ctx := context.Background()
	const day = 24 * time.Hour
	user := "pw,user=x" // a comma: the report's row stays well formed
	a.Clock(t, -100*day)
	t.Cleanup(func() { a.Clock(t, 0) })
	a.User(t, user)
	tests := []struct {
		name string
		at   time.Duration
		set  func() error
	}{
		{"created", -100 * day, func() error {
			_, err := a.IAM.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String(user), Password: aws.String("Long-enough-pass-1!")})
			return err
		}},
		{"updated", -50 * day, func() error {
			_, err := a.IAM.UpdateLoginProfile(ctx, &iam.UpdateLoginProfileInput{UserName: aws.String(user), Password: aws.String("Another-long-pass-2!")})
			return err
		}},
		{"deleted and created again", -20 * day, func() error {
			if _, err := a.IAM.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: aws.String(user)}); err != nil {
				return err
			}
			_, err := a.IAM.CreateLoginProfile(ctx, &iam.CreateLoginProfileInput{UserName: aws.String(user), Password: aws.String("Third-long-pass-3!")})
			return err
		}},
	}
	for _, tt := range tests {
		a.Clock(t, tt.at)
		want := time.Now().Add(tt.at)
		if err := tt.set(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		lp, err := a.IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: aws.String(user)})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := aws.ToTime(lp.LoginProfile.CreateDate); got.Sub(want).Abs() > time.Minute {
			t.Errorf("%s: GetLoginProfile CreateDate = %s; want about %s", tt.name, got, want)
		}
		if _, err := a.IAM.GenerateCredentialReport(ctx, &iam.GenerateCredentialReportInput{}); err != nil {
			t.Fatal(err)
		}
		rep, err := a.IAM.GetCredentialReport(ctx, &iam.GetCredentialReportInput{})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := credreport.Parse(bytes.NewReader(rep.Content))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range rows {
			if r.User != user {
				continue
			}
			found = true
			if !r.PasswordEnabled || r.PasswordLastChanged.Sub(want).Abs() > time.Minute {
				t.Errorf("%s: report password_enabled %v, password_last_changed %s; want true, about %s", tt.name, r.PasswordEnabled, r.PasswordLastChanged, want)
			}
		}
		if !found {
			t.Errorf("%s: no report row for %q", tt.name, user)
		}
	}
}
