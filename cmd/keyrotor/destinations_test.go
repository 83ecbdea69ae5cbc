package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudformation"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/delivery"
)

// testCI is a destination type that names a hub credential, as the CI
// types do (none is registered in this package's tests otherwise).
var registerTestCI sync.Once

func useTestCI() {
	registerTestCI.Do(func() {
		delivery.Register("testci", func(s delivery.Spec, field string) error {
			if err := s.Only(field, "credential", "project"); err != nil {
				return err
			}
			return delivery.Required(field, "credential", s.Credential, "the hub secret that holds the API token")
		}, nil)
	})
}

// TestDestinationsUsage: help on stdout with exit 0; a usage error is one
// line on stderr naming the flag, exit 2; nothing is read or written.
func TestDestinationsUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.json")
	if err := os.WriteFile(bad, []byte(`{"version":1,"destinations":[{"type":"ssm","idName":"/ci/id"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"destinations", "-h"}, {"destinations", "help"}, {"destinations", "set", "-h"}, {"destinations", "show", "--help"}, {"destinations", "remove", "-h"}} {
		code, out, errOut := keyrotor(t, "", args...)
		if code != 0 || !strings.Contains(out, "usage: keyrotor destinations") || errOut != "" {
			t.Errorf("keyrotor %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
		}
	}
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"destinations"}, "keyrotor destinations: want a subcommand: set, show or remove"},
		{[]string{"destinations", "list"}, `keyrotor destinations: unknown subcommand "list"`},
		{[]string{"destinations", "set", "--file", "x.json"}, "keyrotor destinations set: --user is required"},
		{[]string{"destinations", "set", "--user", "alice"}, "keyrotor destinations set: --file: required"},
		{[]string{"destinations", "set", "--user", "alice", "--file", "-"}, "keyrotor destinations set: --file: standard input is empty"},
		{[]string{"destinations", "set", "--user", "alice", "--file", "/nonexistent/doc.json"}, "keyrotor destinations set: --file: open /nonexistent/doc.json"},
		{[]string{"destinations", "show", "--user", "alice", "--file", "doc.json"}, "keyrotor destinations show: flag provided but not defined: -file"},
		{[]string{"destinations", "remove", "alice"}, `keyrotor destinations remove: unexpected argument "alice"`},
		{[]string{"destinations", "set", "--json", "--user", "alice", "--file", bad}, "flag provided but not defined: -json"},
		// The document is checked before any AWS call: no endpoint answers here.
		{[]string{"destinations", "set", "--user", "alice", "--file", bad, "--endpoint", "http://127.0.0.1:1"}, "keyrotor destinations set: destinations[0].secretName: missing"},
	} {
		code, out, errOut := keyrotor(t, "", tt.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
			t.Errorf("keyrotor %v: exit %d\nstdout: %s\nstderr: %s\nwant exit 2 and one line %q", tt.args, code, out, errOut, tt.want)
		}
	}
}

// TestMotoDestinations: set refuses a bad document, a credential the hub
// lacks and a user IAM lacks, writing nothing (the table stays empty);
// then set, show and remove round trip, and the token in the credential
// secret appears nowhere.
func TestMotoDestinations(t *testing.T) {
	useTestCI()
	a := awstest.New(t)
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	a.Records(t, "rotations")
	a.User(t, "alice")
	const token = "ghp_tokenThatMustNeverBePrinted0123456789"

	dir := t.TempDir()
	file := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var outputs []string
	run := func(stdin string, args ...string) (int, string, string) {
		t.Helper()
		code, out, errOut := keyrotor(t, stdin, append(append([]string{"destinations"}, args...), "--endpoint", a.Endpoint, "--table", "rotations")...)
		outputs = append(outputs, out, errOut)
		return code, out, errOut
	}
	itemCount := func() int {
		t.Helper()
		out, err := a.DynamoDB.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String("rotations")})
		if err != nil {
			t.Fatal(err)
		}
		return len(out.Items)
	}

	good := `{"version":1,"destinations":[
		{"type":"ssm","idName":"/ci/aws-access-key-id","secretName":"/ci/aws-secret-access-key"},
		{"type":"secretsmanager","secretId":"ci/creds","region":"eu-west-1"},
		{"type":"testci","credential":"keyrotor/ci-token","project":"app"}]}`
	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"bad document", []string{"set", "--user", "alice", "--file", file("bad.json", `{"version":1,"destinations":[{"type":"ssm","idName":"/ci/id"}]}`)},
			"keyrotor destinations set: destinations[0].secretName: missing: the name of the SSM parameter for the secret access key, such as /app/aws-secret-access-key; nothing written"},
		{"unknown field", []string{"set", "--user", "alice", "--file", file("field.json", `{"version":1,"destinatons":[]}`)}, "destinatons: unknown field"},
		{"not JSON", []string{"set", "--user", "alice", "--file", file("text.json", `version: 1`)}, "document: not JSON"},
		{"no credential secret", []string{"set", "--user", "alice", "--file", file("good.json", good)},
			`destinations[2].credential: no secret "keyrotor/ci-token" in keyrotor's account and region`},
	}
	for _, tt := range refusals {
		code, out, errOut := run("", tt.args...)
		if code != 2 || out != "" || !strings.Contains(errOut, tt.want) || !strings.Contains(errOut, "nothing written") {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s\nwant exit 2 and %q", tt.name, code, out, errOut, tt.want)
		}
		if n := itemCount(); n != 0 {
			t.Fatalf("%s: the table holds %d items; want none", tt.name, n)
		}
	}
	if _, err := a.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("keyrotor/ci-token"), SecretString: aws.String(token)}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run("", "set", "--user", "nobody", "--file", file("good.json", good))
	if code != 2 || !strings.Contains(errOut, "--user nobody: no such IAM user in keyrotor's account") || itemCount() != 0 {
		t.Fatalf("set for a user IAM lacks: exit %d, %q, %d items", code, errOut, itemCount())
	}

	code, out, errOut = run(good, "set", "--user", "alice", "--file", "-")
	if code != 0 || !strings.Contains(out, "set: 3 destinations of user alice (ssm, secretsmanager, testci)") || errOut != "" {
		t.Fatalf("set: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if n := itemCount(); n != 1 {
		t.Fatalf("after set the table holds %d items; want 1", n)
	}

	code, out, errOut = run("", "show", "--user", "alice")
	if code != 0 || errOut != "" || !strings.Contains(out, "destinations of user alice (keyrotor's account), updated 20") ||
		!strings.Contains(out, " by arn:aws:") || !strings.Contains(out, `"secretId": "ci/creds"`) || !strings.Contains(out, `"credential": "keyrotor/ci-token"`) {
		t.Fatalf("show: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	code, out, _ = run("", "show", "--user", "alice", "--json")
	var e struct {
		User      string
		By        string
		UpdatedAt string
		Document  delivery.Document
	}
	if err := json.Unmarshal([]byte(out), &e); code != 0 || err != nil || e.User != "alice" || e.By == "" || e.UpdatedAt == "" || len(e.Document.Destinations) != 3 {
		t.Fatalf("show --json: exit %d, %v\n%s", code, err, out)
	}
	// A replacement replaces.
	code, _, _ = run(`{"version":1,"adoption":"off","destinations":[{"type":"secretsmanager","secretId":"ci/creds"}]}`, "set", "--user", "alice", "--file", "-")
	if _, out, _ = run("", "show", "--user", "alice"); code != 0 || strings.Contains(out, "testci") || !strings.Contains(out, `"adoption": "off"`) {
		t.Fatalf("after a second set, show:\n%s", out)
	}

	if code, out, errOut = run("", "remove", "--user", "alice"); code != 0 || !strings.Contains(out, "removed: the destinations of user alice") || itemCount() != 0 {
		t.Fatalf("remove: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if code, _, errOut = run("", "remove", "--user", "alice"); code != 2 || !strings.Contains(errOut, "nothing removed") {
		t.Fatalf("second remove: exit %d, %q", code, errOut)
	}
	if code, _, errOut = run("", "show", "--user", "alice"); code != 1 || !strings.Contains(errOut, "user alice has no destinations document") {
		t.Fatalf("show after remove: exit %d, %q", code, errOut)
	}
	// A stored document that no longer validates is shown, and said so.
	if _, err := a.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("rotations"), Item: map[string]types.AttributeValue{
		"id": &types.AttributeValueMemberS{Value: delivery.DocumentID("", "alice")}, "kind": &types.AttributeValueMemberS{Value: "destinations"},
		"user": &types.AttributeValueMemberS{Value: "alice"}, "doc": &types.AttributeValueMemberS{Value: `{"version":1,"destinations":[{"type":"retired"}]}`},
	}}); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run("", "show", "--user", "alice")
	if code != 1 || !strings.Contains(out, "NO LONGER VALID: destinations[0].type") || !strings.Contains(out, `"type": "retired"`) || !strings.Contains(errOut, "no longer validates") {
		t.Fatalf("show of an invalid document: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	for _, o := range outputs {
		if strings.Contains(o, token) {
			t.Fatalf("the credential's token was printed:\n%s", o)
		}
	}
}

// TestMotoDestinationsMember: in organization mode the user is looked up
// in its member account (through the member role) and the document is
// kept under that account.
func TestMotoDestinationsMember(t *testing.T) {
	a := awstest.New(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	a.Records(t, "rotations")
	a.User(t, "alice") // in the hub only
	org := awstest.NewOrg(t, a.Endpoint, []awstest.MemberSpec{{Name: "dev"}})
	dev := org.Member(t, "dev")
	dev.User(t, "bob")
	doc := `{"version":1,"destinations":[{"type":"ssm","idName":"/ci/id","secretName":"/ci/secret"}]}`
	run := func(args ...string) (int, string, string) {
		return keyrotor(t, doc, append(append([]string{"destinations"}, args...), "--endpoint", a.Endpoint, "--table", "rotations")...)
	}
	if code, _, errOut := run("set", "--account", dev.ID, "--user", "alice", "--file", "-"); code != 2 || !strings.Contains(errOut, "--user alice: no such IAM user in account "+dev.ID) {
		t.Fatalf("set for a user of the hub, in the member: exit %d, %q", code, errOut)
	}
	if code, out, errOut := run("set", "--account", dev.ID, "--user", "bob", "--file", "-"); code != 0 {
		t.Fatalf("set for the member's bob: exit %d\n%s%s", code, out, errOut)
	}
	store := &delivery.Store{API: a.DynamoDB, Table: "rotations"}
	if d, err := store.Get(context.Background(), dev.ID, "bob"); err != nil || d == nil {
		t.Fatalf("Get(%s, bob) = %v, %v", dev.ID, d, err)
	}
	if d, err := store.Get(context.Background(), "", "bob"); err != nil || d != nil {
		t.Fatalf("Get(\"\", bob) = %v, %v; want none in the hub's name", d, err)
	}
	if code, out, _ := run("show", "--account", dev.ID, "--user", "bob"); code != 0 || !strings.Contains(out, "destinations of user bob (account "+dev.ID+")") {
		t.Fatalf("show: exit %d\n%s", code, out)
	}
}

// TestMotoDestinationsAccountUnreachable: an AWS destination written in
// another account than its user's is set only when keyrotor can write
// there: the account is looked at as the operator's own role there
// (--member-role; KeyRotorMember trusts only keyrotor's functions), and
// keyrotor's member role must be in it. Refused, naming
// destinations[0].account and nothing written, while the operator cannot
// reach the account or its member stack is not deployed; set once it is.
func TestMotoDestinationsAccountUnreachable(t *testing.T) {
	if _, err := os.Stat(memberTemplate); err != nil {
		t.Fatalf("%s missing: run `make synth`", memberTemplate)
	}
	a := awstest.New(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	a.Records(t, "rotations")
	a.User(t, "alice")
	org := awstest.NewOrg(t, a.Endpoint, []awstest.MemberSpec{{Name: "dev"}})
	dev := org.Member(t, "dev")
	p, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.RoleChecks = true // a role that is not there cannot be assumed
	t.Cleanup(p.Close)
	doc := `{"version":1,"destinations":[{"type":"ssm","idName":"/ci/id","secretName":"/ci/secret","account":"` + dev.ID + `"}]}`
	run := func(flags ...string) (int, string, string) {
		return keyrotor(t, doc, append([]string{"destinations", "set", "--user", "alice", "--file", "-", "--endpoint", p.URL(), "--table", "rotations"}, flags...)...)
	}
	store := &delivery.Store{API: a.DynamoDB, Table: "rotations"}
	for _, tc := range []struct {
		name  string
		flags []string
		want  string
	}{
		{"the operator cannot reach the account", []string{"--member-role", "NoSuchRole"}, "destinations[0].account: cannot reach account " + dev.ID + ", where this destination is written (as role NoSuchRole (--member-role))"},
		{"keyrotor's member stack is not there", nil, "destinations[0].account: keyrotor cannot write in account " + dev.ID + ": its member role KeyRotorMember is not there"},
	} {
		code, _, errOut := run(tc.flags...)
		if code != 2 || !strings.Contains(errOut, tc.want) || !strings.Contains(errOut, "nothing written") {
			t.Fatalf("%s: exit %d, %q; want 2, %q", tc.name, code, errOut, tc.want)
		}
		if d, err := store.Get(context.Background(), "", "alice"); err != nil || d != nil {
			t.Fatalf("%s: Get(alice) = %v, %v; want nothing written", tc.name, d, err)
		}
	}
	dev.DeployMemberStack(t, memberTemplate)
	if code, out, errOut := run(); code != 0 {
		t.Fatalf("set once the member stack is deployed: exit %d\n%s%s", code, out, errOut)
	}
	if d, err := store.Get(context.Background(), "", "alice"); err != nil || d == nil || d.Destinations[0].Account != dev.ID {
		t.Fatalf("Get(alice) = %+v, %v; want the document with its destination in %s", d, err, dev.ID)
	}
}

// TestMotoDestinationsStack: without --table the table is the stack's
// output RotationTableName (here a stack of outputs on the emulator, as a
// local run records it).
func TestMotoDestinationsStack(t *testing.T) {
	a := awstest.New(t)
	ctx := context.Background()
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	a.Records(t, "KeyRotor-RotationTable-1")
	a.User(t, "alice")
	doc := `{"version":1,"destinations":[{"type":"ssm","idName":"/ci/id","secretName":"/ci/secret"}]}`
	if code, _, errOut := keyrotor(t, doc, "destinations", "set", "--user", "alice", "--file", "-", "--endpoint", a.Endpoint); code != 1 || !strings.Contains(errOut, "stack KeyRotor not found") {
		t.Fatalf("set without a stack: exit %d, %q", code, errOut)
	}
	body := `{"Resources":{"LocalRun":{"Type":"AWS::CloudFormation::WaitConditionHandle"}},"Outputs":{"RotationTableName":{"Value":"KeyRotor-RotationTable-1"}}}`
	if _, err := cloudformation.NewFromConfig(a.Config).CreateStack(ctx, &cloudformation.CreateStackInput{StackName: aws.String("KeyRotor"), TemplateBody: aws.String(body)}); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := keyrotor(t, doc, "destinations", "set", "--user", "alice", "--file", "-", "--endpoint", a.Endpoint); code != 0 {
		t.Fatalf("set: exit %d\n%s%s", code, out, errOut)
	}
	store := &delivery.Store{API: a.DynamoDB, Table: "KeyRotor-RotationTable-1"}
	if d, err := store.Get(ctx, "", "alice"); err != nil || d == nil {
		t.Fatalf("Get(alice) from the stack's table = %v, %v", d, err)
	}
}
