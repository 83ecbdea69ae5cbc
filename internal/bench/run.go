package bench

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// iamOps are the IAM operations the throttling run fails at a rate.
var iamOps = []string{"ListAccessKeys", "ListUserTags", "TagUser", "UntagUser", "CreateAccessKey", "UpdateAccessKey",
	"DeleteAccessKey", "GetAccessKeyLastUsed", "GenerateCredentialReport", "GetCredentialReport"}

// FullRun seeds due users (and as many with nothing due) and runs the
// synthesized state machine locally; with throttle > 0, a fault proxy
// answers that fraction of the functions' IAM calls with Throttling. With
// perExecution, each key's grace execution runs in an engine process of
// its own (as local runs did before they shared one: the comparison).
func FullRun(ctx context.Context, base aws.Config, endpoint string, clock Clock, template, binDir, workDir string, due int, throttle float64, perExecution bool) (*RunResult, *local.Result, error) {
	if _, err := SeedScale(ctx, base, clock, 2*due, 50); err != nil {
		return nil, nil, err
	}
	if _, err := sesv2.NewFromConfig(base).CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String("keyrotor@example.com")}); err != nil {
		return nil, nil, err
	}
	fnEndpoint := ""
	var proxy *faultproxy.Proxy
	if throttle > 0 {
		p, err := faultproxy.New(endpoint)
		if err != nil {
			return nil, nil, err
		}
		defer p.Close()
		p.FailRate(iamOps, throttle, faultproxy.Throttle, 7)
		fnEndpoint, proxy = p.URL(), p
	}
	interval := 50 * time.Millisecond
	began := time.Now()
	res, err := local.Run(ctx, local.Options{
		Endpoint: endpoint, FunctionEndpoint: fnEndpoint, Template: template, BinDir: binDir, Input: json.RawMessage(`{}`),
		RetryInterval: &interval, WorkDir: workDir, ExecutionName: filepath.Base(workDir), MaxConcurrency: 8,
		EnginePerExecution: perExecution,
	})
	if err != nil {
		return nil, nil, err
	}
	out := &RunResult{DueUsers: due, Wall: res.Duration, Total: time.Since(began), Invocations: res.Invocations, Transitions: res.Transitions, Retries: res.Retries, Status: res.Status,
		Grace: len(res.Grace), GraceFailed: res.GraceFailed(), PerExecution: perExecution}
	var sum rotation.Summary
	if json.Unmarshal(res.Output, &sum) == nil {
		out.Rotated = sum.Totals.Rotated
	}
	inv := 0
	for _, n := range res.Invocations {
		inv += n
	}
	if due > 0 {
		out.PerKeyInvocations = float64(inv) / float64(due)
		out.PerKeyTransitions = float64(res.Transitions) / float64(due)
	}
	// Users with nothing due get no child execution: count the states
	// run for users that were not in the plan.
	planned := map[string]bool{}
	for i := range due {
		planned[userName(i)] = true
	}
	for u, n := range res.PerUserStates {
		if !planned[u] {
			out.IdleUserTransit += n
		}
	}
	if proxy != nil {
		for _, n := range proxy.Injected() {
			out.ThrottledCalls += n
		}
	}
	return out, res, nil
}

// Binaries measures each function: the deployable (arm64) binary's size,
// and, from a local run, cold start and peak RSS of the host build.
func Binaries(buildDir string, res *local.Result) []Binary {
	var out []Binary
	for _, dir := range sortedDirs() {
		b := Binary{Name: dir}
		if fi, err := os.Stat(filepath.Join(buildDir, dir, "bootstrap")); err == nil {
			b.SizeBytes = fi.Size()
		}
		if res != nil {
			if cs := res.Stats.ColdStarts[dir]; len(cs) > 0 {
				sort.Slice(cs, func(i, j int) bool { return cs[i] < cs[j] })
				b.ColdStart = cs[len(cs)/2] // the median process
			}
			b.PeakRSSKB = res.Stats.PeakRSSKB[dir]
		}
		out = append(out, b)
	}
	return out
}

func sortedDirs() []string {
	var ds []string
	for _, d := range local.FunctionDirs {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	return ds
}
