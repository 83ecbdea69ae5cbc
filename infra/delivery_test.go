package main

import (
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/internal/policyeval"
)

// TestDeliveryRoleWritesOnlyWhatTheSettingsName: evaluated over the
// synthesized template, the deliver role may write exactly the SSM
// parameters and secrets deliveryParameters and deliverySecrets name (in
// any region), read stored keys and the hub's delivery tokens, and
// nothing else; with neither setting it may write no AWS destination.
func TestDeliveryRoleWritesOnlyWhatTheSettingsName(t *testing.T) {
	deliverRole := func(ctx map[string]any) principal {
		tmpl := resolvedTemplate(t, synth(t, ctx).raw)
		for id, r := range tmpl.Resources {
			if r.Type == "AWS::IAM::Role" && strings.HasPrefix(id, "DeliverFunctionRole") {
				return role("deliver", "arn:aws:iam::"+evalAccount+":role/"+id, tmpl.identityPolicies(t, id)...)
			}
		}
		t.Fatal("no deliver role in the template")
		return principal{}
	}
	param := func(region, name string) string {
		return "arn:aws:ssm:" + region + ":" + evalAccount + ":parameter/" + strings.TrimPrefix(name, "/")
	}
	secret := func(name string) string {
		return "arn:aws:secretsmanager:eu-west-1:" + evalAccount + ":secret:" + name + "-AbCdEf"
	}
	hubSecret := func(name string) string {
		return "arn:aws:secretsmanager:" + evalRegion + ":" + evalAccount + ":secret:" + name + "-AbCdEf"
	}
	allowed := func(p principal, action, resource string) bool {
		return policyeval.Evaluate(policyeval.Request{Principal: p.who, Action: action, Resource: resource}, p.identity, nil, evalAccount) == policyeval.Allow
	}
	tests := []struct {
		name     string
		ctx      map[string]any
		action   string
		resource string
		want     bool
	}{
		{"a named parameter prefix", withCtx(defaultCtx, "deliveryParameters", []any{"/ci/*"}), "ssm:PutParameter", param("eu-west-1", "/ci/app/id"), true},
		{"... read back", withCtx(defaultCtx, "deliveryParameters", []any{"/ci/*"}), "ssm:GetParameter", param("us-east-1", "/ci/app/id"), true},
		{"another parameter", withCtx(defaultCtx, "deliveryParameters", []any{"/ci/*"}), "ssm:PutParameter", param("eu-west-1", "/prod/db/password"), false},
		{"no parameter without the setting", defaultCtx, "ssm:PutParameter", param("eu-west-1", "/ci/app/id"), false},
		{"no parameter listing without the setting", defaultCtx, "ssm:DescribeParameters", "*", false},
		{"a named secret", withCtx(defaultCtx, "deliverySecrets", []any{"ci/aws"}), "secretsmanager:PutSecretValue", secret("ci/aws"), true},
		{"a longer name is another secret", withCtx(defaultCtx, "deliverySecrets", []any{"ci/aws"}), "secretsmanager:PutSecretValue", secret("ci/aws-prod"), false},
		{"another secret", withCtx(defaultCtx, "deliverySecrets", []any{"ci/aws"}), "secretsmanager:PutSecretValue", secret("prod/db"), false},
		{"another secret is not read", withCtx(defaultCtx, "deliverySecrets", []any{"ci/aws"}), "secretsmanager:GetSecretValue", secret("prod/db"), false},
		{"no secret without the setting", defaultCtx, "secretsmanager:PutSecretValue", secret("ci/aws"), false},
		{"a delivery token", defaultCtx, "secretsmanager:GetSecretValue", hubSecret("keyrotor-delivery/github"), true},
		{"a stored key", defaultCtx, "secretsmanager:GetSecretValue", hubSecret("iam-access-keys/alice"), true},
		{"a stored key is not written", withCtx(defaultCtx, "deliverySecrets", []any{"ci/aws"}), "secretsmanager:PutSecretValue", hubSecret("iam-access-keys/alice"), false},
		{"any other hub secret", defaultCtx, "secretsmanager:GetSecretValue", hubSecret("prod/db"), false},
	}
	roles := map[string]principal{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := ""
			for _, k := range []string{"deliveryParameters", "deliverySecrets"} {
				if v, ok := tt.ctx[k]; ok {
					key += k + "=" + strings.Join(func() []string {
						var out []string
						for _, x := range v.([]any) {
							out = append(out, x.(string))
						}
						return out
					}(), ",")
				}
			}
			p, ok := roles[key]
			if !ok {
				p = deliverRole(tt.ctx)
				roles[key] = p
			}
			if got := allowed(p, tt.action, tt.resource); got != tt.want {
				t.Errorf("deliver %s on %s = %v; want %v", tt.action, tt.resource, got, tt.want)
			}
		})
	}
}
