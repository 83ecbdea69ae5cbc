package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// TestMotoReadOwnSecretEveryLegalName evaluates the synthesized
// read-own-secret policy the way IAM does (policy variables substituted
// with the caller's raw values, resource wildcards, the StringEquals
// condition on the secret's tags) against the secrets a real
// create-and-store run stored in the emulator, for user names with every
// legal character, "a=b" beside "a=3Db", "alice" beside "alice2", and 64
// characters: each user may read its own secret and no one else's.
func TestMotoReadOwnSecretEveryLegalName(t *testing.T) {
	statements := readOwnStatements(t, get(t))
	a := awstest.New(t)
	cfg := config.Default()
	cfg.RotationTable = "rotations"
	cfg.StoreRoleARN = "arn:aws:iam::123456789012:role/KeyRotor-create-and-store"
	recs := a.Records(t, cfg.RotationTable)
	names := []string{"alice", "alice2", "a=b", "a=3Db", "x,y", "p+q.r@s_t-u", "a_b", strings.Repeat("n", 64)}
	ids := map[string]string{}
	for _, name := range names {
		a.User(t, name)
		old := a.Key(t, name)
		c := &rotation.Creator{IAM: a.IAM, Secrets: a.Secrets, Records: recs, Config: cfg, Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
		if _, err := c.Handle(context.Background(), rotation.Task{Execution: "readown", Item: rotation.Item{User: name, Action: policy.Rotate, OldKey: rotation.KeyRef{ID: old}}}); err != nil {
			t.Fatalf("create for %q: %v", name, err)
		}
		u, err := a.IAM.GetUser(context.Background(), &iam.GetUserInput{UserName: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = aws.ToString(u.User.UserId)
	}
	type secret struct {
		arn, owner string
		tags       map[string]string
	}
	var secrets []secret
	p := secretsmanager.NewListSecretsPaginator(a.Secrets, &secretsmanager.ListSecretsInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range out.SecretList {
			var sk rotation.StoredKey
			json.Unmarshal([]byte(a.Secret(t, aws.ToString(s.Name))), &sk)
			tags := map[string]string{}
			for _, tg := range s.Tags {
				tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
			}
			secrets = append(secrets, secret{arn: aws.ToString(s.ARN), owner: sk.UserName, tags: tags})
		}
	}
	if len(secrets) != len(names) {
		t.Fatalf("%d secrets stored; want %d", len(secrets), len(names))
	}
	for _, user := range names {
		vars := map[string]string{"${aws:username}": user, "${aws:userid}": ids[user]}
		for _, s := range secrets {
			got := allowed(statements, "secretsmanager:GetSecretValue", s.arn, s.tags, vars)
			if want := s.owner == user; got != want {
				t.Errorf("user %q reading %s (owner %q, tags %v): allowed=%v; want %v", user, s.arn, s.owner, s.tags, got, want)
			}
		}
	}
}

type statement struct {
	Effect    string
	Action    any
	Resource  any
	Condition map[string]map[string]any
}

// readOwnStatements returns the read-own-secret policy's statements, with
// the template's Fn::Join tokens resolved to a test account.
func readOwnStatements(t *testing.T, s *synthesized) []statement {
	t.Helper()
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties struct {
				PolicyDocument struct{ Statement []json.RawMessage }
			}
		}
	}
	raw := strings.NewReplacer(`{"Ref":"AWS::Partition"}`, `"aws"`, `{"Ref":"AWS::Region"}`, `"us-east-1"`, `{"Ref":"AWS::AccountId"}`, `"123456789012"`).Replace(string(s.raw))
	if err := json.Unmarshal([]byte(raw), &tmpl); err != nil {
		t.Fatal(err)
	}
	var out []statement
	for _, r := range tmpl.Resources {
		if r.Type != "AWS::IAM::ManagedPolicy" {
			continue
		}
		for _, st := range r.Properties.PolicyDocument.Statement {
			var x statement
			json.Unmarshal(st, &x)
			x.Resource = joined(x.Resource)
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		t.Fatal("no read-own-secret policy in the template")
	}
	return out
}

// joined resolves {"Fn::Join": ["", [...]]} of strings.
func joined(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v
	}
	j, ok := m["Fn::Join"].([]any)
	if !ok {
		return v
	}
	var b strings.Builder
	for _, p := range j[1].([]any) {
		if s, ok := p.(string); ok {
			b.WriteString(s)
		} else {
			b.WriteString("<unresolved>")
		}
	}
	return b.String()
}

// allowed evaluates Allow statements as IAM does for one request: the
// action and resource match (wildcards * and ?, policy variables
// substituted in the resource), and every StringEquals condition on
// secretsmanager:ResourceTag/<key> or aws:ResourceTag/<key> holds.
func allowed(sts []statement, action, resource string, tags, vars map[string]string) bool {
	sub := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, k, v)
		}
		return s
	}
	for _, st := range sts {
		if st.Effect != "Allow" || !anyMatch(st.Action, action, nil) || !anyMatch(st.Resource, resource, sub) {
			continue
		}
		ok := true
		for op, conds := range st.Condition {
			for key, want := range conds {
				tag, isTag := strings.CutPrefix(key, "secretsmanager:ResourceTag/")
				if !isTag {
					tag, isTag = strings.CutPrefix(key, "aws:ResourceTag/")
				}
				if op != "StringEquals" || !isTag {
					ok = false // an unknown condition never holds here
					continue
				}
				have, present := tags[tag]
				ok = ok && present && have == sub(want.(string))
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func anyMatch(v any, s string, sub func(string) string) bool {
	var pats []string
	switch x := v.(type) {
	case string:
		pats = []string{x}
	case []any:
		for _, p := range x {
			if ps, ok := p.(string); ok {
				pats = append(pats, ps)
			}
		}
	}
	for _, p := range pats {
		if sub != nil {
			p = sub(p)
		}
		if wildcard(p, s) {
			return true
		}
	}
	return false
}

// wildcard matches IAM's * (any run of characters, "/" included) and ?.
func wildcard(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if wildcard(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && wildcard(p[1:], s[1:])
	}
	return s != "" && p[0] == s[0] && wildcard(p[1:], s[1:])
}

func TestWildcard(t *testing.T) {
	tests := []struct {
		p, s string
		want bool
	}{
		{"a*", "a/b/c", true}, {"a?c", "abc", true}, {"a?c", "ac", false}, {"*-??????", "x-AbC123", true}, {"abc", "abd", false},
	}
	for _, tt := range tests {
		if got := wildcard(tt.p, tt.s); got != tt.want {
			t.Errorf("wildcard(%q, %q) = %v; want %v", tt.p, tt.s, got, tt.want)
		}
	}
}
