package faultproxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/failures"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func through(t *testing.T) (*awstest.Account, *awstest.Account, *faultproxy.Proxy) {
	t.Helper()
	direct := awstest.New(t)
	p, err := faultproxy.New(direct.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.TimeoutHold = 3 * time.Second
	t.Cleanup(p.Close)
	proxied := awstest.Connect(t, p.URL(), func(o *awsconf.Options) { o.MaxAttempts = 1; o.HTTPTimeout = time.Second })
	return direct, proxied, p
}

// TestModes: each fault on a non-idempotent IAM call, classified the way
// the functions classify it, with the account state the mode implies.
func TestMotoModes(t *testing.T) {
	tests := []struct {
		mode      faultproxy.Mode
		wantName  string // failures.Boundary name
		keyExists bool   // did the change happen?
	}{
		{faultproxy.Throttle, "ThrottlingError", false},
		{faultproxy.ServerError, "TransientError", false},
		{faultproxy.Timeout, "TransientError", false},
		{faultproxy.DropConnection, "TransientError", false},
		{faultproxy.DropResponse, "TransientError", true},
	}
	for _, tt := range tests {
		t.Run(tt.mode.String(), func(t *testing.T) {
			direct, proxied, p := through(t)
			direct.User(t, "alice")
			p.FailNth("CreateAccessKey", 1, tt.mode)
			_, err := proxied.IAM.CreateAccessKey(context.Background(), &iam.CreateAccessKeyInput{UserName: aws.String("alice")})
			if err == nil {
				t.Fatal("call succeeded through an injected fault")
			}
			if got := failures.Name(failures.Boundary(err)); got != tt.wantName {
				t.Fatalf("Boundary(%v) = %s; want %s", err, got, tt.wantName)
			}
			if n := len(direct.Keys(t, "alice")); (n == 1) != tt.keyExists {
				t.Fatalf("keys after %s = %d; want exists=%v", tt.mode, n, tt.keyExists)
			}
			if p.Injected()["CreateAccessKey"] != 1 {
				t.Fatalf("injected = %v", p.Injected())
			}
			// The next call goes through.
			if _, err := proxied.IAM.CreateAccessKey(context.Background(), &iam.CreateAccessKeyInput{UserName: aws.String("alice")}); err != nil {
				t.Fatalf("second call: %v", err)
			}
		})
	}
}

// TestMotoProtocols: throttling is recognised on the JSON (Secrets
// Manager) and REST-JSON (SES v2) protocols too.
func TestMotoProtocols(t *testing.T) {
	direct, proxied, p := through(t)
	ctx := context.Background()
	p.FailNth("CreateSecret", 1, faultproxy.Throttle)
	_, err := proxied.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("s"), SecretString: aws.String("x")})
	if !failures.IsThrottle(err) {
		t.Fatalf("Secrets Manager throttle not recognised: %v", err)
	}
	direct.VerifySender(t, "k@example.com")
	p.FailNth("SendEmail", 1, faultproxy.Throttle)
	_, err = proxied.SES.SendEmail(ctx, &sesv2.SendEmailInput{FromEmailAddress: aws.String("k@example.com"),
		Destination: &sestypes.Destination{ToAddresses: []string{"a@example.com"}},
		Content:     &sestypes.EmailContent{Simple: &sestypes.Message{Subject: &sestypes.Content{Data: aws.String("s")}, Body: &sestypes.Body{Text: &sestypes.Content{Data: aws.String("t")}}}}})
	if !failures.IsThrottle(err) {
		t.Fatalf("SES v2 throttle not recognised: %v", err)
	}
	if mails, _ := direct.Sent(t); len(mails) != 0 {
		t.Fatalf("a throttled send went out: %v", mails)
	}
	ops := map[string]bool{}
	for _, c := range p.Log() {
		ops[c.Service+":"+c.Operation] = true
	}
	if !ops["secretsmanager:CreateSecret"] || !ops["ses:SendEmail"] {
		t.Fatalf("operations not identified: %v", ops)
	}
}

// TestMotoRate: a seeded rate rule fails about that fraction, repeatably.
func TestMotoRate(t *testing.T) {
	direct, proxied, p := through(t)
	direct.User(t, "bob")
	p.FailRate([]string{"ListAccessKeys"}, 0.3, faultproxy.Throttle, 42)
	failed := 0
	for range 200 {
		if _, err := proxied.IAM.ListAccessKeys(context.Background(), &iam.ListAccessKeysInput{UserName: aws.String("bob")}); err != nil {
			failed++
		}
	}
	if failed < 40 || failed > 80 || p.Injected()["ListAccessKeys"] != failed {
		t.Fatalf("failed %d of 200 (injected %v); want about 60", failed, p.Injected())
	}
}
