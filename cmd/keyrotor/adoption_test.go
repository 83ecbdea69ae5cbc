package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestSlowE2EAdoptionWindow: `keyrotor run` with an adoption window, in
// real time (a 20 s window, checked every 2 s). Two pipelines run while
// it does: one picks the new key up from Secrets Manager as soon as it is
// stored and stops using the old one (switched over on evidence), one
// keeps using the old key (switched over on the deadline, after two
// reminders). Each key's own execution runs its window, deactivates, waits
// out the grace period and deletes the old key.
func TestSlowE2EAdoptionWindow(t *testing.T) {
	requireBuild(t)
	a := awstest.New(t)
	a.VerifySender(t, "keyrotor@example.com")
	secrets := map[string]string{}
	olds := map[string]string{}
	a.Clock(t, -100*day)
	for _, u := range []string{"switcher", "holdout"} {
		a.User(t, u, "email", u+"@example.com")
		olds[u], secrets[u] = a.KeyWithSecret(t, u)
	}
	a.Clock(t, 0)

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for u, old := range olds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pipeline(ctx, a, u, old, secrets[u], u == "switcher")
		}()
	}
	work := t.TempDir()
	code, out, errOut := keyrotor(t, "", runArgsIn(work, a.Endpoint, "--wait", "2s", "--adoption-window", "20s", "--adoption-check", "2s")...)
	stop()
	wg.Wait()
	if code != 0 {
		t.Fatalf("keyrotor run exit %d\n%s", code, tail(errOut))
	}
	var sum rotation.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("stdout is not the summary: %v", err)
	}
	if sum.Totals.Adopting != 2 {
		t.Errorf("summary: %d adopting; want 2 (%+v)", sum.Totals.Adopting, sum.Users)
	}
	recs := allRecords(t, a)
	for u, how := range map[string]string{"switcher": ledger.SwitchEvidence, "holdout": ledger.SwitchDeadline} {
		r := recs[olds[u]]
		if r == nil || r.Adoption == nil || r.Adoption.SwitchOver != how || r.State != ledger.Deleted {
			t.Errorf("%s: record %+v; want deleted after switching over on %s", u, r, how)
			continue
		}
		if _, ok := a.Keys(t, u)[olds[u]]; ok {
			t.Errorf("%s: old key still exists", u)
		}
		if h, _ := filepath.Glob(filepath.Join(work, "grace", "*"+olds[u]+"*", "history.jsonl")); len(h) != 1 {
			t.Errorf("%s: %d histories of the key's own execution; want 1", u, len(h))
		}
	}
	mails, notes := a.Sent(t)
	count := map[string]int{}
	for _, m := range mails {
		for _, to := range m.To {
			count[to]++
		}
	}
	// The notice, then for the holdout the half-way reminder and the one
	// a check before the end. Real time on a loaded machine may delay a
	// check past a point (the deterministic counts are
	// TestMotoAdoptionWindow's): here, bounds.
	if n := count["switcher@example.com"]; n < 1 || n > 3 {
		t.Errorf("%d mails to switcher; want the notice and at most 2 reminders", n)
	}
	if n := count["holdout@example.com"]; n < 2 || n > 3 {
		t.Errorf("%d mails to holdout; want the notice and 1 or 2 reminders", n)
	}
	told := ""
	for _, n := range notes {
		told += n.Message
	}
	if !strings.Contains(told, "switched IAM user switcher over on evidence") || !strings.Contains(told, "switched IAM user holdout over on the deadline") {
		t.Errorf("the admins were not told how each switched over:\n%s", told)
	}
	assertNoSecretOf(t, a, work, out+errOut, []string{"switcher", "holdout"}, 2)

	// The dashboard's metrics, from the functions' EMF lines: every
	// widget's metric was emitted, with the run's figures.
	emitted := assertDashboardMetrics(t, work)
	total := func(name string) (n float64) {
		for _, v := range emitted[name] {
			n += v
		}
		return n
	}
	for name, want := range map[string]float64{
		metrics.SwitchOverEvidence: 1, metrics.SwitchOverDeadline: 1, metrics.SwitchOverPerson: 0,
		metrics.MailsRefused: 0, metrics.KeysAging: 2, metrics.OldestKeyAgeDays: 100, metrics.RunFailed: 0,
	} {
		if got := total(name); got != want {
			t.Errorf("emitted %s = %v (%v); want %v", name, got, emitted[name], want)
		}
	}
}

// pipeline plays a workload using a user's key every 300 ms until ctx
// ends; a switcher moves to the new key once it is stored.
func pipeline(ctx context.Context, a *awstest.Account, user, oldID, oldSecret string, switcher bool) {
	id, secret := oldID, oldSecret
	for ctx.Err() == nil {
		if switcher && id == oldID {
			out, err := a.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String("iam-access-keys/" + user)})
			var sk rotation.StoredKey
			if err == nil && json.Unmarshal([]byte(aws.ToString(out.SecretString)), &sk) == nil && sk.AccessKeyID != "" {
				id, secret = sk.AccessKeyID, sk.SecretAccessKey
			}
		}
		cfg := a.Config.Copy()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
		cfg.RetryMaxAttempts = 1
		// A deactivated key fails: that is the pipeline's problem, not the test's.
		_, _ = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// allRecords reads the rotation records of every table in the account.
func allRecords(t *testing.T, a *awstest.Account) map[string]*ledger.Record {
	t.Helper()
	recs, err := accountRecords(context.Background(), a.Config)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}
