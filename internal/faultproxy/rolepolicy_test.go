package faultproxy

import "testing"

// TestRoleDenyMatching: the pieces of RoleDenies' evaluation of a Deny
// statement: the role of a session ARN, resource patterns (case-sensitive
// wildcards over the user's ARN with its path) and the tag conditions.
func TestRoleDenyMatching(t *testing.T) {
	if got := roleOf("arn:aws:sts::111122223333:assumed-role/KeyRotorMember/keyrotor-find"); got != "KeyRotorMember" {
		t.Errorf("roleOf(session) = %q", got)
	}
	if got := roleOf("arn:aws:iam::111122223333:user/moto"); got != "" {
		t.Errorf("roleOf(user) = %q; want none", got)
	}
	resources := []struct {
		name, pattern, arn string
		want               bool
	}{
		{"any user", "arn:aws:iam::*:user/*", "arn:aws:iam::111122223333:user/alice", true},
		{"excluded path", "arn:*:iam::*:user/breakglass/*", "arn:aws:iam::111122223333:user/breakglass/root-admin", true},
		{"another path", "arn:*:iam::*:user/breakglass/*", "arn:aws:iam::111122223333:user/alice", false},
		{"case matters", "arn:aws:iam::*:user/Breakglass/*", "arn:aws:iam::111122223333:user/breakglass/x", false},
	}
	for _, tt := range resources {
		if got := resourceMatches(tt.pattern, tt.arn); got != tt.want {
			t.Errorf("%s: resourceMatches(%s, %s) = %v; want %v", tt.name, tt.pattern, tt.arn, got, tt.want)
		}
	}
	tags := map[string]string{"keyrotor:exempt": "True"}
	conditions := []struct {
		name string
		cond map[string]map[string]any
		want bool
	}{
		{"none", nil, true},
		{"ignore case", map[string]map[string]any{"StringEqualsIgnoreCase": {"aws:ResourceTag/keyrotor:exempt": "true"}}, true},
		{"exact case", map[string]map[string]any{"StringEquals": {"aws:ResourceTag/keyrotor:exempt": "true"}}, false},
		{"iam: key, list of values", map[string]map[string]any{"StringEquals": {"iam:ResourceTag/Keyrotor:Exempt": []any{"yes", "True"}}}, true},
		{"tag absent", map[string]map[string]any{"StringEquals": {"aws:ResourceTag/team": "ops"}}, false},
		{"unknown operator", map[string]map[string]any{"StringNotEquals": {"aws:ResourceTag/keyrotor:exempt": "no"}}, false},
		{"unknown key", map[string]map[string]any{"StringEquals": {"aws:PrincipalTag/x": "y"}}, false},
	}
	for _, tt := range conditions {
		if got := conditionsHold(tt.cond, tags); got != tt.want {
			t.Errorf("%s: conditionsHold = %v; want %v", tt.name, got, tt.want)
		}
	}
}
