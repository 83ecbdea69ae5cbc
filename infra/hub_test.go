package main

// Template tests of the organization mode's hub side (organizationScope
// set: docs/organizations.md): the fixed names of the MemberFunctions'
// roles (the member role trusts them), their sts:AssumeRole on the member
// role only, find's Organizations and account-alias actions, the
// environment every function gets, and that nothing else of the hub
// changes.

import (
	"encoding/json"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/settings"
)

// orgCtx is defaultCtx in the organization mode, every account in scope.
var orgCtx = withCtx(defaultCtx, settings.KeyOrganizationScope, config.ScopeAll)

// maxRoleName is IAM's limit on a role's name (IAM User Guide, "IAM and
// AWS STS quotas").
const maxRoleName = 64

// hubTemplate is a synthesized hub stack, read per function.
type hubTemplate struct {
	stack     awscdk.Stack
	raw       []byte
	Resources map[string]resource
	org       *orgApp
}

// buildHub synthesizes the hub (and, as main does, the organization's
// stacks) from ctx, environment-agnostic when env is nil.
func buildHub(t *testing.T, ctx map[string]any, env *awscdk.Environment) *hubTemplate {
	t.Helper()
	s := settingsOf(t, ctx)
	app := awscdk.NewApp(nil)
	hub := NewKeyRotorStack(app, "KeyRotor", &KeyRotorStackProps{StackProps: awscdk.StackProps{Env: env}, Settings: s, AssetDir: placeholderAssets(t)})
	o := &orgApp{app: app, hub: hub}
	if o.err = addOrganization(app, hub, s, ctx); o.err != nil {
		t.Fatal(o.err)
	}
	raw, err := json.Marshal(assertions.Template_FromStack(hub, nil).ToJSON())
	if err != nil {
		t.Fatal(err)
	}
	h := &hubTemplate{stack: hub, raw: raw, org: o}
	if err := json.Unmarshal(raw, h); err != nil {
		t.Fatal(err)
	}
	return h
}

// role returns the logical id and the resource of function dir's role.
func (h *hubTemplate) role(t *testing.T, dir string) (string, resource) {
	t.Helper()
	var id string
	for _, f := range functions {
		if f.dir != dir {
			continue
		}
		for rid, r := range h.Resources {
			if r.Type == "AWS::IAM::Role" && strings.HasPrefix(rid, f.id+"Role") {
				if id != "" {
					t.Fatalf("two roles for %s: %s and %s", dir, id, rid)
				}
				id = rid
			}
		}
	}
	if id == "" {
		t.Fatalf("no role for the function %s", dir)
	}
	return id, h.Resources[id]
}

// statements returns the statements of every policy attached to function
// dir's role.
func (h *hubTemplate) statements(t *testing.T, dir string) []map[string]any {
	t.Helper()
	roleID, _ := h.role(t, dir)
	var out []map[string]any
	for _, r := range h.Resources {
		if r.Type != "AWS::IAM::Policy" {
			continue
		}
		for _, ref := range r.Properties["Roles"].([]any) {
			if ref.(map[string]any)["Ref"] != roleID {
				continue
			}
			for _, st := range r.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				out = append(out, st.(map[string]any))
			}
		}
	}
	return out
}

// env returns function dir's environment variables.
func (h *hubTemplate) env(t *testing.T, dir string) map[string]any {
	t.Helper()
	for _, f := range functions {
		if f.dir != dir {
			continue
		}
		for id, r := range h.Resources {
			if r.Type == "AWS::Lambda::Function" && strings.HasPrefix(id, f.id) && !strings.HasPrefix(id, f.id+"Role") && !strings.HasPrefix(id, f.id+"Logs") {
				return r.Properties["Environment"].(map[string]any)["Variables"].(map[string]any)
			}
		}
	}
	t.Fatalf("no function %s", dir)
	return nil
}

// resources resolves a statement's Resource (one value or a list).
func stmtResources(t *testing.T, st map[string]any) []string {
	t.Helper()
	rs, ok := st["Resource"].([]any)
	if !ok {
		rs = []any{st["Resource"]}
	}
	var out []string
	for _, r := range rs {
		out = append(out, resolve(t, r))
	}
	return out
}

// TestHubRoleNames: in the organization mode the roles of MemberFunctions
// have the names the member role trusts, with the stack's region (the
// AWS::Region token when the stack is environment-agnostic); notify's and
// summarize's roles, which the member never trusts, keep CloudFormation's
// names.
func TestHubRoleNames(t *testing.T) {
	for _, tc := range []struct {
		name   string
		env    *awscdk.Environment
		region string // the resolved region (local pseudo parameters: us-east-1)
		token  bool   // the name holds the AWS::Region token
	}{
		{"environment-agnostic", nil, "us-east-1", true},
		{"ap-southeast-5", &awscdk.Environment{Account: jsii.String(testHub), Region: jsii.String("ap-southeast-5")}, "ap-southeast-5", false},
		{"us-gov-west-1", &awscdk.Environment{Account: jsii.String(testHub), Region: jsii.String("us-gov-west-1")}, "us-gov-west-1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := buildHub(t, orgCtx, tc.env)
			for _, f := range functions {
				_, role := h.role(t, f.dir)
				name, named := role.Properties["RoleName"]
				if !slices.Contains(MemberFunctions, f.dir) {
					if named {
						t.Errorf("%s's role is named %v; only MemberFunctions' roles have fixed names", f.dir, name)
					}
					continue
				}
				if !named {
					t.Errorf("%s's role has no RoleName; want %s", f.dir, HubRoleName(f.dir, tc.region))
					continue
				}
				if got := resolve(t, name); got != HubRoleName(f.dir, tc.region) {
					t.Errorf("%s's role is named %s; want %s", f.dir, got, HubRoleName(f.dir, tc.region))
				}
				b, _ := json.Marshal(name)
				if hasToken := strings.Contains(string(b), `{"Ref":"AWS::Region"}`); hasToken != tc.token {
					t.Errorf("%s's RoleName %s: the region token is there = %v; want %v", f.dir, b, hasToken, tc.token)
				}
			}
		})
	}
}

// TestHubRoleNameLength: every function's role name fits IAM's 64
// characters and charset in the regions with the longest names.
func TestHubRoleNameLength(t *testing.T) {
	valid := regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	for _, region := range []string{"us-east-1", "ap-southeast-5", "ap-southeast-7", "ap-northeast-3", "us-gov-west-1",
		"us-isof-south-1", "eu-isoe-west-1", "us-isob-east-1", "cn-northwest-1", "mx-central-1"} {
		for _, f := range functions {
			n := HubRoleName(f.dir, region)
			if len(n) > maxRoleName || !valid.MatchString(n) {
				t.Errorf("role name %s (%d characters) is not a valid IAM role name (at most %d of [\\w+=,.@-])", n, len(n), maxRoleName)
			}
		}
	}
	// Headroom: the longest function leaves room for a region name of 30.
	if n := HubRoleName("create-and-store", strings.Repeat("x", 30)); len(n) > maxRoleName {
		t.Errorf("%s is %d characters", n, len(n))
	}
}

// TestHubRolesMatchMemberTrust: the member role trusts exactly the ARNs
// of the hub's MemberFunction roles, as the hub names them.
func TestHubRolesMatchMemberTrust(t *testing.T) {
	h := buildHub(t, withCtx(orgCtx, KeyHubAccount, testHub), nil)
	var hubRoles []string
	for _, fn := range MemberFunctions {
		_, role := h.role(t, fn)
		hubRoles = append(hubRoles, "arn:aws:iam::"+testHub+":role/"+resolve(t, role.Properties["RoleName"]))
	}
	_, member := h.org.member(t).only(t, "AWS::IAM::Role")
	st := member.Properties["AssumeRolePolicyDocument"].(map[string]any)["Statement"].([]any)[0].(map[string]any)
	var trusted []string
	for _, a := range st["Condition"].(map[string]any)["ArnEquals"].(map[string]any)["aws:PrincipalArn"].([]any) {
		trusted = append(trusted, resolve(t, a))
	}
	if !reflect.DeepEqual(trusted, hubRoles) {
		t.Fatalf("the member role trusts %v\nthe hub's roles are %v", trusted, hubRoles)
	}
}

// memberRoleARN is the resource of the hub's sts:AssumeRole, resolved.
var memberRoleARN = "arn:aws:iam::*:role/" + config.MemberRoleName

// TestHubAssumeRole: each MemberFunction's role may assume the member role
// and nothing else, in the hub's organization only; notify and summarize
// may assume no role; without organizationScope no role may.
func TestHubAssumeRole(t *testing.T) {
	h := buildHub(t, orgCtx, nil)
	for _, f := range functions {
		var assume []map[string]any
		for _, st := range h.statements(t, f.dir) {
			for _, a := range strs(st["Action"]) {
				if strings.HasPrefix(a, "sts:") {
					assume = append(assume, st)
				}
			}
		}
		if !slices.Contains(MemberFunctions, f.dir) {
			if len(assume) > 0 {
				t.Errorf("%s's role has %v; it acts in the hub only", f.dir, assume)
			}
			continue
		}
		if len(assume) != 1 {
			t.Errorf("%s's role has %d sts: statements; want 1: %v", f.dir, len(assume), assume)
			continue
		}
		st := assume[0]
		if st["Effect"] != "Allow" || !reflect.DeepEqual(strs(st["Action"]), []string{"sts:AssumeRole"}) {
			t.Errorf("%s's statement %v; want Allow sts:AssumeRole alone", f.dir, st)
		}
		if got := stmtResources(t, st); !reflect.DeepEqual(got, []string{memberRoleARN}) {
			t.Errorf("%s may assume %v; want only %s", f.dir, got, memberRoleARN)
		}
		wantCond := map[string]any{"StringEquals": map[string]any{"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}}
		if !reflect.DeepEqual(st["Condition"], wantCond) {
			t.Errorf("%s's sts:AssumeRole condition = %v; want %v", f.dir, st["Condition"], wantCond)
		}
	}
	// The partition is the stack's.
	b, _ := json.Marshal(h.statements(t, "find"))
	if !strings.Contains(string(b), `{"Fn::Join":["",["arn:",{"Ref":"AWS::Partition"},":iam::*:role/`+config.MemberRoleName+`"]]}`) {
		t.Errorf("find's sts:AssumeRole resource does not use the stack's partition: %s", b)
	}
	single := get(t)
	for _, p := range resources(t, single, "AWS::IAM::Policy") {
		if b, _ := json.Marshal(p.Properties); strings.Contains(string(b), "sts:") {
			t.Errorf("without organizationScope a policy grants sts: %s", b)
		}
	}
}

// TestHubOrganizationsPermissions: find, alone, lists the organization's
// accounts and reads account aliases, on "*" (neither supports a
// resource), only in the organization mode.
func TestHubOrganizationsPermissions(t *testing.T) {
	want := []string{"iam:ListAccountAliases", "organizations:ListAccounts", "organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent"}
	h := buildHub(t, orgCtx, nil)
	for _, f := range functions {
		var got []string
		for _, st := range h.statements(t, f.dir) {
			for _, a := range strs(st["Action"]) {
				if !slices.Contains(want, a) && !strings.HasPrefix(a, "organizations:") {
					continue
				}
				got = append(got, a)
				if r := stmtResources(t, st); !reflect.DeepEqual(r, []string{"*"}) || st["Condition"] != nil {
					t.Errorf("%s has %s on %v (condition %v); want \"*\", no condition", f.dir, a, r, st["Condition"])
				}
			}
		}
		sort.Strings(got)
		if f.dir == "find" {
			if !reflect.DeepEqual(got, want) {
				t.Errorf("find has %v; want %v", got, want)
			}
		} else if len(got) > 0 {
			t.Errorf("%s has %v; only find lists accounts and aliases", f.dir, got)
		}
	}
	for dir, actions := range rolePolicies(t, get(t)) {
		for _, a := range actions {
			if slices.Contains(want, a) || strings.HasPrefix(a, "organizations:") {
				t.Errorf("without organizationScope %s has %s", dir, a)
			}
		}
	}
}

// TestOrgOnlyTable: OrgOnly names actions of Permissions; every
// MemberFunction, and no other, assumes the member role; only find calls
// Organizations, and only in the organization mode.
func TestOrgOnlyTable(t *testing.T) {
	for fn, actions := range OrgOnly {
		for _, a := range actions {
			if !slices.Contains(Permissions[fn], a) {
				t.Errorf("OrgOnly[%s] has %s, which Permissions[%s] lacks", fn, a, fn)
			}
		}
	}
	for _, f := range functions {
		if got := slices.Contains(OrgOnly[f.dir], "sts:AssumeRole"); got != slices.Contains(MemberFunctions, f.dir) {
			t.Errorf("OrgOnly[%s] has sts:AssumeRole = %v; want it exactly for MemberFunctions", f.dir, got)
		}
		for _, a := range Permissions[f.dir] {
			if (strings.HasPrefix(a, "organizations:") || strings.HasPrefix(a, "sts:")) && !slices.Contains(OrgOnly[f.dir], a) {
				t.Errorf("Permissions[%s] has %s outside OrgOnly: a single account would get it", f.dir, a)
			}
			if strings.HasPrefix(a, "organizations:") && f.dir != "find" {
				t.Errorf("Permissions[%s] has %s; only find lists the organization", f.dir, a)
			}
		}
	}
}

// TestHubEnvironment: every function gets the hub's own account
// (KEYROTOR_HOME_ACCOUNT: the stack's account) and the organization's
// settings; without organizationScope, none of them.
func TestHubEnvironment(t *testing.T) {
	orgVars := []string{config.EnvOrgScope, config.EnvOrgExclude, config.EnvOrgStages, config.EnvHomeAccount}
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		env  *awscdk.Environment
		want map[string]any
	}{
		{"all, environment-agnostic", orgCtx, nil,
			map[string]any{config.EnvOrgScope: "all", config.EnvHomeAccount: map[string]any{"Ref": "AWS::AccountId"}}},
		{"OUs, exclusions and stages, in the hub's account", withCtx(defaultCtx,
			settings.KeyOrganizationScope, []any{"r-ab12", "444455556666"},
			settings.KeyOrganizationExclude, "777788889999,000011112222",
			settings.KeyOrganizationStages, `[["ou-ab12-devdevdev"],["ou-ab12-prodprod1","444455556666"]]`),
			&awscdk.Environment{Account: jsii.String(testHub), Region: jsii.String("eu-west-1")},
			map[string]any{config.EnvOrgScope: "r-ab12,444455556666", config.EnvOrgExclude: "777788889999,000011112222",
				config.EnvOrgStages: "ou-ab12-devdevdev;ou-ab12-prodprod1,444455556666", config.EnvHomeAccount: testHub}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := buildHub(t, tc.ctx, tc.env)
			for _, f := range functions {
				vars := h.env(t, f.dir)
				got := map[string]any{}
				for _, k := range orgVars {
					if v, ok := vars[k]; ok {
						got[k] = v
					}
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s's organization variables = %v; want %v", f.dir, got, tc.want)
				}
			}
		})
	}
	single := buildHub(t, defaultCtx, nil)
	for _, f := range functions {
		for k := range single.env(t, f.dir) {
			if slices.Contains(orgVars, k) {
				t.Errorf("without organizationScope %s has %s", f.dir, k)
			}
		}
	}
}

// withoutOrganization removes from an organization-mode hub template what
// the organization mode adds (the OrgOnly actions, the MemberFunctions'
// role names and the sentence their cdk-nag reason gains, the KEYROTOR_ORG_*
// and KEYROTOR_HOME_ACCOUNT variables) and returns what is left.
func withoutOrganization(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	reason, _ := json.Marshal(orgNagReason)
	s := strings.ReplaceAll(string(raw), strings.Trim(string(reason), `"`), "")
	var tmpl map[string]any
	if err := json.Unmarshal([]byte(s), &tmpl); err != nil {
		t.Fatal(err)
	}
	orgOnly := map[string]bool{}
	for _, actions := range OrgOnly {
		for _, a := range actions {
			orgOnly[a] = true
		}
	}
	for _, r := range tmpl["Resources"].(map[string]any) {
		r := r.(map[string]any)
		props, _ := r["Properties"].(map[string]any)
		switch r["Type"] {
		case "AWS::IAM::Role":
			delete(props, "RoleName")
		case "AWS::Lambda::Function":
			vars := props["Environment"].(map[string]any)["Variables"].(map[string]any)
			for _, k := range []string{config.EnvOrgScope, config.EnvOrgExclude, config.EnvOrgStages, config.EnvHomeAccount} {
				delete(vars, k)
			}
		case "AWS::IAM::Policy":
			doc := props["PolicyDocument"].(map[string]any)
			var kept []any
			for _, st := range doc["Statement"].([]any) {
				st := st.(map[string]any)
				var actions []any
				for _, a := range strs(st["Action"]) {
					if !orgOnly[a] {
						actions = append(actions, a)
					}
				}
				switch len(actions) {
				case 0:
					continue
				case 1:
					st["Action"] = actions[0]
				default:
					st["Action"] = actions
				}
				kept = append(kept, st)
			}
			doc["Statement"] = kept
		}
	}
	return tmpl
}

// sortStatements orders the statements of every AWS::IAM::Policy of tmpl
// (a template as JSON) by their text, in place, and returns tmpl. A
// function role's statements are sorted by their resources' strings
// (grants.statements), which hold CDK token placeholders numbered by a
// counter of the whole process: one `cdk synth` always writes the same
// order, but two apps built in one test process may order statements
// differently (${Token[TOKEN.998]} sorts after ${Token[TOKEN.1000]}).
// The order means nothing to IAM; templates built in one process are
// compared with it normalized.
func sortStatements(tmpl map[string]any) map[string]any {
	res, _ := tmpl["Resources"].(map[string]any)
	for _, r := range res {
		r := r.(map[string]any)
		if r["Type"] != "AWS::IAM::Policy" {
			continue
		}
		doc := r["Properties"].(map[string]any)["PolicyDocument"].(map[string]any)
		sts, _ := doc["Statement"].([]any)
		key := func(v any) string { b, _ := json.Marshal(v); return string(b) }
		sort.SliceStable(sts, func(i, j int) bool { return key(sts[i]) < key(sts[j]) })
	}
	return tmpl
}

// TestHubOnlyAddsOrganization: the organization mode changes the hub by
// its additions alone: without them its template is the single-account
// one (which TestSingleAccountUnchanged keeps as it was).
func TestHubOnlyAddsOrganization(t *testing.T) {
	for _, tc := range []struct {
		name string
		ctx  map[string]any
		env  *awscdk.Environment
	}{
		{"environment-agnostic", defaultCtx, nil},
		{"in an account, retirePasswords", withCtx(defaultCtx, "retirePasswords", "true"), &awscdk.Environment{Account: jsii.String(testHub), Region: jsii.String("us-east-1")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			single := buildHub(t, tc.ctx, tc.env)
			org := buildHub(t, withCtx(tc.ctx, settings.KeyOrganizationScope, "all", settings.KeyOrganizationStages, `[["ou-ab12-cd34ef56"]]`), tc.env)
			if string(org.raw) == string(single.raw) {
				t.Fatal("organizationScope changed nothing in the hub")
			}
			var want map[string]any
			json.Unmarshal(single.raw, &want)
			if got := withoutOrganization(t, org.raw); !reflect.DeepEqual(sortStatements(got), sortStatements(want)) {
				a, _ := json.Marshal(got)
				b, _ := json.Marshal(want)
				t.Fatalf("the organization mode changed more than its additions:\n%s\nwant\n%s", a, b)
			}
		})
	}
}

// TestHubNag: cdk-nag finds nothing unsuppressed in the organization
// mode's hub either.
func TestHubNag(t *testing.T) {
	h := buildHub(t, withCtx(orgCtx, "retirePasswords", "true"), nil)
	ann := assertions.Annotations_FromStack(h.stack)
	match := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	for _, f := range append(*ann.FindError(jsii.String("*"), match), *ann.FindWarning(jsii.String("*"), match)...) {
		t.Errorf("cdk-nag: %v %v", *f.Id, f.Entry.Data)
	}
	if !strings.Contains(string(h.raw), "iam::*:role/"+config.MemberRoleName+", only in the hub's organization") {
		t.Errorf("the MemberFunctions' roles' IAM5 reason does not explain the member role's wildcard")
	}
}

// TestAccountUnreachableIsPermanent: AccountUnreachableError (a member
// account the hub cannot act in) is never retried, and every Catch treats
// it as it treats StepError: the step fails, and with it only that key's
// child execution, which the Distributed Map's first pass tolerates
// (summarize decides what the second pass tries again).
func TestAccountUnreachableIsPermanent(t *testing.T) {
	unreachable, step := failures.Name(&failures.AccountUnreachableError{}), failures.Name(&failures.StepError{})
	if !slices.Contains(failures.All(), unreachable) || slices.Contains(failures.Retryable(), unreachable) {
		t.Fatalf("%s: want it in failures.All() and not in failures.Retryable()", unreachable)
	}
	s := get(t)
	all := map[string]any{}
	for k, v := range states(s.def) {
		all["main/"+k] = v
	}
	for k, v := range childStates(s.def) {
		all["child/"+k] = v
	}
	for k, v := range states(s.grace) {
		all["grace/"+k] = v
	}
	tasks := 0
	for name, st := range all {
		m := st.(map[string]any)
		if m["Type"] != "Task" {
			continue
		}
		tasks++
		retry, _ := m["Retry"].([]any)
		for _, r := range retry {
			for _, e := range r.(map[string]any)["ErrorEquals"].([]any) {
				if e == unreachable || e == "States.ALL" {
					t.Errorf("%s retries %s: a retry cannot reach an account", name, e)
				}
			}
		}
		catches := func(err string) []int {
			var out []int
			catch, _ := m["Catch"].([]any)
			for i, c := range catch {
				for _, e := range c.(map[string]any)["ErrorEquals"].([]any) {
					if e == err || e == "States.ALL" {
						out = append(out, i)
					}
				}
			}
			return out
		}
		if a, b := catches(unreachable), catches(step); !reflect.DeepEqual(a, b) {
			t.Errorf("%s catches %s in %v but %s in %v; want the same handling", name, unreachable, a, step, b)
		}
	}
	if tasks < 8 {
		t.Fatalf("found %d Task states; the walk missed some", tasks)
	}
}

// TestDocsHubPermissions keeps docs/organizations.md's table of the hub's
// organization-mode permissions equal to the template's: one row per
// function and action OrgOnly grants, with its resource and condition.
func TestDocsHubPermissions(t *testing.T) {
	b, err := os.ReadFile("../docs/organizations.md")
	if err != nil {
		t.Fatal(err)
	}
	h := buildHub(t, orgCtx, nil)
	var want []string
	for _, f := range functions {
		for _, st := range h.statements(t, f.dir) {
			for _, a := range strs(st["Action"]) {
				if !slices.Contains(OrgOnly[f.dir], a) {
					continue
				}
				rs := stmtResources(t, st)
				if len(rs) != 1 {
					t.Fatalf("%s's %s is on %v; the table has one resource per row", f.dir, a, rs)
				}
				r := "`" + strings.Replace(rs[0], "arn:aws:", "arn:<partition>:", 1) + "`"
				cond := "none"
				if c, ok := st["Condition"].(map[string]any); ok {
					var parts []string
					for op, kv := range c {
						for k, v := range kv.(map[string]any) {
							parts = append(parts, op+" `"+k+"` = `"+v.(string)+"`")
						}
					}
					sort.Strings(parts)
					cond = strings.Join(parts, ", ")
				}
				want = append(want, "| "+f.dir+" | "+a+" | "+r+" | "+cond+" |")
			}
		}
	}
	sort.Strings(want)
	var dirs []string
	for _, f := range functions {
		dirs = append(dirs, regexp.QuoteMeta(f.dir))
	}
	got := regexp.MustCompile(`(?m)^\| (`+strings.Join(dirs, "|")+`) \| [a-z]+:[A-Za-z]+ \|[^\n]*\|$`).FindAllString(string(b), -1)
	sort.Strings(got)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("docs/organizations.md's hub permissions table =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, k := range []string{settings.KeyOrganizationScope, settings.KeyOrganizationExclude, settings.KeyOrganizationStages} {
		if !strings.Contains(string(b), "| `"+k+"` |") {
			t.Errorf("docs/organizations.md lacks a row for the context setting %s", k)
		}
	}
}
