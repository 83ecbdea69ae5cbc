package main

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/keyrotor/keyrotor/shared/rotation"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/local"
)

// stateLimit is Step Functions' limit on a state's input or output: 256
// KiB as a UTF-8 string ("Step Functions service quotas", AWS Step Functions
// Developer Guide, https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html:
// "Maximum input or output size for a task, state, or execution";
// beyond it the execution fails with States.DataLimitExceeded).
const stateLimit = 256 << 10

// TestSlowStateSizeLimit runs over an account with many exempt, blocked
// and failing users (a persistent fault fails them at DeactivateOldKey; a
// redrive then finishes them) and checks that no state input or output in
// the local histories (the daily execution's attempts and every grace
// execution's) comes near Step Functions' 256 KiB: the plan lists at most
// rotation.InlineListLimit blocked and exempt keys with whole counts, the summary at most rotation.SummaryUsersLimit
// users, and the map's result is the ResultWriter manifest reference, not
// the children's outputs.
//
// The default sizes (600 exempt, 600 blocked, 200 failing) exceed every
// cap; KEYROTOR_STATE_SIZE_USERS=exempt,blocked,failing sets others (the
// issue's full case, 10000,10000,3000, creates 23,000 users in moto_server:
// several minutes; see `make bench`).
func TestSlowStateSizeLimit(t *testing.T) {
	requireBuild(t)
	exempt, blocked, failing := 600, 600, 200
	if v := os.Getenv("KEYROTOR_STATE_SIZE_USERS"); v != "" {
		var err error
		parts := strings.Split(v, ",")
		if len(parts) == 3 {
			exempt, err = strconv.Atoi(parts[0])
			if err == nil {
				blocked, err = strconv.Atoi(parts[1])
			}
			if err == nil {
				failing, err = strconv.Atoi(parts[2])
			}
		}
		if len(parts) != 3 || err != nil {
			t.Fatalf("KEYROTOR_STATE_SIZE_USERS=%q; want exempt,blocked,failing counts, e.g. 10000,10000,3000", v)
		}
	}
	a := awstest.New(t)
	a.VerifySender(t, "keyrotor@example.com")
	start := time.Now()
	// Keys dated 120 days ago. Exempt: tagged. Failing: never used, so
	// retired (notify, deactivate, grace). Blocked: the old key used
	// yesterday (due for rotation) and a second key, so no new key fits.
	a.Clock(t, -120*day)
	parallel(t, exempt, func(i int) error {
		_, err := newUser(a, fmt.Sprintf("exempt-%05d", i), "keyrotor:exempt", "true")
		return err
	})
	parallel(t, failing, func(i int) error { _, err := newUser(a, fmt.Sprintf("failing-%05d", i)); return err })
	secrets := make([]*iamtypes.AccessKey, blocked)
	parallel(t, blocked, func(i int) (err error) { secrets[i], err = newUser(a, fmt.Sprintf("blocked-%05d", i)); return err })
	a.Clock(t, -day)
	parallel(t, blocked, func(i int) error {
		cfg := a.Config.Copy()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(aws.ToString(secrets[i].AccessKeyId), aws.ToString(secrets[i].SecretAccessKey), "")
		_, err := sts.NewFromConfig(cfg).GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
		return err
	})
	a.Clock(t, 0)
	parallel(t, blocked, func(i int) error {
		_, err := a.IAM.CreateAccessKey(context.Background(), &iam.CreateAccessKeyInput{UserName: aws.String(fmt.Sprintf("blocked-%05d", i))})
		return err
	})
	t.Logf("created %d exempt, %d blocked and %d failing users in %s", exempt, blocked, failing, time.Since(start).Round(time.Second))

	p, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	p.FailRate([]string{"UpdateAccessKey"}, 1, faultproxy.ServerError, 1)
	work := t.TempDir()
	start = time.Now()
	code, _, errOut := keyrotor(t, "", runArgsIn(work, p.URL(), "--retry-interval", "5ms", "--name", "state-size")...)
	if code == 0 || !strings.Contains(errOut, "DeactivateOldKey") {
		t.Fatalf("exit %d; want the run to fail at DeactivateOldKey:\n%s", code, tail(errOut))
	}
	t.Logf("failed run in %s", time.Since(start).Round(time.Second))
	p.Clear()
	start = time.Now()
	code, out, errOut := keyrotor(t, "", "run", "--endpoint", p.URL(), "--template", template, "--bin", binDir,
		"--retry-interval", "5ms", "--redrive", work)
	if code != 0 {
		t.Fatalf("redrive exit %d\n%s", code, tail(errOut))
	}
	t.Logf("redrive in %s", time.Since(start).Round(time.Second))

	// The caps, not the user count, bound the payloads.
	var sum struct {
		Totals struct{ Retired, Deleted, Blocked, Exempt int }
		Users  []json.RawMessage
		Cut    bool `json:"usersTruncated"`
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("output is not the summary: %v", err)
	}
	// A retired key whose grace period (a few minutes in a local run) was
	// over before the redrive reached it is deleted in the redrive itself,
	// with no grace execution: both are a finished retirement.
	if sum.Totals.Retired+sum.Totals.Deleted != failing || sum.Totals.Blocked != blocked || sum.Totals.Exempt != exempt {
		t.Errorf("summary totals %+v; want %d retired or deleted, %d blocked, %d exempt; the summary: %.3000s\nthe redrive's log: %s", sum.Totals, failing, blocked, exempt, out, tail(errOut))
	}
	if failing > rotation.SummaryUsersLimit && (len(sum.Users) != rotation.SummaryUsersLimit || !sum.Cut) {
		t.Errorf("summary lists %d users (truncated %v); want the first %d of %d", len(sum.Users), sum.Cut, rotation.SummaryUsersLimit, failing)
	}

	files, _ := filepath.Glob(filepath.Join(work, "grace", "*", "history.jsonl"))
	if len(files)+sum.Totals.Deleted != failing {
		t.Errorf("%d grace histories and %d deleted in the redrive; want %d in all; the records of those without: %s", len(files), sum.Totals.Deleted, failing, recordsWithoutGrace(t, a, files))
	}
	files = append(files, filepath.Join(work, "history.jsonl"))
	var sizes []payload
	for _, f := range files {
		sizes = append(sizes, payloads(t, f)...)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i].size > sizes[j].size })
	for _, s := range sizes[:min(5, len(sizes))] {
		t.Logf("%7d bytes: %s", s.size, s.what)
	}
	// At most half the limit: a second pass carries a retry plan too, and
	// real names, addresses and reasons are longer than these.
	if sizes[0].size > stateLimit/2 {
		t.Errorf("largest state payload %d bytes (%s); want well under Step Functions' %d (at most half); its parts: %s", sizes[0].size, sizes[0].what, stateLimit, breakdown(sizes[0].raw))
	}
	var plan, mapOut bool
	for _, s := range sizes {
		if s.what == "StateExited output of state FindDueKeys" {
			plan = true
			var o struct {
				Plan struct {
					Counts          struct{ Blocked, Exempt int }
					Blocked, Exempt []json.RawMessage
				}
			}
			json.Unmarshal(s.raw, &o)
			if o.Plan.Counts.Blocked != blocked || o.Plan.Counts.Exempt != exempt || len(o.Plan.Blocked) != min(blocked, rotation.InlineListLimit) || len(o.Plan.Exempt) != min(exempt, rotation.InlineListLimit) {
				t.Errorf("plan counts %+v with %d blocked and %d exempt listed; want whole counts and at most %d listed", o.Plan.Counts, len(o.Plan.Blocked), len(o.Plan.Exempt), rotation.InlineListLimit)
			}
		}
		if s.what == "StateExited output of state RotateEachUser" {
			mapOut = true
			var o struct {
				Results struct {
					ResultWriterDetails struct{ Bucket, Key string }
				}
			}
			if json.Unmarshal(s.raw, &o); o.Results.ResultWriterDetails.Key == "" {
				t.Errorf("the map's output carries no ResultWriter manifest reference: %.300s", s.raw)
			}
		}
	}
	if !plan || !mapOut {
		t.Errorf("the history lacks FindDueKeys' (%v) or RotateEachUser's (%v) output", plan, mapOut)
	}
}

// newUser creates a user with an owner address, the tags and one access key.
func newUser(a *awstest.Account, name string, tags ...string) (*iamtypes.AccessKey, error) {
	in := &iam.CreateUserInput{UserName: aws.String(name),
		Tags: []iamtypes.Tag{{Key: aws.String("email"), Value: aws.String(name + "@example.com")}}}
	for j := 0; j+1 < len(tags); j += 2 {
		in.Tags = append(in.Tags, iamtypes.Tag{Key: aws.String(tags[j]), Value: aws.String(tags[j+1])})
	}
	if _, err := a.IAM.CreateUser(context.Background(), in); err != nil {
		return nil, fmt.Errorf("create user %s: %w", name, err)
	}
	out, err := a.IAM.CreateAccessKey(context.Background(), &iam.CreateAccessKeyInput{UserName: aws.String(name)})
	if err != nil {
		return nil, fmt.Errorf("create key for %s: %w", name, err)
	}
	return out.AccessKey, nil
}

// parallel calls f(0..n-1), four at a time, and fails the test on the
// first error.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, 1)
	next := make(chan int)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := f(i); err != nil {
					select {
					case errs <- err:
					default:
					}
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errs:
		t.Fatal(err)
	default:
	}
}

// payload is one state input or output in a history.
type payload struct {
	size int
	what string
	raw  json.RawMessage
}

// payloads lists every execution, state and map child input and output in
// a history.jsonl.
func payloads(t *testing.T, path string) []payload {
	t.Helper()
	ps, _, err := local.Payloads(path)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]payload, len(ps))
	for i, p := range ps {
		out[i] = payload{p.Size, p.Where, p.Raw}
	}
	return out
}

// breakdown sizes a payload's fields, and those of its plan and summary.
func breakdown(raw json.RawMessage) string {
	var top map[string]json.RawMessage
	if json.Unmarshal(raw, &top) != nil {
		return "not an object"
	}
	var parts []string
	for _, k := range sortedKeys(top) {
		parts = append(parts, fmt.Sprintf("%s %d", k, len(top[k])))
		var inner map[string]json.RawMessage
		if (k == "plan" || k == "summary") && json.Unmarshal(top[k], &inner) == nil {
			for _, ik := range sortedKeys(inner) {
				if len(inner[ik]) > 1024 {
					parts = append(parts, fmt.Sprintf("%s.%s %d", k, ik, len(inner[ik])))
				}
			}
		}
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func tail(s string) string {
	if len(s) > 4000 {
		return "..." + s[len(s)-4000:]
	}
	return s
}

// recordsWithoutGrace describes the rotation records of the failing users
// that have no grace history (to tell a lost rotation from a slow one).
func recordsWithoutGrace(t *testing.T, a *awstest.Account, graces []string) string {
	seen := map[string]bool{}
	for _, f := range graces {
		// A grace execution's name: <user>-<key id>-r<n>; users are failing-NNNNN.
		if parts := strings.Split(filepath.Base(filepath.Dir(f)), "-"); len(parts) > 1 {
			seen[parts[0]+"-"+parts[1]] = true
		}
	}
	var b strings.Builder
	for _, r := range allRecords(t, a) {
		if strings.HasPrefix(r.User, "failing-") && !seen[r.User] {
			j, _ := json.Marshal(r)
			fmt.Fprintf(&b, "\n%s", j)
		}
	}
	return b.String()
}
