// Package awstest gives integration tests an emulated AWS account: a
// moto_server per test binary, real SDK clients pointed at it, helpers to
// seed users and keys, and readers for what the account holds afterwards
// (keys, tags, secrets, mails sent, admin messages published).
package awstest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/internal/motoserver"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

var (
	mu     sync.Mutex
	server *motoserver.Server
)

// Main runs a test binary's tests with one moto_server, stopped at the end.
// Use it from TestMain: func TestMain(m *testing.M) { awstest.Main(m) }.
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	server.Stop()
	mu.Unlock()
	os.Exit(code)
}

// Account is an emulated AWS account with clients.
type Account struct {
	Endpoint string
	Config   aws.Config
	IAM      *iam.Client
	Secrets  *secretsmanager.Client
	SES      *sesv2.Client
	SNS      *sns.Client
	S3       *s3.Client
	DynamoDB *dynamodb.Client
}

// New returns a clean account (moto reset) on the binary's moto_server.
// Tests that use it must not run in parallel with each other.
func New(t testing.TB) *Account {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if server == nil {
		s, err := motoserver.Start(filepath.Join(os.TempDir(), fmt.Sprintf("keyrotor-moto-%d.log", os.Getpid())))
		if err != nil {
			t.Fatalf("start moto_server: %v", err)
		}
		server = s
	}
	if err := server.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	return Connect(t, server.Endpoint)
}

// Connect returns an Account for an endpoint that is already running (the
// fault proxy, for example).
func Connect(t testing.TB, endpoint string, opts ...func(*awsconf.Options)) *Account {
	t.Helper()
	o := awsconf.Options{Endpoint: endpoint, Region: "us-east-1", StaticTestCredentials: true}
	for _, f := range opts {
		f(&o)
	}
	cfg, err := awsconf.Load(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return &Account{
		Endpoint: endpoint, Config: cfg,
		IAM: iam.NewFromConfig(cfg), Secrets: secretsmanager.NewFromConfig(cfg), SES: sesv2.NewFromConfig(cfg),
		SNS: sns.NewFromConfig(cfg), S3: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.DisableLogOutputChecksumValidationSkipped = true }),
		DynamoDB: dynamodb.NewFromConfig(cfg),
	}
}

// Records creates the rotation record table (as the stack does: key "id")
// and returns its store.
func (a *Account) Records(t testing.TB, name string) *ledger.Store {
	t.Helper()
	if err := ledger.CreateTable(context.Background(), a.DynamoDB, name); err != nil {
		t.Fatal(err)
	}
	return &ledger.Store{API: a.DynamoDB, Table: name}
}

// Endpoint returns the binary's moto endpoint (after New).
func Endpoint() string {
	mu.Lock()
	defer mu.Unlock()
	return server.Endpoint
}

// User creates an IAM user with tags (key, value, key, value...).
func (a *Account) User(t testing.TB, name string, tags ...string) string {
	t.Helper()
	in := &iam.CreateUserInput{UserName: aws.String(name)}
	for i := 0; i+1 < len(tags); i += 2 {
		in.Tags = append(in.Tags, types.Tag{Key: aws.String(tags[i]), Value: aws.String(tags[i+1])})
	}
	out, err := a.IAM.CreateUser(context.Background(), in)
	var exists *types.EntityAlreadyExistsException
	if errors.As(err, &exists) {
		// The SDK retries a CreateUser whose answer a loaded emulator
		// dropped, and the retry finds the user the first attempt made:
		// the test's account was reset, so the user is this call's.
		got, gerr := a.IAM.GetUser(context.Background(), &iam.GetUserInput{UserName: aws.String(name)})
		if gerr != nil {
			t.Fatalf("create user %s: %v (then get: %v)", name, err, gerr)
		}
		return aws.ToString(got.User.Arn)
	}
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return aws.ToString(out.User.Arn)
}

// Key creates an access key for user and returns its id.
func (a *Account) Key(t testing.TB, user string) string {
	t.Helper()
	return aws.ToString(a.createKey(t, user).AccessKeyId)
}

// createKey creates a key for user exactly once. The SDK does not retry
// the call: under load a create whose answer timed out may have taken
// effect, and its retry would add a second key (or hit IAM's two-key
// limit). A failed attempt's key, if any, is deleted before the next.
func (a *Account) createKey(t testing.TB, user string) *types.AccessKey {
	t.Helper()
	ctx := context.Background()
	var last error
	for attempt := 0; attempt < 4; attempt++ {
		before := a.Keys(t, user)
		out, err := a.IAM.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(user)}, func(o *iam.Options) { o.RetryMaxAttempts = 1 })
		if err == nil {
			return out.AccessKey
		}
		last = err
		for id := range a.Keys(t, user) {
			if _, had := before[id]; !had {
				if _, derr := a.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(id)}); derr != nil {
					t.Fatalf("delete the key %s a failed create left for %s: %v", id, user, derr)
				}
			}
		}
	}
	t.Fatalf("create key for %s: %v", user, last)
	return nil
}

// SetKeyStatus sets a key Active or Inactive.
func (a *Account) SetKeyStatus(t testing.TB, user, id string, active bool) {
	t.Helper()
	st := types.StatusTypeInactive
	if active {
		st = types.StatusTypeActive
	}
	if _, err := a.IAM.UpdateAccessKey(context.Background(), &iam.UpdateAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(id), Status: st}); err != nil {
		t.Fatal(err)
	}
}

// Keys returns user's keys as id -> status ("Active"/"Inactive").
func (a *Account) Keys(t testing.TB, user string) map[string]string {
	t.Helper()
	out, err := a.IAM.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatalf("list keys of %s: %v", user, err)
	}
	m := map[string]string{}
	for _, k := range out.AccessKeyMetadata {
		m[aws.ToString(k.AccessKeyId)] = string(k.Status)
	}
	return m
}

// Tags returns user's tags.
func (a *Account) Tags(t testing.TB, user string) map[string]string {
	t.Helper()
	out, err := a.IAM.ListUserTags(context.Background(), &iam.ListUserTagsInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatalf("list tags of %s: %v", user, err)
	}
	m := map[string]string{}
	for _, tg := range out.Tags {
		m[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
	}
	return m
}

// Secret returns the current string of a secret, or "" if it does not exist.
func (a *Account) Secret(t testing.TB, name string) string {
	t.Helper()
	out, err := a.Secrets.GetSecretValue(context.Background(), &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	if err != nil {
		if strings.Contains(err.Error(), "ResourceNotFound") {
			return ""
		}
		t.Fatalf("get secret %s: %v", name, err)
	}
	return aws.ToString(out.SecretString)
}

// VerifySender makes addr a verified SES identity.
func (a *Account) VerifySender(t testing.TB, addr string) {
	t.Helper()
	if _, err := a.SES.CreateEmailIdentity(context.Background(), &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(addr)}); err != nil {
		t.Fatal(err)
	}
}

// Topic creates an SNS topic and returns its ARN.
func (a *Account) Topic(t testing.TB, name string) string {
	t.Helper()
	out, err := a.SNS.CreateTopic(context.Background(), &sns.CreateTopicInput{Name: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.TopicArn)
}

// Bucket creates an S3 bucket.
func (a *Account) Bucket(t testing.TB, name string) {
	t.Helper()
	if _, err := a.S3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatal(err)
	}
}

// Mail is an e-mail moto recorded as sent.
type Mail struct {
	To      []string
	From    string
	Subject string
	Body    string // moto keeps the HTML part when there is one
}

// Notification is an SNS message moto recorded as published.
type Notification struct {
	Topic, Subject, Message string
}

// Sent reads the mails and SNS notifications moto recorded.
func (a *Account) Sent(t testing.TB) (mails []Mail, notes []Notification) {
	t.Helper()
	resp, err := http.Get(a.Endpoint + "/moto-api/data.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var data struct {
		SES struct {
			Message []struct {
				Destinations struct{ ToAddresses []string }
				Source       string
				Subject      string
				Body         string
			}
		} `json:"ses"`
		SNS struct {
			Topic []struct {
				ARN               string  `json:"arn"`
				SentNotifications [][]any `json:"sent_notifications"`
			}
		} `json:"sns"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&data); err != nil {
		t.Fatalf("decode moto data: %v", err)
	}
	for _, m := range data.SES.Message {
		mails = append(mails, Mail{To: m.Destinations.ToAddresses, From: m.Source, Subject: m.Subject, Body: m.Body})
	}
	for _, tp := range data.SNS.Topic {
		for _, n := range tp.SentNotifications {
			if len(n) < 3 {
				continue
			}
			msg, _ := n[1].(string)
			subj, _ := n[2].(string)
			notes = append(notes, Notification{Topic: tp.ARN, Subject: subj, Message: msg})
		}
	}
	return mails, notes
}

// Eventually retries f until it returns nil or d passes.
func Eventually(t testing.TB, d time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Clock moves the emulator's clock by offset from real time (see
// motoserver.SetClock); keys and uses recorded meanwhile carry that date.
func (a *Account) Clock(t testing.TB, offset time.Duration) {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if err := server.SetClock(offset); err != nil {
		t.Fatal(err)
	}
}

// Use signs a request with the key, so IAM records it as used now (by the
// emulator's clock).
func (a *Account) Use(t testing.TB, keyID, secret string) {
	t.Helper()
	cfg := a.Config.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(keyID, secret, "")
	if _, err := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{}); err != nil {
		t.Fatalf("use key %s: %v (AWS and the emulator refuse an Inactive key)", keyID, err)
	}
}

// Work plays a pipeline's work with a key: an S3 ListBuckets signed with
// it (moto records the key's last use: service s3, at moto's clock). It
// reports false when the key is refused, as AWS refuses an Inactive key
// (the emulator does too: internal/motoserver); any other error fails t.
func (a *Account) Work(t testing.TB, keyID, secret string) bool {
	t.Helper()
	cfg := a.Config.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(keyID, secret, "")
	_, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(context.Background(), &s3.ListBucketsInput{})
	var ae smithy.APIError
	switch {
	case err == nil:
		return true
	case errors.As(err, &ae) && ae.ErrorCode() == "InvalidAccessKeyId":
		return false
	}
	t.Fatalf("work with key %s: %v", keyID, err)
	return false
}

// KeyWithSecret creates an access key and returns its id and secret.
func (a *Account) KeyWithSecret(t testing.TB, user string) (string, string) {
	t.Helper()
	k := a.createKey(t, user)
	return aws.ToString(k.AccessKeyId), aws.ToString(k.SecretAccessKey)
}
