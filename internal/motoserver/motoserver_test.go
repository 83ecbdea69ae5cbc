package motoserver

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/shared/awsconf"
)

// TestClockDatesKeys checks the settable clock: a key created with the
// clock 200 days back is 200 days old, and Reset empties the account.
func TestClockDatesKeys(t *testing.T) {
	s, cfg := start(t)
	ctx := context.Background()
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

// TestInactiveKeyRefused: as AWS does, a request signed with an Inactive
// key is refused (InvalidClientTokenId) and no use of it is recorded; the
// same key works again once Active. keyrotor reads a key's last use as
// evidence, so moto's accepting it would fake a use no real key can have.
func TestInactiveKeyRefused(t *testing.T) {
	_, cfg := start(t)
	ctx := context.Background()
	api := iam.NewFromConfig(cfg)
	if _, err := api.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("pipe")}); err != nil {
		t.Fatal(err)
	}
	k, err := api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("pipe")})
	if err != nil {
		t.Fatal(err)
	}
	id, secret := aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)
	status := func(st types.StatusType) {
		t.Helper()
		if _, err := api.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("pipe"), AccessKeyId: aws.String(id), Status: st}); err != nil {
			t.Fatal(err)
		}
	}
	use := func() error {
		c := cfg.Copy()
		c.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
		_, err := sts.NewFromConfig(c).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return err
	}
	lastUsed := func() time.Time {
		t.Helper()
		out, err := api.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: aws.String(id)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToTime(out.AccessKeyLastUsed.LastUsedDate)
	}
	status(types.StatusTypeInactive)
	err = use()
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != "InvalidClientTokenId" {
		t.Fatalf("a call with an Inactive key: %v; want InvalidClientTokenId", err)
	}
	// Each protocol's refusal, as the SDK reads it.
	keyed := cfg.Copy()
	keyed.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
	for name, call := range map[string]func() error{
		"InvalidAccessKeyId": func() error { // S3 (REST-XML)
			_, err := s3.NewFromConfig(keyed, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
			return err
		},
		"UnrecognizedClientException": func() error { // JSON
			_, err := dynamodb.NewFromConfig(keyed).ListTables(ctx, &dynamodb.ListTablesInput{})
			return err
		},
	} {
		if err := call(); !errors.As(err, &ae) || ae.ErrorCode() != name {
			t.Errorf("a call with an Inactive key: %v; want %s", err, name)
		}
	}
	if !lastUsed().IsZero() {
		t.Fatalf("last used %s; want no use recorded for a refused call", lastUsed())
	}
	status(types.StatusTypeActive)
	if err := use(); err != nil {
		t.Fatalf("a call with the key Active again: %v", err)
	}
	if lastUsed().IsZero() {
		t.Fatal("no use recorded for an accepted call")
	}
}

// start starts a moto_server for one test, with test credentials.
func start(t *testing.T) (*Server, aws.Config) {
	t.Helper()
	s, err := Start("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	cfg, err := awsconf.Load(context.Background(), awsconf.Options{Endpoint: s.Endpoint, Region: "us-east-1", StaticTestCredentials: true})
	if err != nil {
		t.Fatal(err)
	}
	return s, cfg
}
