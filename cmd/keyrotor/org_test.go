package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// The organization mode's templates, synthesized by make synth
// (organizationScope=all, hubAccount=123456789012).
const (
	orgTemplate    = "../../build/cdk.org/KeyRotor.template.json"
	memberTemplate = "../../build/cdk.org/KeyRotorMember.template.json"
)

// orgWorld is an emulated organization: the hub (keyrotor's own account)
// and three members, dev and prod with the member stack, sandbox without.
type orgWorld struct {
	hub                *awstest.Account
	dev, prod, sandbox awstest.Member
	proxy              *faultproxy.Proxy
	old                map[string]map[string]string // account name -> user -> original key id
}

func (w *orgWorld) accounts() map[string]*awstest.Account {
	return map[string]*awstest.Account{"hub": w.hub, "dev": w.dev.Account, "prod": w.prod.Account, "sandbox": w.sandbox.Account}
}

func newOrgWorld(t *testing.T) *orgWorld {
	t.Helper()
	requireBuild(t)
	for _, p := range []string{orgTemplate, memberTemplate} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s missing: run `make synth` (make test does)", p)
		}
	}
	w := &orgWorld{hub: awstest.New(t)}
	org := awstest.NewOrg(t, w.hub.Endpoint, []awstest.MemberSpec{{Name: "dev", OU: "Development"}, {Name: "prod", OU: "Production"}, {Name: "sandbox", OU: "Sandbox"}})
	w.dev, w.prod, w.sandbox = org.Member(t, "dev"), org.Member(t, "prod"), org.Member(t, "sandbox")
	w.dev.DeployMemberStack(t, memberTemplate)
	w.prod.DeployMemberStack(t, memberTemplate)
	// The same user names in every account: each account's users are its own.
	w.old = map[string]map[string]string{}
	for name, a := range w.accounts() {
		w.old[name] = seed(t, a)
	}
	p, err := faultproxy.New(w.hub.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	// RoleDenies: the member role's Denies (exempt users) hold, as in AWS.
	p.TagLimits, p.Consistency, p.RoleChecks, p.RoleDenies = true, 300*time.Millisecond, true, true
	t.Cleanup(p.Close)
	w.proxy = p
	return w
}

func orgRunArgs(workDir, endpoint string, extra ...string) []string {
	return append([]string{"run", "--endpoint", endpoint, "--template", orgTemplate, "--bin", binDir, "--work-dir", workDir}, extra...)
}

// TestSlowE2EOrganization: one run through `keyrotor run` over an
// organization rotates the keys of every reachable account, each key's
// secret stored in its user's own account under that account's key, and
// reports the member without the member role with its fix, leaving its
// users untouched. Each account is checked with its own credentials.
func TestSlowE2EOrganization(t *testing.T) {
	w := newOrgWorld(t)
	work := t.TempDir()
	code, out, errOut := keyrotor(t, "", orgRunArgs(work, w.proxy.URL(), "--wait", "2s")...)
	if code != 0 {
		t.Fatalf("keyrotor run exit %d\n%s", code, errOut)
	}
	var sum rotation.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("stdout is not the summary: %v\n%s", err, out)
	}
	ids := map[string]string{"hub": awstest.DefaultAccount, "dev": w.dev.ID, "prod": w.prod.ID, "sandbox": w.sandbox.ID}
	byID := map[string]rotation.AccountTotals{}
	for _, a := range sum.Accounts {
		byID[a.Account] = a
	}
	for name, id := range ids {
		a := byID[id]
		switch name {
		case "sandbox":
			if a.Status != rotation.AccountUnreachable || !strings.Contains(a.Reason, "deploy the member stack (KeyRotorMember) in account "+id) {
				t.Errorf("sandbox in the summary = %+v; want unreachable with the fix", a)
			}
		default:
			if a.Status != rotation.AccountPlanned || a.Rotated != 3 || a.Retired != 1 || a.Failed != 0 {
				t.Errorf("%s in the summary = %+v; want 3 rotated (alice, bob, no-mail), 1 retired", name, a)
			}
		}
	}
	if sum.Totals.Unreachable != 1 || sum.Totals.Rotated != 9 || sum.Totals.Failed != 0 {
		t.Errorf("totals = %+v; want 9 rotated in 3 accounts, 1 account unreachable", sum.Totals)
	}

	accounts := w.accounts()
	for name, a := range accounts {
		for _, u := range account {
			keys := a.Keys(t, u.name)
			old := w.old[name][u.name]
			if name == "sandbox" || u.expected != "rotate" && u.expected != "retire" {
				if keys[old] != "Active" {
					t.Errorf("%s/%s: keys %v; want the original key %s untouched", name, u.name, keys, old)
				}
				continue
			}
			if u.expected == "retire" {
				if len(keys) != 0 {
					t.Errorf("%s/%s: keys %v; want none (retired)", name, u.name, keys)
				}
				continue
			}
			// The secret lives where its user is, under that account's key.
			var stored rotation.StoredKey
			if err := json.Unmarshal([]byte(a.Secret(t, "iam-access-keys/"+u.name)), &stored); err != nil {
				t.Fatalf("%s/%s: secret: %v", name, u.name, err)
			}
			if len(keys) != 1 || keys[stored.AccessKeyID] != "Active" || keys[old] != "" {
				t.Errorf("%s/%s: keys %v, stored %s; want only the stored new key", name, u.name, keys, stored.AccessKeyID)
			}
			a.Use(t, stored.AccessKeyID, stored.SecretAccessKey)
			d, err := a.Secrets.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("iam-access-keys/" + u.name)})
			if err != nil {
				t.Fatal(err)
			}
			if name != "hub" && !strings.Contains(aws.ToString(d.KmsKeyId), "KeyRotorMember") {
				t.Errorf("%s/%s: secret encrypted with %q; want the member account's key (alias/KeyRotorMember)", name, u.name, aws.ToString(d.KmsKeyId))
			}
			for _, tag := range d.Tags {
				if aws.ToString(tag.Key) == "keyrotor:user-id" && aws.ToString(tag.Value) == "" {
					t.Errorf("%s/%s: the secret's user-id tag is empty: read-own-secret would not match", name, u.name)
				}
			}
		}
	}
	// The sandbox holds no secret: nothing was written there.
	if _, err := w.sandbox.Secrets.DescribeSecret(context.Background(), &secretsmanager.DescribeSecretInput{SecretId: aws.String("iam-access-keys/alice")}); err == nil {
		t.Errorf("sandbox has a secret for alice; want nothing written in an unreachable account")
	}

	// One mail per rotated key, each naming the user's account.
	mails, notes := w.hub.Sent(t)
	per := map[string]int{}
	for _, m := range mails {
		if m.To[0] != "alice@example.com" {
			continue
		}
		for name, id := range ids {
			if strings.Contains(m.Body, "alice in account "+id) {
				per[name]++
			}
		}
	}
	if per["hub"] != 1 || per["dev"] != 1 || per["prod"] != 1 || per["sandbox"] != 0 {
		t.Errorf("alice's mails per account = %v; want one each for hub, dev and prod, each naming its account", per)
	}
	var summary string
	for _, n := range notes {
		if strings.HasPrefix(n.Subject, "keyrotor: 9 rotated") {
			summary = n.Message
		}
	}
	if !strings.Contains(summary, "deploy the member stack (KeyRotorMember) in account "+w.sandbox.ID) {
		t.Errorf("the admins' run summary does not give the sandbox's fix:\n%s", summary)
	}

	// One organization-wide audit report, with the account on every row.
	if sum.Report == nil {
		t.Fatal("no report reference in the summary")
	}
	obj, err := w.hub.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(sum.Report.Bucket), Key: aws.String(sum.Report.CSV)})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Body.Close()
	recs, err := csv.NewReader(obj.Body).ReadAll()
	if err != nil || len(recs) == 0 {
		t.Fatalf("report CSV: %v", err)
	}
	if strings.Join(recs[0][:3], ",") != "account,account_alias,user" {
		t.Fatalf("report header = %q; want the account columns first", recs[0])
	}
	rows := map[string]int{}
	for _, r := range recs[1:] {
		rows[r[0]]++ // account ids stay 12 digits: the cells are quoted strings
	}
	for _, name := range []string{"hub", "dev", "prod"} {
		if rows[ids[name]] == 0 {
			t.Errorf("report has no rows for %s (%s): %v", name, ids[name], rows)
		}
	}
	if rows[w.sandbox.ID] != 0 {
		t.Errorf("report has rows for the unreachable sandbox: %v", rows)
	}

	// Every call keyrotor made in a member account was made with the member
	// role, by one of the functions it trusts, and is an action the
	// synthesized member role allows (the role assumed in AWS would refuse
	// any other).
	allowed := memberRoleActions(t)
	members := map[string]bool{w.dev.ID: true, w.prod.ID: true}
	seen := map[string]bool{}
	for _, c := range w.proxy.Log() {
		if !members[w.proxy.AccountOf(c.AccessKeyID)] || c.Service == "sts" && c.Operation == "GetCallerIdentity" {
			continue // the hub's calls; a new key's proof is signed by the key itself
		}
		pr := w.proxy.PrincipalOf(c.AccessKeyID)
		fn := strings.TrimPrefix(pr[strings.LastIndexByte(pr, '/')+1:], "keyrotor-")
		if !strings.Contains(pr, ":assumed-role/KeyRotorMember/") || !slices.Contains([]string{"find", "create-and-store", "check-adoption", "deactivate", "delete"}, fn) {
			t.Errorf("%s in a member account was signed by %s; want the member role, assumed by a per-account function", c.Action, pr)
			continue
		}
		if !allowed[c.Action] {
			t.Errorf("%s called %s in a member account; the member role does not allow it", fn, c.Action)
		}
		seen[c.Action] = true
	}
	if !seen["iam:CreateAccessKey"] || !seen["secretsmanager:CreateSecret"] || !seen["iam:DeleteAccessKey"] {
		t.Errorf("member calls seen = %v; want at least key creation, secret creation and deletion", seen)
	}

	// keyrotor audit reads the whole organization: every reachable
	// account's rows with the account, the unreachable one named with its
	// fix, and a failing exit status since the report is incomplete.
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	code, csvOut, auditErr := keyrotor(t, "", "audit", "--endpoint", w.proxy.URL(), "--organization", "all", "--member-role", "KeyRotorMember", "--format", "csv", "--cdk-json", "../../cdk.json")
	if code != 1 || !strings.Contains(auditErr, "account "+w.sandbox.ID+" not reported (unreachable)") || !strings.Contains(auditErr, "1 of 4 accounts not reported") {
		t.Errorf("keyrotor audit --organization: exit %d, stderr:\n%s\nwant exit 1 naming the sandbox", code, auditErr)
	}
	auditRows := map[string]int{}
	auditRecs, err := csv.NewReader(strings.NewReader(csvOut)).ReadAll()
	if err != nil || len(auditRecs) == 0 || strings.Join(auditRecs[0][:3], ",") != "account,account_alias,user" {
		t.Fatalf("audit CSV: %v, %q", err, auditRecs)
	}
	for _, r := range auditRecs[1:] {
		auditRows[r[0]]++
	}
	for _, name := range []string{"hub", "dev", "prod"} {
		if auditRows[ids[name]] == 0 {
			t.Errorf("keyrotor audit has no rows for %s: %v", name, auditRows)
		}
	}

	// keyrotor status reads the stack a local run recorded: the oldest key
	// to rotate as of the run names its account (bob's, 200 days, in a
	// reachable account), the keys of every reachable account counted.
	code, statusOut, statusErr := keyrotor(t, "", "status", "--endpoint", w.proxy.URL(), "--json")
	var st operator.Status
	if code != 0 || json.Unmarshal([]byte(statusOut), &st) != nil {
		t.Fatalf("keyrotor status: exit %d\n%s%s", code, statusOut, statusErr)
	}
	if o := st.Figures.Oldest; o == nil || o.User != "bob" || o.AgeDays != 200 || !slices.Contains([]string{ids["hub"], ids["dev"], ids["prod"]}, o.Account) || o.ID != w.old[nameOf(ids, o.Account)]["bob"] {
		t.Errorf("status: oldest key to rotate = %+v; want bob's original key, 200 days, with its account", o)
	}
	if n := st.Figures.KeysFresh + st.Figures.KeysAging + st.Figures.KeysOld; n != 3*8 {
		t.Errorf("status: %d Active keys by age band (%+v); want the 8 of each reachable account as the run found them", n, st.Figures)
	}

	// No secret anywhere: output, history, logs, mails, messages, reports.
	var secrets []string
	for name, a := range accounts {
		for _, u := range []string{"alice", "bob", "no-mail"} {
			var k rotation.StoredKey
			if s := a.Secret(t, "iam-access-keys/"+u); s != "" && json.Unmarshal([]byte(s), &k) == nil {
				secrets = append(secrets, k.SecretAccessKey)
			} else if name != "sandbox" {
				t.Errorf("%s/%s: no stored secret", name, u)
			}
		}
	}
	assertNotIn(t, w.hub, work, out+errOut+csvOut+auditErr, secrets)
}

// memberRoleActions reads the actions the synthesized member role allows
// (its policy resources attached to the role KeyRotorMember).
func memberRoleActions(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(memberTemplate)
	if err != nil {
		t.Fatal(err)
	}
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties struct {
				PolicyDocument struct {
					Statement []struct {
						Effect string
						Action any
					}
				}
				Roles []map[string]string
			}
		}
	}
	if err := json.Unmarshal(b, &tmpl); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, r := range tmpl.Resources {
		if r.Type != "AWS::IAM::Policy" || len(r.Properties.Roles) == 0 {
			continue
		}
		for _, st := range r.Properties.PolicyDocument.Statement {
			if st.Effect != "Allow" {
				continue
			}
			switch a := st.Action.(type) {
			case string:
				out[a] = true
			case []any:
				for _, x := range a {
					out[fmt.Sprint(x)] = true
				}
			}
		}
	}
	if !out["iam:CreateAccessKey"] {
		t.Fatalf("no member role policy found in %s", memberTemplate)
	}
	return out
}

// nameOf is the name of account id in ids.
func nameOf(ids map[string]string, id string) string {
	for name, v := range ids {
		if v == id {
			return name
		}
	}
	return ""
}
