package main

import (
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/internal/policyeval"
)

// TestMemberRoleWritesOnlyWhatTheSettingsName: evaluated over the
// synthesized member template, deliveryParameters and deliverySecrets add
// to the member role exactly the named SSM parameters and secrets of the
// member account (in any region), with the hub's deliver role's actions on
// them: not another parameter or secret, not another account's, and no
// more on keyrotor's own stored-key secrets than create-and-store already
// has. Without the settings the role reaches no parameter.
func TestMemberRoleWritesOnlyWhatTheSettingsName(t *testing.T) {
	memberRole := func(ctx map[string]any) principal {
		tmpl := resolvedTemplate(t, synthMember(t, withCtx(ctx, KeyHubAccount, testHub)).raw)
		roleID, _ := tmpl.only(t, "AWS::IAM::Role")
		return role("member", "arn:aws:iam::"+evalAccount+":role/"+MemberRoleName, tmpl.identityPolicies(t, roleID)...)
	}
	param := func(account, region, name string) string {
		return "arn:aws:ssm:" + region + ":" + account + ":parameter/" + strings.TrimPrefix(name, "/")
	}
	secret := func(account, name string) string {
		return "arn:aws:secretsmanager:eu-west-1:" + account + ":secret:" + name + "-AbCdEf"
	}
	storedKey := "arn:aws:secretsmanager:" + evalRegion + ":" + evalAccount + ":secret:iam-access-keys/alice-AbCdEf"
	allowed := func(p principal, action, resource string) bool {
		return policyeval.Evaluate(policyeval.Request{Principal: p.who, Action: action, Resource: resource}, p.identity, nil, evalAccount) == policyeval.Allow
	}
	with := memberRole(withCtx(defaultCtx, "deliveryParameters", []any{"/ci/*"}, "deliverySecrets", []any{"ci/aws"}))
	without := memberRole(defaultCtx)
	const other = "999988887777"
	tests := []struct {
		name              string
		action, resource  string
		withSet, withoutS bool
	}{
		{"a named parameter", "ssm:PutParameter", param(evalAccount, "eu-west-1", "/ci/app/id"), true, false},
		{"... read back", "ssm:GetParameter", param(evalAccount, evalRegion, "/ci/app/id"), true, false},
		{"... its type and key", "ssm:DescribeParameters", "*", true, false},
		{"another parameter", "ssm:PutParameter", param(evalAccount, "eu-west-1", "/prod/db/password"), false, false},
		{"another parameter is not read", "ssm:GetParameter", param(evalAccount, "eu-west-1", "/prod/db/password"), false, false},
		{"another account's parameter", "ssm:PutParameter", param(other, "eu-west-1", "/ci/app/id"), false, false},
		{"no parameter is deleted", "ssm:DeleteParameter", param(evalAccount, "eu-west-1", "/ci/app/id"), false, false},
		{"a named secret", "secretsmanager:PutSecretValue", secret(evalAccount, "ci/aws"), true, false},
		{"... read back", "secretsmanager:GetSecretValue", secret(evalAccount, "ci/aws"), true, false},
		{"... described", "secretsmanager:DescribeSecret", secret(evalAccount, "ci/aws"), true, false},
		{"a longer name is another secret", "secretsmanager:PutSecretValue", secret(evalAccount, "ci/aws-prod"), false, false},
		{"another secret", "secretsmanager:PutSecretValue", secret(evalAccount, "prod/db"), false, false},
		{"another secret is not read", "secretsmanager:GetSecretValue", secret(evalAccount, "prod/db"), false, false},
		{"another account's secret", "secretsmanager:PutSecretValue", secret(other, "ci/aws"), false, false},
		{"no secret's policy changes", "secretsmanager:PutResourcePolicy", secret(evalAccount, "ci/aws"), false, false},
		// create-and-store's, unchanged by the settings (the stored key's
		// resource policy lets no other principal read it: storedkey_test).
		{"a stored key, create-and-store's as before", "secretsmanager:PutSecretValue", storedKey, true, true},
		{"no kms beyond the member key", "kms:Decrypt", "arn:aws:kms:" + evalRegion + ":" + evalAccount + ":key/customer", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := allowed(with, tt.action, tt.resource); got != tt.withSet {
				t.Errorf("with the settings: member %s on %s = %v; want %v", tt.action, tt.resource, got, tt.withSet)
			}
			if got := allowed(without, tt.action, tt.resource); got != tt.withoutS {
				t.Errorf("without the settings: member %s on %s = %v; want %v", tt.action, tt.resource, got, tt.withoutS)
			}
		})
	}
	// The delivery statements alone reach no stored key and no delivery
	// token.
	tmpl := resolvedTemplate(t, synthMember(t, withCtx(defaultCtx, KeyHubAccount, testHub, "deliveryParameters", []any{"/ci/*"}, "deliverySecrets", []any{"ci/aws"})).raw)
	var delivery []any
	for _, r := range tmpl.Resources {
		if r.Type != "AWS::IAM::Policy" {
			continue
		}
		for _, st := range r.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			if sid, _ := st.(map[string]any)["Sid"].(string); strings.HasPrefix(sid, "Delivery") {
				delivery = append(delivery, st)
			}
		}
	}
	if len(delivery) != 3 {
		t.Fatalf("%d delivery statements in the member role; want 3 (parameters, their types, secrets)", len(delivery))
	}
	only := role("member", "arn:aws:iam::"+evalAccount+":role/"+MemberRoleName, toPolicy(t, map[string]any{"Version": "2012-10-17", "Statement": delivery}))
	for _, a := range []string{"secretsmanager:PutSecretValue", "secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"} {
		for _, r := range []string{storedKey, secret(evalAccount, "keyrotor-delivery/github")} {
			if allowed(only, a, r) {
				t.Errorf("the member role's delivery statements allow %s on %s", a, r)
			}
		}
	}
}
