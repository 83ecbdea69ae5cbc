package main

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/settings"
)

// wantExemptDeny is the DenyExemptUsers statement for exemptTag, as the
// template holds it (the partition resolved by resolve).
func checkExemptDeny(t *testing.T, who string, st map[string]any, exemptTag string) {
	t.Helper()
	wantCond := map[string]any{"StringEqualsIgnoreCase": map[string]any{"aws:ResourceTag/" + exemptTag: config.ExemptTagValue}}
	if st["Sid"] != "DenyExemptUsers" || st["Effect"] != "Deny" || !reflect.DeepEqual(strs(st["Action"]), CredentialWriteActions) ||
		!reflect.DeepEqual(stmtResources(t, st), []string{"arn:aws:iam::*:user/*"}) || !reflect.DeepEqual(st["Condition"], wantCond) {
		b, _ := json.Marshal(st)
		t.Errorf("%s: deny = %s; want Deny %v on arn:aws:iam::*:user/* when %v", who, b, CredentialWriteActions, wantCond)
	}
}

// TestProtectedUsersDenied: keyrotor's roles that write credentials (the
// hub's, in a single account and in the organization mode, and the member
// role) carry an explicit Deny of every credential write on users tagged
// exempt; the member role also on the users under its ExcludedUserPaths,
// a parameter each account sets (default none: the policy is not
// created). The emulation enforces these (TestMotoOrganizationMemberProtectsUsers).
func TestProtectedUsersDenied(t *testing.T) {
	for _, tc := range []struct {
		name, tag string
		ctx       map[string]any
	}{
		{"single account", config.DefaultExemptTag, defaultCtx},
		{"organization, own exempt tag", "ops:no-rotate", withCtx(orgCtx, settings.KeyExemptTag, "ops:no-rotate")},
		{"excluded user paths", config.DefaultExemptTag, withCtx(defaultCtx, settings.KeyExcludedUserPaths, "/breakglass/,/ops/")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := buildHub(t, tc.ctx, nil)
			for _, f := range functions {
				var denies []map[string]any
				for _, st := range h.statements(t, f.dir) {
					if st["Effect"] == "Deny" && st["Sid"] != "DenyExcludedAccounts" {
						denies = append(denies, st)
					}
				}
				writes := slices.ContainsFunc(Permissions[f.dir], func(a string) bool { return slices.Contains(CredentialWriteActions, a) })
				if !writes {
					if len(denies) > 0 {
						t.Errorf("%s: denies %v; it writes no credential", f.dir, denies)
					}
					continue
				}
				paths := tc.ctx[settings.KeyExcludedUserPaths] != nil
				if len(denies) != 1 && !paths || len(denies) != 2 && paths {
					t.Errorf("%s: %d denies; want DenyExemptUsers (and DenyExcludedUserPaths with paths)", f.dir, len(denies))
					continue
				}
				checkExemptDeny(t, f.dir, denies[0], tc.tag)
				if paths {
					st := denies[1]
					want := []string{"arn:aws:iam::*:user/breakglass/*", "arn:aws:iam::*:user/ops/*"}
					if st["Sid"] != "DenyExcludedUserPaths" || !reflect.DeepEqual(strs(st["Action"]), CredentialWriteActions) || !reflect.DeepEqual(stmtResources(t, st), want) {
						t.Errorf("%s: path deny = %v; want Deny %v on %v", f.dir, st, CredentialWriteActions, want)
					}
				}
			}
		})
	}

	m := synthMember(t, withCtx(nil, KeyHubAccount, testHub, settings.KeyExemptTag, "ops:no-rotate"))
	denies := m.roleDenies(t)
	if len(denies) != 2 {
		t.Fatalf("member role denies = %v; want DenyExemptUsers and DenyExcludedUserPaths", denies)
	}
	for _, st := range denies {
		if st["Sid"] == "DenyExemptUsers" {
			checkExemptDeny(t, "member", st, "ops:no-rotate")
			continue
		}
		b, _ := json.Marshal(st)
		want := `{"Action":["iam:CreateAccessKey","iam:UpdateAccessKey","iam:DeleteAccessKey","iam:CreateLoginProfile","iam:UpdateLoginProfile","iam:DeleteLoginProfile"],` +
			`"Effect":"Deny","Resource":{"Fn::Split":[",",{"Fn::Join":["",["arn:*:iam::*:user",{"Fn::Join":["*,arn:*:iam::*:user",{"Ref":"ExcludedUserPaths"}]},"*"]]}]},"Sid":"DenyExcludedUserPaths"}`
		if string(b) != want {
			t.Errorf("member path deny = %s\nwant %s", b, want)
		}
	}
	// The hub's excludedUserPaths is every member's default.
	var withPaths struct{ Parameters map[string]map[string]any }
	json.Unmarshal(synthMember(t, withCtx(nil, KeyHubAccount, testHub, settings.KeyExcludedUserPaths, "/breakglass/,/ops/")).raw, &withPaths)
	if d := withPaths.Parameters[ExcludedUserPathsParameter]["Default"]; d != "/breakglass/,/ops/" {
		t.Errorf("ExcludedUserPaths default = %v; want the hub's excludedUserPaths", d)
	}
	// The path deny exists only when the account sets paths.
	var tmpl struct {
		Conditions map[string]any
		Resources  map[string]struct{ Type, Condition string }
	}
	json.Unmarshal(m.raw, &tmpl)
	if r := tmpl.Resources["ExcludedUserPathsDeny"]; r.Condition != "HasExcludedUserPaths" {
		t.Errorf("ExcludedUserPathsDeny condition = %q; want HasExcludedUserPaths", r.Condition)
	}
	if b, _ := json.Marshal(tmpl.Conditions["HasExcludedUserPaths"]); string(b) != `{"Fn::Not":[{"Fn::Equals":[{"Fn::Join":["",{"Ref":"ExcludedUserPaths"}]},""]}]}` {
		t.Errorf("HasExcludedUserPaths = %s; want true when the parameter is not empty", b)
	}
}

// TestHubAssumeRoleScope: the hub's roles may not assume the member role
// in an excluded account (an explicit Deny), and only in the listed
// accounts when the scope lists accounts only.
func TestHubAssumeRoleScope(t *testing.T) {
	role := func(a string) string { return "arn:aws:iam::" + a + ":role/" + config.MemberRoleName }
	for _, tc := range []struct {
		name        string
		ctx         map[string]any
		allow, deny []string
	}{
		{"OUs, one excluded", withCtx(defaultCtx, settings.KeyOrganizationScope, "r-ab12", settings.KeyOrganizationExclude, "222222222222"),
			[]string{memberRoleARN}, []string{role("222222222222")}},
		{"accounts only", withCtx(defaultCtx, settings.KeyOrganizationScope, "333333333333,444444444444,222222222222", settings.KeyOrganizationExclude, "222222222222"),
			[]string{role("333333333333"), role("444444444444")}, []string{role("222222222222")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := buildHub(t, tc.ctx, nil)
			for _, fn := range MemberFunctions {
				var allow, deny []string
				for _, st := range h.statements(t, fn) {
					if !slices.Contains(strs(st["Action"]), "sts:AssumeRole") {
						continue
					}
					if st["Effect"] == "Deny" {
						deny = append(deny, stmtResources(t, st)...)
					} else {
						allow = append(allow, stmtResources(t, st)...)
					}
				}
				if !reflect.DeepEqual(allow, tc.allow) || !reflect.DeepEqual(deny, tc.deny) {
					t.Errorf("%s: sts:AssumeRole allowed on %v, denied on %v; want %v, %v", fn, allow, deny, tc.allow, tc.deny)
				}
			}
		})
	}
}

// TestMemberStackSetSkipsExcluded: the StackSet deploys the member role to
// the OUs minus the hub and the excluded accounts (AccountFilterType
// DIFFERENCE), so an excluded account has no role keyrotor could assume.
func TestMemberStackSetSkipsExcluded(t *testing.T) {
	ctx := withCtx(defaultCtx, KeyHubAccount, testHub, KeyOrganizationalUnits, "ou-ab12-cd34ef56",
		settings.KeyOrganizationScope, "ou-ab12-cd34ef56", settings.KeyOrganizationExclude, "222222222222,"+testHub)
	o := buildOrg(t, ctx, "", false)
	if o.err != nil {
		t.Fatal(o.err)
	}
	b, _ := json.Marshal(o.hubResources(t))
	want := `"DeploymentTargets":{"AccountFilterType":"DIFFERENCE","Accounts":["` + testHub + `","222222222222"],"OrganizationalUnitIds":["ou-ab12-cd34ef56"]}`
	if !strings.Contains(string(b), want) {
		t.Fatalf("StackSet deployment targets: want %s in\n%s", want, b)
	}
}
