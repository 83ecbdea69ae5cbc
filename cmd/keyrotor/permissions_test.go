package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	ghemu "github.com/keyrotor/keyrotor/internal/emulators/github"
	glemu "github.com/keyrotor/keyrotor/internal/emulators/gitlab"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// permExceptions are actions a role may allow although no local run can
// show its function calling them: the fault proxy sees only the calls a
// function's own code sends to the endpoint. An exception with needs
// applies only once the function was seen calling that action too (the
// call the exception goes with). The hand-kept table's template test
// (infra's TestLeastPrivilege) still checks each of them.
var permExceptions = []struct{ fn, action, needs, why string }{
	// The Lambda service writes a function's logs to its log group with the
	// function's role; the function's code never calls CloudWatch Logs (and
	// local runs write the logs to files).
	{"", "logs:CreateLogStream", "", "the Lambda service writes the function's logs with its role"},
	{"", "logs:PutLogEvents", "", "the Lambda service writes the function's logs with its role"},
	// No function calls KMS itself. In AWS, Secrets Manager, S3, SNS and
	// DynamoDB call KMS on the calling function's behalf (kms:ViaService),
	// authorized by the function's role; moto encrypts nothing with the
	// key, so there is no such call to see, locally or through the proxy.
	{"", "kms:*", "", "Secrets Manager, S3, SNS and DynamoDB call KMS on the function's behalf (kms:ViaService); moto makes no such call"},
	// summarize reads objects that may be missing (getJSON treats NoSuchKey
	// as empty). S3 answers a GetObject of a missing key with 404 NoSuchKey
	// only to a caller allowed s3:ListBucket on the bucket, and with 403
	// AccessDenied to others (Amazon S3 API Reference, GetObject,
	// "Permissions"), so the grant changes an answer without any call of
	// its own; moto answers 404 whatever the policy.
	{"summarize", "s3:ListBucket", "s3:GetObject", "GetObject answers NoSuchKey (not AccessDenied) for a missing key only with s3:ListBucket"},
	// find asks Step Functions whether a leased rotation's execution still
	// runs, just before it releases the lease (a dynamodb:PutItem). Local
	// runs mean to answer DescribeExecution from the runner itself
	// (AWS_ENDPOINT_URL_SFN, internal/local's describeExecution); where the
	// function's SDK goes there, the call never passes the proxy.
	// CreateSecret with Tags is authorized by secretsmanager:TagResource too
	// (Secrets Manager API Reference, CreateSecret, "Required permissions");
	// moto checks no permission, so the proxy sees only CreateSecret.
	{"create-and-store", "secretsmanager:TagResource", "secretsmanager:CreateSecret", "CreateSecret with tags needs TagResource too; moto checks no permission"},
	{"find", "states:DescribeExecution", "dynamodb:PutItem", "local runs may answer DescribeExecution from the runner, not through the proxy"},
}

// permNeedsStar are actions that support no resource-level permission
// (Service Authorization Reference): their statement's resource is "*".
var permNeedsStar = map[string]bool{"iam:GenerateCredentialReport": true, "iam:GetCredentialReport": true, "ssm:DescribeParameters": true}

// TestSlowPermissionsFromBehaviour derives each function's permissions from
// what it does: for every configuration that changes which calls the
// functions make, it synthesizes the stack with that context, runs whole
// rotations (grace executions and deletions included) through the fault
// proxy, attributes every call to the function that signed it, and checks
// the calls against the roles of that very template: every call allowed,
// on a resource of its service (not "*" unless IAM needs it), and, over all
// configurations, no action allowed that no function was seen to call
// (permExceptions lists the few that cannot be seen locally, and why).
func TestSlowPermissionsFromBehaviour(t *testing.T) {
	requireBuild(t)
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range local.FunctionDirs {
		if _, err := os.Stat(filepath.Join(root, "build", dir, "bootstrap")); err != nil {
			t.Fatalf("build/%s/bootstrap missing: synthesis packages it (run `make build`)", dir)
		}
	}
	node := node22(root)
	if os.Getenv("KEYROTOR_NODE") == "" && node != "" {
		t.Setenv("KEYROTOR_NODE", node) // the local engine, as the Makefile sets it
	}
	sy := newPermSynth(t, root, node)
	// Configurations that need nothing from the emulator synthesize in the
	// background while earlier ones run.
	// The default configuration also reserves 2 concurrent executions per
	// per-user function: the local Lambda server then answers beyond it
	// with TooManyRequestsException, as Lambda does, and the runs must
	// still converge (Lambda.TooManyRequestsException is retried).
	defaultTmpl := sy.start(t, "default", map[string]any{"lambdaConcurrency": 2})
	retireTmpl := sy.start(t, "retirePasswords", map[string]any{"retirePasswords": true})
	exemptTmpl := sy.start(t, "exemptGroup", map[string]any{"exemptGroup": "breakglass"})
	adoptTmpl := sy.start(t, "adoptionDays", map[string]any{"adoptionDays": 3})
	deliverTmpl := sy.start(t, "delivery", map[string]any{"deliveryParameters": []any{"/ci/*"}, "deliverySecrets": []any{"ci/aws"}})

	var results []*permResult

	// default: two runs. The first fails (every UpdateAccessKey answers
	// 500) and leaves its rotations leased, after one CreateSecret failure
	// that makes create-and-store delete the key it could not store. The
	// second finds the failed execution's leases and releases them, and a
	// person acts in three places: deletes an old key just before
	// create-and-store resumes its rotation, deactivates a new key just
	// before deactivate looks, and re-activates an old key during its grace
	// period, so create-and-store, deactivate and delete each end a rotation
	// and tell the admins. One user's secret exists already (stored by an
	// earlier keyrotor, before it put resource policies) and another's is
	// scheduled for deletion (a person deleted it), so create-and-store
	// adopts, protects and restores secrets.
	t.Run("default", func(t *testing.T) {
		a := awstest.New(t)
		old := seed(t, a)
		ctx := context.Background()
		tmpl := defaultTmpl(t)
		p, ps := permProxy(t, a)
		ps.before("create-and-store", "ListAccessKeys", "bob", earlierSecret(t, a, "bob", false))
		ps.before("create-and-store", "ListAccessKeys", "no-mail", earlierSecret(t, a, "no-mail", true))
		p.FailRate([]string{"UpdateAccessKey"}, 1, faultproxy.ServerError, 1)
		// alice's secret, which no earlier keyrotor stored: bob's and
		// no-mail's CreateSecret find theirs, so a failure there is not
		// the one that discards a key, and the executions run at once.
		p.FailNthContaining("CreateSecret", 1, faultproxy.ServerError, `"Name":"iam-access-keys/alice"`)
		if code, _, errOut := permRun(t, tmpl, ps.url(), "--name", "perm-default-1"); code == 0 {
			t.Fatalf("the first run succeeded although every UpdateAccessKey failed\n%s", errOut)
		}
		if n := p.Injected()["CreateSecret"]; n != 1 {
			t.Fatalf("alice's CreateSecret failed %d times; want once", n)
		}
		p.Clear()
		newKey := func(user string) string {
			for id := range a.Keys(t, user) {
				if id != old[user] {
					return id
				}
			}
			t.Errorf("%s has no new key", user)
			return ""
		}
		ps.before("create-and-store", "ListAccessKeys", "no-mail", func() error {
			_, err := a.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("no-mail"), AccessKeyId: aws.String(old["no-mail"])})
			return err
		})
		ps.before("deactivate", "ListAccessKeys", "alice", func() error {
			_, err := a.IAM.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String(newKey("alice")), Status: iamtypes.StatusTypeInactive})
			return err
		})
		ps.before("delete", "ListAccessKeys", "bob", func() error {
			_, err := a.IAM.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String("bob"), AccessKeyId: aws.String(old["bob"]), Status: iamtypes.StatusTypeActive})
			return err
		})
		if code, _, errOut := permRun(t, tmpl, ps.url(), "--name", "perm-default-2"); code != 0 {
			t.Fatalf("the second run exit %d\n%s", code, errOut)
		}
		ps.check(t)
		results = append(results, newPermResult(t, "default", tmpl, p.Log()))
	})

	// retirePasswords: an unused console password is noticed (find reads
	// the user), then removed after its grace (delete).
	t.Run("retirePasswords", func(t *testing.T) {
		a := awstest.New(t)
		seed(t, a)
		a.Clock(t, -100*day)
		a.User(t, "console-only", "email", "console@example.com")
		if _, err := a.IAM.CreateLoginProfile(context.Background(), &iam.CreateLoginProfileInput{UserName: aws.String("console-only"), Password: aws.String("Long-enough-pass-1!")}); err != nil {
			t.Fatal(err)
		}
		a.Clock(t, 0)
		tmpl := retireTmpl(t)
		p, ps := permProxy(t, a)
		if code, _, errOut := permRun(t, tmpl, ps.url()); code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		if _, err := a.IAM.GetLoginProfile(context.Background(), &iam.GetLoginProfileInput{UserName: aws.String("console-only")}); err == nil {
			t.Error("the unused console password was not removed")
		}
		results = append(results, newPermResult(t, "retirePasswords", tmpl, p.Log()))
	})

	// exemptGroup: find reads the group's members.
	t.Run("exemptGroup", func(t *testing.T) {
		a := awstest.New(t)
		seed(t, a)
		ctx := context.Background()
		a.Clock(t, -200*day)
		a.User(t, "glass", "email", "glass@example.com")
		a.Key(t, "glass")
		a.Clock(t, 0)
		if _, err := a.IAM.CreateGroup(ctx, &iam.CreateGroupInput{GroupName: aws.String("breakglass")}); err != nil {
			t.Fatal(err)
		}
		if _, err := a.IAM.AddUserToGroup(ctx, &iam.AddUserToGroupInput{GroupName: aws.String("breakglass"), UserName: aws.String("glass")}); err != nil {
			t.Fatal(err)
		}
		tmpl := exemptTmpl(t)
		p, ps := permProxy(t, a)
		if code, _, errOut := permRun(t, tmpl, ps.url()); code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		if len(a.Keys(t, "glass")) != 1 {
			t.Errorf("the exempt group's member was rotated: %v", a.Keys(t, "glass"))
		}
		results = append(results, newPermResult(t, "exemptGroup", tmpl, p.Log()))
	})

	// kmsKeyArn: an imported key (created in the emulator) instead of the
	// stack's own; it changes the roles' key resources, and secrets are
	// created with it.
	t.Run("kmsKeyArn", func(t *testing.T) {
		a := awstest.New(t)
		seed(t, a)
		out, err := kms.NewFromConfig(a.Config).CreateKey(context.Background(), &kms.CreateKeyInput{Description: aws.String("keyrotor permissions test: an imported key")})
		if err != nil {
			t.Fatal(err)
		}
		arn := aws.ToString(out.KeyMetadata.Arn)
		tmpl := sy.start(t, "kmsKeyArn", map[string]any{"kmsKeyArn": arn})(t)
		if !strings.Contains(readFile(t, tmpl), arn) {
			t.Fatalf("the template does not name the imported key %s", arn)
		}
		p, ps := permProxy(t, a)
		if code, _, errOut := permRun(t, tmpl, ps.url()); code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		results = append(results, newPermResult(t, "kmsKeyArn", tmpl, p.Log()))
	})

	// adoptionDays: each rotation's own execution checks both keys' last
	// use (check-adoption), reminds the owners and tells the admins how it
	// switched over; nobody adopts the new keys here, so the window (cut
	// to 12 s, checked every 3 s: the half-way reminder's check would
	// have to slip 6 s to miss it) ends on its deadline.
	t.Run("adoptionDays", func(t *testing.T) {
		a := awstest.New(t)
		old := seed(t, a)
		tmpl := adoptTmpl(t)
		p, ps := permProxy(t, a)
		if code, _, errOut := permRun(t, tmpl, ps.url(), "--adoption-window", "12s", "--adoption-check", "3s"); code != 0 {
			t.Fatalf("exit %d\n%s", code, errOut)
		}
		if r := allRecords(t, a)[old["alice"]]; r == nil || r.Adoption == nil || r.Adoption.SwitchOver != ledger.SwitchDeadline {
			t.Fatalf("alice's rotation did not run an adoption window to its deadline: %+v", r)
		}
		results = append(results, newPermResult(t, "adoptionDays", tmpl, p.Log()))
	})

	// delivery: alice's new key goes to a GitHub repository secret, two
	// SSM parameters and a Secrets Manager secret (deliver reads its
	// document, the stored key and the hub's token, and writes and reads
	// back each); bob's GitLab project answers 500, so deliver records the
	// failure and tells the admins.
	t.Run("delivery", func(t *testing.T) {
		a := awstest.New(t)
		seed(t, a)
		ctx := context.Background()
		tmpl := deliverTmpl(t)
		gh, err := ghemu.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { gh.Close() })
		gh.AddRepo("octo/app")
		gl, err := glemu.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(gl.Close)
		gl.AddProject("group/app")
		gl.FailUntil(time.Now().Add(time.Hour))
		for name, value := range map[string]string{"keyrotor-delivery/github": gh.Token(), "keyrotor-delivery/gitlab": gl.Token()} {
			if _, err := a.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(value)}); err != nil {
				t.Fatal(err)
			}
		}
		// Created empty by its owner, for keyrotor to fill: deliver finds
		// it with DescribeSecret.
		if _, err := a.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("ci/aws")}); err != nil {
			t.Fatal(err)
		}
		rt, err := local.ReadTemplate(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		table := "keyrotor-" + rt.OfType("AWS::DynamoDB::Table")[0]
		a.Records(t, table)
		docs := &delivery.Store{API: a.DynamoDB, Table: table}
		for user, doc := range map[string]*delivery.Document{
			// No adoption window (nobody here would use the new key):
			// deactivated once every destination holds it.
			"alice": {Version: 1, Adoption: delivery.AdoptionOff, Destinations: []delivery.Spec{
				{Type: "github", Repository: "octo/app", Credential: "keyrotor-delivery/github", URL: gh.URL()},
				{Type: "ssm", IDName: "/ci/alice/id", SecretName: "/ci/alice/secret"},
				{Type: "secretsmanager", SecretID: "ci/aws"},
			}},
			"bob": {Version: 1, Destinations: []delivery.Spec{{Type: "gitlab", Project: "group/app", Credential: "keyrotor-delivery/gitlab", URL: gl.URL()}}},
		} {
			if err := docs.Put(ctx, "", user, doc, "test"); err != nil {
				t.Fatal(err)
			}
		}
		p, ps := permProxy(t, a)
		if code, _, errOut := permRun(t, tmpl, ps.url()); code == 0 || code == 1 {
			t.Fatalf("exit %d; want 3 (bob's rotation waits for its delivery)\n%s", code, errOut)
		}
		if v, _ := gh.Value("repo:octo/app", "AWS_ACCESS_KEY_ID"); v == "" {
			t.Fatal("alice's key was not delivered to GitHub")
		}
		results = append(results, newPermResult(t, "delivery", tmpl, p.Log()))
	})

	if len(results) != 6 {
		t.Fatalf("only %d of 6 configurations ran: no conclusion on unused permissions", len(results))
	}
	checkUnused(t, results)
}

// permResult is one configuration: its roles and what its functions did.
type permResult struct {
	config string
	roles  map[string][]permStatement // function dir -> its role's statements
	seen   map[string]map[string]bool // function dir -> actions called
}

// newPermResult checks each call a function made against its role in the
// template and returns the configuration's result.
func newPermResult(t *testing.T, config, tmpl string, calls []faultproxy.Call) *permResult {
	t.Helper()
	r := &permResult{config: config, roles: permRoles(t, tmpl), seen: map[string]map[string]bool{}}
	unnamed := map[string]bool{}
	for _, c := range calls {
		fn := local.FunctionOfKeyID(c.AccessKeyID)
		if fn == "" {
			continue // the test's own calls, or a call signed with a user's key
		}
		if c.Action == "" {
			unnamed[fn+": "+c.Service+" "+c.Operation] = true
			continue
		}
		if r.seen[fn] == nil {
			r.seen[fn] = map[string]bool{}
		}
		r.seen[fn][c.Action] = true
	}
	for u := range unnamed {
		t.Errorf("config %s: the proxy cannot name the IAM action of %s, so it is unchecked: teach faultproxy.Action its name", config, u)
	}
	for _, fn := range sortedKeysOf(r.seen) {
		if _, ok := r.roles[fn]; !ok {
			t.Errorf("config %s: function %s made calls but the template has no role for it", config, fn)
			continue
		}
		for _, action := range sortedKeysOf(r.seen[fn]) {
			var matching []permStatement
			for _, st := range r.roles[fn] {
				if st.allows(action) {
					matching = append(matching, st)
				}
			}
			if len(matching) == 0 {
				t.Errorf("config %s: function %s called %s, which its role does not allow", config, fn, action)
				continue
			}
			if msg := scoped(action, matching); msg != "" {
				t.Errorf("config %s: function %s calls %s: %s", config, fn, action, msg)
			}
		}
		t.Logf("config %s: %s called %s", config, fn, strings.Join(sortedKeysOf(r.seen[fn]), " "))
	}
	return r
}

// scoped checks loosely that a call is allowed on resources of its own
// service, and on "*" only when IAM offers nothing narrower.
func scoped(action string, matching []permStatement) string {
	if permNeedsStar[action] {
		return ""
	}
	service, _, _ := strings.Cut(action, ":")
	for _, st := range matching {
		narrow, own := true, false
		for _, res := range st.resources {
			if res == "*" {
				narrow = false
			}
			if arnService(res) == service {
				own = true
			}
		}
		if narrow && own {
			return ""
		}
	}
	var all [][]string
	for _, st := range matching {
		all = append(all, st.resources)
	}
	return fmt.Sprintf("allowed only on %v: want a statement on resources of %s, not \"*\"", all, service)
}

// arnService is the service field of an ARN ("arn:aws:s3:::bucket/*" -> s3).
func arnService(arn string) string {
	parts := strings.SplitN(arn, ":", 4)
	if len(parts) < 4 || parts[0] != "arn" {
		return ""
	}
	return parts[2]
}

// checkUnused: over all configurations, every action a role allows was seen
// called by its function in some configuration, or is a permException.
// Actions allowed in a configuration where they were not called are logged
// (they may be needed in another).
func checkUnused(t *testing.T, results []*permResult) {
	t.Helper()
	seen := map[string]map[string]bool{}
	for _, r := range results {
		for fn, as := range r.seen {
			if seen[fn] == nil {
				seen[fn] = map[string]bool{}
			}
			for a := range as {
				seen[fn][a] = true
			}
		}
	}
	allowedIn := map[string]map[string][]string{} // fn -> pattern -> configs
	for _, r := range results {
		for _, fn := range sortedKeysOf(r.roles) {
			if allowedIn[fn] == nil {
				allowedIn[fn] = map[string][]string{}
			}
			var idle []string
			for _, st := range r.roles[fn] {
				for _, pat := range st.actions {
					if n := len(allowedIn[fn][pat]); n == 0 || allowedIn[fn][pat][n-1] != r.config {
						allowedIn[fn][pat] = append(allowedIn[fn][pat], r.config)
					}
					if !calledMatching(r.seen[fn], pat) && exception(fn, pat, r.seen[fn]) == "" {
						idle = append(idle, pat)
					}
				}
			}
			if len(idle) > 0 {
				t.Logf("config %s: %s's role allows %s, not called in this configuration", r.config, fn, strings.Join(idle, " "))
			}
		}
	}
	for _, fn := range sortedKeysOf(allowedIn) {
		excused := map[string][]string{} // why -> actions
		for _, pat := range sortedKeysOf(allowedIn[fn]) {
			if calledMatching(seen[fn], pat) {
				continue
			}
			if why := exception(fn, pat, seen[fn]); why != "" {
				excused[why] = append(excused[why], pat)
				continue
			}
			t.Errorf("function %s: its role allows %s (configurations %s) but it was never seen to call it in any configuration",
				fn, pat, strings.Join(allowedIn[fn][pat], ", "))
		}
		for _, why := range sortedKeysOf(excused) {
			t.Logf("%s: allowed, not seen called (%s): %s", fn, strings.Join(excused[why], " "), why)
		}
	}
}

func calledMatching(called map[string]bool, pattern string) bool {
	for a := range called {
		if iamMatch(pattern, a) {
			return true
		}
	}
	return false
}

// exception is why fn's role may allow pattern without fn calling it, or "".
func exception(fn, pattern string, called map[string]bool) string {
	for _, e := range permExceptions {
		if (e.fn == "" || e.fn == fn) && iamMatch(e.action, pattern) && (e.needs == "" || called[e.needs]) {
			return e.why
		}
	}
	return ""
}

// iamMatch matches an action against an IAM action pattern: case does not
// matter, * stands for any run of characters and ? for one.
func iamMatch(pattern, action string) bool {
	var re strings.Builder
	re.WriteString("(?i)^")
	for _, r := range pattern {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(action)
}

// permStatement is one Allow statement of a role, its resources resolved
// to ARN-like strings (references become ARNs of the resource's type).
type permStatement struct {
	actions, resources []string
}

func (s permStatement) allows(action string) bool {
	for _, p := range s.actions {
		if iamMatch(p, action) {
			return true
		}
	}
	return false
}

// permRoles reads, from a synthesized template, the statements of each
// keyrotor function's role: the role is the one the function's Role names
// (Fn::GetAtt), its statements those of the role's inline policies and of
// every AWS::IAM::Policy and AWS::IAM::ManagedPolicy attached to it.
func permRoles(t *testing.T, path string) map[string][]permStatement {
	t.Helper()
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
			Metadata   map[string]any
		}
	}
	if err := json.Unmarshal([]byte(readFile(t, path)), &tmpl); err != nil {
		t.Fatalf("template %s: %v", path, err)
	}
	arnOf := func(id string) string {
		r := tmpl.Resources[id]
		switch r.Type {
		case "AWS::DynamoDB::Table":
			return "arn:aws:dynamodb:us-east-1:123456789012:table/" + id
		case "AWS::SNS::Topic":
			return "arn:aws:sns:us-east-1:123456789012:" + id
		case "AWS::S3::Bucket":
			return "arn:aws:s3:::" + strings.ToLower(id)
		case "AWS::KMS::Key":
			return "arn:aws:kms:us-east-1:123456789012:key/" + id
		case "AWS::Logs::LogGroup":
			return "arn:aws:logs:us-east-1:123456789012:log-group:" + id + ":*"
		case "AWS::StepFunctions::StateMachine":
			return "arn:aws:states:us-east-1:123456789012:stateMachine:" + id
		case "AWS::Lambda::Function":
			return "arn:aws:lambda:us-east-1:123456789012:function:" + id
		case "AWS::IAM::Role":
			return "arn:aws:iam::123456789012:role/" + id
		}
		return "arn:aws:unknown:::" + id
	}
	resolver := local.Resolver{
		Ref: func(id string) (string, bool) {
			if tmpl.Resources[id].Type == "AWS::SNS::Topic" || tmpl.Resources[id].Type == "AWS::IAM::ManagedPolicy" {
				return arnOf(id), true // Ref of these is their ARN
			}
			return strings.ToLower(id), true // of buckets, tables...: the name
		},
		GetAtt: func(id, attr string) (string, bool) {
			if attr == "Arn" {
				return arnOf(id), true
			}
			return id + "." + attr, true
		},
	}
	statements := func(doc any) []permStatement {
		var out []permStatement
		d, _ := doc.(map[string]any)
		sts, _ := d["Statement"].([]any)
		for _, raw := range sts {
			st, _ := raw.(map[string]any)
			if st["Effect"] == "Deny" && (st["Sid"] == "DenyExemptUsers" || st["Sid"] == "DenyExcludedUserPaths" || st["Sid"] == "DenyExcludedAccounts") {
				// A protection, not a grant: no run here acts on an exempt
				// user or an excluded account (TestProtectedUsersDenied,
				// TestHubAssumeRoleScope, TestMotoOrganizationMemberProtectsUsers).
				continue
			}
			if st["Effect"] != "Allow" || st["NotAction"] != nil || st["NotResource"] != nil {
				t.Errorf("template %s: a function role's statement is not a plain Allow (Action, Resource), which this test cannot evaluate: %v", path, st)
				continue
			}
			var s permStatement
			for _, a := range list(st["Action"]) {
				s.actions = append(s.actions, a.(string))
			}
			for _, r := range list(st["Resource"]) {
				res, err := resolver.Resolve(r)
				if err != nil {
					t.Errorf("template %s: resource %v: %v", path, r, err)
					continue
				}
				s.resources = append(s.resources, res)
			}
			out = append(out, s)
		}
		return out
	}
	roleFn := map[string]string{} // role logical id -> function dir
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::Lambda::Function" {
			continue
		}
		cdkPath, _ := r.Metadata["aws:cdk:path"].(string)
		for cid, dir := range local.FunctionDirs {
			if !strings.Contains(cdkPath, "/"+cid+"/") && !strings.HasPrefix(id, cid) {
				continue
			}
			ga, _ := r.Properties["Role"].(map[string]any)["Fn::GetAtt"].([]any)
			if len(ga) != 2 {
				t.Fatalf("template %s: function %s's Role is not a Fn::GetAtt of a role in the stack: %v", path, id, r.Properties["Role"])
			}
			roleFn[ga[0].(string)] = dir
		}
	}
	if len(roleFn) != len(local.FunctionDirs) {
		t.Fatalf("template %s: found the roles of %d functions (%v); want %d", path, len(roleFn), roleFn, len(local.FunctionDirs))
	}
	out := map[string][]permStatement{}
	for id, r := range tmpl.Resources {
		switch r.Type {
		case "AWS::IAM::Role":
			fn := roleFn[id]
			if fn == "" {
				continue
			}
			if mp := r.Properties["ManagedPolicyArns"]; mp != nil {
				t.Errorf("template %s: %s's role has managed policies, which this test cannot read: %v", path, fn, mp)
			}
			for _, p := range list(r.Properties["Policies"]) {
				out[fn] = append(out[fn], statements(p.(map[string]any)["PolicyDocument"])...)
			}
		case "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy":
			for _, ref := range list(r.Properties["Roles"]) {
				m, _ := ref.(map[string]any)
				name, _ := m["Ref"].(string)
				if fn := roleFn[name]; fn != "" {
					out[fn] = append(out[fn], statements(r.Properties["PolicyDocument"])...)
				}
			}
		}
	}
	return out
}

// list reads a CloudFormation value that may be one item or a list.
func list(v any) []any {
	switch x := v.(type) {
	case nil:
		return nil
	case []any:
		return x
	default:
		return []any{x}
	}
}

func sortedKeysOf[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// permRun runs a whole rotation with a short grace period, so grace
// executions and deletions happen in the run.
func permRun(t *testing.T, tmpl, endpoint string, extra ...string) (int, string, string) {
	t.Helper()
	args := []string{"run", "--endpoint", endpoint, "--template", tmpl, "--bin", binDir, "--work-dir", t.TempDir(), "--wait", "2s"}
	return keyrotor(t, "", append(args, extra...)...)
}

// node22 is the Node the Makefile gives jsii and the local engine (the npm
// node-<os>-<cpu> package), or "" to leave the choice to the environment.
func node22(root string) string {
	if n := os.Getenv("JSII_NODE"); n != "" {
		return n
	}
	cpu := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	n := filepath.Join(root, "node_modules", "node-"+runtime.GOOS+"-"+cpu, "bin", "node")
	if _, err := os.Stat(n); err != nil {
		return ""
	}
	return n
}

// permSynth synthesizes the stack with chosen context, one synthesis at a
// time, in the background.
type permSynth struct {
	root, bin, node string
	base            map[string]any // cdk.json's context
	mu              sync.Mutex     // one synthesis at a time: two cores
}

func newPermSynth(t *testing.T, root, node string) *permSynth {
	t.Helper()
	var cdk struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(root, "cdk.json"))), &cdk); err != nil {
		t.Fatalf("cdk.json: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "infra")
	cmd := exec.Command("go", "build", "-o", bin, "./infra")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./infra: %v\n%s", err, out)
	}
	return &permSynth{root: root, bin: bin, node: node, base: cdk.Context}
}

// start synthesizes the stack with cdk.json's context and overrides into a
// temporary directory; the function it returns waits for the template.
func (s *permSynth) start(t *testing.T, name string, overrides map[string]any) func(*testing.T) string {
	ctx := map[string]any{}
	for k, v := range s.base {
		ctx[k] = v
	}
	for k, v := range overrides {
		ctx[k] = v
	}
	ctx["localRun"] = true // a template for the emulator, as make synth writes
	cj, _ := json.Marshal(ctx)
	out := t.TempDir()
	done := make(chan struct{})
	t.Cleanup(func() { <-done }) // before out is removed
	var msg string
	go func() {
		defer close(done)
		s.mu.Lock()
		defer s.mu.Unlock()
		start := time.Now()
		// CDK_CONTEXT_JSON replaces cdk.json's context (infra/main.go), so
		// it carries the whole context.
		cmd := exec.Command(s.bin)
		cmd.Dir = s.root
		cmd.Env = append(os.Environ(), "CDK_OUTDIR="+out, "CDK_CONTEXT_JSON="+string(cj))
		if s.node != "" {
			cmd.Env = append(cmd.Env, "JSII_NODE="+s.node)
		}
		if b, err := cmd.CombinedOutput(); err != nil {
			msg = fmt.Sprintf("synthesize %s (%s): %v\n%s", name, cj, err, b)
			return
		}
		msg = fmt.Sprintf("synthesized %s in %s", name, time.Since(start).Round(100*time.Millisecond))
	}()
	return func(t *testing.T) string {
		t.Helper()
		<-done
		tmpl := filepath.Join(out, "KeyRotor.template.json")
		if _, err := os.Stat(tmpl); err != nil {
			t.Fatal(msg)
		}
		t.Log(msg)
		return tmpl
	}
}

// earlierSecret returns a person's act creating user's secret as an earlier
// keyrotor stored it (the deployment's key, keyrotor's tags, no resource
// policy), scheduled for deletion when deleted.
func earlierSecret(t *testing.T, a *awstest.Account, user string, deleted bool) func() error {
	return func() error {
		ctx := context.Background()
		kc := kms.NewFromConfig(a.Config)
		keys, err := kc.ListKeys(ctx, &kms.ListKeysInput{})
		if err != nil {
			return err
		}
		var key string
		for _, k := range keys.Keys {
			d, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyId})
			if err == nil && strings.HasPrefix(aws.ToString(d.KeyMetadata.Description), "keyrotor local Key") {
				key = aws.ToString(d.KeyMetadata.Arn)
			}
		}
		u, err := a.IAM.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(user)})
		if err != nil {
			return err
		}
		name := aws.String("iam-access-keys/" + user)
		if _, err := a.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: name, KmsKeyId: aws.String(key), SecretString: aws.String(`{"note":"an earlier key"}`),
			Tags: []smtypes.Tag{{Key: aws.String(rotation.TagUserID), Value: u.User.UserId}, {Key: aws.String(rotation.TagManaged), Value: aws.String("true")}}}); err != nil {
			return err
		}
		if deleted {
			_, err = a.Secrets.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: name, RecoveryWindowInDays: aws.Int64(7)})
		}
		return err
	}
}

// permProxy puts the fault proxy in front of the account's emulator and a
// person in front of the proxy.
func permProxy(t *testing.T, a *awstest.Account) (*faultproxy.Proxy, *person) {
	t.Helper()
	p, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)
	ps := newPerson(t, p.URL())
	return p, ps
}

// person forwards calls to the proxy and, just before a chosen function's
// chosen IAM call about a chosen user goes through, acts on the account as
// a person would (once): the one moment that makes a step take its path
// for "a person changed this meanwhile".
type person struct {
	srv  *httptest.Server
	mu   sync.Mutex
	acts []*personAct
}

type personAct struct {
	fn, op, user string
	do           func() error
	done         bool
	err          error
}

var credentialRE = regexp.MustCompile(`Credential=([^/,\s]+)/`)

func newPerson(t *testing.T, target string) *person {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	ps := &person{}
	ps.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if act := ps.match(r); act != nil {
			err := act.do()
			ps.mu.Lock()
			act.err = err
			ps.mu.Unlock()
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(ps.srv.Close)
	return ps
}

func (ps *person) url() string { return ps.srv.URL }

// before makes the person run do just before the first call op (an IAM
// Query operation) that function fn makes about user.
func (ps *person) before(fn, op, user string, do func() error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.acts = append(ps.acts, &personAct{fn: fn, op: op, user: user, do: do})
}

func (ps *person) match(r *http.Request) *personAct {
	m := credentialRE.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return nil
	}
	fn := local.FunctionOfKeyID(m[1])
	body, err := io.ReadAll(r.Body)
	r.Body.Close()
	r.Body = io.NopCloser(bytes.NewReader(body))
	if fn == "" || err != nil {
		return nil
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil
	}
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, a := range ps.acts {
		if !a.done && a.fn == fn && a.op == form.Get("Action") && a.user == form.Get("UserName") {
			a.done = true
			return a
		}
	}
	return nil
}

// check fails the test for every act that did not happen or failed.
func (ps *person) check(t *testing.T) {
	t.Helper()
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, a := range ps.acts {
		switch {
		case !a.done:
			t.Errorf("%s never called %s for %s: the person's act before it did not happen", a.fn, a.op, a.user)
		case a.err != nil:
			t.Errorf("the person's act before %s's %s for %s failed: %v", a.fn, a.op, a.user, a.err)
		}
	}
}
