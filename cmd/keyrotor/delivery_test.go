package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/demo"
	ghemu "github.com/keyrotor/keyrotor/internal/emulators/github"
	glemu "github.com/keyrotor/keyrotor/internal/emulators/gitlab"
	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// deliveryTemplate is the template make synth writes with
// deliveryParameters ["/ci/*"]: the deliver role may write SSM parameters
// under /ci/.
const deliveryTemplate = "../../build/cdk.delivery/KeyRotor.template.json"

// TestSlowE2EDelivery: `keyrotor run` delivers new keys where their
// pipelines read them, in real time, with the synthesized template whose
// deliveryParameters allow /ci/*.
//
// alice-ci has two destinations, a GitHub repository secret (the GitHub
// emulator, its token in the hub secret keyrotor-delivery/github) and two
// SSM parameters under /ci/; a pipeline reads its key from each. The run
// delivers the new key to both (each value written once), the owner's one
// notice lists both as delivered, the adoption window sees the new key in
// use, the old key goes off on evidence and is deleted after grace, and
// neither pipeline ever made a failed call.
//
// bob-ci's destination is a GitLab project whose API answers 500 until a
// time past the first run. The first run keeps bob-ci's old key Active,
// stops the rotation at DeliveryIncomplete, tells the admins which
// destination failed and the owner what is not delivered, and `keyrotor
// status` shows the destination failed with its reason. Once GitLab is
// back, a second run delivers once and bob-ci's window switches over on
// evidence; bob-ci's pipeline never failed either.
//
// The destinations are registered with `keyrotor destinations set`; no
// secret appears in the runs' output, logs, history, mails or messages.
func TestSlowE2EDelivery(t *testing.T) {
	requireBuild(t)
	if _, err := os.Stat(deliveryTemplate); err != nil {
		t.Fatalf("%s missing: run `make synth` (make test does)", deliveryTemplate)
	}
	started := time.Now()
	ctx := context.Background()
	a := awstest.New(t)
	a.VerifySender(t, "keyrotor@example.com")
	a.Clock(t, -100*day)
	olds := map[string]demo.Key{}
	for _, u := range []string{"alice-ci", "bob-ci"} {
		a.User(t, u, "email", u+"@example.com")
		id, secret := a.KeyWithSecret(t, u)
		olds[u] = demo.Key{ID: id, Secret: secret}
	}
	a.Clock(t, 0)

	// The CI systems, on loopback; GitLab answers 500 until an hour from
	// now on its clock, which the test moves past that after the first run.
	gh, err := ghemu.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gh.Close() })
	gh.AddRepo("octo/app")
	gl, err := glemu.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gl.Close)
	gl.AddProject("group/app")
	var glShift atomic.Int64
	gl.SetClock(func() time.Time { return time.Now().Add(time.Duration(glShift.Load())) })
	gl.FailUntil(time.Now().Add(time.Hour))
	for name, token := range map[string]string{"keyrotor-delivery/github": gh.Token(), "keyrotor-delivery/gitlab": gl.Token()} {
		if _, err := a.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(token)}); err != nil {
			t.Fatal(err)
		}
	}

	// The documents, with the real CLI, into the table the run uses (the
	// local run's stand-in: keyrotor-<logical id>).
	tmpl, err := local.ReadTemplate(deliveryTemplate)
	if err != nil {
		t.Fatal(err)
	}
	tables := tmpl.OfType("AWS::DynamoDB::Table")
	if len(tables) != 1 {
		t.Fatalf("tables in the template: %v; want the rotation table", tables)
	}
	table := "keyrotor-" + tables[0]
	a.Records(t, table)
	t.Setenv("AWS_ACCESS_KEY_ID", "testing")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "testing")
	t.Setenv("AWS_REGION", "us-east-1")
	docs := map[string]string{
		"alice-ci": `{"version":1,"destinations":[
			{"type":"github","repository":"octo/app","credential":"keyrotor-delivery/github","url":"` + gh.URL() + `"},
			{"type":"ssm","idName":"/ci/alice/aws-access-key-id","secretName":"/ci/alice/aws-secret-access-key"}]}`,
		"bob-ci": `{"version":1,"destinations":[
			{"type":"gitlab","project":"group/app","credential":"keyrotor-delivery/gitlab","url":"` + gl.URL() + `"}]}`,
	}
	var printed []string
	for u, doc := range docs {
		f := filepath.Join(t.TempDir(), u+".json")
		if err := os.WriteFile(f, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, errOut := keyrotor(t, "", "destinations", "set", "--user", u, "--file", f, "--table", table, "--endpoint", a.Endpoint)
		printed = append(printed, out, errOut)
		if code != 0 {
			t.Fatalf("destinations set --user %s: exit %d\n%s%s", u, code, out, errOut)
		}
	}

	// The pipelines: each reads its key from a destination every second.
	ssmc := ssm.NewFromConfig(a.Config)
	pipelines := map[string]*demo.DeliveredPipeline{
		"alice-ci via github": {User: "alice-ci", Old: olds["alice-ci"], Read: demo.FromCI(gh.Value, "repo:octo/app", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
		"alice-ci via ssm":    {User: "alice-ci", Old: olds["alice-ci"], Read: demo.FromSSM(ssmc, "/ci/alice/aws-access-key-id", "/ci/alice/aws-secret-access-key")},
		"bob-ci via gitlab":   {User: "bob-ci", Old: olds["bob-ci"], Read: demo.FromCI(gl.Value, "project:group/app", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")},
	}
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range pipelines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(pctx, a.Config)
		}()
	}
	defer func() { stop(); wg.Wait() }()
	run := func(work string) (int, rotation.Summary, string) {
		t.Helper()
		code, out, errOut := keyrotor(t, "", append([]string{"run", "--endpoint", a.Endpoint, "--template", deliveryTemplate, "--bin", binDir, "--work-dir", work},
			"--wait", "2s", "--adoption-window", "20s", "--adoption-check", "2s")...)
		printed = append(printed, out, errOut)
		var sum rotation.Summary
		if err := json.Unmarshal([]byte(out), &sum); err != nil {
			t.Fatalf("keyrotor run exit %d, stdout is not the summary: %v\n%s", code, err, tail(errOut))
		}
		return code, sum, errOut
	}
	outcome := func(sum rotation.Summary, user string) rotation.Outcome {
		for _, o := range sum.Users {
			if o.User == user {
				return o
			}
		}
		t.Fatalf("summary has no outcome for %s: %+v", user, sum.Users)
		return rotation.Outcome{}
	}

	// First run: alice-ci delivered and switched over; bob-ci waits.
	first := t.TempDir()
	code, sum, errOut := run(first)
	if code != exitNeedsPerson {
		t.Fatalf("first run: exit %d; want %d (bob-ci's rotation waits for its delivery)\n%s", code, exitNeedsPerson, tail(errOut))
	}
	alice, bob := outcome(sum, "alice-ci"), outcome(sum, "bob-ci")
	if alice.Result != "adopting" || len(alice.Delivered) != 2 || len(alice.Undelivered) != 0 {
		t.Errorf("first run: alice-ci %s, delivered %v, undelivered %v; want adopting, delivered to both", alice.Result, alice.Delivered, alice.Undelivered)
	}
	if bob.Result != "waiting" || len(bob.Delivered) != 0 || len(bob.Undelivered) != 1 || !strings.Contains(bob.Undelivered[0], "gitlab project group/app") {
		t.Errorf("first run: bob-ci %s, delivered %v, undelivered %v; want waiting with the gitlab project undelivered", bob.Result, bob.Delivered, bob.Undelivered)
	}
	recs := allRecords(t, a)
	aliceRec := recs[olds["alice-ci"].ID]
	if aliceRec == nil || aliceRec.State != ledger.Deleted || aliceRec.Adoption == nil || aliceRec.Adoption.SwitchOver != ledger.SwitchEvidence {
		t.Fatalf("first run: alice-ci's record %+v; want deleted after switching over on evidence", aliceRec)
	}
	var stored rotation.StoredKey
	if err := json.Unmarshal([]byte(a.Secret(t, "iam-access-keys/alice-ci")), &stored); err != nil {
		t.Fatal(err)
	}
	if keys := a.Keys(t, "alice-ci"); len(keys) != 1 || keys[stored.AccessKeyID] != "Active" {
		t.Errorf("alice-ci's keys %v; want the new key %s alone and Active", keys, stored.AccessKeyID)
	}
	for _, n := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		want := map[string]string{"AWS_ACCESS_KEY_ID": stored.AccessKeyID, "AWS_SECRET_ACCESS_KEY": stored.SecretAccessKey}[n]
		if v, _ := gh.Value("repo:octo/app", n); v != want || gh.Writes("repo:octo/app", n) != 1 {
			t.Errorf("github octo/app %s: the new key's value: %v, written %d times; want it, once", n, v == want, gh.Writes("repo:octo/app", n))
		}
	}
	if k, ok, err := demo.FromSSM(ssmc, "/ci/alice/aws-access-key-id", "/ci/alice/aws-secret-access-key")(ctx); err != nil || !ok || k.ID != stored.AccessKeyID || k.Secret != stored.SecretAccessKey {
		t.Errorf("ssm /ci/alice: holds %s (secret matches: %v), %v; want the new key %s", k.ID, k.Secret == stored.SecretAccessKey, err, stored.AccessKeyID)
	}
	for _, d := range aliceRec.Deliveries {
		if d.State != ledger.DeliveryVerified || d.VerifiedAt.IsZero() {
			t.Errorf("alice-ci's delivery %+v; want verified, with its time", d)
		}
	}
	bobRec := recs[olds["bob-ci"].ID]
	if keys := a.Keys(t, "bob-ci"); keys[olds["bob-ci"].ID] != "Active" {
		t.Errorf("first run: bob-ci's keys %v; want the old key Active while GitLab lacks the new one", keys)
	}
	if bobRec == nil || len(bobRec.Deliveries) != 1 || bobRec.Deliveries[0].State != ledger.DeliveryFailed || !strings.Contains(bobRec.Deliveries[0].Reason, "500") {
		t.Fatalf("first run: bob-ci's record %+v; want its one delivery failed with GitLab's 500", bobRec)
	}
	if _, ok := gl.Value("project:group/app", "AWS_ACCESS_KEY_ID"); ok {
		t.Errorf("first run: GitLab holds a value although it answered 500")
	}
	if h, err := os.ReadFile(filepath.Join(first, "history.jsonl")); err != nil || !strings.Contains(string(h), `"DeliveryIncomplete"`) {
		t.Errorf("first run: the history does not show bob-ci's rotation stopping at DeliveryIncomplete (%v)", err)
	}
	for _, w := range []string{"delivery of alice-ci's new key " + alice.NewKeyID + ": 2 of 2 destinations hold it", "delivery of bob-ci's new key " + bob.NewKeyID + ": 0 of 1 destinations hold it", "  NOT delivered: gitlab project group/app"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("first run: stderr lacks %q:\n%s", w, tail(errOut))
		}
	}
	if !strings.Contains(errOut, "bob-ci: the new key is not delivered everywhere yet") {
		t.Errorf("first run: the run does not say bob-ci's rotation waits for its delivery:\n%s", tail(errOut))
	}
	mails, notes := a.Sent(t)
	told := ""
	for _, n := range notes {
		told += n.Message + "\n"
	}
	if !strings.Contains(told, "do not hold the new key") || !strings.Contains(told, "gitlab project group/app") {
		t.Errorf("first run: the admins were told %q; want the GitLab destination named", told)
	}
	notices := map[string][]string{}
	for _, m := range mails {
		notices[m.To[0]] = append(notices[m.To[0]], m.Body)
	}
	if n := notices["alice-ci@example.com"]; len(n) < 1 || len(n) > 2 ||
		!strings.Contains(n[0], "delivered and read back: github repository secret octo/app") ||
		!strings.Contains(n[0], "delivered and read back: ssm parameters /ci/alice/aws-access-key-id") {
		t.Errorf("alice-ci's mails %q; want one notice listing both destinations as delivered (and at most a reminder)", n)
	}
	if n := notices["bob-ci@example.com"]; len(n) != 1 || !strings.Contains(n[0], "not delivered yet</strong>: gitlab project group/app") {
		t.Errorf("bob-ci's mails %q; want one notice listing GitLab as not delivered", n)
	}
	// Where the operator looks: status names bob-ci's destination, failed
	// with why.
	code, out, errOut := keyrotor(t, "", "status", "--endpoint", a.Endpoint)
	printed = append(printed, out, errOut)
	if code != 0 || !strings.Contains(out, "gitlab project group/app") || !strings.Contains(out, "failed: ") {
		t.Errorf("status: exit %d; want bob-ci's GitLab destination shown failed with its reason:\n%s%s", code, out, errOut)
	}

	// GitLab is back: the second run delivers once and the window
	// switches bob-ci over on evidence.
	glShift.Store(int64(2 * time.Hour))
	second := t.TempDir()
	code, sum, errOut = run(second)
	if code != 0 {
		t.Fatalf("second run: exit %d\n%s", code, tail(errOut))
	}
	if o := outcome(sum, "bob-ci"); o.Result != "adopting" || len(o.Delivered) != 1 {
		t.Errorf("second run: bob-ci %s, delivered %v; want adopting, delivered to GitLab", o.Result, o.Delivered)
	}
	var bobKey rotation.StoredKey
	if err := json.Unmarshal([]byte(a.Secret(t, "iam-access-keys/bob-ci")), &bobKey); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		want := map[string]string{"AWS_ACCESS_KEY_ID": bobKey.AccessKeyID, "AWS_SECRET_ACCESS_KEY": bobKey.SecretAccessKey}[n]
		if v, _ := gl.Value("project:group/app", n); v != want || gl.Writes("project:group/app", n) != 1 {
			t.Errorf("gitlab group/app %s: the new key's value: %v, written %d times; want it, once", n, v == want, gl.Writes("project:group/app", n))
		}
	}
	bobRec = allRecords(t, a)[olds["bob-ci"].ID]
	if bobRec == nil || bobRec.State != ledger.Deleted || bobRec.Adoption == nil || bobRec.Adoption.SwitchOver != ledger.SwitchEvidence {
		t.Errorf("second run: bob-ci's record %+v; want deleted after switching over on evidence", bobRec)
	}
	if keys := a.Keys(t, "bob-ci"); len(keys) != 1 || keys[bobKey.AccessKeyID] != "Active" {
		t.Errorf("bob-ci's keys %v; want the new key %s alone and Active", keys, bobKey.AccessKeyID)
	}
	if mails, _ := a.Sent(t); len(mails) > len(notices["alice-ci@example.com"])+2 {
		t.Errorf("%d mails after the second run; want bob-ci's notice not sent again (a reminder at most)", len(mails))
	}

	stop()
	wg.Wait()
	for name, p := range pipelines {
		calls, failures, key, switched := p.Result()
		want := map[string]string{"alice-ci": stored.AccessKeyID, "bob-ci": bobKey.AccessKeyID}[p.User]
		if len(failures) > 0 || key.ID != want || switched.IsZero() {
			t.Errorf("pipeline %s: %d jobs, failures %q, uses %s; want no failure and the new key %s, taken from its destination", name, calls, failures, key.ID, want)
		}
	}
	for _, w := range []string{first, second} {
		assertNotIn(t, a, w, strings.Join(printed, "\n"), []string{olds["alice-ci"].Secret, olds["bob-ci"].Secret, stored.SecretAccessKey, bobKey.SecretAccessKey, gh.Token(), gl.Token()})
	}
	t.Logf("two runs with delivery took %s", time.Since(started).Round(100*time.Millisecond))
}
