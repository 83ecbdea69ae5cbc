package main

// Who can read a stored key (issue 17, defect 2): evaluated the way AWS
// evaluates a request (internal/policyeval: identity policies, the secret's
// resource policy, the KMS key policy, explicit Deny first, kms:ViaService)
// over the synthesized templates and the resource policy of secrets a real
// create-and-store run stored in the emulator.

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/policyeval"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

const (
	evalAccount = "123456789012"
	evalRegion  = "us-east-1"
	breakGlass  = "arn:aws:iam::123456789012:role/BreakGlass"
	// adminAccess is an identity policy allowing every action on every
	// resource (AdministratorAccess; PowerUserAccess and many CI roles
	// allow as much on secrets and keys).
	adminAccess = `{"Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}`
)

// cfnTemplate is a template with its intrinsic functions resolved to one
// test account: Ref of a pseudo parameter to its value, of a resource to
// its logical id; Fn::GetAtt Arn to an ARN of the resource's kind named by
// its logical id; Fn::Join joined.
type cfnTemplate struct {
	Resources map[string]struct {
		Type       string
		Properties map[string]any
	}
}

func resolvedTemplate(t *testing.T, raw []byte) cfnTemplate {
	t.Helper()
	var tmpl cfnTemplate
	if err := json.Unmarshal(raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	pseudo := map[string]string{"AWS::Partition": "aws", "AWS::Region": evalRegion, "AWS::AccountId": evalAccount, "AWS::URLSuffix": "amazonaws.com"}
	types, names := map[string]string{}, map[string]string{}
	for id, r := range tmpl.Resources {
		types[id] = r.Type
		if n, ok := r.Properties["RoleName"].(string); ok {
			names[id] = n
		}
	}
	var resolve func(v any) any
	resolve = func(v any) any {
		switch x := v.(type) {
		case []any:
			out := make([]any, len(x))
			for i, e := range x {
				out[i] = resolve(e)
			}
			return out
		case map[string]any:
			if ref, ok := x["Ref"].(string); ok && len(x) == 1 {
				if v, ok := pseudo[ref]; ok {
					return v
				}
				return ref
			}
			if ga, ok := x["Fn::GetAtt"].([]any); ok && len(x) == 1 && len(ga) == 2 && ga[1] == "Arn" {
				id := ga[0].(string)
				switch types[id] {
				case "AWS::IAM::Role":
					if name, ok := names[id]; ok {
						return "arn:aws:iam::" + evalAccount + ":role/" + name
					}
					return "arn:aws:iam::" + evalAccount + ":role/" + id
				case "AWS::KMS::Key":
					return "arn:aws:kms:" + evalRegion + ":" + evalAccount + ":key/" + id
				}
				return "arn:aws:local:" + evalRegion + ":" + evalAccount + ":" + id
			}
			if sp, ok := x["Fn::Split"].([]any); ok && len(x) == 1 {
				// A list parameter (the member's ExcludedUserPaths) stays
				// its name here: it names no secret or key.
				s, _ := resolve(sp[1]).(string)
				var out []any
				for _, e := range strings.Split(s, sp[0].(string)) {
					out = append(out, e)
				}
				return out
			}
			if j, ok := x["Fn::Join"].([]any); ok && len(x) == 1 {
				var parts []string
				list, ok := resolve(j[1]).([]any)
				if !ok { // a list parameter's Ref
					list = []any{resolve(j[1])}
				}
				for _, p := range list {
					s, _ := p.(string)
					parts = append(parts, s)
				}
				return strings.Join(parts, j[0].(string))
			}
			out := map[string]any{}
			for k, e := range x {
				out[k] = resolve(e)
			}
			return out
		}
		return v
	}
	for id, r := range tmpl.Resources {
		r.Properties = resolve(r.Properties).(map[string]any)
		tmpl.Resources[id] = r
	}
	return tmpl
}

func toPolicy(t *testing.T, doc any) policyeval.Policy {
	t.Helper()
	b, _ := json.Marshal(doc)
	p, err := policyeval.Parse(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// identityPolicies returns the policies attached to the role roleID.
func (c cfnTemplate) identityPolicies(t *testing.T, roleID string) []policyeval.Policy {
	var out []policyeval.Policy
	for _, r := range c.Resources {
		if r.Type != "AWS::IAM::Policy" {
			continue
		}
		for _, ref := range r.Properties["Roles"].([]any) {
			if ref == roleID {
				out = append(out, toPolicy(t, r.Properties["PolicyDocument"]))
			}
		}
	}
	return out
}

func (c cfnTemplate) only(t *testing.T, typ string) (string, map[string]any) {
	t.Helper()
	return c.one(t, typ, "")
}

// one returns the one resource of typ whose logical id starts with prefix
// followed by CDK's 8-character hash.
func (c cfnTemplate) one(t *testing.T, typ, prefix string) (string, map[string]any) {
	t.Helper()
	var ids []string
	for id, r := range c.Resources {
		if r.Type == typ && strings.HasPrefix(id, prefix) && (prefix == "" || len(id) == len(prefix)+8) {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d resources of type %s (%v); want 1", len(ids), typ, ids)
	}
	return ids[0], c.Resources[ids[0]].Properties
}

// principal is someone who may try to read a stored key.
type principal struct {
	name     string
	who      policyeval.Principal
	identity []policyeval.Policy
}

// storedSecret is a secret a real create-and-store run stored.
type storedSecret struct {
	owner, arn string
	tags       map[string]string
	policy     policyeval.Policy
}

// storeFor runs create-and-store with cfg for each user and returns the
// secrets it stored, with their tags and resource policies as the emulator
// holds them, and each user's unique id.
func storeFor(t *testing.T, a *awstest.Account, cfg config.Config, users ...string) ([]storedSecret, map[string]string) {
	t.Helper()
	ctx := context.Background()
	recs := a.Records(t, cfg.RotationTable)
	ids := map[string]string{}
	var out []storedSecret
	for _, u := range users {
		a.User(t, u)
		old := a.Key(t, u)
		c := &rotation.Creator{IAM: a.IAM, Secrets: a.Secrets, Records: recs, Config: cfg, Log: slog.New(slog.NewJSONHandler(io.Discard, nil))}
		if nk, err := c.Handle(ctx, rotation.Task{Execution: "stored-key", Item: rotation.Item{User: u, Action: policy.Rotate, OldKey: rotation.KeyRef{ID: old}}}); err != nil || nk.KeyID == "" {
			t.Fatalf("create for %s = %+v, %v", u, nk, err)
		}
		gu, err := a.IAM.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(u)})
		if err != nil {
			t.Fatal(err)
		}
		ids[u] = aws.ToString(gu.User.UserId)
		name := rotation.SecretName(cfg.SecretPrefix, u)
		d, err := a.Secrets.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		rp, err := a.Secrets.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(name)})
		if err != nil {
			t.Fatal(err)
		}
		p, err := policyeval.Parse(aws.ToString(rp.ResourcePolicy))
		if err != nil {
			t.Fatalf("resource policy of %s: %v", name, err)
		}
		tags := map[string]string{}
		for _, tg := range d.Tags {
			tags[aws.ToString(tg.Key)] = aws.ToString(tg.Value)
		}
		out = append(out, storedSecret{owner: u, arn: aws.ToString(d.ARN), tags: tags, policy: p})
	}
	return out, ids
}

// reads reports whether p can read the stored key in s: GetSecretValue on
// the secret, and kms:Decrypt of the key through Secrets Manager.
func reads(p principal, s storedSecret, keyARN string, keyPolicy policyeval.Policy) (bool, string) {
	ctx := map[string][]string{}
	for k, v := range s.tags {
		ctx["secretsmanager:ResourceTag/"+k] = []string{v}
		ctx["aws:ResourceTag/"+k] = []string{v}
	}
	get := policyeval.Evaluate(policyeval.Request{Principal: p.who, Action: "secretsmanager:GetSecretValue", Resource: s.arn, Context: ctx}, p.identity, &s.policy, evalAccount)
	dec := policyeval.EvaluateKMS(policyeval.Request{Principal: p.who, Action: "kms:Decrypt", Resource: keyARN,
		Context: map[string][]string{"kms:ViaService": {"secretsmanager." + evalRegion + ".amazonaws.com"}}}, p.identity, keyPolicy, evalAccount)
	return get == policyeval.Allow && dec == policyeval.Allow, "GetSecretValue: " + get.String() + ", kms:Decrypt through Secrets Manager: " + dec.String()
}

func user(name, id string, identity ...policyeval.Policy) principal {
	return principal{name: name, who: policyeval.Principal{ARN: "arn:aws:iam::" + evalAccount + ":user/" + name, Account: evalAccount, UserID: id}, identity: identity}
}

func role(name, arn string, identity ...policyeval.Policy) principal {
	return principal{name: name, who: policyeval.Principal{ARN: arn, Account: evalAccount, UserID: "AROA" + strings.ToUpper(name) + ":session"}, identity: identity}
}

// TestMotoStoredKeyReadableOnlyByOwnerKeyRotorAndBreakGlass: in the
// single-account (hub) stack, a principal allowed every action (not the
// owner, not keyrotor, not break-glass) cannot read any stored key, nor
// use the key directly, nor change a secret's protection; the owner
// (through the read-own-secret policy) and the break-glass role can read
// its key; keyrotor's create-and-store role can make every call its
// function makes, and no other keyrotor role can read a key.
func TestMotoStoredKeyReadableOnlyByOwnerKeyRotorAndBreakGlass(t *testing.T) {
	s := synth(t, withCtx(defaultCtx, "breakGlassPrincipals", []any{breakGlass}))
	tmpl := resolvedTemplate(t, s.raw)
	keyID, _ := tmpl.one(t, "AWS::KMS::Key", "Key") // the admin topic has its own
	keyARN := "arn:aws:kms:" + evalRegion + ":" + evalAccount + ":key/" + keyID

	// Each function's role, and create-and-store's environment (the
	// configuration the stored secrets get).
	roles := map[string]principal{}
	var storeEnv map[string]any
	for _, f := range functions {
		for id, r := range tmpl.Resources {
			if r.Type == "AWS::IAM::Role" && strings.HasPrefix(id, f.id+"Role") {
				roles[f.dir] = role(f.dir, "arn:aws:iam::"+evalAccount+":role/"+id, tmpl.identityPolicies(t, id)...)
			}
			if r.Type == "AWS::Lambda::Function" && strings.HasPrefix(id, f.id) && f.dir == "create-and-store" {
				storeEnv = r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
			}
		}
	}
	env := map[string]string{}
	for k, v := range storeEnv {
		env[k], _ = v.(string)
	}
	env[config.EnvAdminTopicARN], env[config.EnvRotationTable] = "", "rotations"
	cfg, err := config.FromEnv(func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("create-and-store's environment: %v", err)
	}
	if cfg.StoreRoleARN != roles["create-and-store"].who.ARN || !slices.Equal(cfg.BreakGlass, []string{breakGlass}) || cfg.KMSKeyID != keyARN {
		t.Fatalf("create-and-store's environment names role %q, break-glass %v, key %q; want %q, [%s], %q",
			cfg.StoreRoleARN, cfg.BreakGlass, cfg.KMSKeyID, roles["create-and-store"].who.ARN, breakGlass, keyARN)
	}
	if cfg.DeliverRoleARN != roles["deliver"].who.ARN {
		t.Fatalf("create-and-store's environment names the deliver role %q; want %q", cfg.DeliverRoleARN, roles["deliver"].who.ARN)
	}
	var others []principal
	for _, dir := range []string{"find", "notify", "check-adoption", "deactivate", "delete", "summarize"} {
		others = append(others, roles[dir])
	}
	// deliver reads a stored key (to deliver it) and changes nothing.
	checkStoredKeys(t, tmpl, keyARN, cfg, roles["create-and-store"], Permissions["create-and-store"], others, []principal{roles["deliver"]})
}

// TestMotoMemberStoredKeyReadableOnlyByOwnerKeyRotorAndBreakGlass: the same
// in a member account, where keyrotor stores a key as the member role,
// under the member key (alias/KeyRotorMember).
func TestMotoMemberStoredKeyReadableOnlyByOwnerKeyRotorAndBreakGlass(t *testing.T) {
	m := synthMember(t, withCtx(defaultCtx, KeyHubAccount, testHub, "breakGlassPrincipals", []any{breakGlass}))
	tmpl := resolvedTemplate(t, m.raw)
	keyID, _ := tmpl.only(t, "AWS::KMS::Key")
	roleID, _ := tmpl.only(t, "AWS::IAM::Role")
	member := role("member", "arn:aws:iam::"+evalAccount+":role/"+MemberRoleName, tmpl.identityPolicies(t, roleID)...)
	cfg := config.Default()
	cfg.RotationTable, cfg.KMSKeyID, cfg.StoreRoleARN, cfg.BreakGlass = "rotations", config.MemberKeyAlias, member.who.ARN, []string{breakGlass}
	var actions []string
	for _, a := range MemberActions(cfg) {
		if slices.Contains(Permissions["create-and-store"], a) {
			actions = append(actions, a)
		}
	}
	checkStoredKeys(t, tmpl, "arn:aws:kms:"+evalRegion+":"+evalAccount+":key/"+keyID, cfg, member, actions, nil, nil)
}

// checkStoredKeys stores keys for two users with cfg (a real
// create-and-store run in the emulator) and evaluates who can read them
// under the template's read-own-secret and key policies: the owner, the
// break-glass role and store (keyrotor's role, which may also make every
// call of actions); not the other user, a principal allowed every action,
// or others (keyrotor's other roles).
func checkStoredKeys(t *testing.T, tmpl cfnTemplate, keyARN string, cfg config.Config, store principal, actions []string, others, readers []principal) {
	t.Helper()
	keyPolicy := toPolicy(t, tmpl.Resources[keyARN[strings.LastIndex(keyARN, "/")+1:]].Properties["KeyPolicy"])
	_, readOwn := tmpl.only(t, "AWS::IAM::ManagedPolicy")
	readOwnPolicy := toPolicy(t, readOwn["PolicyDocument"])
	a := awstest.New(t)
	secrets, ids := storeFor(t, a, cfg, "alice", "bob")
	people := []principal{
		user("alice", ids["alice"], readOwnPolicy),
		user("bob", ids["bob"], readOwnPolicy),
		user("eve", "AIDAEVE", toPolicy(t, json.RawMessage(adminAccess))),
		role("poweruser", "arn:aws:iam::"+evalAccount+":role/PowerUser", toPolicy(t, json.RawMessage(adminAccess))),
		role("breakglass", breakGlass, toPolicy(t, json.RawMessage(adminAccess))),
		store,
	}
	people = append(append(people, others...), readers...)
	for _, sec := range secrets {
		for _, p := range people {
			want := p.name == sec.owner || p.name == "breakglass" || p.name == store.name ||
				slices.ContainsFunc(readers, func(r principal) bool { return r.name == p.name })
			if got, why := reads(p, sec, keyARN, keyPolicy); got != want {
				t.Errorf("%s reading %s's key: %v (%s); want %v", p.name, sec.owner, got, why, want)
			}
		}
	}

	// Allowed everything by its identity policy, eve can neither use the
	// key directly nor loosen a secret's protection; the owner cannot
	// change its secret either.
	eve := people[2]
	if d := policyeval.EvaluateKMS(policyeval.Request{Principal: eve.who, Action: "kms:Decrypt", Resource: keyARN}, eve.identity, keyPolicy, evalAccount); d == policyeval.Allow {
		t.Errorf("eve calls kms:Decrypt directly: %v; want denied (use only through the services)", d)
	}
	// A reader (deliver) may change no secret, whatever its identity
	// policies grant: the resource policy's Deny holds.
	managers := []principal{eve, people[0]}
	for _, r := range readers {
		managers = append(managers, r, principal{name: r.name + " with admin access", who: r.who, identity: []policyeval.Policy{toPolicy(t, json.RawMessage(adminAccess))}})
	}
	for _, action := range rotation.ManageActions {
		for _, p := range managers {
			if d := policyeval.Evaluate(policyeval.Request{Principal: p.who, Action: action, Resource: secrets[0].arn}, p.identity, &secrets[0].policy, evalAccount); d == policyeval.Allow {
				t.Errorf("%s may %s on %s: %v; want denied", p.name, action, secrets[0].owner, d)
			}
		}
	}

	// keyrotor's role makes every call of its function on a stored secret,
	// and uses the key through Secrets Manager.
	for _, action := range actions {
		switch {
		case strings.HasPrefix(action, "secretsmanager:"):
			if d := policyeval.Evaluate(policyeval.Request{Principal: store.who, Action: action, Resource: secrets[0].arn}, store.identity, &secrets[0].policy, evalAccount); d != policyeval.Allow {
				t.Errorf("%s %s on a stored secret: %v; want allowed", store.name, action, d)
			}
		case strings.HasPrefix(action, "kms:"):
			req := policyeval.Request{Principal: store.who, Action: action, Resource: keyARN, Context: map[string][]string{"kms:ViaService": {"secretsmanager." + evalRegion + ".amazonaws.com"}}}
			if d := policyeval.EvaluateKMS(req, store.identity, keyPolicy, evalAccount); d != policyeval.Allow {
				t.Errorf("%s %s through Secrets Manager: %v; want allowed", store.name, action, d)
			}
		}
	}
}
