package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/demo"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestSlowDemoOrganization: `keyrotor demo --organization build/cdk.org`,
// its organization act alone (the first two acts are the test hook's to
// skip), rotates the due key and retires the unused one in dev and prod,
// each new key stored in its own account and not in keyrotor's, leaves
// the sandbox (no member stack) untouched, reports it unreachable with its
// fix, names each account in its owners' mails, and prints no secret.
// The accounts are read with their own credentials while the demo's
// emulator still runs.
func TestSlowDemoOrganization(t *testing.T) {
	requireBuild(t)
	for _, p := range []string{orgTemplate, memberTemplate} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s missing: run `make synth` (make test does)", p)
		}
	}
	work := t.TempDir()
	t.Chdir("../..") // the demo reads cdk.json, cdk.out and build/ from the module's root
	demoOrganizationOnly = true
	t.Cleanup(func() { demoOrganizationOnly, demoOrganizationDone = false, nil })

	var out, errb bytes.Buffer
	inspected := false
	demoOrganizationDone = func(endpoint string, o *demo.Org) {
		inspected = true
		ctx := context.Background()
		hub := awstest.Connect(t, endpoint)
		if len(o.Accounts) != 3 {
			t.Fatalf("organization has %d members; want dev, prod and sandbox", len(o.Accounts))
		}
		var secrets []string
		for _, a := range o.Accounts {
			if a.ID == awstest.DefaultAccount || a.ID == "" {
				t.Fatalf("member %s has id %q: want its own account", a.Name, a.ID)
			}
			ia, sm := iam.NewFromConfig(a.Config), secretsmanager.NewFromConfig(a.Config)
			keys := func(user string) map[string]iamtypes.StatusType {
				out, err := ia.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
				if err != nil {
					t.Fatalf("%s: list keys of %s: %v", a.Name, user, err)
				}
				m := map[string]iamtypes.StatusType{}
				for _, k := range out.AccessKeyMetadata {
					m[aws.ToString(k.AccessKeyId)] = k.Status
				}
				return m
			}
			secret := func(user string) (rotation.StoredKey, bool) {
				out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("iam-access-keys/" + user)})
				var nf *smtypes.ResourceNotFoundException
				if errors.As(err, &nf) {
					return rotation.StoredKey{}, false
				}
				if err != nil {
					t.Fatalf("%s: secret of %s: %v", a.Name, user, err)
				}
				var k rotation.StoredKey
				if err := json.Unmarshal([]byte(aws.ToString(out.SecretString)), &k); err != nil {
					t.Fatalf("%s: secret of %s: %v", a.Name, user, err)
				}
				return k, true
			}
			_, roleErr := ia.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String("KeyRotorMember")})
			if a.Name == "sandbox" {
				if roleErr == nil {
					t.Errorf("sandbox has the KeyRotorMember role; want no member stack there")
				}
				for _, u := range []string{"deploy-bot", "old-batch", "fresh-app"} {
					if k := keys(u); len(k) != 1 || k[a.Keys[u]] != iamtypes.StatusTypeActive {
						t.Errorf("sandbox/%s: keys %v; want the original %s alone and Active", u, k, a.Keys[u])
					}
					if _, ok := secret(u); ok {
						t.Errorf("sandbox/%s: a secret was written in the unreachable account", u)
					}
				}
				continue
			}
			if roleErr != nil {
				t.Errorf("%s: no KeyRotorMember role: %v", a.Name, roleErr)
			}
			// Due: rotated, the new key stored in this account only.
			stored, ok := secret("deploy-bot")
			if !ok {
				t.Errorf("%s/deploy-bot: no secret in the member account", a.Name)
			} else {
				secrets = append(secrets, stored.SecretAccessKey)
				if k := keys("deploy-bot"); len(k) != 1 || k[stored.AccessKeyID] != iamtypes.StatusTypeActive || stored.AccessKeyID == a.Keys["deploy-bot"] {
					t.Errorf("%s/deploy-bot: keys %v, stored %s, original %s; want the stored new key alone and Active", a.Name, k, stored.AccessKeyID, a.Keys["deploy-bot"])
				}
			}
			_, err := hub.Secrets.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("iam-access-keys/deploy-bot")})
			var nf *smtypes.ResourceNotFoundException
			if !errors.As(err, &nf) {
				t.Errorf("keyrotor's own account: DescribeSecret iam-access-keys/deploy-bot = %v; want ResourceNotFound (the secret belongs in %s)", err, a.Name)
			}
			// Unused: retired. Fresh: untouched.
			if k := keys("old-batch"); len(k) != 0 {
				t.Errorf("%s/old-batch: keys %v; want none (retired)", a.Name, k)
			}
			if k := keys("fresh-app"); len(k) != 1 || k[a.Keys["fresh-app"]] != iamtypes.StatusTypeActive {
				t.Errorf("%s/fresh-app: keys %v; want the original %s alone and Active", a.Name, k, a.Keys["fresh-app"])
			}
		}
		// Owners' mails name the account; none is about the sandbox.
		mails, _ := hub.Sent(t)
		per := map[string]int{}
		for _, m := range mails {
			for _, a := range o.Accounts {
				if strings.Contains(m.Body, "deploy-bot in account "+a.ID) && m.To[0] == "platform-team@example.com" {
					per[a.Name]++
				}
				if strings.Contains(m.Body, "in account "+a.ID) && a.Name == "sandbox" {
					t.Errorf("a mail about the unreachable sandbox: %s", m.Subject)
				}
			}
		}
		if per["dev"] != 1 || per["prod"] != 1 || len(per) != 2 {
			t.Errorf("deploy-bot's owner mails per account = %v; want one each for dev and prod, naming the account", per)
		}
		if len(secrets) != 2 {
			t.Fatalf("%d stored secrets; want 2 (deploy-bot in dev and prod)", len(secrets))
		}
		orgWork := filepath.Join(work, "demo-org-test-organization")
		assertNotIn(t, hub, orgWork, out.String()+errb.String(), secrets)
	}

	start := time.Now()
	code := dispatch(context.Background(), []string{"demo", "--organization", "build/cdk.org", "--name", "demo-org-test", "--work-dir", filepath.Join(work, "main")},
		strings.NewReader(""), &out, &errb)
	took := time.Since(start)
	if code != 0 {
		t.Fatalf("keyrotor demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	if !inspected {
		t.Fatal("the organization act did not run")
	}
	t.Logf("the organization act alone (moto_server's start included) took %s", took.Round(100*time.Millisecond))
	printed := out.String()
	for _, want := range []string{"unreachable", "deploy the member stack (KeyRotorMember) in account", "keyrotor's own (management)", "Secret check: none of the 2 new secret access keys", "Organization act:"} {
		if !strings.Contains(printed, want) {
			t.Errorf("the demo's output lacks %q:\n%s", want, printed)
		}
	}
	// The table says what the run did in each account, not the plan's
	// "planned".
	if strings.Contains(printed, "  planned  ") || !strings.Contains(printed, "  rotated  ") {
		t.Errorf("the organization table does not show each account's result:\n%s", printed)
	}
	if strings.Contains(printed, "NOT AS EXPECTED") {
		t.Errorf("the demo found something not as expected:\n%s", printed)
	}
	if strings.Contains(printed, "Seeded 40 IAM users") || strings.Contains(errb.String(), "Seeded 40 IAM users") {
		t.Errorf("the first act ran, with the organization act alone asked for")
	}
}

// TestDemoOrganizationFlag: --organization naming a directory without the
// organization templates fails at once (exit 2, before any emulator
// starts), saying how to make them.
func TestDemoOrganizationFlag(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "out", "KeyRotor.template.json")
	if err := os.MkdirAll(filepath.Dir(tmpl), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := keyrotor(t, "", "demo", "--template", tmpl, "--organization", filepath.Join(dir, "nothing"), "--work-dir", filepath.Join(dir, "work"))
	if code != 2 || !strings.Contains(errOut, "--organization") || !strings.Contains(errOut, "KeyRotor.template.json not found: run `make synth`") {
		t.Fatalf("exit %d, stderr %q; want 2 naming --organization and make synth", code, errOut)
	}
	if strings.Contains(errOut, "Starting moto_server") {
		t.Fatalf("the demo started the emulator before checking --organization:\n%s", errOut)
	}
}

// TestSlowDemoDelivery: `keyrotor demo --delivery build/cdk.delivery`, its
// delivery act alone (the test hook skips the others), ends 0 and prints
// per key its destination and its state: the GitHub repository secret and
// the SSM parameters delivered and read back, with their pipelines taking
// the new key up without a failed job and the old keys off on evidence;
// the GitLab project failed with its 500, its user's old key Active.
func TestSlowDemoDelivery(t *testing.T) {
	requireBuild(t)
	if _, err := os.Stat(deliveryTemplate); err != nil {
		t.Fatalf("%s missing: run `make synth` (make test does)", deliveryTemplate)
	}
	work := t.TempDir()
	t.Chdir("../..") // the demo reads cdk.json and build/ from the module's root
	demoDeliveryOnly = true
	t.Cleanup(func() { demoDeliveryOnly = false })
	var out, errb bytes.Buffer
	start := time.Now()
	code := dispatch(context.Background(), []string{"demo", "--delivery", "build/cdk.delivery", "--name", "demo-delivery-test", "--work-dir", filepath.Join(work, "main")},
		strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("keyrotor demo exit %d\nstdout:\n%s\nstderr:\n%s", code, out.String(), errb.String())
	}
	t.Logf("the delivery act alone (moto_server's start included) took %s", time.Since(start).Round(100*time.Millisecond))
	printed := out.String()
	block := func(user string) string {
		i := strings.Index(printed, "\n  "+user+", old key ")
		if i < 0 {
			t.Fatalf("the demo's output has no block for %s:\n%s", user, printed)
		}
		b := printed[i+1:]
		if j := strings.Index(b, "\n\n"); j >= 0 {
			b = b[:j]
		}
		return b
	}
	for user, want := range map[string][]string{
		"app-deployer":   {"destination  github repository secret octo/app", "delivered, read back ", " 0 failed; took the new key from its destination at ", "old key      off on evidence"},
		"nightly-etl":    {"destination  ssm parameters /ci/nightly-etl/aws-access-key-id", "delivered, read back ", " 0 failed; took the new key from its destination at ", "old key      off on evidence"},
		"mobile-release": {"destination  gitlab project mobile/app", "failed: ", "HTTP 500", " 0 failed; kept the old key", "old key      stays Active"},
	} {
		b := block(user)
		for _, w := range want {
			if !strings.Contains(b, w) {
				t.Errorf("%s's block lacks %q:\n%s", user, w, b)
			}
		}
	}
	if !strings.Contains(printed, "Secret check: none of the 3 new secret access keys") || !strings.Contains(printed, "Delivery act:") {
		t.Errorf("the demo's output lacks the secret check or the act's time:\n%s", printed)
	}
	if strings.Contains(errb.String(), "Seeded 40 IAM users") || strings.Contains(printed, "over organization") {
		t.Errorf("another act ran, with the delivery act alone asked for")
	}
}

// TestDemoDeliveryFlag: --delivery naming a directory without the template
// fails at once (exit 2, before any emulator starts), saying how to make it.
func TestDemoDeliveryFlag(t *testing.T) {
	dir := t.TempDir()
	tmpl := filepath.Join(dir, "out", "KeyRotor.template.json")
	if err := os.MkdirAll(filepath.Dir(tmpl), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tmpl, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := keyrotor(t, "", "demo", "--template", tmpl, "--delivery", filepath.Join(dir, "nothing"), "--work-dir", filepath.Join(dir, "work"))
	if code != 2 || !strings.Contains(errOut, "--delivery") || !strings.Contains(errOut, "KeyRotor.template.json not found: run `make synth`") || strings.Contains(errOut, "Starting moto_server") {
		t.Fatalf("exit %d, stderr %q; want 2 naming --delivery and make synth, before the emulator starts", code, errOut)
	}
}
