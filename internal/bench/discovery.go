// Package bench measures keyrotor on the emulated AWS: discovery cost
// against a list-every-user script, a full local run, a run at scale under
// quotas (thousands of due keys, reserved concurrency, IAM throttling),
// delivery of new keys to their destinations (calls per key, with and
// without a failing destination) and the function binaries. `make bench`
// runs it and prints one table.
package bench

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go/middleware"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// Counter counts SDK calls by operation, through a middleware.
type Counter struct {
	mu  sync.Mutex
	ops map[string]int
}

// NewCounter returns an empty counter.
func NewCounter() *Counter { return &Counter{ops: map[string]int{}} }

// Option installs the counter in an SDK client's options.
func (c *Counter) Option(apiOptions *[]func(*middleware.Stack) error) {
	*apiOptions = append(*apiOptions, func(st *middleware.Stack) error {
		return st.Initialize.Add(middleware.InitializeMiddlewareFunc("keyrotorCount",
			func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
				c.mu.Lock()
				c.ops[middleware.GetOperationName(ctx)]++
				c.mu.Unlock()
				return next.HandleInitialize(ctx, in)
			}), middleware.After)
	})
}

// Snapshot returns the counts so far and their total.
func (c *Counter) Snapshot() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out, total := map[string]int{}, 0
	for k, v := range c.ops {
		out[k] = v
		total += v
	}
	return out, total
}

// Clock moves the emulator's clock.
type Clock func(time.Duration) error

// SeedScale creates users, of which duePct percent hold a key 120 days old
// (due for rotation) and the rest a key 10 days old; every key was last
// used a day ago. It seeds with parallel workers and returns the due count.
func SeedScale(ctx context.Context, base aws.Config, clock Clock, users int, duePct float64) (int, error) {
	api := iam.NewFromConfig(base)
	nDue := int(float64(users) * duePct / 100)
	type key struct{ id, secret string }
	keys := make([]key, users)
	parallel := func(from, to int, work func(i int) error) error {
		var wg sync.WaitGroup
		var once sync.Once
		var first error
		next := make(chan int)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := work(i); err != nil {
						once.Do(func() { first = err })
					}
				}
			}()
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		return first
	}
	create := func(i int) error {
		name := userName(i)
		if _, err := api.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name),
			Tags: []types.Tag{{Key: aws.String("email"), Value: aws.String(name + "@example.com")}}}); err != nil {
			return err
		}
		k, err := api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
		if err != nil {
			return err
		}
		keys[i] = key{aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)}
		return nil
	}
	use := func(i int) error {
		cfg := base.Copy()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(keys[i].id, keys[i].secret, "")
		_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return err
	}
	defer clock(0)
	for _, step := range []struct {
		at       time.Duration
		from, to int
		work     func(int) error
	}{
		{-120 * 24 * time.Hour, 0, nDue, create},
		{-10 * 24 * time.Hour, nDue, users, create},
		{-24 * time.Hour, 0, users, use},
	} {
		if err := clock(step.at); err != nil {
			return 0, err
		}
		if err := parallel(step.from, step.to, step.work); err != nil {
			return 0, fmt.Errorf("seed %d users: %w", users, err)
		}
	}
	return nDue, clock(0)
}

// Discovery is one discovery measurement.
type Discovery struct {
	Users    int            `json:"users"`
	Due      int            `json:"due"`
	Calls    map[string]int `json:"callsByOperation"`
	Total    int            `json:"totalCalls"`
	Wall     time.Duration  `json:"wallNs"`
	CPU      time.Duration  `json:"cpuNs"`
	Planned  int            `json:"planned"`
	Target   int            `json:"targetCalls"` // 3 + 2 x due
	Baseline *Baseline      `json:"baseline,omitempty"`
	// Audit is a dry run over the same account (`keyrotor audit`,
	// `keyrotor plan`): it also reads the tags of every user with a
	// credential.
	Audit *AuditCost `json:"audit,omitempty"`
}

// AuditCost is what a dry run of find costs.
type AuditCost struct {
	Calls  map[string]int `json:"callsByOperation"`
	Total  int            `json:"totalCalls"`
	Wall   time.Duration  `json:"wallNs"`
	Target int            `json:"targetCalls"` // 3 + due + users
	Exempt int            `json:"exempt"`      // the plan's exempt count
}

// Baseline is what a list-every-user script costs on the same account.
type Baseline struct {
	Calls int           `json:"totalCalls"`
	Wall  time.Duration `json:"wallNs"`
}

// MeasureDiscovery runs find's discovery once (retrying while the report is
// generated, as the state machine would) and counts its calls.
func MeasureDiscovery(ctx context.Context, base aws.Config, users, due int) (*Discovery, error) {
	cnt := NewCounter()
	api := iam.NewFromConfig(base, func(o *iam.Options) { cnt.Option(&o.APIOptions) })
	f := &rotation.Finder{IAM: api, Config: config.Default()}
	// Generate the report first (outside the measurement, like a prior
	// run's), then count one discovery from scratch.
	for {
		_, err := api.GenerateCredentialReport(ctx, &iam.GenerateCredentialReportInput{})
		if err != nil {
			return nil, err
		}
		if _, err := api.GetCredentialReport(ctx, &iam.GetCredentialReportInput{}); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	cnt = NewCounter()
	api = iam.NewFromConfig(base, func(o *iam.Options) { cnt.Option(&o.APIOptions) })
	f.IAM = api
	cpu0 := cpuTime()
	t0 := time.Now()
	var a *rotation.Assessment
	var err error
	for {
		a, err = f.Assess(ctx, time.Now(), nil)
		var nr *failures.ReportNotReadyError
		if !errors.As(err, &nr) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	d := &Discovery{Users: users, Due: due, Wall: time.Since(t0), CPU: cpuTime() - cpu0, Target: 3 + 2*due}
	d.Calls, d.Total = cnt.Snapshot()
	for _, c := range a.Candidates {
		for _, dec := range c.Decisions {
			if dec.Action == "rotate" || dec.Action == "retire" {
				d.Planned++
			}
		}
	}
	return d, nil
}

// MeasureAudit runs find as a dry run once (the audit's planning) and
// counts its calls: the daily discovery's plus ListUserTags for every user
// whose tags it did not read (users with a credential, none due).
func MeasureAudit(ctx context.Context, base aws.Config, users, due int) (*AuditCost, error) {
	cnt := NewCounter()
	api := iam.NewFromConfig(base, func(o *iam.Options) { cnt.Option(&o.APIOptions) })
	f := &rotation.Finder{IAM: api, Config: config.Default()}
	t0 := time.Now()
	var p *rotation.Plan
	var err error
	for {
		p, err = f.Handle(ctx, rotation.FindInput{Request: []byte(`{"dryRun":true}`), ExecutionName: "bench-audit"})
		var nr *failures.ReportNotReadyError
		if !errors.As(err, &nr) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return nil, err
	}
	c := &AuditCost{Wall: time.Since(t0), Target: 3 + due + users, Exempt: p.Counts.Exempt}
	c.Calls, c.Total = cnt.Snapshot()
	return c, nil
}

// MeasureBaseline lists every user and then every user's keys.
func MeasureBaseline(ctx context.Context, base aws.Config) (*Baseline, error) {
	cnt := NewCounter()
	api := iam.NewFromConfig(base, func(o *iam.Options) { cnt.Option(&o.APIOptions) })
	t0 := time.Now()
	p := iam.NewListUsersPaginator(api, &iam.ListUsersInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, u := range out.Users {
			if _, err := api.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: u.UserName}); err != nil {
				return nil, err
			}
		}
	}
	_, total := cnt.Snapshot()
	return &Baseline{Calls: total, Wall: time.Since(t0)}, nil
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SortedOps returns the operation names of m in order.
func SortedOps(m map[string]int) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func userName(i int) string { return fmt.Sprintf("user-%05d", i) }
