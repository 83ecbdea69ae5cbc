package rotation

import (
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/shared/config"
)

func TestPolicyIsKeyRotors(t *testing.T) {
	cfg := config.Default()
	cfg.StoreRoleARN = "arn:aws:iam::123456789012:role/KeyRotor-create-and-store"
	want := SecretPolicy(cfg, "AIDAOWNER")
	other := cfg
	other.BreakGlass = []string{"arn:aws:iam::123456789012:role/BreakGlass"}
	tests := []struct {
		name string
		got  string
		ok   bool
	}{
		{"the same", want, true},
		{"another trusted list (break-glass changed)", SecretPolicy(other, "AIDAOWNER"), true},
		{"reformatted as IAM may echo it", strings.NewReplacer(`"Principal":"*"`, `"Principal":{"AWS":"*"}`, `"Action":["secretsmanager:GetSecretValue"]`, `"Action":"secretsmanager:GetSecretValue"`, `,"`, `, "`).Replace(want), true},
		{"another owner", SecretPolicy(cfg, "AIDAMALLORY"), false},
		{"an extra Allow", strings.Replace(want, `"Statement":[`, `"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/mallory"},"Action":"secretsmanager:GetSecretValue","Resource":"*"},`, 1), false},
		{"another operator", strings.Replace(want, "ArnNotEquals", "ArnNotLike", 1), false},
		{"an action dropped", strings.Replace(want, `"secretsmanager:PutResourcePolicy",`, "", 1), false},
		{"not JSON", "{", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policyIsKeyRotors(tt.got, want); got != tt.ok {
				t.Errorf("policyIsKeyRotors(%s) = %v; want %v", tt.got, got, tt.ok)
			}
		})
	}
}

func TestSameKey(t *testing.T) {
	const secret = "arn:aws:secretsmanager:us-east-1:111122223333:secret:keys/a-AbCdEf"
	tests := []struct {
		name, have, want string
		ok               bool
	}{
		{"the key ARN", "arn:aws:kms:us-east-1:111122223333:key/k1", "arn:aws:kms:us-east-1:111122223333:key/k1", true},
		{"its id", "k1", "arn:aws:kms:us-east-1:111122223333:key/k1", true},
		{"another key", "k2", "arn:aws:kms:us-east-1:111122223333:key/k1", false},
		{"the default key", "", "arn:aws:kms:us-east-1:111122223333:key/k1", false},
		{"default wanted, default had", "", "", true},
		{"the member alias", "alias/KeyRotorMember", config.MemberKeyAlias, true},
		{"the member alias ARN", "arn:aws:kms:us-east-1:111122223333:alias/KeyRotorMember", config.MemberKeyAlias, true},
		{"the alias in another account", "arn:aws:kms:us-east-1:444455556666:alias/KeyRotorMember", config.MemberKeyAlias, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sameKey(tt.have, tt.want, secret); got != tt.ok {
				t.Errorf("sameKey(%q, %q) = %v; want %v", tt.have, tt.want, got, tt.ok)
			}
		})
	}
}
