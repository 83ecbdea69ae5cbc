package main

// Template tests of the organization mode's member side (infra/member.go,
// docs/organizations.md): the member role's trust and permissions, the
// member key, the StackSet, the context's validation, and that without
// hubAccount the synthesis is the single-account one.

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/shared/settings"
)

const testHub = "111122223333"

// memberTemplate is a synthesized member stack.
type memberTemplate struct {
	stack     awscdk.Stack
	raw       []byte
	Resources map[string]resource
	Outputs   map[string]struct{ Value any }
}

func withCtx(base map[string]any, kv ...any) map[string]any {
	ctx := map[string]any{}
	for k, v := range base {
		ctx[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		ctx[kv[i].(string)] = kv[i+1]
	}
	return ctx
}

func ctxGetter(ctx map[string]any) func(string) (any, bool) {
	return func(k string) (any, bool) { v, ok := ctx[k]; return v, ok }
}

// synthMember builds the member stack alone from ctx (hubAccount included).
func synthMember(t *testing.T, ctx map[string]any) *memberTemplate {
	t.Helper()
	s, err := settings.FromContext(ctxGetter(ctx))
	if err != nil {
		t.Fatal(err)
	}
	org, err := OrganizationFromContext(ctxGetter(ctx))
	if err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(nil)
	stack := NewKeyRotorMemberStack(app, MemberStackName, &KeyRotorMemberStackProps{Settings: s, HubAccount: org.HubAccount})
	return templateOf(t, stack)
}

func templateOf(t *testing.T, stack awscdk.Stack) *memberTemplate {
	t.Helper()
	raw, err := json.Marshal(assertions.Template_FromStack(stack, nil).ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	m := &memberTemplate{stack: stack, raw: raw}
	if err := json.Unmarshal(raw, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func (m *memberTemplate) only(t *testing.T, typ string) (string, resource) {
	t.Helper()
	var ids []string
	for id, r := range m.Resources {
		if r.Type == typ {
			ids = append(ids, id)
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d resources of type %s in the member stack (%v); want 1", len(ids), typ, ids)
	}
	return ids[0], m.Resources[ids[0]]
}

// perAccountFunctions: the functions of Permissions with an IAM or Secrets
// Manager action, the ones that act in the account whose users they rotate.
func perAccountFunctions() []string {
	var out []string
	for _, f := range functions {
		for _, a := range Permissions[f.dir] {
			if strings.HasPrefix(a, "iam:") || strings.HasPrefix(a, "secretsmanager:") {
				out = append(out, f.dir)
				break
			}
		}
	}
	return out
}

// wantMemberActions computes, from the Permissions table, the member
// role's actions: the iam:, secretsmanager: and kms: actions of the
// per-account functions, each as granted to that function in the hub in
// the organization mode (the only mode the member stack serves).
func wantMemberActions(exemptGroup string, retirePasswords bool) []string {
	set := map[string]bool{}
	for _, fn := range perAccountFunctions() {
		for _, a := range Permissions[fn] {
			svc, _, _ := strings.Cut(a, ":")
			if a == "kms:Encrypt" {
				continue // the hub's table; in a member only Secrets Manager uses the key
			}
			if (svc == "iam" || svc == "secretsmanager" || svc == "kms") && granted(fn, a, exemptGroup, retirePasswords, true) {
				set[a] = true
			}
		}
	}
	var out []string
	for a := range set {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

// roleStatements returns the Allow statements of every policy of the
// member role (and fails if the role has inline or managed policies of its
// own); roleDenies its Deny statements.
func (m *memberTemplate) roleStatements(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, st := range m.allRoleStatements(t) {
		if st["Effect"] != "Deny" {
			out = append(out, st)
		}
	}
	return out
}

func (m *memberTemplate) roleDenies(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, st := range m.allRoleStatements(t) {
		if st["Effect"] == "Deny" {
			out = append(out, st)
		}
	}
	return out
}

func (m *memberTemplate) allRoleStatements(t *testing.T) []map[string]any {
	t.Helper()
	roleID, role := m.only(t, "AWS::IAM::Role")
	if role.Properties["Policies"] != nil || role.Properties["ManagedPolicyArns"] != nil {
		t.Fatalf("the member role has policies of its own: %v", role.Properties)
	}
	var out []map[string]any
	for _, r := range m.Resources {
		if r.Type != "AWS::IAM::Policy" {
			continue
		}
		for _, ref := range r.Properties["Roles"].([]any) {
			if ref.(map[string]any)["Ref"] != roleID {
				t.Fatalf("a policy is attached to %v, not the member role", ref)
			}
		}
		for _, st := range r.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
			out = append(out, st.(map[string]any))
		}
	}
	return out
}

func TestMemberFunctionsArePerAccount(t *testing.T) {
	if got := perAccountFunctions(); !reflect.DeepEqual(got, MemberFunctions) {
		t.Fatalf("MemberFunctions = %v; the functions with IAM or Secrets Manager actions in Permissions are %v", MemberFunctions, got)
	}
}

// TestMemberTrust: only the hub's function roles, by ARN through
// aws:PrincipalArn, may assume the member role; no other principal.
func TestMemberTrust(t *testing.T) {
	for _, hub := range []string{testHub, "000000000042"} {
		t.Run(hub, func(t *testing.T) {
			m := synthMember(t, withCtx(nil, KeyHubAccount, hub))
			_, role := m.only(t, "AWS::IAM::Role")
			if got := role.Properties["RoleName"]; got != MemberRoleName {
				t.Fatalf("RoleName = %v; want the fixed %s", got, MemberRoleName)
			}
			doc := role.Properties["AssumeRolePolicyDocument"].(map[string]any)
			sts := doc["Statement"].([]any)
			if len(sts) != 1 {
				t.Fatalf("trust policy has %d statements; want 1: %v", len(sts), sts)
			}
			st := sts[0].(map[string]any)
			if st["Effect"] != "Allow" || st["Action"] != "sts:AssumeRole" {
				t.Fatalf("trust statement = %v; want Allow sts:AssumeRole", st)
			}
			p := st["Principal"].(map[string]any)
			if len(p) != 1 || resolve(t, p["AWS"]) != "arn:aws:iam::"+hub+":root" {
				t.Fatalf("trust principal = %v; want only the hub account %s", p, hub)
			}
			cond := st["Condition"].(map[string]any)
			arnEq, _ := cond["ArnEquals"].(map[string]any)
			orgEq, _ := cond["StringEquals"].(map[string]any)
			if len(cond) != 2 || len(arnEq) != 1 || len(orgEq) != 1 || orgEq["aws:PrincipalOrgID"] != "${aws:ResourceOrgID}" {
				t.Fatalf("trust condition = %v; want ArnEquals on aws:PrincipalArn and aws:PrincipalOrgID = ${aws:ResourceOrgID} only", cond)
			}
			var got []string
			for _, a := range arnEq["aws:PrincipalArn"].([]any) {
				got = append(got, resolve(t, a))
			}
			var want []string
			for _, fn := range perAccountFunctions() {
				want = append(want, "arn:aws:iam::"+hub+":role/KeyRotor-"+fn+"-us-east-1")
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("aws:PrincipalArn = %v\nwant the hub's function roles %v", got, want)
			}
			for _, a := range got {
				if strings.ContainsAny(a, "*?") {
					t.Errorf("trusted role ARN %s has a wildcard", a)
				}
			}
		})
	}
}

// TestMemberPermissions: the member role allows exactly the per-account
// actions of Permissions (the password and group actions only with their
// settings), each on the member's own resources.
func TestMemberPermissions(t *testing.T) {
	for _, tc := range []struct {
		name            string
		ctx             map[string]any
		exemptGroup     string
		retirePasswords bool
		prefix          string
	}{
		{"defaults", nil, "", false, "iam-access-keys/"},
		{"exempt group", map[string]any{"exemptGroup": "breakglass"}, "breakglass", false, "iam-access-keys/"},
		{"retire passwords", map[string]any{"retirePasswords": "true"}, "", true, "iam-access-keys/"},
		{"both, cdk.json types, own prefix", map[string]any{"exemptGroup": "ops-admins", "retirePasswords": true, "secretPrefix": "team/keys/"}, "ops-admins", true, "team/keys/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := synthMember(t, withCtx(tc.ctx, KeyHubAccount, testHub))
			keyID, _ := m.only(t, "AWS::KMS::Key")
			var got []string
			for _, st := range m.roleStatements(t) {
				if st["Effect"] != "Allow" {
					t.Errorf("statement %v is not an Allow", st)
				}
				res := strs(st["Resource"])
				if res == nil {
					res = []string{resolve(t, st["Resource"])}
				}
				if len(res) != 1 {
					t.Errorf("statement %v has %d resources; want 1", st, len(res))
				}
				for _, a := range strs(st["Action"]) {
					got = append(got, a)
					if strings.Contains(a, "*") {
						t.Errorf("wildcard action %s", a)
					}
					var want string
					switch {
					case a == "iam:GenerateCredentialReport" || a == "iam:GetCredentialReport" || a == "iam:ListAccountAliases":
						want = "*"
					case a == "iam:GetGroup":
						want = "arn:aws:iam::123456789012:group/" + tc.exemptGroup
					case strings.HasPrefix(a, "iam:"):
						want = "arn:aws:iam::123456789012:user/*"
					case strings.HasPrefix(a, "secretsmanager:"):
						want = "arn:aws:secretsmanager:us-east-1:123456789012:secret:" + tc.prefix + "*"
					case strings.HasPrefix(a, "kms:"):
						want = keyID + ".Arn"
					}
					if res[0] != want {
						t.Errorf("%s on %v; want %s", a, res, want)
					}
				}
				cond, _ := st["Condition"].(map[string]any)
				isKMS := strings.HasPrefix(strs(st["Action"])[0], "kms:")
				if isKMS {
					eq, _ := cond["StringEquals"].(map[string]any)
					if len(cond) != 1 || len(eq) != 1 || resolve(t, eq["kms:ViaService"]) != "secretsmanager.us-east-1.amazonaws.com" {
						t.Errorf("kms statement condition = %v; want only kms:ViaService secretsmanager.us-east-1.amazonaws.com", cond)
					}
				} else if cond != nil {
					t.Errorf("statement %v has a condition", st)
				}
			}
			sort.Strings(got)
			want := wantMemberActions(tc.exemptGroup, tc.retirePasswords)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("member role actions = %v\nwant %v", got, want)
			}
			if slices.Contains(got, "iam:DeleteLoginProfile") != tc.retirePasswords {
				t.Errorf("iam:DeleteLoginProfile granted = %v; want it only with retirePasswords", !tc.retirePasswords)
			}
			if slices.Contains(got, "iam:GetGroup") != (tc.exemptGroup != "") {
				t.Errorf("iam:GetGroup granted = %v; want it only with exemptGroup", tc.exemptGroup == "")
			}
			// find names each account in mails by its alias, in every
			// account: the member role always allows it.
			if !slices.Contains(got, "iam:ListAccountAliases") {
				t.Errorf("member role actions %v lack iam:ListAccountAliases", got)
			}
			for _, a := range got {
				if !strings.HasPrefix(a, "iam:") && !strings.HasPrefix(a, "secretsmanager:") && !strings.HasPrefix(a, "kms:") {
					t.Errorf("member role has %s: only IAM, Secrets Manager and KMS actions run in a member", a)
				}
			}
			if !reflect.DeepEqual(MemberActions(settingsOf(t, withCtx(tc.ctx)).Config), want) {
				t.Errorf("MemberActions = %v; want %v", MemberActions(settingsOf(t, withCtx(tc.ctx)).Config), want)
			}
		})
	}
}

func settingsOf(t *testing.T, ctx map[string]any) settings.Settings {
	t.Helper()
	s, err := settings.FromContext(ctxGetter(ctx))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMemberKey: the member's own key (rotation on, retained, aliased),
// used by the member role and the account's users only through Secrets
// Manager; the read-own-secret policy is the hub's; the outputs.
func TestMemberKey(t *testing.T) {
	m := synthMember(t, withCtx(nil, KeyHubAccount, testHub))
	roleID, _ := m.only(t, "AWS::IAM::Role")
	keyID, key := m.only(t, "AWS::KMS::Key")
	if key.Properties["EnableKeyRotation"] != true {
		t.Errorf("EnableKeyRotation = %v", key.Properties["EnableKeyRotation"])
	}
	m.stackTemplate().HasResource(jsii.String("AWS::KMS::Key"), map[string]any{"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"})
	_, alias := m.only(t, "AWS::KMS::Alias")
	if alias.Properties["AliasName"] != MemberKeyAlias || resolve(t, alias.Properties["TargetKeyId"]) != keyID+".Arn" {
		t.Errorf("alias = %v; want %s for the member key", alias.Properties, MemberKeyAlias)
	}
	via := "secretsmanager.us-east-1.amazonaws.com"
	var kmsActions []string
	for _, a := range wantMemberActions("", false) {
		if strings.HasPrefix(a, "kms:") {
			kmsActions = append(kmsActions, a)
		}
	}
	want := map[string]struct {
		principal string
		actions   []string
		cond      map[string]string
	}{
		// The account administers it, never uses it but as below (no root kms:*).
		"AccountAdministersTheKey":        {"arn:aws:iam::123456789012:root", keyAdminActions, nil},
		"MemberRoleThroughSecretsManager": {roleID + ".Arn", kmsActions, map[string]string{"kms:ViaService": via}},
		"UsersDecryptOwnSecretThroughSecretsManager": {"arn:aws:iam::123456789012:root", []string{"kms:Decrypt"},
			map[string]string{"kms:ViaService": via, "kms:CallerAccount": "123456789012"}},
	}
	sts := key.Properties["KeyPolicy"].(map[string]any)["Statement"].([]any)
	if len(sts) != len(want) {
		t.Fatalf("key policy has %d statements; want %d: %v", len(sts), len(want), sts)
	}
	for _, s := range sts {
		st := s.(map[string]any)
		sid, _ := st["Sid"].(string)
		w, ok := want[sid]
		if !ok {
			t.Fatalf("unexpected key policy statement %v", st)
		}
		p := st["Principal"].(map[string]any)
		if st["Effect"] != "Allow" || len(p) != 1 || resolve(t, p["AWS"]) != w.principal || st["Resource"] != "*" {
			t.Errorf("statement %q = %v; want Allow to %s", sid, st, w.principal)
		}
		if got := strs(st["Action"]); !reflect.DeepEqual(got, w.actions) {
			t.Errorf("statement %q actions = %v; want %v", sid, got, w.actions)
		}
		got := map[string]string{}
		cond, _ := st["Condition"].(map[string]any)
		for op, kv := range cond {
			if op != "StringEquals" {
				t.Errorf("statement %q: condition operator %s; want StringEquals", sid, op)
			}
			for k, v := range kv.(map[string]any) {
				got[k] = resolve(t, v)
			}
		}
		if len(got) == 0 {
			got = nil
		}
		if !reflect.DeepEqual(got, w.cond) {
			t.Errorf("statement %q conditions = %v; want %v", sid, got, w.cond)
		}
	}

	// The read-own-secret policy is the hub's (the same function, the same
	// logical ids): each user reads its own secret, decrypted through
	// Secrets Manager with the member key.
	var hubPolicy, memberPolicy resource
	for _, p := range resources(t, get(t), "AWS::IAM::ManagedPolicy") {
		hubPolicy = p
	}
	_, memberPolicy = m.only(t, "AWS::IAM::ManagedPolicy")
	if !reflect.DeepEqual(memberPolicy.Properties, hubPolicy.Properties) {
		t.Errorf("member read-own-secret policy = %v\nwant the hub's %v", memberPolicy.Properties, hubPolicy.Properties)
	}
	for _, st := range readOwnStatements(t, &synthesized{raw: m.raw}) {
		if slices.Contains(strs(st.Action), "kms:Decrypt") && !reflect.DeepEqual(st.Resource, map[string]any{"Fn::GetAtt": []any{keyID, "Arn"}}) {
			t.Errorf("read-own-secret decrypts with %v; want the member key", st.Resource)
		}
	}

	outputs := map[string]string{}
	for id, o := range m.Outputs {
		outputs[id] = resolve(t, o.Value)
	}
	if !reflect.DeepEqual(outputs, map[string]string{"MemberRoleArn": roleID + ".Arn", "MemberKeyArn": keyID + ".Arn"}) {
		t.Errorf("outputs = %v; want the role's and the key's ARNs", outputs)
	}
	// Deployable in any account without bootstrapping: no bootstrap
	// version parameter or rule, no assets; the one parameter is the
	// account's own ExcludedUserPaths, with a default.
	var tmpl map[string]any
	json.Unmarshal(m.raw, &tmpl)
	params, _ := tmpl["Parameters"].(map[string]any)
	if p, _ := params[ExcludedUserPathsParameter].(map[string]any); len(params) != 1 || p["Default"] != "" || tmpl["Rules"] != nil {
		t.Errorf("member template has Parameters %v / Rules %v; want only %s, default none (StackSet instances are not bootstrapped)", tmpl["Parameters"], tmpl["Rules"], ExcludedUserPathsParameter)
	}
}

func (m *memberTemplate) stackTemplate() assertions.Template {
	return assertions.Template_FromJSON(&map[string]any{"Resources": m.rawResources()}, nil)
}

func (m *memberTemplate) rawResources() map[string]any {
	var tmpl struct{ Resources map[string]any }
	json.Unmarshal(m.raw, &tmpl)
	return tmpl.Resources
}

// TestMemberNag: cdk-nag's AwsSolutions checks find nothing unsuppressed in
// the member stack, and every suppression has a reason.
func TestMemberNag(t *testing.T) {
	m := synthMember(t, withCtx(map[string]any{"exemptGroup": "breakglass", "retirePasswords": "true"}, KeyHubAccount, testHub))
	ann := assertions.Annotations_FromStack(m.stack)
	match := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	for _, f := range append(*ann.FindError(jsii.String("*"), match), *ann.FindWarning(jsii.String("*"), match)...) {
		t.Errorf("cdk-nag: %v %v", *f.Id, f.Entry.Data)
	}
	reasons := regexp.MustCompile(`"reason":"([^"]*)"`).FindAllStringSubmatch(string(m.raw), -1)
	if len(reasons) == 0 {
		t.Fatal("no cdk-nag suppression found: the checks did not run on the member stack?")
	}
	for _, r := range reasons {
		if len(r[1]) < 20 {
			t.Errorf("suppression without a real reason: %q", r[1])
		}
	}
}

// orgApp is the app main builds: the hub, then addOrganization.
type orgApp struct {
	app    awscdk.App
	hub    awscdk.Stack
	stacks []string // the app's stacks
	err    error
}

// placeholderAssets writes placeholder function assets (asset hashes
// depend on their content, not on the directory).
func placeholderAssets(t *testing.T) string {
	dir := t.TempDir()
	for _, f := range functions {
		os.MkdirAll(filepath.Join(dir, f.dir), 0o755)
		os.WriteFile(filepath.Join(dir, f.dir, "bootstrap"), []byte("placeholder"), 0o755)
	}
	return dir
}

// buildOrg builds the hub from ctx in account (none: environment-agnostic)
// and, unless hubOnly, adds the organization as main does.
func buildOrg(t *testing.T, ctx map[string]any, account string, hubOnly bool) *orgApp {
	t.Helper()
	s := settingsOf(t, ctx)
	app := awscdk.NewApp(nil)
	var env *awscdk.Environment
	if account != "" {
		env = &awscdk.Environment{Account: jsii.String(account), Region: jsii.String("us-east-1")}
	}
	hub := NewKeyRotorStack(app, "KeyRotor", &KeyRotorStackProps{StackProps: awscdk.StackProps{Env: env}, Settings: s, AssetDir: placeholderAssets(t)})
	o := &orgApp{app: app, hub: hub}
	if !hubOnly {
		o.err = addOrganization(app, hub, s, ctx)
	}
	for _, c := range *app.Node().Children() {
		if *awscdk.Stack_IsStack(c) {
			o.stacks = append(o.stacks, *c.Node().Id())
		}
	}
	return o
}

func (o *orgApp) hubResources(t *testing.T) map[string]any {
	t.Helper()
	raw, _ := json.Marshal(assertions.Template_FromStack(o.hub, nil).ToJSON())
	var tmpl map[string]any
	json.Unmarshal(raw, &tmpl)
	return tmpl
}

func (o *orgApp) member(t *testing.T) *memberTemplate {
	t.Helper()
	c := o.app.Node().TryFindChild(jsii.String(MemberStackName))
	if c == nil {
		t.Fatalf("no %s stack in the app (stacks %v)", MemberStackName, o.stacks)
	}
	return templateOf(t, awscdk.Stack_Of(c))
}

// TestSingleAccountUnchanged: without hubAccount the app holds the hub
// alone, with the very template it has without the organization code; with
// hubAccount alone, the hub is still unchanged and the member stack is
// beside it. Without organizationScope the hub has none of the
// organization mode's additions (TestHubOnlyAddsOrganization: its role
// names, permissions and variables).
func TestSingleAccountUnchanged(t *testing.T) {
	want := buildOrg(t, defaultCtx, "", true).hubResources(t)
	raw, _ := json.Marshal(want)
	if got := withoutOrganization(t, raw); !reflect.DeepEqual(got, want) {
		t.Fatalf("without organizationScope the hub has organization-mode additions:\n%s", raw)
	}
	for _, tc := range []struct {
		name   string
		ctx    map[string]any
		stacks []string
	}{
		{"no hubAccount", defaultCtx, []string{"KeyRotor"}},
		{"empty hubAccount", withCtx(defaultCtx, KeyHubAccount, "", KeyOrganizationalUnits, "", KeyDelegatedAdmin, false), []string{"KeyRotor"}},
		{"hubAccount alone", withCtx(defaultCtx, KeyHubAccount, testHub), []string{"KeyRotor", MemberStackName}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := buildOrg(t, tc.ctx, "", false)
			if o.err != nil {
				t.Fatal(o.err)
			}
			if !reflect.DeepEqual(o.stacks, tc.stacks) {
				t.Fatalf("stacks = %v; want %v", o.stacks, tc.stacks)
			}
			// Statement order aside (sortStatements: token numbers differ
			// between apps of one process, not between two synths).
			if got := o.hubResources(t); !reflect.DeepEqual(sortStatements(got), sortStatements(want)) {
				a, _ := json.Marshal(got)
				b, _ := json.Marshal(want)
				t.Fatalf("the hub template changed:\n%s\nwant\n%s", a, b)
			}
		})
	}
}

// TestMemberStackSet: with organizationalUnits, the hub holds a
// service-managed, auto-deploying StackSet of the member stack's template
// in its region, called as itself or as a delegated administrator; the
// rest of the hub is unchanged.
func TestMemberStackSet(t *testing.T) {
	plain := buildOrg(t, defaultCtx, "", true).hubResources(t)
	for _, tc := range []struct {
		name    string
		ctx     map[string]any
		account string
		ous     []string
		callAs  string
	}{
		{"management account", map[string]any{KeyOrganizationalUnits: "ou-ab12-cd34ef56"}, "", []string{"ou-ab12-cd34ef56"}, "SELF"},
		{"delegated administrator, JSON list, root", map[string]any{KeyOrganizationalUnits: []any{"ou-ab12-cd34ef56", "r-ab12", "ou-ab12-cd34ef56"}, KeyDelegatedAdmin: "true"},
			testHub, []string{"ou-ab12-cd34ef56", "r-ab12"}, "DELEGATED_ADMIN"},
		{"explicit SELF, string list", map[string]any{KeyOrganizationalUnits: ` ["ou-zz99-0123456789"] `, KeyDelegatedAdmin: false}, "", []string{"ou-zz99-0123456789"}, "SELF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := withCtx(defaultCtx, KeyHubAccount, testHub)
			for k, v := range tc.ctx {
				ctx[k] = v
			}
			o := buildOrg(t, ctx, tc.account, false)
			if o.err != nil {
				t.Fatal(o.err)
			}
			tmpl := o.hubResources(t)
			res := tmpl["Resources"].(map[string]any)
			var setID string
			for id, r := range res {
				if r.(map[string]any)["Type"] == "AWS::CloudFormation::StackSet" {
					if setID != "" {
						t.Fatal("more than one StackSet")
					}
					setID = id
				}
			}
			if setID == "" {
				t.Fatal("no StackSet in the hub")
			}
			props := res[setID].(map[string]any)["Properties"].(map[string]any)
			body := props["TemplateBody"].(string)
			delete(props, "TemplateBody")
			region := map[string]any{"Ref": "AWS::Region"}
			if tc.account != "" {
				region = nil
			}
			targets := map[string]any{"OrganizationalUnitIds": anySlice(tc.ous), "AccountFilterType": "DIFFERENCE", "Accounts": []any{testHub}}
			want := map[string]any{
				"StackSetName":    MemberStackName,
				"PermissionModel": "SERVICE_MANAGED",
				"AutoDeployment":  map[string]any{"Enabled": true, "RetainStacksOnAccountRemoval": false},
				"CallAs":          tc.callAs,
				"Capabilities":    []any{"CAPABILITY_NAMED_IAM"},
				"Description":     props["Description"],
				"StackInstancesGroup": []any{map[string]any{
					"DeploymentTargets": targets,
					"Regions":           []any{orString(region, "us-east-1")},
				}},
			}
			if !reflect.DeepEqual(props, want) {
				a, _ := json.MarshalIndent(props, "", " ")
				b, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("StackSet properties:\n%s\nwant\n%s", a, b)
			}
			// The body is the member stack's template, and fits.
			if len(body) > maxTemplateBody {
				t.Errorf("TemplateBody is %d bytes; CloudFormation takes %d", len(body), maxTemplateBody)
			}
			var got, member map[string]any
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatalf("TemplateBody is not JSON: %v", err)
			}
			json.Unmarshal(o.member(t).raw, &member)
			if !reflect.DeepEqual(got, member) {
				t.Errorf("TemplateBody differs from the KeyRotorMember stack's template:\n%s\nwant\n%s", body, o.member(t).raw)
			}
			// Nothing else of the hub changed.
			delete(res, setID)
			if !reflect.DeepEqual(sortStatements(tmpl), sortStatements(plain)) && tc.account == "" {
				t.Errorf("the StackSet changed the rest of the hub")
			}
		})
	}
}

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

func orString(v map[string]any, s string) any {
	if v == nil {
		return s
	}
	return v
}

// TestOrganizationContext: the settings' validation, with errors naming
// the key and the fix.
func TestOrganizationContext(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ctx     map[string]any
		want    Organization
		errKey  string
		errText string // in the message
	}{
		{"unset", nil, Organization{}, "", ""},
		{"hub", map[string]any{KeyHubAccount: " 012345678901 "}, Organization{HubAccount: "012345678901"}, "", ""},
		{"hub as a cdk.json number", map[string]any{KeyHubAccount: float64(123456789012)}, Organization{HubAccount: "123456789012"}, "", ""},
		{"hub too short", map[string]any{KeyHubAccount: "12345"}, Organization{}, KeyHubAccount, "12-digit AWS account id"},
		{"hub too long", map[string]any{KeyHubAccount: "1234567890123"}, Organization{}, KeyHubAccount, "12-digit"},
		{"hub not digits", map[string]any{KeyHubAccount: "arn:aws:iam::123456789012:root"}, Organization{}, KeyHubAccount, "12-digit"},
		{"hub number lost its zero", map[string]any{KeyHubAccount: float64(12345678901)}, Organization{}, KeyHubAccount, "as a string"},
		{"ous", map[string]any{KeyHubAccount: testHub, KeyOrganizationalUnits: "ou-ab12-cd34ef56, ou-ab12-gh78ij90,"},
			Organization{HubAccount: testHub, OrganizationalUnits: []string{"ou-ab12-cd34ef56", "ou-ab12-gh78ij90"}}, "", ""},
		{"bad ou", map[string]any{KeyHubAccount: testHub, KeyOrganizationalUnits: "ou-ab12-cd34ef56,ou-AB12"}, Organization{}, KeyOrganizationalUnits, "ou-"},
		{"account as ou", map[string]any{KeyHubAccount: testHub, KeyOrganizationalUnits: "123456789012"}, Organization{}, KeyOrganizationalUnits, "organizational unit"},
		{"ous as a number", map[string]any{KeyHubAccount: testHub, KeyOrganizationalUnits: float64(3)}, Organization{}, KeyOrganizationalUnits, "JSON list"},
		{"ous without hub", map[string]any{KeyOrganizationalUnits: "ou-ab12-cd34ef56"}, Organization{}, KeyOrganizationalUnits, "set hubAccount"},
		{"delegated", map[string]any{KeyHubAccount: testHub, KeyOrganizationalUnits: "r-ab12", KeyDelegatedAdmin: true},
			Organization{HubAccount: testHub, OrganizationalUnits: []string{"r-ab12"}, DelegatedAdmin: true}, "", ""},
		{"delegated not a bool", map[string]any{KeyHubAccount: testHub, KeyOrganizationalUnits: "r-ab12", KeyDelegatedAdmin: "yes"}, Organization{}, KeyDelegatedAdmin, "true"},
		{"delegated without ous", map[string]any{KeyHubAccount: testHub, KeyDelegatedAdmin: "true"}, Organization{}, KeyDelegatedAdmin, "organizationalUnits"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := OrganizationFromContext(ctxGetter(tc.ctx))
			if tc.errKey == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Fatalf("got %+v; want %+v", got, tc.want)
				}
				return
			}
			var se *settings.Error
			if !errors.As(err, &se) || se.Key != tc.errKey {
				t.Fatalf("error = %v; want a settings error on %s", err, tc.errKey)
			}
			if msg := err.Error(); !strings.Contains(msg, "context "+tc.errKey+"=") || !strings.Contains(msg, tc.errText) || !strings.Contains(msg, "-c "+tc.errKey+"=") {
				t.Fatalf("error %q does not name %s, say %q and tell how to set it", msg, tc.errKey, tc.errText)
			}
		})
	}
}

// TestHubAccountValidationStopsSynthesis: main's path (addOrganization)
// refuses a bad hubAccount before adding anything, and a hubAccount that
// is not the hub stack's own account when it adds the StackSet.
func TestHubAccountValidationStopsSynthesis(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ctx     map[string]any
		account string
		errText string
	}{
		{"not 12 digits", withCtx(defaultCtx, KeyHubAccount, "1111-2222-3333"), "", `context hubAccount="1111-2222-3333": want the hub's 12-digit AWS account id`},
		{"not the hub's account", withCtx(defaultCtx, KeyHubAccount, testHub, KeyOrganizationalUnits, "ou-ab12-cd34ef56"), "999999999999", "deploys to account 999999999999"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := buildOrg(t, tc.ctx, tc.account, false)
			if o.err == nil || !strings.Contains(o.err.Error(), tc.errText) || !strings.Contains(o.err.Error(), "hubAccount") {
				t.Fatalf("error = %v; want one naming hubAccount: %s", o.err, tc.errText)
			}
		})
	}
	// The hub's own account is fine.
	if o := buildOrg(t, withCtx(defaultCtx, KeyHubAccount, testHub, KeyOrganizationalUnits, "ou-ab12-cd34ef56"), testHub, false); o.err != nil {
		t.Fatal(o.err)
	}
}

// TestDocsOrganizations keeps docs/organizations.md true: its table of the
// member role's actions (resource and setting included) is the template's,
// its settings table lists every key, and it names the hub's role names.
func TestDocsOrganizations(t *testing.T) {
	b, err := os.ReadFile("../docs/organizations.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	if !strings.HasPrefix(doc, "# Organizations: one deployment, every account\n") {
		t.Errorf("docs/organizations.md must start with its title")
	}
	for _, k := range OrgKeys {
		if !strings.Contains(doc, "| `"+k+"` |") {
			t.Errorf("docs/organizations.md lacks a row for the context setting %s", k)
		}
	}
	for _, fn := range MemberFunctions {
		if !strings.Contains(doc, "`"+HubRoleName(fn, "<region>")+"`") {
			t.Errorf("docs/organizations.md does not name the hub role %s", HubRoleName(fn, "<region>"))
		}
	}
	for _, s := range []string{"`" + MemberRoleName + "`", "`" + MemberKeyAlias + "`"} {
		if !strings.Contains(doc, s) {
			t.Errorf("docs/organizations.md does not name %s", s)
		}
	}

	// The rows the template implies, with every setting on.
	m := synthMember(t, withCtx(map[string]any{"exemptGroup": "breakglass", "retirePasswords": "true",
		"deliveryParameters": []any{"/ci/*"}, "deliverySecrets": []any{"ci/aws"}}, KeyHubAccount, testHub))
	keyID, _ := m.only(t, "AWS::KMS::Key")
	always := wantMemberActions("", false)
	var want []string
	for _, st := range m.roleStatements(t) {
		if sid, _ := st["Sid"].(string); strings.HasPrefix(sid, "Delivery") {
			// delivery's, in the member account, in any region
			row := map[string]struct{ r, when string }{
				"DeliveryParameters":     {"`parameter/<deliveryParameters>`, any region", "with `deliveryParameters` set"},
				"DeliveryParameterTypes": {"`*`", "with `deliveryParameters` set"},
				"DeliverySecrets":        {"`secret:<deliverySecrets>`, any region", "with `deliverySecrets` set"},
			}[sid]
			r, when := row.r, row.when
			for _, a := range strs(st["Action"]) {
				want = append(want, "| "+a+" | "+r+" | "+when+" |")
			}
			continue
		}
		r := resolve(t, st["Resource"])
		switch {
		case r == "*":
		case r == keyID+".Arn":
			r = "the member key (`" + MemberKeyAlias + "`), through Secrets Manager only"
		default:
			r = strings.NewReplacer("arn:aws:iam::123456789012:", "", "arn:aws:secretsmanager:us-east-1:123456789012:", "",
				"breakglass", "<exemptGroup>", "iam-access-keys/", "<secretPrefix>").Replace(r)
		}
		if r != "" && !strings.HasPrefix(r, "the member key") {
			r = "`" + r + "`"
		}
		for _, a := range strs(st["Action"]) {
			when := "always"
			switch {
			case slices.Contains(always, a):
			case a == "iam:GetGroup":
				when = "with `exemptGroup` set"
			default:
				when = "with `retirePasswords=true`"
			}
			want = append(want, "| "+a+" | "+r+" | "+when+" |")
		}
	}
	sort.Strings(want)
	got := regexp.MustCompile(`(?m)^\| (iam|secretsmanager|kms|ssm|sts|dynamodb|sns|ses|s3|states):[^\n]*\|$`).FindAllString(doc, -1)
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("docs/organizations.md's member permissions table =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
