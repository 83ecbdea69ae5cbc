package memberstack

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// TestDeployTemplateStrict: the member stack's deployment refuses, naming
// it, what it cannot create as CloudFormation would, before creating
// anything (no emulator is reached: the configuration has no endpoint or
// credentials).
func TestDeployTemplateStrict(t *testing.T) {
	tests := []struct{ name, template, want string }{
		{"Fn::Sub", `{"Resources":{"R":{"Type":"AWS::IAM::Role","Properties":{"RoleName":{"Fn::Sub":"x-${AWS::Region}"}}}}}`, "intrinsic Fn::Sub not supported"},
		{"Fn::If deep in a document", `{"Resources":{"R":{"Type":"AWS::IAM::Role","Properties":{"AssumeRolePolicyDocument":{"Statement":[{"Principal":{"Fn::If":["c","a","b"]}}]}}}}}`, "intrinsic Fn::If not supported"},
		{"resource type", `{"Resources":{"B":{"Type":"AWS::S3::Bucket","Properties":{}}}}`, "type AWS::S3::Bucket not supported"},
		{"property", `{"Resources":{"R":{"Type":"AWS::IAM::Role","Properties":{"PermissionsBoundary":"arn:aws:iam::aws:policy/x"}}}}`, "property PermissionsBoundary not supported"},
		{"pseudo parameter", `{"Resources":{"R":{"Type":"AWS::IAM::Role","Properties":{"RoleName":{"Ref":"AWS::NotificationARNs"}}}}}`, "Ref AWS::NotificationARNs"},
		{"attribute", `{"Resources":{"K":{"Type":"AWS::KMS::Key","Properties":{}},"R":{"Type":"AWS::IAM::Role","Properties":{"RoleName":{"Fn::GetAtt":["K","KeyState"]}}}}}`, "attribute KeyState of AWS::KMS::Key not supported"},
		{"parameter without a value", `{"Parameters":{"Paths":{"Type":"String"}},"Resources":{}}`, "parameter Paths: no value and no Default"},
		{"parameter type", `{"Parameters":{"N":{"Type":"Number","Default":"1"}},"Resources":{}}`, "parameter N: type Number not supported"},
		{"condition function", `{"Conditions":{"C":{"Fn::Contains":[["a"],"a"]}},"Resources":{}}`, "condition function Fn::Contains not supported"},
		{"cycle", `{"Resources":{"A":{"Type":"AWS::IAM::Role","Properties":{"Description":{"Ref":"B"}}},"B":{"Type":"AWS::IAM::Role","Properties":{"Description":{"Ref":"A"}}}}}`, "circular dependency: A -> B -> A"},
		{"output", `{"Resources":{},"Outputs":{"O":{"Value":{"Fn::ImportValue":"x"}}}}`, "output O: intrinsic Fn::ImportValue not supported"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := deployTemplate(context.Background(), aws.Config{}, "111111111111", "S", []byte(tt.template))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("deployTemplate = %v; want an error with %q", err, tt.want)
			}
		})
	}
}

// TestDeployTemplateResolve: intrinsics resolve to the target account's
// values, in dependency order.
func TestDeployTemplateResolve(t *testing.T) {
	d := &deployer{account: "111111111111", partition: "aws", region: "eu-west-1", stack: "S", done: map[string]deployed{
		"K": {ref: "kid", attrs: map[string]string{"Arn": "arn:aws:kms:eu-west-1:111111111111:key/kid"}},
	}}
	d.tmpl.Resources = map[string]cfnResource{"K": {Type: "AWS::KMS::Key"}}
	v := map[string]any{"Resource": []any{
		map[string]any{"Fn::Join": []any{"", []any{"arn:", map[string]any{"Ref": "AWS::Partition"}, ":iam::", map[string]any{"Ref": "AWS::AccountId"}, ":user/*"}}},
		map[string]any{"Fn::GetAtt": []any{"K", "Arn"}},
		map[string]any{"Fn::Join": []any{".", []any{"secretsmanager", map[string]any{"Ref": "AWS::Region"}, "amazonaws.com"}}},
		map[string]any{"Ref": "K"},
	}}
	got, err := d.doc(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"Resource":["arn:aws:iam::111111111111:user/*","arn:aws:kms:eu-west-1:111111111111:key/kid","secretsmanager.eu-west-1.amazonaws.com","kid"]}`
	if got != want {
		t.Fatalf("resolved %s; want %s", got, want)
	}
}

// TestDeployTemplateParameters: a parameter takes its given value or its
// Default; a resource whose Condition is false is not created; Fn::Split
// and Fn::Join over a list parameter resolve as CloudFormation's do.
func TestDeployTemplateParameters(t *testing.T) {
	const tmpl = `{"Parameters":{"Paths":{"Type":"CommaDelimitedList","Default":""}},
		"Conditions":{"HasPaths":{"Fn::Not":[{"Fn::Equals":[{"Fn::Join":["",{"Ref":"Paths"}]},""]}]}},
		"Resources":{"R":{"Type":"AWS::IAM::Role","Properties":{}},"P":{"Type":"AWS::IAM::Policy","Condition":"HasPaths","Properties":{"PolicyName":"p",
			"PolicyDocument":{"Resource":{"Fn::Split":[",",{"Fn::Join":["",["u",{"Fn::Join":["*,u",{"Ref":"Paths"}]},"*"]]}]}},"Roles":[{"Ref":"R"}]}}}}`
	tests := []struct {
		name      string
		params    map[string]string
		resources []string
		doc       string
	}{
		{"default: none", nil, []string{"R"}, ""},
		{"two paths", map[string]string{"Paths": "/a/,/b/c/"}, []string{"P", "R"}, `{"Resource":["u/a/*","u/b/c/*"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &deployer{account: "111111111111", partition: "aws", region: "us-east-1", stack: "S", done: map[string]deployed{}}
			if err := json.Unmarshal([]byte(tmpl), &d.tmpl); err != nil {
				t.Fatal(err)
			}
			if err := d.parameters(tt.params); err != nil {
				t.Fatal(err)
			}
			if _, err := d.check(); err != nil {
				t.Fatal(err)
			}
			if got := sortedKeys(d.tmpl.Resources); !slices.Equal(got, tt.resources) {
				t.Fatalf("resources = %v; want %v", got, tt.resources)
			}
			if tt.doc == "" {
				return
			}
			got, err := d.doc(d.tmpl.Resources["P"].Properties["PolicyDocument"])
			if err != nil || got != tt.doc {
				t.Fatalf("document = %s, %v; want %s", got, err, tt.doc)
			}
		})
	}
	d := &deployer{}
	json.Unmarshal([]byte(tmpl), &d.tmpl)
	if err := d.parameters(map[string]string{"Other": "x"}); err == nil || !strings.Contains(err.Error(), "parameter Other: not a parameter of the template") {
		t.Fatalf("unknown parameter: %v", err)
	}
}
