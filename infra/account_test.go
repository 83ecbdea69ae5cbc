package main

// Template tests for what moto forgives and a real account does not
// (issue 11): the alarm must reach the admins, a deploy must fit a low
// Lambda concurrency quota, each role must allow what its code calls, and
// names must not collide across regions.

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/config"
)

const importedKey = "arn:aws:kms:us-east-1:123456789012:key/11111111-2222-3333-4444-555555555555"

var (
	importedOnce sync.Once
	imported     *synthesized
)

// withImportedKey synthesizes with kmsKeyArn set and reserved concurrency
// on, the opposite of defaultCtx in both.
func withImportedKey(t *testing.T) *synthesized {
	importedOnce.Do(func() {
		imported = synth(t, map[string]any{"kmsKeyArn": importedKey, "lambdaConcurrency": "5", "holdDays": "14", "adminEmails": "sec@example.com"})
	})
	if imported == nil {
		t.Fatal("synthesis failed earlier")
	}
	return imported
}

type resource struct {
	Type       string
	Properties map[string]any
}

func resources(t *testing.T, s *synthesized, typ string) map[string]resource {
	t.Helper()
	var tmpl struct{ Resources map[string]resource }
	if err := json.Unmarshal(s.raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	out := map[string]resource{}
	for id, r := range tmpl.Resources {
		if r.Type == typ {
			out[id] = r
		}
	}
	return out
}

// resolve renders a CloudFormation value with the local pseudo parameters
// (aws, us-east-1, 123456789012); Ref X is "X", GetAtt X.A is "X.A".
func resolve(t *testing.T, v any) string {
	t.Helper()
	s, err := local.Resolver{
		Ref:    func(id string) (string, bool) { return id, true },
		GetAtt: func(id, attr string) (string, bool) { return id + "." + attr, true },
	}.Resolve(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// statements returns the statements of a policy document whose principal
// is the service.
func serviceStatements(doc any, service string) []map[string]any {
	var out []map[string]any
	for _, st := range doc.(map[string]any)["Statement"].([]any) {
		m := st.(map[string]any)
		if p, ok := m["Principal"].(map[string]any); ok && p["Service"] == service {
			out = append(out, m)
		}
	}
	return out
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			out = append(out, e.(string))
		}
		return out
	}
	return nil
}

// TestAlarmReachesAdmins: the topic policy that EnforceSSL brings replaces
// SNS's default policy, so it must let this account's CloudWatch alarms
// publish; and the topic's key must be one whose policy lets CloudWatch use
// it, in both key configurations.
func TestAlarmReachesAdmins(t *testing.T) {
	for _, tc := range []struct {
		name string
		s    func(*testing.T) *synthesized
	}{{"stack key", get}, {"imported key", withImportedKey}} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s(t)
			topics := resources(t, s, "AWS::SNS::Topic")
			if len(topics) != 1 {
				t.Fatalf("%d topics; want 1", len(topics))
			}
			var topicID string
			var topic resource
			for id, r := range topics {
				topicID, topic = id, r
			}
			// The topic's key is the stack-created AdminTopicKey, never the
			// imported key (whose policy CDK cannot edit).
			keyRef := resolve(t, topic.Properties["KmsMasterKeyId"])
			if !strings.HasPrefix(keyRef, "AdminTopicKey") || !strings.HasSuffix(keyRef, ".Arn") {
				t.Fatalf("topic KmsMasterKeyId = %s; want the AdminTopicKey's ARN", keyRef)
			}
			keyID := strings.TrimSuffix(keyRef, ".Arn")
			key, ok := resources(t, s, "AWS::KMS::Key")[keyID]
			if !ok {
				t.Fatalf("no KMS key %s in the template", keyID)
			}
			if key.Properties["EnableKeyRotation"] != true {
				t.Errorf("the topic key rotates = %v; want true", key.Properties["EnableKeyRotation"])
			}
			kst := serviceStatements(key.Properties["KeyPolicy"], "cloudwatch.amazonaws.com")
			if len(kst) != 1 || kst[0]["Effect"] != "Allow" ||
				!reflect.DeepEqual(strs(kst[0]["Action"]), []string{"kms:Decrypt", "kms:GenerateDataKey*"}) {
				t.Fatalf("topic key policy for CloudWatch = %v; want one Allow of kms:Decrypt and kms:GenerateDataKey*", kst)
			}

			var found bool
			for _, p := range resources(t, s, "AWS::SNS::TopicPolicy") {
				if len(p.Properties["Topics"].([]any)) != 1 || resolve(t, p.Properties["Topics"].([]any)[0]) != topicID {
					continue
				}
				for _, st := range serviceStatements(p.Properties["PolicyDocument"], "cloudwatch.amazonaws.com") {
					cond, _ := st["Condition"].(map[string]any)
					eq, _ := cond["StringEquals"].(map[string]any)
					like, _ := cond["ArnLike"].(map[string]any)
					if st["Effect"] != "Allow" || !reflect.DeepEqual(strs(st["Action"]), []string{"sns:Publish"}) ||
						resolve(t, st["Resource"]) != topicID || eq == nil || like == nil {
						t.Fatalf("CloudWatch statement = %v; want Allow sns:Publish on the topic with conditions", st)
					}
					if got := resolve(t, eq["aws:SourceAccount"]); got != "123456789012" {
						t.Errorf("aws:SourceAccount = %s; want the stack's account", got)
					}
					if got, want := resolve(t, like["aws:SourceArn"]), "arn:aws:cloudwatch:us-east-1:123456789012:alarm:*"; got != want {
						t.Errorf("aws:SourceArn = %s; want %s", got, want)
					}
					found = true
				}
				// The TLS-only Deny stays.
				s.template.HasResourceProperties(jsii.String("AWS::SNS::TopicPolicy"), map[string]any{"PolicyDocument": map[string]any{
					"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{
						"Effect": "Deny", "Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}},
					})}),
				}})
			}
			if !found {
				t.Fatal("the topic policy does not let CloudWatch alarms publish: the failed-execution alarm would be dropped")
			}
		})
	}
}

// TestNagImportedKey: cdk-nag finds nothing in the kmsKeyArn
// configuration either (TestNag checks the default one).
func TestNagImportedKey(t *testing.T) {
	ann := assertions.Annotations_FromStack(withImportedKey(t).stack)
	match := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	for _, f := range append(*ann.FindError(jsii.String("*"), match), *ann.FindWarning(jsii.String("*"), match)...) {
		t.Errorf("cdk-nag: %v %v", *f.Id, f.Entry.Data)
	}
}

// TestImportedKeyStillUsed: with kmsKeyArn set, secrets and the bucket use
// the imported key; only the topic has its own.
func TestImportedKeyStillUsed(t *testing.T) {
	s := withImportedKey(t)
	s.template.ResourceCountIs(jsii.String("AWS::KMS::Key"), jsii.Number(1)) // the topic's
	s.template.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
		"BucketEncryption": map[string]any{"ServerSideEncryptionConfiguration": []any{assertions.Match_ObjectLike(&map[string]any{
			"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": importedKey},
		})}},
	})
	for _, f := range functions {
		s.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Description": "keyrotor: " + f.describe,
			"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{config.EnvKMSKeyID: importedKey})},
		})
	}
	// A function that publishes to the topic may use the topic's key too.
	for _, p := range resources(t, s, "AWS::IAM::Policy") {
		for _, st := range p.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			m := st.(map[string]any)
			if !slices.Contains(strs(m["Action"]), "kms:GenerateDataKey") {
				continue
			}
			var res []string
			rs, ok := m["Resource"].([]any)
			if !ok {
				rs = []any{m["Resource"]}
			}
			for _, r := range rs {
				res = append(res, resolve(t, r))
			}
			if !slices.Contains(res, importedKey) {
				t.Errorf("kms statement %v does not name the imported key", res)
			}
		}
	}
}

// TestReservedConcurrencyOptIn: by default no function reserves
// concurrency (an account with the low quota of 10 must deploy); with
// lambdaConcurrency set, each per-user function reserves that many.
func TestReservedConcurrencyOptIn(t *testing.T) {
	for _, f := range functions {
		get(t).template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Description":                  "keyrotor: " + f.describe,
			"ReservedConcurrentExecutions": assertions.Match_Absent(),
		})
		var want any = assertions.Match_Absent()
		if f.perUser {
			want = 5
		}
		withImportedKey(t).template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Description":                  "keyrotor: " + f.describe,
			"ReservedConcurrentExecutions": want,
		})
	}
}

// TestHoldDaysInEnvironment: every function reads holdDays.
func TestHoldDaysInEnvironment(t *testing.T) {
	for s, want := range map[*synthesized]string{get(t): "30", withImportedKey(t): "14"} {
		for _, f := range functions {
			s.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
				"Description": "keyrotor: " + f.describe,
				"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{config.EnvHoldDays: want})},
			})
		}
	}
}

// TestFindPermissionsCoverItsCalls: the find role allows every IAM call
// the find step's client interface declares (iam:GetUser for passwords
// with retirePasswords on was missing; moto does not check permissions).
// The interface is read from the source, so this test does not need
// shared/rotation to compile.
func TestFindPermissionsCoverItsCalls(t *testing.T) {
	ifaces := map[string]*ast.InterfaceType{} // "rotation.FindIAM", "credreport.API"
	for _, pkg := range []string{"rotation", "credreport"} {
		files, _ := filepath.Glob(filepath.Join("..", "shared", pkg, "*.go"))
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if ts, ok := n.(*ast.TypeSpec); ok {
					if it, ok := ts.Type.(*ast.InterfaceType); ok {
						ifaces[pkg+"."+ts.Name.Name] = it
					}
				}
				return true
			})
		}
	}
	var methods func(pkg, name string) []string
	methods = func(pkg, name string) []string {
		it, ok := ifaces[pkg+"."+name]
		if !ok {
			t.Fatalf("no interface %s.%s in shared/: update this test to the find step's IAM client interface", pkg, name)
		}
		var out []string
		for _, m := range it.Methods.List {
			switch x := m.Type.(type) {
			case *ast.FuncType:
				out = append(out, m.Names[0].Name)
			case *ast.Ident: // an embedded interface of the same package
				out = append(out, methods(pkg, x.Name)...)
			case *ast.SelectorExpr: // credreport.API
				out = append(out, methods(x.X.(*ast.Ident).Name, x.Sel.Name)...)
			}
		}
		return out
	}
	calls := methods("rotation", "FindIAM")
	if len(calls) < 5 {
		t.Fatalf("rotation.FindIAM declares %v: fewer calls than find makes", calls)
	}
	for _, c := range calls {
		if !slices.Contains(Permissions["find"], "iam:"+c) {
			t.Errorf("rotation.FindIAM calls %s, which Permissions[\"find\"] does not allow", c)
		}
	}
}

// TestReadOwnSecretPolicyNamePerRegion: managed policy names are unique in
// the account, so the name carries the region.
func TestReadOwnSecretPolicyNamePerRegion(t *testing.T) {
	var names []string
	for _, p := range resources(t, get(t), "AWS::IAM::ManagedPolicy") {
		names = append(names, resolve(t, p.Properties["ManagedPolicyName"]))
	}
	if !reflect.DeepEqual(names, []string{"KeyRotorReadOwnSecret-us-east-1"}) {
		t.Fatalf("managed policy names = %v; want [KeyRotorReadOwnSecret-us-east-1] (the region's)", names)
	}
}
