package policyeval

import "testing"

const acct = "123456789012"

func must(t *testing.T, doc string) Policy {
	t.Helper()
	p, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var (
	alice = Principal{ARN: "arn:aws:iam::123456789012:user/alice", Account: acct, UserID: "AIDAALICE"}
	role  = Principal{ARN: "arn:aws:iam::123456789012:role/keyrotor", Account: acct, UserID: "AROAKEYROTOR:session"}
	other = Principal{ARN: "arn:aws:iam::210987654321:user/mallory", Account: "210987654321", UserID: "AIDAMALLORY"}
)

const (
	secret     = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keys/alice-AbCdEf"
	keyARN     = "arn:aws:kms:us-east-1:123456789012:key/k1"
	allowAll   = `{"Statement":{"Effect":"Allow","Action":"*","Resource":"*"}}`
	denyOthers = `{"Statement":[{"Effect":"Deny","Principal":"*","Action":"secretsmanager:GetSecretValue","Resource":"*",
		"Condition":{"ArnNotEquals":{"aws:PrincipalArn":["arn:aws:iam::123456789012:role/keyrotor"]},"StringNotEquals":{"aws:userid":"AIDAALICE"}}}]}`
)

func TestEvaluate(t *testing.T) {
	grantOther := `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::210987654321:user/mallory"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
	grantAccount := `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`
	ownTag := `{"Statement":[{"Effect":"Allow","Action":["secretsmanager:GetSecretValue"],"Resource":"arn:aws:secretsmanager:*:*:secret:keys/*",
		"Condition":{"StringEquals":{"secretsmanager:ResourceTag/owner":"${aws:userid}"}}}]}`
	tests := []struct {
		name     string
		p        Principal
		action   string
		identity []string
		resource string
		context  map[string][]string
		want     Decision
	}{
		{"nothing allows", alice, "secretsmanager:GetSecretValue", nil, "", nil, ImplicitDeny},
		{"identity allows", alice, "secretsmanager:GetSecretValue", []string{allowAll}, "", nil, Allow},
		{"action wildcard is case-insensitive", alice, "SecretsManager:GetSecretValue", []string{`{"Statement":[{"Effect":"Allow","Action":"secretsmanager:get*","Resource":"*"}]}`}, "", nil, Allow},
		{"resource deny beats identity allow", Principal{ARN: "arn:aws:iam::123456789012:user/eve", Account: acct, UserID: "AIDAEVE"}, "secretsmanager:GetSecretValue", []string{allowAll}, denyOthers, nil, ExplicitDeny},
		{"owner passes the deny", alice, "secretsmanager:GetSecretValue", []string{allowAll}, denyOthers, nil, Allow},
		{"trusted role passes the deny", role, "secretsmanager:GetSecretValue", []string{allowAll}, denyOthers, nil, Allow},
		{"deny needs a matching action", Principal{ARN: "arn:aws:iam::123456789012:user/eve", Account: acct}, "secretsmanager:DescribeSecret", []string{allowAll}, denyOthers, nil, Allow},
		{"identity deny beats everything", alice, "secretsmanager:GetSecretValue", []string{allowAll, `{"Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}`}, "", nil, ExplicitDeny},
		{"same account: resource policy naming the user allows alone", alice, "secretsmanager:GetSecretValue", nil, `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/alice"},"Action":"*","Resource":"*"}]}`, nil, Allow},
		{"same account: naming the account leaves it to IAM", alice, "secretsmanager:GetSecretValue", nil, grantAccount, nil, ImplicitDeny},
		{"cross account: resource policy alone is not enough", other, "secretsmanager:GetSecretValue", nil, grantOther, nil, ImplicitDeny},
		{"cross account: both allow", other, "secretsmanager:GetSecretValue", []string{allowAll}, grantOther, nil, Allow},
		{"cross account: identity alone is not enough", other, "secretsmanager:GetSecretValue", []string{allowAll}, "", nil, ImplicitDeny},
		{"policy variable in a condition", alice, "secretsmanager:GetSecretValue", []string{ownTag}, "", map[string][]string{"secretsmanager:ResourceTag/owner": {"AIDAALICE"}}, Allow},
		{"policy variable mismatch", alice, "secretsmanager:GetSecretValue", []string{ownTag}, "", map[string][]string{"secretsmanager:ResourceTag/owner": {"AIDABOB"}}, ImplicitDeny},
		{"missing key fails a positive operator", alice, "secretsmanager:GetSecretValue", []string{ownTag}, "", nil, ImplicitDeny},
		{"missing key passes a negated operator", Principal{Account: acct}, "secretsmanager:GetSecretValue", []string{allowAll}, denyOthers, nil, ExplicitDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ids []Policy
			for _, d := range tt.identity {
				ids = append(ids, must(t, d))
			}
			var res *Policy
			if tt.resource != "" {
				p := must(t, tt.resource)
				res = &p
			}
			got := Evaluate(Request{Principal: tt.p, Action: tt.action, Resource: secret, Context: tt.context}, ids, res, acct)
			if got != tt.want {
				t.Errorf("Evaluate(%s by %s) = %v; want %v", tt.action, tt.p.ARN, got, tt.want)
			}
		})
	}
}

func TestEvaluateKMS(t *testing.T) {
	rootKMS := `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}]}`
	adminOnly := `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":["kms:Describe*","kms:Put*"],"Resource":"*"},
		{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:Decrypt","Resource":"*",
		 "Condition":{"StringEquals":{"kms:ViaService":"secretsmanager.us-east-1.amazonaws.com","kms:CallerAccount":"123456789012"}}}]}`
	namesRole := `{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:role/keyrotor"},"Action":"kms:Decrypt","Resource":"*"}]}`
	via := map[string][]string{"kms:ViaService": {"secretsmanager.us-east-1.amazonaws.com"}}
	tests := []struct {
		name     string
		p        Principal
		action   string
		identity []string
		key      string
		context  map[string][]string
		want     Decision
	}{
		{"root kms:* lets any identity policy use the key", alice, "kms:Decrypt", []string{allowAll}, rootKMS, nil, Allow},
		{"identity policy alone, key policy silent", alice, "kms:Decrypt", []string{allowAll}, namesRole, nil, ImplicitDeny},
		{"key policy naming the role allows alone", role, "kms:Decrypt", nil, namesRole, nil, Allow},
		{"use only through Secrets Manager: direct call", alice, "kms:Decrypt", []string{allowAll}, adminOnly, nil, ImplicitDeny},
		{"use only through Secrets Manager: through it", alice, "kms:Decrypt", []string{allowAll}, adminOnly, via, Allow},
		{"through it, without an identity allow", alice, "kms:Decrypt", nil, adminOnly, via, ImplicitDeny},
		{"administration stays with the account", alice, "kms:PutKeyPolicy", []string{allowAll}, adminOnly, nil, Allow},
		{"another account through the service", other, "kms:Decrypt", []string{allowAll}, adminOnly, via, ImplicitDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ids []Policy
			for _, d := range tt.identity {
				ids = append(ids, must(t, d))
			}
			got := EvaluateKMS(Request{Principal: tt.p, Action: tt.action, Resource: keyARN, Context: tt.context}, ids, must(t, tt.key), acct)
			if got != tt.want {
				t.Errorf("EvaluateKMS(%s by %s) = %v; want %v", tt.action, tt.p.ARN, got, tt.want)
			}
		})
	}
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		name string
		p, s string
		want bool
	}{
		{"star spans slashes", "a*", "a/b/c", true}, {"question mark one", "a?c", "abc", true}, {"question mark not none", "a?c", "ac", false},
		{"secret suffix", "*-??????", "x-AbC123", true}, {"literal", "abc", "abd", false},
	}
	for _, tt := range tests {
		if got := Wildcard(tt.p, tt.s); got != tt.want {
			t.Errorf("%s: Wildcard(%q, %q) = %v; want %v", tt.name, tt.p, tt.s, got, tt.want)
		}
	}
}
