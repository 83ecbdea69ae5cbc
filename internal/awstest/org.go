package awstest

// An emulated AWS Organization for the organization mode's tests: the
// default account as the management account, member accounts in OUs, and
// clients acting in each member (through sts:AssumeRole, as the hub
// reaches its members), plus a deployment of the member stack
// (infra/member.go) the way CloudFormation would make it. The work is
// internal/memberstack's (which keyrotor demo uses too); these wrappers
// fail the test on an error and give each member an Account's clients.
//
// moto 5.2.1 emulates several accounts in one server: credentials from
// AssumeRole into arn:aws:iam::<member>:role/... act in that member. It
// neither checks that the role exists nor that it trusts the caller: the
// fault proxy's RoleChecks does the first.

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/internal/memberstack"
	"github.com/keyrotor/keyrotor/shared/awsconf"
)

const (
	// DefaultAccount is moto's default account: the static test
	// credentials act in it, and it is the management account of an Org.
	DefaultAccount = "123456789012"
	// OrganizationAccessRole is the role Organizations creates in every
	// account it creates (CreateAccount's RoleName default), trusting the
	// management account; moto creates it too.
	OrganizationAccessRole = memberstack.OrganizationAccessRole
)

// MemberSpec names a member account to create and the OU (by name, directly
// under the root) to put it in; an empty OU leaves it under the root.
type MemberSpec = memberstack.MemberSpec

// Org is an emulated organization whose management account is the default
// account.
type Org struct {
	Endpoint   string
	Management *Account
	// Organizations is the management account's Organizations client.
	Organizations *organizations.Client
	ID            string            // o-...
	Root          string            // r-...
	OUs           map[string]string // OU name -> OU id (ou-...)
	Members       []Member          // in the order of the spec
}

// Member is a member account of an Org. Its Account's clients act in the
// member account: their credentials come from sts:AssumeRole, through the
// Org's endpoint, into the member's OrganizationAccountAccessRole.
type Member struct {
	ID, Name string
	OU       string // the OU's name ("" : under the root)
	OUID     string // the OU's id, or the root's id
	*Account
}

// Member returns the member named name.
func (o *Org) Member(t testing.TB, name string) Member {
	t.Helper()
	for _, m := range o.Members {
		if m.Name == name {
			return m
		}
	}
	t.Fatalf("organization has no member %q", name)
	return Member{}
}

// NewOrg makes the default account at endpoint (moto, or the fault proxy
// in front of it) the management account of an organization (created with
// all features if there is none), creates the OUs the spec names under the
// root, creates each member account (reusing an account of that name) and
// moves it into its OU: memberstack.NewOrg, failing the test on an error.
// Each Member's clients act in the member account; a GetCallerIdentity
// checks it. opts tune the clients as in Connect.
func NewOrg(t testing.TB, endpoint string, spec []MemberSpec, opts ...func(*awsconf.Options)) *Org {
	t.Helper()
	mgmt := Connect(t, endpoint, opts...)
	mo, err := memberstack.NewOrg(context.Background(), mgmt.Config, "awstest", spec)
	if err != nil {
		t.Fatalf("emulated organization: %v", err)
	}
	if mo.Management != DefaultAccount {
		t.Fatalf("organization %s is managed by %s, not the default account %s", mo.ID, mo.Management, DefaultAccount)
	}
	o := &Org{Endpoint: endpoint, Management: mgmt, Organizations: organizations.NewFromConfig(mgmt.Config),
		ID: mo.ID, Root: mo.Root, OUs: mo.OUs}
	for _, m := range mo.Members {
		o.Members = append(o.Members, Member{ID: m.ID, Name: m.Name, OU: m.OU, OUID: m.OUID, Account: accountFrom(endpoint, m.Config)})
	}
	return o
}

// accountFrom builds an Account's clients from cfg, as Connect does.
func accountFrom(endpoint string, cfg aws.Config) *Account {
	return &Account{
		Endpoint: endpoint, Config: cfg,
		IAM: iam.NewFromConfig(cfg), Secrets: secretsmanager.NewFromConfig(cfg), SES: sesv2.NewFromConfig(cfg),
		SNS: sns.NewFromConfig(cfg), S3: s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true; o.DisableLogOutputChecksumValidationSkipped = true }),
		DynamoDB: dynamodb.NewFromConfig(cfg),
	}
}

// The member stack's template.

var (
	templateMu    sync.Mutex
	templateCache = map[string]string{}
)

// MemberTemplate synthesizes the member stack (infra/member.go) as `make
// synth` does, `go run ./infra` from the module's root, with cdk.json's
// context plus hubAccount=DefaultAccount and the key/value pairs of kv
// (JSON values, or plain strings), and returns the KeyRotorMember
// template's JSON. It synthesizes once per test binary and context (about
// 10 s warm). The hub stack is synthesized too, so its assets (make build)
// must exist.
func MemberTemplate(t testing.TB, kv ...string) string {
	t.Helper()
	if len(kv)%2 != 0 {
		t.Fatalf("MemberTemplate: context %q is not key/value pairs", kv)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Context map[string]any `json:"context"`
	}
	b, err := os.ReadFile(filepath.Join(root, "cdk.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatalf("cdk.json: %v", err)
	}
	ctxValues := file.Context
	if ctxValues == nil {
		ctxValues = map[string]any{}
	}
	ctxValues["hubAccount"] = DefaultAccount
	ctxValues["localRun"] = true // a template for the emulator: cdk.json's placeholder sender is fine
	for i := 0; i < len(kv); i += 2 {
		var v any
		if json.Unmarshal([]byte(kv[i+1]), &v) != nil {
			v = kv[i+1]
		}
		ctxValues[kv[i]] = v
	}
	cj, err := json.Marshal(ctxValues) // sorted keys: a stable cache key
	if err != nil {
		t.Fatal(err)
	}
	templateMu.Lock()
	defer templateMu.Unlock()
	if s, ok := templateCache[string(cj)]; ok {
		return s
	}
	out, err := os.MkdirTemp("", "keyrotor-member-synth-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(out)
	cmd := exec.Command("go", "run", "./infra")
	cmd.Dir = root
	// With CDK_CONTEXT_JSON set, infra reads no cdk.json: the whole
	// context is here, as the CDK CLI passes it.
	cmd.Env = append(os.Environ(), "CDK_OUTDIR="+out, "CDK_CONTEXT_JSON="+string(cj))
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("synthesize the member stack (go run ./infra; the hub's assets come from make build): %v\n%s", err, msg)
	}
	body, err := os.ReadFile(filepath.Join(out, "KeyRotorMember.template.json"))
	if err != nil {
		t.Fatalf("synthesize the member stack: %v", err)
	}
	templateCache[string(cj)] = string(body)
	return string(body)
}

// moduleRoot finds the directory of go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = up
	}
}

// DeployMemberStack creates in the member account what CloudFormation
// creates from the member stack's template: template is a template file's
// path (cdk.out/KeyRotorMember.template.json) or the template's JSON
// itself (MemberTemplate). It returns the stack's outputs (MemberRoleArn,
// MemberKeyArn). See memberstack.Deploy for what it supports.
func (m Member) DeployMemberStack(t testing.TB, template string) map[string]string {
	t.Helper()
	return m.DeployMemberStackWith(t, template, nil)
}

// DeployMemberStackWith is DeployMemberStack with values for the
// template's parameters (such as ExcludedUserPaths).
func (m Member) DeployMemberStackWith(t testing.TB, template string, params map[string]string) map[string]string {
	t.Helper()
	body := []byte(template)
	if !strings.HasPrefix(strings.TrimSpace(template), "{") {
		b, err := os.ReadFile(template)
		if err != nil {
			t.Fatalf("read member template: %v", err)
		}
		body = b
	}
	outputs, err := memberstack.DeployWith(context.Background(), m.Config, m.ID, body, params)
	if err != nil {
		t.Fatalf("deploy the member stack in %s (%s): %v", m.Name, m.ID, err)
	}
	return outputs
}
