package awstest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/internal/awstest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return fmt.Sprint(err)
}

func users(t *testing.T, a *awstest.Account) []string {
	t.Helper()
	out, err := a.IAM.ListUsers(context.Background(), &iam.ListUsersInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range out.Users {
		names = append(names, aws.ToString(u.UserName))
	}
	return names
}

// aliasTarget returns the key id alias/KeyRotorMember points to in a, or "".
func aliasTarget(t *testing.T, a *awstest.Account) string {
	t.Helper()
	out, err := kms.NewFromConfig(a.Config).ListAliases(context.Background(), &kms.ListAliasesInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, al := range out.Aliases {
		if aws.ToString(al.AliasName) == "alias/KeyRotorMember" {
			return aws.ToString(al.TargetKeyId)
		}
	}
	return ""
}

// TestMotoOrgMembers: an organization of three members in two OUs; each
// member's clients act in that member only; the member stack, deployed in
// two of them, exists there and nowhere else, with its intrinsics resolved
// to the member's values.
func TestMotoOrgMembers(t *testing.T) {
	mgmt := awstest.New(t)
	ctx := context.Background()
	o := awstest.NewOrg(t, mgmt.Endpoint, []awstest.MemberSpec{{Name: "alpha", OU: "Prod"}, {Name: "beta", OU: "Prod"}, {Name: "gamma", OU: "Dev"}})
	if len(o.Members) != 3 || len(o.OUs) != 2 {
		t.Fatalf("org has %d members in %d OUs; want 3 in 2", len(o.Members), len(o.OUs))
	}
	alpha, beta, gamma := o.Member(t, "alpha"), o.Member(t, "beta"), o.Member(t, "gamma")

	t.Run("accounts", func(t *testing.T) {
		out, err := o.Organizations.ListAccounts(ctx, &organizations.ListAccountsInput{})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range out.Accounts {
			ids = append(ids, aws.ToString(a.Id))
		}
		for _, m := range o.Members {
			if !slices.Contains(ids, m.ID) {
				t.Errorf("ListAccounts = %v; misses %s (%s)", ids, m.Name, m.ID)
			}
			if m.ID == awstest.DefaultAccount {
				t.Errorf("member %s is the management account", m.Name)
			}
		}
		for ou, want := range map[string][]string{"Prod": {alpha.ID, beta.ID}, "Dev": {gamma.ID}} {
			out, err := o.Organizations.ListAccountsForParent(ctx, &organizations.ListAccountsForParentInput{ParentId: aws.String(o.OUs[ou])})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, a := range out.Accounts {
				got = append(got, aws.ToString(a.Id))
			}
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("accounts in %s = %v; want %v", ou, got, want)
			}
		}
		// A second NewOrg on the same server reuses the organization,
		// OUs and accounts.
		again := awstest.NewOrg(t, mgmt.Endpoint, []awstest.MemberSpec{{Name: "alpha", OU: "Prod"}})
		if again.ID != o.ID || again.Members[0].ID != alpha.ID || again.OUs["Prod"] != o.OUs["Prod"] {
			t.Errorf("second NewOrg = %s/%s/%s; want %s/%s/%s", again.ID, again.Members[0].ID, again.OUs["Prod"], o.ID, alpha.ID, o.OUs["Prod"])
		}
	})

	t.Run("users per account", func(t *testing.T) {
		alpha.User(t, "alice")
		mgmt.User(t, "root-user")
		if got := users(t, alpha.Account); !slices.Equal(got, []string{"alice"}) {
			t.Errorf("alpha's users = %v; want [alice]", got)
		}
		for name, a := range map[string]*awstest.Account{"beta": beta.Account, "gamma": gamma.Account} {
			if got := users(t, a); len(got) != 0 {
				t.Errorf("%s's users = %v; want none", name, got)
			}
		}
		if got := users(t, mgmt); !slices.Equal(got, []string{"root-user"}) {
			t.Errorf("management's users = %v; want [root-user]", got)
		}
	})

	t.Run("member stack", func(t *testing.T) {
		tmpl := awstest.MemberTemplate(t)
		outputs := map[string]map[string]string{}
		for _, m := range []awstest.Member{alpha, beta} {
			outputs[m.Name] = m.DeployMemberStack(t, tmpl)
		}
		for _, m := range []awstest.Member{alpha, beta} {
			role, err := m.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("KeyRotorMember")})
			if err != nil {
				t.Fatalf("%s: GetRole KeyRotorMember: %v", m.Name, err)
			}
			arn := "arn:aws:iam::" + m.ID + ":role/KeyRotorMember"
			if got := aws.ToString(role.Role.Arn); got != arn {
				t.Errorf("%s: role ARN %s; want %s", m.Name, got, arn)
			}
			if got := outputs[m.Name]["MemberRoleArn"]; got != arn {
				t.Errorf("%s: output MemberRoleArn = %q; want %s", m.Name, got, arn)
			}
			trust, _ := url.QueryUnescape(aws.ToString(role.Role.AssumeRolePolicyDocument))
			for _, want := range []string{`"arn:aws:iam::123456789012:root"`, `arn:aws:iam::123456789012:role/KeyRotor-find-us-east-1`} {
				if !strings.Contains(trust, want) {
					t.Errorf("%s: trust policy %s; want %s in it", m.Name, trust, want)
				}
			}
			pols, err := m.IAM.ListRolePolicies(ctx, &iam.ListRolePoliciesInput{RoleName: aws.String("KeyRotorMember")})
			if err != nil || len(pols.PolicyNames) != 1 {
				t.Fatalf("%s: inline policies %v, %v; want one", m.Name, pols, err)
			}
			pol, err := m.IAM.GetRolePolicy(ctx, &iam.GetRolePolicyInput{RoleName: aws.String("KeyRotorMember"), PolicyName: aws.String(pols.PolicyNames[0])})
			if err != nil {
				t.Fatal(err)
			}
			doc, _ := url.QueryUnescape(aws.ToString(pol.PolicyDocument))
			keyID := aliasTarget(t, m.Account)
			if keyID == "" {
				t.Fatalf("%s: no alias/KeyRotorMember", m.Name)
			}
			keyArn := "arn:aws:kms:us-east-1:" + m.ID + ":key/" + keyID
			if got := outputs[m.Name]["MemberKeyArn"]; got != keyArn {
				t.Errorf("%s: output MemberKeyArn = %q; want %s", m.Name, got, keyArn)
			}
			for _, want := range []string{"arn:aws:iam::" + m.ID + ":user/*", keyArn, "arn:aws:secretsmanager:us-east-1:" + m.ID + ":secret:iam-access-keys/*", "iam:ListAccessKeys"} {
				if !strings.Contains(doc, want) {
					t.Errorf("%s: role policy %s; want %s in it", m.Name, doc, want)
				}
			}
			kp, err := kms.NewFromConfig(m.Config).GetKeyPolicy(ctx, &kms.GetKeyPolicyInput{KeyId: aws.String(keyID), PolicyName: aws.String("default")})
			if err != nil {
				t.Fatal(err)
			}
			var policy struct{ Statement []map[string]any }
			if err := json.Unmarshal([]byte(aws.ToString(kp.Policy)), &policy); err != nil {
				t.Fatalf("%s: key policy %s: %v", m.Name, aws.ToString(kp.Policy), err)
			}
			if !strings.Contains(aws.ToString(kp.Policy), `"`+arn+`"`) || len(policy.Statement) != 3 {
				t.Errorf("%s: key policy %s; want 3 statements, one for %s", m.Name, aws.ToString(kp.Policy), arn)
			}
			mp, err := m.IAM.GetPolicy(ctx, &iam.GetPolicyInput{PolicyArn: aws.String("arn:aws:iam::" + m.ID + ":policy/KeyRotorReadOwnSecret-us-east-1")})
			if err != nil {
				t.Errorf("%s: read-own-secret policy: %v", m.Name, err)
			} else if aws.ToString(mp.Policy.Description) == "" {
				t.Errorf("%s: read-own-secret policy without its description", m.Name)
			}
		}
		for name, a := range map[string]*awstest.Account{"gamma": gamma.Account, "management": mgmt} {
			if _, err := a.IAM.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("KeyRotorMember")}); code(err) != "NoSuchEntity" {
				t.Errorf("%s: GetRole KeyRotorMember = %v; want NoSuchEntity", name, err)
			}
			if id := aliasTarget(t, a); id != "" {
				t.Errorf("%s: alias/KeyRotorMember -> %s; want none", name, id)
			}
		}
		// The template from a file works the same (gamma gets it now).
		path := t.TempDir() + "/KeyRotorMember.template.json"
		if err := os.WriteFile(path, []byte(tmpl), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := gamma.DeployMemberStack(t, path)["MemberRoleArn"]; got != "arn:aws:iam::"+gamma.ID+":role/KeyRotorMember" {
			t.Errorf("gamma: MemberRoleArn = %q", got)
		}
	})
}
