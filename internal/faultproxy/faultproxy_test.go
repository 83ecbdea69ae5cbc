package faultproxy_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	snstypes "github.com/aws/aws-sdk-go-v2/service/sns/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/failures"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// through returns a clean emulated account reached directly, the same
// account reached through a new proxy (one SDK attempt, 2s HTTP timeout, so
// every fault reaches the caller), and the proxy.
func through(t *testing.T) (direct, proxied *awstest.Account, p *faultproxy.Proxy) {
	t.Helper()
	direct = awstest.New(t)
	p, err := faultproxy.New(direct.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	proxied = awstest.Connect(t, p.URL(), func(o *awsconf.Options) { o.MaxAttempts = 1; o.HTTPTimeout = 2 * time.Second })
	return direct, proxied, p
}

func sendEmail(ctx context.Context, a *awstest.Account) error {
	_, err := a.SES.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress: aws.String("keyrotor@example.com"),
		Destination:      &sestypes.Destination{ToAddresses: []string{"alice@example.com"}},
		Content: &sestypes.EmailContent{Simple: &sestypes.Message{
			Subject: &sestypes.Content{Data: aws.String("s")},
			Body:    &sestypes.Body{Text: &sestypes.Content{Data: aws.String("t")}},
		}},
	})
	return err
}

// opCase is one AWS call keyrotor makes, with how to prepare the account
// for it and how to see whether it took effect.
type opCase struct {
	name     string
	op       string // as the proxy names it
	throttle string // the error code the SDK reports for Throttle
	setup    func(t *testing.T, direct *awstest.Account)
	call     func(ctx context.Context, proxied *awstest.Account) error
	changed  func(t *testing.T, direct *awstest.Account) bool // nil for a read
}

var opCases = []opCase{
	{
		name: "iam CreateAccessKey", op: "CreateAccessKey", throttle: "Throttling",
		setup: func(t *testing.T, d *awstest.Account) { d.User(t, "alice") },
		call: func(ctx context.Context, a *awstest.Account) error {
			_, err := a.IAM.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")})
			return err
		},
		changed: func(t *testing.T, d *awstest.Account) bool { return len(d.Keys(t, "alice")) == 1 },
	},
	{
		name: "iam ListAccessKeys", op: "ListAccessKeys", throttle: "Throttling",
		setup: func(t *testing.T, d *awstest.Account) { d.User(t, "bob"); d.Key(t, "bob") },
		call: func(ctx context.Context, a *awstest.Account) error {
			_, err := a.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")})
			return err
		},
	},
	{
		name: "secretsmanager PutSecretValue", op: "PutSecretValue", throttle: "ThrottlingException",
		setup: func(t *testing.T, d *awstest.Account) {
			if _, err := d.Secrets.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String("iam-access-keys/alice"), SecretString: aws.String("old")}); err != nil {
				t.Fatal(err)
			}
		},
		call: func(ctx context.Context, a *awstest.Account) error {
			_, err := a.Secrets.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("iam-access-keys/alice"), SecretString: aws.String("new")})
			return err
		},
		changed: func(t *testing.T, d *awstest.Account) bool { return d.Secret(t, "iam-access-keys/alice") == "new" },
	},
	{
		name: "sesv2 SendEmail", op: "SendEmail", throttle: "TooManyRequestsException",
		setup: func(t *testing.T, d *awstest.Account) { d.VerifySender(t, "keyrotor@example.com") },
		call:  sendEmail,
		changed: func(t *testing.T, d *awstest.Account) bool {
			mails, _ := d.Sent(t)
			return len(mails) == 1
		},
	},
	{
		name: "sts GetCallerIdentity", op: "GetCallerIdentity", throttle: "Throttling",
		setup: func(t *testing.T, d *awstest.Account) {
			// Warm moto's STS up, so the first real call is quick.
			if _, err := sts.NewFromConfig(d.Config).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{}); err != nil {
				t.Fatal(err)
			}
		},
		call: func(ctx context.Context, a *awstest.Account) error {
			_, err := sts.NewFromConfig(a.Config).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
			return err
		},
	},
}

// TestMotoModes: every mode on every sample call, through the real SDK:
// the error classifies the way the functions' boundary classifies it, the
// account shows the change only for DropResponse, and the rule fires once.
func TestMotoModes(t *testing.T) {
	for _, oc := range opCases {
		for _, mode := range faultproxy.Modes {
			t.Run(oc.name+"/"+mode.String(), func(t *testing.T) {
				direct, proxied, p := through(t)
				oc.setup(t, direct)
				p.FailNth(oc.op, 1, mode)
				ctx := context.Background()

				err := oc.call(ctx, proxied)
				if err == nil {
					t.Fatal("call succeeded through an injected fault")
				}
				wantName, wantThrottle := "TransientError", false
				if mode == faultproxy.Throttle {
					wantName, wantThrottle = "ThrottlingError", true
				}
				if got := failures.Name(failures.Boundary(err)); got != wantName {
					t.Errorf("Boundary(%v) = %s; want %s", err, got, wantName)
				}
				if got := failures.IsThrottle(err); got != wantThrottle {
					t.Errorf("IsThrottle(%v) = %v; want %v", err, got, wantThrottle)
				}
				if got := failures.IsTransient(err); got == wantThrottle {
					t.Errorf("IsTransient(%v) = %v; want %v", err, got, !wantThrottle)
				}
				switch mode {
				case faultproxy.Throttle:
					if got := failures.APICode(err); got != oc.throttle {
						t.Errorf("APICode(%v) = %q; want %q", err, got, oc.throttle)
					}
				case faultproxy.ServerError:
					if got := failures.APICode(err); got != "InternalFailure" {
						t.Errorf("APICode(%v) = %q; want InternalFailure", err, got)
					}
				}
				if oc.changed != nil {
					if got, want := oc.changed(t, direct), mode == faultproxy.DropResponse; got != want {
						t.Errorf("after %s: changed = %v; want %v", mode, got, want)
					}
				}
				log := p.Log()
				if len(log) != 1 || log[0].Operation != oc.op || log[0].Fault != mode.String() {
					t.Errorf("Log() = %+v; want one %s with %s", log, oc.op, mode)
				}

				// The rule is spent: the next call goes through.
				if err := oc.call(ctx, proxied); err != nil {
					t.Fatalf("second call: %v", err)
				}
				if got := p.Injected(); got[oc.op] != 1 || len(got) != 1 {
					t.Errorf("Injected() = %v; want %s: 1", got, oc.op)
				}
			})
		}
	}
}

// TestMotoTimeoutIsClientSide: a Timeout fault ends in the SDK's own HTTP
// timeout (not a proxy answer), as soon as the client gives up.
func TestMotoTimeoutIsClientSide(t *testing.T) {
	direct, proxied, p := through(t)
	direct.User(t, "alice")
	p.FailNth("ListAccessKeys", 1, faultproxy.Timeout)
	start := time.Now()
	_, err := proxied.IAM.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: aws.String("alice")})
	var timeout interface{ Timeout() bool }
	if !errors.As(err, &timeout) || !timeout.Timeout() {
		t.Fatalf("ListAccessKeys error = %v; want a client timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v with a 2s HTTP timeout", d)
	}
}

// TestMotoDropResponseCreatesKey: the classic lost answer. The key exists,
// the caller got an error and never saw the secret, and a retry makes a
// second key: what the create step's ledger must prevent.
func TestMotoDropResponseCreatesKey(t *testing.T) {
	direct, proxied, p := through(t)
	direct.User(t, "alice")
	p.FailNth("CreateAccessKey", 1, faultproxy.DropResponse)
	out, err := proxied.IAM.CreateAccessKey(context.Background(), &iam.CreateAccessKeyInput{UserName: aws.String("alice")})
	if err == nil || out != nil {
		t.Fatalf("CreateAccessKey = %v, %v; want no output and an error", out, err)
	}
	if !failures.IsTransient(err) {
		t.Fatalf("IsTransient(%v) = false", err)
	}
	if keys := direct.Keys(t, "alice"); len(keys) != 1 {
		t.Fatalf("keys = %v; want the one created behind the dropped answer", keys)
	}
}

// TestMotoOperations: the proxy names every AWS call keyrotor makes, with
// its service, from real SDK requests.
func TestMotoOperations(t *testing.T) {
	direct, proxied, p := through(t)
	ctx := context.Background()
	direct.User(t, "alice")
	direct.VerifySender(t, "keyrotor@example.com")
	topic := direct.Topic(t, "admins")
	direct.Bucket(t, "runs")
	if _, err := direct.IAM.CreateGroup(ctx, &iam.CreateGroupInput{GroupName: aws.String("admins")}); err != nil {
		t.Fatal(err)
	}

	// Errors are fine here (no login profile, report not ready...): the
	// point is the request the SDK sent.
	u := aws.String("alice")
	key, err := proxied.IAM.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: u})
	if err != nil {
		t.Fatal(err)
	}
	id := key.AccessKey.AccessKeyId
	proxied.IAM.ListUsers(ctx, &iam.ListUsersInput{})
	proxied.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: u})
	proxied.IAM.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: u, AccessKeyId: id, Status: iamtypes.StatusTypeInactive})
	proxied.IAM.GetAccessKeyLastUsed(ctx, &iam.GetAccessKeyLastUsedInput{AccessKeyId: id})
	proxied.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: u, AccessKeyId: id})
	proxied.IAM.TagUser(ctx, &iam.TagUserInput{UserName: u, Tags: []iamtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	proxied.IAM.ListUserTags(ctx, &iam.ListUserTagsInput{UserName: u})
	proxied.IAM.UntagUser(ctx, &iam.UntagUserInput{UserName: u, TagKeys: []string{"k"}})
	proxied.IAM.GetUser(ctx, &iam.GetUserInput{UserName: u})
	proxied.IAM.GenerateCredentialReport(ctx, &iam.GenerateCredentialReportInput{})
	proxied.IAM.GetCredentialReport(ctx, &iam.GetCredentialReportInput{})
	proxied.IAM.GetGroup(ctx, &iam.GetGroupInput{GroupName: aws.String("admins")})
	proxied.IAM.GetLoginProfile(ctx, &iam.GetLoginProfileInput{UserName: u})
	proxied.IAM.DeleteLoginProfile(ctx, &iam.DeleteLoginProfileInput{UserName: u})
	sts.NewFromConfig(proxied.Config).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	s := aws.String("iam-access-keys/alice")
	proxied.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: s, SecretString: aws.String("1")})
	proxied.Secrets.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: s, SecretString: aws.String("2")})
	proxied.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: s})
	proxied.Secrets.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: s})
	proxied.Secrets.TagResource(ctx, &secretsmanager.TagResourceInput{SecretId: s, Tags: []smtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	proxied.Secrets.UntagResource(ctx, &secretsmanager.UntagResourceInput{SecretId: s, TagKeys: []string{"k"}})
	proxied.Secrets.ListSecrets(ctx, &secretsmanager.ListSecretsInput{})
	proxied.Secrets.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: s, ForceDeleteWithoutRecovery: aws.Bool(true)})
	proxied.SNS.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Message: aws.String("m")})
	sendEmail(ctx, proxied)
	proxied.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("runs"), Key: aws.String("a/plan.json"), Body: strings.NewReader("{}")})
	proxied.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("runs"), Key: aws.String("a/plan.json")})
	proxied.S3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("runs"), Prefix: aws.String("a/")})

	want := []string{
		"iam:CreateAccessKey", "iam:ListUsers", "iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:GetAccessKeyLastUsed",
		"iam:DeleteAccessKey", "iam:TagUser", "iam:ListUserTags", "iam:UntagUser", "iam:GetUser",
		"iam:GenerateCredentialReport", "iam:GetCredentialReport", "iam:GetGroup", "iam:GetLoginProfile",
		"iam:DeleteLoginProfile", "sts:GetCallerIdentity",
		"secretsmanager:CreateSecret", "secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue",
		"secretsmanager:DescribeSecret", "secretsmanager:TagResource", "secretsmanager:UntagResource",
		"secretsmanager:ListSecrets", "secretsmanager:DeleteSecret", "sns:Publish", "ses:SendEmail",
		"s3:PutObject", "s3:GetObject", "s3:ListObjectsV2",
	}
	var got []string
	for _, c := range p.Log() {
		got = append(got, c.Service+":"+c.Operation)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("calls = %v\nwant    %v", got, want)
	}
	if ops := faultproxy.OperationsOf(p.Log()); len(ops) != len(want) {
		t.Fatalf("OperationsOf = %v; want %d operations", ops, len(want))
	}
}

// TestMotoPerServiceNth: an operation name two services share is told
// apart by its service prefix.
func TestMotoPerServiceNth(t *testing.T) {
	direct, proxied, p := through(t)
	ctx := context.Background()
	topic := direct.Topic(t, "admins")
	if _, err := direct.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("x")}); err != nil {
		t.Fatal(err)
	}
	p.FailNth("sns:TagResource", 1, faultproxy.Throttle)
	tag := &secretsmanager.TagResourceInput{SecretId: aws.String("s"), Tags: []smtypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}}
	if _, err := proxied.Secrets.TagResource(ctx, tag); err != nil {
		t.Fatalf("secretsmanager TagResource: %v", err)
	}
	_, err := proxied.SNS.TagResource(ctx, &sns.TagResourceInput{ResourceArn: aws.String(topic), Tags: []snstypes.Tag{{Key: aws.String("k"), Value: aws.String("v")}}})
	if !failures.IsThrottle(err) {
		t.Fatalf("sns TagResource error = %v; want throttled", err)
	}
}

// TestMotoGetFaultsReachCaller: Go's transport resends a GET whose reused
// connection closes unanswered; the proxy's hang-up defeats that, so a
// fault on S3 GetObject reaches the caller even on a warm connection.
func TestMotoGetFaultsReachCaller(t *testing.T) {
	direct, proxied, p := through(t)
	ctx := context.Background()
	direct.Bucket(t, "runs")
	get := &s3.GetObjectInput{Bucket: aws.String("runs"), Key: aws.String("plan.json")}
	if _, err := direct.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: get.Bucket, Key: get.Key, Body: strings.NewReader("{}")}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []faultproxy.Mode{faultproxy.DropConnection, faultproxy.DropResponse, faultproxy.Timeout} {
		t.Run(mode.String(), func(t *testing.T) {
			// Warm a connection up: read the answer to the end, so the
			// connection goes back to the pool for the next call.
			out, err := proxied.S3.GetObject(ctx, get)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, out.Body)
			out.Body.Close()
			p.ResetLog()
			p.FailNth("GetObject", 1, mode)
			_, err = proxied.S3.GetObject(ctx, get)
			if err == nil || !failures.IsTransient(err) {
				t.Fatalf("GetObject error = %v; want transient", err)
			}
			if log := p.Log(); len(log) != 1 {
				t.Fatalf("Log() = %+v; want the one faulted call, not resent", log)
			}
		})
	}
	for _, tt := range []struct {
		mode       faultproxy.Mode
		code, name string
	}{
		{faultproxy.Throttle, "SlowDown", "ThrottlingError"},
		{faultproxy.ServerError, "InternalError", "TransientError"},
	} {
		p.FailNth("s3:GetObject", 1, tt.mode)
		_, err := proxied.S3.GetObject(ctx, get)
		if err == nil {
			t.Fatalf("%s: GetObject succeeded", tt.mode)
		}
		if code, name := failures.APICode(err), failures.Name(failures.Boundary(err)); code != tt.code || name != tt.name {
			t.Errorf("%s: GetObject error %v is %s, %s; want %s, %s", tt.mode, err, code, name, tt.code, tt.name)
		}
	}
}
