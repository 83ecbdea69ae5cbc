package motoserver

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/keyrotor/keyrotor/shared/awsconf"
)

// TestClockDatesKeys checks the settable clock: a key created with the
// clock 200 days back is 200 days old, and Reset empties the account.
func TestClockDatesKeys(t *testing.T) {
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	ctx := context.Background()
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: s.Endpoint, Region: "us-east-1", StaticTestCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	api := iam.NewFromConfig(cfg)
	if err := s.SetClock(-200 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("old")}); err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("old")}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetClock(0); err != nil {
		t.Fatal(err)
	}
	out, err := api.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("old")})
	if err != nil {
		t.Fatal(err)
	}
	age := time.Since(aws.ToTime(out.AccessKeyMetadata[0].CreateDate))
	if age < 199*24*time.Hour || age > 201*24*time.Hour {
		t.Fatalf("key age = %v; want about 200 days", age)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := api.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("old")}); err == nil {
		t.Fatal("user still exists after Reset")
	}
}
