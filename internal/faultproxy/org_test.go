package faultproxy_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/awsconf"
)

// orgThrough is an emulated organization (members alpha and beta, OU
// Prod) reached through a new proxy whose RoleChecks is roleChecks, with
// one SDK attempt. alpha has the KeyRotorMember role and a user alice;
// beta has neither.
func orgThrough(t *testing.T, roleChecks bool) (*awstest.Org, *faultproxy.Proxy) {
	t.Helper()
	_, _, p := through(t)
	p.RoleChecks = roleChecks
	o := awstest.NewOrg(t, p.URL(), []awstest.MemberSpec{{Name: "alpha", OU: "Prod"}, {Name: "beta", OU: "Prod"}},
		func(o *awsconf.Options) { o.MaxAttempts = 1; o.HTTPTimeout = 5 * time.Second })
	alpha := o.Member(t, "alpha")
	if _, err := alpha.IAM.CreateRole(context.Background(), &iam.CreateRoleInput{
		RoleName:                 aws.String("KeyRotorMember"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}`),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := alpha.IAM.CreateRole(context.Background(), &iam.CreateRoleInput{
		RoleName: aws.String("PathRole"), Path: aws.String("/keyrotor/"),
		AssumeRolePolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"sts:AssumeRole"}]}`),
	}); err != nil {
		t.Fatal(err)
	}
	alpha.User(t, "alice")
	return o, p
}

// assume returns the config of credentials assumed from the management
// account into roleArn.
func assume(o *awstest.Org, roleArn string) aws.Config {
	cfg := o.Management.Config.Copy()
	out := aws.NewCredentialsCache(aws.CredentialsProviderFunc(func(ctx context.Context) (aws.Credentials, error) {
		res, err := sts.NewFromConfig(o.Management.Config).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleArn), RoleSessionName: aws.String("test")})
		if err != nil {
			return aws.Credentials{}, err
		}
		c := res.Credentials
		return aws.Credentials{AccessKeyID: aws.ToString(c.AccessKeyId), SecretAccessKey: aws.ToString(c.SecretAccessKey), SessionToken: aws.ToString(c.SessionToken), Source: "test"}, nil
	}))
	cfg.Credentials = out
	return cfg
}

func roleARN(account, name string) string { return "arn:aws:iam::" + account + ":role/" + name }

// apiError returns err's API error code and HTTP status.
func apiError(err error) (string, int, string) {
	var ae smithy.APIError
	var re *awshttp.ResponseError
	code, status, msg := "", 0, ""
	if errors.As(err, &ae) {
		code, msg = ae.ErrorCode(), ae.ErrorMessage()
	}
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status, msg
}

// TestMotoRoleChecks: with RoleChecks, AssumeRole of a role that does not
// exist in the target account is refused as STS refuses it (AccessDenied,
// HTTP 403, naming the caller and the role); a role that exists is assumed
// and its credentials act in its account. Without RoleChecks moto grants
// any role.
func TestMotoRoleChecks(t *testing.T) {
	tests := []struct {
		name       string
		roleChecks bool
		member     string // "" : the management account
		role       string
		wantDenied bool
	}{
		{"missing role", true, "beta", "KeyRotorMember", true},
		{"existing role", true, "alpha", "KeyRotorMember", false},
		{"organization's role", true, "beta", "OrganizationAccountAccessRole", false},
		{"missing in own account", true, "", "KeyRotorMember", true},
		{"wrong path", true, "alpha", "some/path/KeyRotorMember", true},
		{"role with its path", true, "alpha", "keyrotor/PathRole", false},
		{"checks off, missing role", false, "beta", "KeyRotorMember", false},
		{"checks off, existing role", false, "alpha", "KeyRotorMember", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, p := orgThrough(t, tt.roleChecks)
			account := awstest.DefaultAccount
			if tt.member != "" {
				account = o.Member(t, tt.member).ID
			}
			arn := roleARN(account, tt.role)
			p.ResetLog()
			cfg := assume(o, arn)
			who, err := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
			if tt.wantDenied {
				code, status, msg := apiError(err)
				want := "User: arn:aws:sts::123456789012:user/moto is not authorized to perform: sts:AssumeRole on resource: " + arn
				if code != "AccessDenied" || status != http.StatusForbidden || msg != want {
					t.Fatalf("AssumeRole %s = %v (%s, HTTP %d, %q); want AccessDenied, HTTP 403, %q", arn, err, code, status, msg, want)
				}
				if got := p.Calls()["GetRole"]; got != 0 {
					t.Errorf("the proxy's own GetRole reached its counts (%d)", got)
				}
				if log := p.Log(); len(log) != 1 || log[0].Operation != "AssumeRole" {
					t.Errorf("log = %+v; want the AssumeRole only", log)
				}
				return
			}
			if err != nil {
				t.Fatalf("act as %s: %v", arn, err)
			}
			if got := aws.ToString(who.Account); got != account {
				t.Errorf("credentials of %s act in %s; want %s", arn, got, account)
			}
			creds, err := cfg.Credentials.Retrieve(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if got := p.AccountOf(creds.AccessKeyID); got != account {
				t.Errorf("AccountOf(%s) = %s; want %s", creds.AccessKeyID, got, account)
			}
			users, err := iam.NewFromConfig(cfg).ListUsers(context.Background(), &iam.ListUsersInput{})
			if err != nil {
				t.Fatal(err)
			}
			if wantAlice := tt.member == "alpha"; (len(users.Users) == 1) != wantAlice {
				t.Errorf("users seen as %s: %d; want alice only in alpha", arn, len(users.Users))
			}
		})
	}
}

// TestMotoDenyActions: DenyActions plays an SCP: calls acting in the
// account whose action it lists are refused in their service's format and
// never reach moto; other accounts and other actions go through;
// AllowActions lifts it.
func TestMotoDenyActions(t *testing.T) {
	ctx := context.Background()
	type setup struct {
		t                     *testing.T
		o                     *awstest.Org
		p                     *faultproxy.Proxy
		alpha, beta           awstest.Member
		aliceKey, aliceSecret string
	}
	listKeys := func(a *awstest.Account) error {
		_, err := a.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("alice")})
		return err
	}
	tests := []struct {
		name       string
		deny       func(s setup)
		call       func(s setup) error
		wantCode   string // "" : goes through
		wantStatus int
		wantMsg    string // a part of the message, with ACCOUNT for alpha's id
	}{
		{
			name:     "denied action in the account",
			deny:     func(s setup) { s.p.DenyActions(s.alpha.ID, "iam:ListAccessKeys") },
			call:     func(s setup) error { return listKeys(s.alpha.Account) },
			wantCode: "AccessDenied", wantStatus: 403,
			wantMsg: "User: arn:aws:sts::ACCOUNT:assumed-role/OrganizationAccountAccessRole/awstest is not authorized to perform: iam:ListAccessKeys on resource: arn:aws:iam::ACCOUNT:user/alice with an explicit deny in a service control policy",
		},
		{
			name: "other action in the account",
			deny: func(s setup) { s.p.DenyActions(s.alpha.ID, "iam:ListAccessKeys") },
			call: func(s setup) error {
				_, err := s.alpha.IAM.ListUsers(ctx, &iam.ListUsersInput{})
				return err
			},
		},
		{
			name: "same action in another account",
			deny: func(s setup) { s.p.DenyActions(s.alpha.ID, "iam:ListAccessKeys") },
			call: func(s setup) error {
				s.beta.User(s.t, "bob")
				_, err := s.beta.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")})
				return err
			},
		},
		{
			name: "same action in the management account",
			deny: func(s setup) { s.p.DenyActions(s.alpha.ID, "iam:ListAccessKeys") },
			call: func(s setup) error { return listKeys(s.o.Management) },
			// alice exists in alpha only: the call reached moto.
			wantCode: "NoSuchEntity", wantStatus: 404,
		},
		{
			name:     "wildcard",
			deny:     func(s setup) { s.p.DenyActions(s.alpha.ID, "IAM:List*") },
			call:     func(s setup) error { return listKeys(s.alpha.Account) },
			wantCode: "AccessDenied", wantStatus: 403,
		},
		{
			name: "a user's own key in the account",
			deny: func(s setup) { s.p.DenyActions(s.alpha.ID, "iam:ListAccessKeys") },
			call: func(s setup) error {
				cfg := s.alpha.Config.Copy()
				cfg.Credentials = credentials.NewStaticCredentialsProvider(s.aliceKey, s.aliceSecret, "")
				_, err := iam.NewFromConfig(cfg).ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("alice")})
				return err
			},
			wantCode: "AccessDenied", wantStatus: 403,
			wantMsg: "User: arn:aws:iam::ACCOUNT:user/alice is not authorized",
		},
		{
			name: "json service",
			deny: func(s setup) { s.p.DenyActions(s.alpha.ID, "secretsmanager:*") },
			call: func(s setup) error {
				_, err := s.alpha.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("iam-access-keys/alice"), SecretString: aws.String("s")})
				return err
			},
			wantCode: "AccessDeniedException", wantStatus: 400,
			wantMsg: "is not authorized to perform: secretsmanager:CreateSecret with an explicit deny in a service control policy",
		},
		{
			name: "sts in the hub",
			deny: func(s setup) { s.p.DenyActions(awstest.DefaultAccount, "sts:AssumeRole") },
			call: func(s setup) error {
				_, err := sts.NewFromConfig(assume(s.o, roleARN(s.alpha.ID, "KeyRotorMember"))).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
				return err
			},
			wantCode: "AccessDenied", wantStatus: 403,
			wantMsg: "User: arn:aws:sts::123456789012:user/moto is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::ACCOUNT:role/KeyRotorMember with an explicit deny",
		},
		{
			name: "lifted",
			deny: func(s setup) {
				s.p.DenyActions(s.alpha.ID, "iam:ListAccessKeys", "iam:ListUsers")
				s.p.AllowActions(s.alpha.ID, "iam:ListAccessKeys")
			},
			call: func(s setup) error { return listKeys(s.alpha.Account) },
		},
		{
			name: "all lifted",
			deny: func(s setup) {
				s.p.DenyActions(s.alpha.ID, "iam:ListAccessKeys", "iam:*")
				s.p.AllowActions(s.alpha.ID)
			},
			call: func(s setup) error { return listKeys(s.alpha.Account) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, p := orgThrough(t, true)
			s := setup{t: t, o: o, p: p, alpha: o.Member(t, "alpha"), beta: o.Member(t, "beta")}
			s.aliceKey, s.aliceSecret = s.alpha.KeyWithSecret(t, "alice") // through the proxy: it learns the key's account
			if got := p.AccountOf(s.aliceKey); got != s.alpha.ID {
				t.Fatalf("AccountOf(alice's key) = %s; want %s", got, s.alpha.ID)
			}
			tt.deny(s)
			err := tt.call(s)
			code, status, msg := apiError(err)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("call: %v; want it through", err)
				}
				return
			}
			if code != tt.wantCode || status != tt.wantStatus {
				t.Fatalf("call: %v (%s, HTTP %d); want %s, HTTP %d", err, code, status, tt.wantCode, tt.wantStatus)
			}
			if want := strings.ReplaceAll(tt.wantMsg, "ACCOUNT", s.alpha.ID); !strings.Contains(msg, want) {
				t.Errorf("message %q; want %q in it", msg, want)
			}
		})
	}

	// A denied write never reaches moto.
	t.Run("denied write", func(t *testing.T) {
		o, p := orgThrough(t, false)
		alpha := o.Member(t, "alpha")
		p.DenyActions(alpha.ID, "iam:CreateUser")
		if _, err := alpha.IAM.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String("mallory")}); err == nil {
			t.Fatal("CreateUser went through")
		}
		p.AllowActions(alpha.ID)
		if _, err := alpha.IAM.GetUser(ctx, &iam.GetUserInput{UserName: aws.String("mallory")}); !errors.As(err, new(*iamtypes.NoSuchEntityException)) {
			t.Fatalf("GetUser(mallory) = %v; want NoSuchEntity", err)
		}
	})
}

// TestDenyFormats: each protocol's access denied answer, on the wire.
func TestDenyFormats(t *testing.T) {
	tests := []struct {
		name       string
		req        raw
		deny       string
		wantStatus int
		wantBody   []string
		wantHeader string // X-Amzn-ErrorType
	}{
		{"iam", query("iam", "ListAccessKeys"), "iam:ListAccessKeys", 403,
			[]string{`<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>User: arn:aws:sts::123456789012:user/moto is not authorized to perform: iam:ListAccessKeys with an explicit deny in a service control policy</Message></Error><RequestId>`}, ""},
		{"sts", query("sts", "GetCallerIdentity"), "sts:GetCallerIdentity", 403,
			[]string{`<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type><Code>AccessDenied</Code>`}, ""},
		{"sns", query("sns", "Publish"), "sns:Publish", 403, []string{`xmlns="http://sns.amazonaws.com/doc/2010-03-31/"`, `<Code>AuthorizationError</Code>`}, ""},
		{"secrets manager", jsonCall("secretsmanager", "secretsmanager.GetSecretValue"), "secretsmanager:GetSecretValue", 400,
			[]string{`{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:user/moto is not authorized to perform: secretsmanager:GetSecretValue with an explicit deny in a service control policy"}`}, "AccessDeniedException"},
		{"ses v2", raw{service: "ses", method: "POST", path: "/v2/email/outbound-emails", form: "{}", contentType: "application/json"}, "ses:SendEmail", 403,
			[]string{`"message":`}, "AccessDeniedException"},
		{"s3", raw{service: "s3", method: "GET", path: "/b/k"}, "s3:GetObject", 403, []string{`<Code>AccessDenied</Code>`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, p := startStub(t)
			p.DenyActions(faultproxy.DefaultAccount, tt.deny)
			resp, body := sendRaw(t, tt.req, p.URL())
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d; want %d", resp.StatusCode, tt.wantStatus)
			}
			for _, w := range tt.wantBody {
				if !strings.Contains(body, w) {
					t.Errorf("body %s; want %s in it", body, w)
				}
			}
			if got := resp.Header.Get("X-Amzn-ErrorType"); got != tt.wantHeader {
				t.Errorf("X-Amzn-ErrorType %q; want %q", got, tt.wantHeader)
			}
			if got := s.got(); len(got) != 0 {
				t.Errorf("the target got %q; want nothing", got)
			}
			// Another account's denial lets it through.
			p.AllowActions(faultproxy.DefaultAccount)
			p.DenyActions("111111111111", tt.deny)
			if resp, _ := sendRaw(t, tt.req, p.URL()); resp.StatusCode != http.StatusOK {
				t.Errorf("with a denial in another account: status %d; want 200", resp.StatusCode)
			}
		})
	}
	// An unsigned call has no account to deny in.
	_, p := startStub(t)
	p.DenyActions(faultproxy.DefaultAccount, "*")
	if resp, _ := sendRaw(t, raw{method: "POST", path: "/", target: "DynamoDB_20120810.GetItem", form: "{}", contentType: "application/x-amz-json-1.0"}, p.URL()); resp.StatusCode != http.StatusOK {
		t.Errorf("unsigned call: status %d; want 200", resp.StatusCode)
	}
	if got := p.AccountOf(""); got != "" {
		t.Errorf(`AccountOf("") = %q; want ""`, got)
	}
	if got := p.AccountOf("AKIDNEVERSEEN"); got != faultproxy.DefaultAccount {
		t.Errorf("AccountOf(unknown key) = %q; want %s", got, faultproxy.DefaultAccount)
	}
}

// sendRaw sends a hand-made request signed by a key the proxy has not
// seen issued, and returns the answer and its body.
func sendRaw(t *testing.T, q raw, base string) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if q.form != "" {
		body = strings.NewReader(q.form)
	}
	req, err := http.NewRequest(q.method, base+q.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if q.service != "" {
		req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260101/us-east-1/"+q.service+"/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	}
	if q.target != "" {
		req.Header.Set("X-Amz-Target", q.target)
	}
	switch {
	case q.contentType != "":
		req.Header.Set("Content-Type", q.contentType)
	case q.form != "" && q.target == "":
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	}
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}
