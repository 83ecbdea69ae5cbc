package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func TestMain(m *testing.M) { awstest.Main(m) }

const (
	template = "../../cdk.out/KeyRotor.template.json"
	binDir   = "../../build/host"
	day      = 24 * time.Hour
)

func requireBuild(t *testing.T) {
	t.Helper()
	for _, p := range []string{template, filepath.Join(binDir, "find", "bootstrap")} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("%s missing: run `make build-host synth` (make test does)", p)
		}
	}
}

// keyrotor runs the command in-process and returns exit code, stdout, stderr.
func keyrotor(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// strict returns an endpoint in front of a's emulator that enforces what
// moto does not and keyrotor depends on: IAM's tag quotas and the eventual
// consistency of ListAccessKeys after a key write (a window shorter than
// IAM's few seconds, since local runs shorten every Retry interval too).
func strict(t *testing.T, a *awstest.Account) string {
	t.Helper()
	p, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.TagLimits = true
	p.Consistency = 300 * time.Millisecond
	t.Cleanup(p.Close)
	return p.URL()
}

func runArgs(t *testing.T, endpoint string, extra ...string) []string {
	return runArgsIn(t.TempDir(), endpoint, extra...)
}

func runArgsIn(workDir, endpoint string, extra ...string) []string {
	return append([]string{"run", "--endpoint", endpoint, "--template", template, "--bin", binDir,
		"--work-dir", workDir}, extra...)
}

type user struct {
	name     string
	ageDays  int
	usedAgo  int // -1: never
	email    string
	exempt   bool
	twoKeys  bool
	expected string // rotate, retire, exempt, blocked, ok
}

var account = []user{
	{"alice", 120, 1, "alice@example.com", false, false, "rotate"},
	{"bob", 200, 3, "bob@example.com", false, false, "rotate"},
	{"no-mail", 100, 2, "", false, false, "rotate"},
	{"unused", 100, -1, "unused@example.com", false, false, "retire"},
	{"exempt", 300, 1, "ex@example.com", true, false, "exempt"},
	{"two", 150, 1, "two@example.com", false, true, "blocked"},
	{"fresh", 10, 0, "fresh@example.com", false, false, "ok"},
}

// seed creates the account and returns each user's original key id.
func seed(t *testing.T, a *awstest.Account) map[string]string {
	t.Helper()
	a.VerifySender(t, "keyrotor@example.com")
	keys := map[string]string{}
	for _, u := range account {
		a.Clock(t, -time.Duration(u.ageDays)*day)
		var tags []string
		if u.email != "" {
			tags = append(tags, "email", u.email)
		}
		if u.exempt {
			tags = append(tags, "keyrotor:exempt", "true")
		}
		a.User(t, u.name, tags...)
		id, secret := a.KeyWithSecret(t, u.name)
		keys[u.name] = id
		if u.usedAgo >= 0 {
			a.Clock(t, -time.Duration(u.usedAgo)*day)
			a.Use(t, id, secret)
		}
		if u.twoKeys {
			a.Key(t, u.name)
		}
	}
	a.Clock(t, 0)
	return keys
}

// assertRotated checks the end state of a complete rotation of account.
func assertRotated(t *testing.T, a *awstest.Account, old map[string]string) {
	t.Helper()
	for _, u := range account {
		keys := a.Keys(t, u.name)
		switch u.expected {
		case "rotate":
			var stored rotation.StoredKey
			if err := json.Unmarshal([]byte(a.Secret(t, "iam-access-keys/"+u.name)), &stored); err != nil {
				t.Fatalf("%s: secret: %v", u.name, err)
			}
			if len(keys) != 1 || keys[stored.AccessKeyID] != "Active" || keys[old[u.name]] != "" {
				t.Errorf("%s: keys %v, stored %s; want only the stored new key", u.name, keys, stored.AccessKeyID)
			}
			a.Use(t, stored.AccessKeyID, stored.SecretAccessKey) // it works
		case "retire":
			if len(keys) != 0 {
				t.Errorf("%s: keys %v; want none (retired, no replacement)", u.name, keys)
			}
		case "exempt", "ok":
			if len(keys) != 1 || keys[old[u.name]] != "Active" {
				t.Errorf("%s: keys %v; want the original key untouched", u.name, keys)
			}
		case "blocked":
			if len(keys) != 2 || keys[old[u.name]] != "Active" {
				t.Errorf("%s: keys %v; want both keys untouched", u.name, keys)
			}
		}
	}
	mails, _ := a.Sent(t)
	per := map[string]int{}
	for _, m := range mails {
		per[m.To[0]]++
	}
	want := map[string]int{"alice@example.com": 1, "bob@example.com": 1, "unused@example.com": 1}
	if len(per) != len(want) {
		t.Errorf("mails to %v; want one each to %v", per, want)
	}
	for to, n := range want {
		if per[to] != n {
			t.Errorf("%d mails to %s; want %d", per[to], to, n)
		}
	}
}

// TestSlowE2EFullRotation: a full run through `keyrotor run`.
func TestSlowE2EFullRotation(t *testing.T) {
	requireBuild(t)
	a := awstest.New(t)
	old := seed(t, a)
	work := t.TempDir()
	code, out, errOut := keyrotor(t, "", runArgsIn(work, strict(t, a))...)
	if code != 0 {
		t.Fatalf("keyrotor run exit %d\n%s", code, errOut)
	}
	assertRotated(t, a, old)
	assertNoSecretAnywhere(t, a, work, out+errOut)
	var sum rotation.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("stdout is not the summary: %v\n%s", err, out)
	}
	results := map[string]string{}
	for _, o := range sum.Users {
		results[o.User] = o.Result
	}
	for _, b := range append(sum.Blocked, sum.Exempt...) {
		results[b.User] = string(b.Action)
	}
	wantResults := map[string]string{"alice": "rotated", "bob": "rotated", "no-mail": "rotated", "unused": "retired", "exempt": "exempt", "two": "blocked"}
	for u, w := range wantResults {
		if results[u] != w {
			t.Errorf("output for %s = %q; want %q (all: %v)", u, results[u], w, results)
		}
	}
	for _, s := range []string{"ok FindDueKeys", "ok RotateEachUser", "users done", "execution SUCCEEDED"} {
		if !strings.Contains(errOut, s) {
			t.Errorf("progress lacks %q:\n%s", s, errOut)
		}
	}
	// The next day's run finds nothing due: it succeeds and changes nothing.
	keys := map[string]map[string]string{}
	for u := range old {
		keys[u] = a.Keys(t, u)
	}
	code, out, errOut = keyrotor(t, "", runArgs(t, strict(t, a))...)
	if code != 0 {
		t.Fatalf("a run with nothing due: exit %d\n%s", code, errOut)
	}
	var again rotation.Summary
	json.Unmarshal([]byte(out), &again)
	if again.Totals.Rotated+again.Totals.Retired != 0 {
		t.Fatalf("a run with nothing due rotated %d, retired %d", again.Totals.Rotated, again.Totals.Retired)
	}
	for u, before := range keys {
		if after := a.Keys(t, u); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("a run with nothing due changed %s's keys: %v -> %v", u, before, after)
		}
	}
}

// TestSlowE2EDryRun: a dry run returns the plan and changes nothing.
func TestSlowE2EDryRun(t *testing.T) {
	requireBuild(t)
	a := awstest.New(t)
	old := seed(t, a)
	code, out, errOut := keyrotor(t, `{"dryRun":true}`, runArgs(t, strict(t, a), "--input", "-")...)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errOut)
	}
	var plan rotation.Plan
	if err := json.Unmarshal([]byte(out), &plan); err != nil || !plan.DryRun || plan.Counts.Rotate != 3 || plan.Counts.Retire != 1 || plan.Counts.Blocked != 1 || plan.Counts.Exempt != 1 {
		t.Fatalf("dry-run output = %+v, %v", plan.Counts, err)
	}
	for _, u := range account {
		if keys := a.Keys(t, u.name); keys[old[u.name]] != "Active" {
			t.Errorf("%s changed by a dry run: %v", u.name, keys)
		}
	}
	if mails, notes := a.Sent(t); len(mails)+len(notes) != 0 {
		t.Errorf("a dry run sent %d mails and %d notes", len(mails), len(notes))
	}
}

// TestSlowE2EFailureThenConverge: a step that keeps failing ends the
// execution FAILED naming the state; a second run converges to the same
// end state as an undisturbed run.
func TestSlowE2EFailureThenConverge(t *testing.T) {
	requireBuild(t)
	a := awstest.New(t)
	old := seed(t, a)
	p, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.FailRate([]string{"UpdateAccessKey"}, 1, faultproxy.ServerError, 1)
	code, _, errOut := keyrotor(t, "", runArgs(t, p.URL())...)
	if code == 0 {
		t.Fatal("run succeeded although every UpdateAccessKey failed")
	}
	if !strings.Contains(errOut, "execution FAILED at state RotateEachUser") || !strings.Contains(errOut, "DeactivateOldKey") {
		t.Fatalf("failure report does not name the states:\n%s", errOut)
	}
	p.Clear()
	second := t.TempDir()
	code, out, errOut := keyrotor(t, "", runArgsIn(second, p.URL())...)
	if code != 0 {
		t.Fatalf("second run exit %d\n%s", code, errOut)
	}
	if os.Getenv("KEYROTOR_DEBUG_E2E") != "" {
		t.Logf("second run:\n%s\n%s", out, errOut)
	}
	assertRotated(t, a, old)
}

// TestE2EInputErrors: bad input fails fast, naming the field, and changes
// nothing (no endpoint is even contacted).
func TestE2EInputErrors(t *testing.T) {
	tests := []struct{ input, field string }{
		{`{"dryRun":"yes"}`, `"dryRun"`},
		{`{"user":["alice"]}`, `"user"`},
		{`{"asOf":"yesterday"}`, `"asOf"`},
		{`{"users":[]}`, `"users"`},
		{`[1]`, "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			code, _, errOut := keyrotor(t, tt.input, "run", "--endpoint", "http://127.0.0.1:1", "--input", "-", "--template", template)
			if code != 2 || !strings.Contains(errOut, tt.field) {
				t.Fatalf("exit %d, stderr %q; want 2 naming %s", code, errOut, tt.field)
			}
		})
	}
	if code, _, errOut := keyrotor(t, "", "run"); code != 2 || !strings.Contains(errOut, "--endpoint") {
		t.Fatalf("missing --endpoint: exit %d %q", code, errOut)
	}
	if code, _, errOut := keyrotor(t, "", "run", "--endpoint", "http://x", "--wait", "-1s"); code != 2 || !strings.Contains(errOut, "--wait") {
		t.Fatalf("negative --wait: exit %d %q", code, errOut)
	}
}

// assertNoSecretAnywhere scans one run's every output for each secret
// access key created: function logs, the execution history (every state's
// input and output), the output and progress, mails and SNS messages, the
// report and summary objects.
func assertNoSecretAnywhere(t *testing.T, a *awstest.Account, work, printed string) {
	t.Helper()
	var users []string
	for _, u := range account {
		users = append(users, u.name)
	}
	assertNoSecretOf(t, a, work, printed, users, 3)
}

// assertNoSecretOf is assertNoSecretAnywhere for the stored secrets of
// users (want of them).
func assertNoSecretOf(t *testing.T, a *awstest.Account, work, printed string, users []string, want int) {
	t.Helper()
	var secrets []string
	for _, u := range users {
		var k rotation.StoredKey
		if s := a.Secret(t, "iam-access-keys/"+u); s != "" && json.Unmarshal([]byte(s), &k) == nil {
			secrets = append(secrets, k.SecretAccessKey)
		}
	}
	if len(secrets) != want {
		t.Fatalf("found %d stored secrets; want %d", len(secrets), want)
	}
	assertNotIn(t, a, work, printed, secrets)
}

// assertNotIn scans one run's every output (a is the account keyrotor runs
// in: its mails, messages and S3 objects) for the secrets.
func assertNotIn(t *testing.T, a *awstest.Account, work, printed string, secrets []string) {
	t.Helper()
	corpus := []string{printed}
	files, _ := filepath.Glob(filepath.Join(work, "*"))
	logs, _ := filepath.Glob(filepath.Join(work, "logs", "*"))
	// The keys' own executions: grace periods and adoption windows.
	keyRuns, _ := filepath.Glob(filepath.Join(work, "grace", "*", "*"))
	for _, f := range append(append(files, logs...), keyRuns...) {
		if b, err := os.ReadFile(f); err == nil {
			corpus = append(corpus, string(b))
		}
	}
	if len(logs) != len(local.FunctionDirs) {
		t.Fatalf("function logs = %v; want one per function (%d)", logs, len(local.FunctionDirs))
	}
	mails, notes := a.Sent(t)
	corpus = append(corpus, fmt.Sprint(mails), fmt.Sprint(notes))
	buckets, _ := a.S3.ListBuckets(context.Background(), &s3.ListBucketsInput{})
	objects := 0
	for _, b := range buckets.Buckets {
		list, _ := a.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: b.Name})
		for _, o := range list.Contents {
			obj, err := a.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: b.Name, Key: o.Key})
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(obj.Body)
			obj.Body.Close()
			corpus = append(corpus, string(body))
			objects++
		}
	}
	if objects < 4 { // plan items, report CSV and JSON, run summary
		t.Fatalf("only %d objects in S3", objects)
	}
	all := strings.Join(corpus, "\n")
	if !strings.Contains(all, "DeleteOldKey") {
		t.Fatal("the scanned corpus lacks the execution history")
	}
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Fatal("a secret access key appears in a log, the history, an output, a message or a report")
		}
	}
}

// TestSlowE2EConcurrentRuns: two executions over the same users at once
// (the schedule and a manual run) both end cleanly, with one rotation per
// user and no third key attempt.
func TestSlowE2EConcurrentRuns(t *testing.T) {
	requireBuild(t)
	a := awstest.New(t)
	old := seed(t, a)
	endpoint := strict(t, a)
	type res struct {
		code   int
		stderr string
	}
	done := make(chan res, 2)
	for i := range 2 {
		go func() {
			var out, errb bytes.Buffer
			code := dispatch(context.Background(), runArgs(t, endpoint, "--name", fmt.Sprintf("concurrent-%d", i), "--retry-interval", "300ms"), strings.NewReader(""), &out, &errb)
			done <- res{code, errb.String()}
		}()
	}
	for range 2 {
		r := <-done
		if r.code != 0 {
			t.Fatalf("a concurrent run failed:\n%s", r.stderr)
		}
	}
	assertRotated(t, a, old)
}
