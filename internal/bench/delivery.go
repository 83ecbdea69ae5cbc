package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go/middleware"

	ghemu "github.com/keyrotor/keyrotor/internal/emulators/github"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// DeliveryOptions configure the delivery scenario.
type DeliveryOptions struct {
	Keys int // due keys, each user with a GitHub repository secret and an SSM parameter pair
	// Concurrency is how many DeliverNewKey invocations run at once, as
	// the Distributed Map (and the function's reserved concurrency) would
	// let them.
	Concurrency int
	// FailRate is the fraction of the GitHub destination's write attempts
	// answered 503 (retryable): the attempt's first call, the public key's
	// GET, fails, so the attempt writes nothing.
	FailRate float64
	// RetryInterval is the wait before the state machine's Retry runs the
	// step again (the definition's is 2s, backoff 2, full jitter).
	RetryInterval time.Duration
	// MaxAttempts bounds the step's invocations per key, as the
	// definition's Retry (MaxAttempts 8 retries) does.
	MaxAttempts int
}

// DeliveryResult is the delivery measurement: DeliverNewKey run for Keys
// keys after create-and-store, its calls counted by destination endpoint
// (the GitHub emulator) and by AWS operation (the step's SDK clients).
type DeliveryResult struct {
	Keys          int           `json:"keys"`
	Concurrency   int           `json:"concurrency"`
	FailRate      float64       `json:"githubFailRate"`
	RetryInterval time.Duration `json:"retryIntervalNs"`
	Seed          time.Duration `json:"seedNs"`
	Create        time.Duration `json:"createAndStoreNs"` // not in Wall
	// Wall is DeliverNewKey for every key, retries and their waits included.
	Wall time.Duration `json:"wallNs"`
	// Invocations counts the step's invocations (the first and each
	// Retry); Retries those after a TransientError.
	Invocations int `json:"invocations"`
	Retries     int `json:"retries"`
	// RetriedOn counts the errors the step returned and was retried on,
	// by error name; Unexpected holds up to 3 of their messages that do
	// not come from an injected 503 (moto or the harness failing).
	RetriedOn  map[string]int `json:"retriedOn,omitempty"`
	Unexpected []string       `json:"unexpectedRetryCauses,omitempty"`
	// Complete, Incomplete and Failed count the keys whose step returned
	// every destination holding the key, some left (DeliveryIncomplete:
	// the old key stays Active) or an error after the last attempt.
	Complete   int `json:"complete"`
	Incomplete int `json:"incomplete"`
	Failed     int `json:"failed"`
	// GitHub is the emulator's calls by endpoint ("GET .../public-key"),
	// GitHubFailed those answered with an injected 503.
	GitHub       map[string]int `json:"githubCallsByEndpoint"`
	GitHubFailed int            `json:"githubInjected503"`
	// AWS is the deliver step's AWS calls by service and operation
	// ("ssm:PutParameter"); one per operation call, the SDK's own retries
	// not counted (moto does not throttle).
	AWS map[string]int `json:"awsCallsByOperation"`
	// AWSAttempts counts the HTTP attempts of those calls: above the
	// calls, the SDK retried (moto answering 5xx or not at all).
	AWSAttempts int `json:"awsHttpAttempts"`
	// Written counts the destinations read back holding their key's new
	// value afterwards (GitHub: the emulator's plaintext; SSM: the
	// parameters), out of 2 x Keys.
	Written  int      `json:"destinationsHoldingTheNewKey"`
	Problems []string `json:"problems,omitempty"`
}

// GitHubTotal sums the emulator's calls.
func (d *DeliveryResult) GitHubTotal() int { return sum(d.GitHub) }

// SSMTotal sums the SSM calls (the ssm destination's).
func (d *DeliveryResult) SSMTotal() int { return sumPrefix(d.AWS, "ssm:") }

// AWSTotal sums every AWS call of the step.
func (d *DeliveryResult) AWSTotal() int { return sum(d.AWS) }

func (d *DeliveryResult) retriedOn(err error) {
	if d.RetriedOn == nil {
		d.RetriedOn = map[string]int{}
	}
	d.RetriedOn[failures.Name(failures.Boundary(err))]++
	if msg := err.Error(); !strings.Contains(msg, "503") && len(d.Unexpected) < 3 {
		d.Unexpected = append(d.Unexpected, msg)
	}
}

func (d *DeliveryResult) problem(format string, args ...any) {
	d.Problems = append(d.Problems, fmt.Sprintf(format, args...))
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

func sumPrefix(m map[string]int, prefix string) int {
	n := 0
	for k, v := range m {
		if strings.HasPrefix(k, prefix) {
			n += v
		}
	}
	return n
}

// deliveryBench holds the scenario's account, emulator and steps.
type deliveryBench struct {
	base     aws.Config
	cfg      config.Config
	gh       *ghemu.Server
	records  *ledger.Store
	counters map[string]*Counter // the deliver step's, by service
	attempts atomic.Int64        // their HTTP attempts, SDK retries included
}

// countAttempts counts each HTTP attempt of an SDK client: the Finalize
// step's end runs once per attempt, after the SDK's retry middleware.
func (b *deliveryBench) countAttempts(apiOptions *[]func(*middleware.Stack) error) {
	*apiOptions = append(*apiOptions, func(st *middleware.Stack) error {
		return st.Finalize.Add(middleware.FinalizeMiddlewareFunc("keyrotorAttempts",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				b.attempts.Add(1)
				return next.HandleFinalize(ctx, in)
			}), middleware.After)
	})
}

const (
	deliveryTable      = "keyrotor-rotations"
	deliveryCredential = config.DeliveryCredentialPrefix + "github"
)

func repoOf(user string) string { return "octo/" + user }

func paramNames(user string) (id, secret string) {
	return "/ci/" + user + "/aws-access-key-id", "/ci/" + user + "/aws-secret-access-key"
}

// DeliveryRun seeds o.Keys due users, each with two destinations (a
// repository secret on a GitHub emulator and an SSM parameter pair),
// creates and stores each new key (rotation.Creator, not measured), then
// runs DeliverNewKey for every key, o.Concurrency at once, retrying as the
// state machine's Retry does, and counts its calls.
func DeliveryRun(ctx context.Context, base aws.Config, clock Clock, o DeliveryOptions) (*DeliveryResult, error) {
	if o.Concurrency < 1 {
		o.Concurrency = 1
	}
	if o.MaxAttempts < 1 {
		o.MaxAttempts = 9 // the first attempt and the definition's 8 retries
	}
	r := &DeliveryResult{Keys: o.Keys, Concurrency: o.Concurrency, FailRate: o.FailRate, RetryInterval: o.RetryInterval}
	t0 := time.Now()
	b, tasks, err := seedDelivery(ctx, base, clock, o.Keys)
	if err != nil {
		return nil, err
	}
	defer b.gh.Close()
	r.Seed = time.Since(t0)

	// Create and store every new key, as CreateAndStoreNewKey would.
	t1 := time.Now()
	creator := &rotation.Creator{IAM: iam.NewFromConfig(base), Secrets: secretsmanager.NewFromConfig(base), Records: b.records,
		Topic: sns.NewFromConfig(base), Config: b.cfg, Log: quiet()}
	err = parallel(o.Concurrency, len(tasks), func(i int) error {
		nk, err := retryStep(ctx, o.MaxAttempts, o.RetryInterval, func() (*rotation.NewKey, error) { return creator.Handle(ctx, tasks[i]) })
		if err != nil {
			return fmt.Errorf("create and store for %s: %w", tasks[i].Item.User, err)
		}
		if nk.Skipped != "" {
			return fmt.Errorf("create and store for %s skipped: %s", tasks[i].Item.User, nk.Skipped)
		}
		tasks[i].NewKey = nk // each worker its own index
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.Create = time.Since(t1)

	if o.FailRate > 0 {
		rng := rand.New(rand.NewPCG(21, 0x6b6579726f746f72))
		// The matcher runs under the emulator's lock: rng needs no other.
		b.gh.Fail(func(req *http.Request) bool {
			return req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/public-key") && rng.Float64() < o.FailRate
		}, http.StatusServiceUnavailable, -1)
	}
	d := b.deliverer()
	var mu sync.Mutex // guards r
	calls0 := len(b.gh.Calls())
	t2 := time.Now()
	err = parallel(o.Concurrency, len(tasks), func(i int) error {
		var attempts int
		var errs []error
		dl, err := retryStep(ctx, o.MaxAttempts, o.RetryInterval, func() (*rotation.Delivery, error) {
			attempts++
			dl, err := d.Handle(ctx, tasks[i])
			if err != nil {
				errs = append(errs, err)
			}
			return dl, err
		})
		mu.Lock()
		defer mu.Unlock()
		for _, e := range errs[:attempts-1] {
			r.retriedOn(e)
		}
		r.Invocations += attempts
		r.Retries += attempts - 1
		switch {
		case err != nil:
			r.Failed++
			r.problem("%s: %v", tasks[i].Item.User, err)
		case dl.Complete && dl.Skipped == "":
			r.Complete++
		case dl.Skipped != "":
			r.problem("%s: skipped: %s", tasks[i].Item.User, dl.Skipped)
		default:
			r.Incomplete++
		}
		return nil
	})
	r.Wall = time.Since(t2)
	if err != nil {
		return nil, err
	}
	r.GitHub = map[string]int{}
	for _, c := range b.gh.Calls()[calls0:] {
		r.GitHub[endpointOf(c)]++
		if c.Status == http.StatusServiceUnavailable {
			r.GitHubFailed++
		}
	}
	r.AWS = map[string]int{}
	for svc, c := range b.counters {
		ops, _ := c.Snapshot()
		for op, n := range ops {
			r.AWS[svc+":"+op] = n
		}
	}
	r.AWSAttempts = int(b.attempts.Load())
	if r.Written, err = b.verify(ctx, tasks); err != nil {
		return nil, err
	}
	if o.FailRate == 0 && (r.Complete != o.Keys || r.Written != 2*o.Keys) {
		r.problem("%d of %d keys delivered, %d of %d destinations hold their new key; want all without faults", r.Complete, o.Keys, r.Written, 2*o.Keys)
	}
	if r.Complete+r.Incomplete+r.Failed != o.Keys {
		r.problem("%d complete + %d incomplete + %d failed; want %d keys", r.Complete, r.Incomplete, r.Failed, o.Keys)
	}
	return r, nil
}

// seedDelivery makes the account: the record table, the admins' topic,
// due users with their destination documents, the GitHub emulator with a
// repository per user and its token in the hub; it returns the rotate
// tasks, as the plan's items would give them.
func seedDelivery(ctx context.Context, base aws.Config, clock Clock, keys int) (*deliveryBench, []rotation.Task, error) {
	cfg := config.Default()
	cfg.RotationTable = deliveryTable
	cfg.StoreRoleARN = "arn:aws:iam::123456789012:role/KeyRotor-create-and-store"
	cfg.DeliveryParameters = []string{"/ci/*"}
	cfg.DeliveryAllowHTTP = true
	ddb := dynamodb.NewFromConfig(base)
	if err := ledger.CreateTable(ctx, ddb, cfg.RotationTable); err != nil {
		return nil, nil, err
	}
	topic, err := sns.NewFromConfig(base).CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("keyrotor-admins")})
	if err != nil {
		return nil, nil, err
	}
	cfg.AdminTopicARN = aws.ToString(topic.TopicArn)
	// moto builds its SSM backend (the public parameters) on the first
	// call after a reset: not delivery's cost, so not in the measurement.
	if _, err := ssm.NewFromConfig(base).DescribeParameters(ctx, &ssm.DescribeParametersInput{}); err != nil {
		return nil, nil, err
	}
	if due, err := SeedScale(ctx, base, clock, keys, 100); err != nil {
		return nil, nil, err
	} else if due != keys {
		return nil, nil, fmt.Errorf("seeded %d due users; want %d", due, keys)
	}
	gh, err := ghemu.Start()
	if err != nil {
		return nil, nil, err
	}
	if _, err := secretsmanager.NewFromConfig(base).CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(deliveryCredential), SecretString: aws.String(gh.Token())}); err != nil {
		gh.Close()
		return nil, nil, err
	}
	b := &deliveryBench{base: base, cfg: cfg, gh: gh, records: &ledger.Store{API: ddb, Table: cfg.RotationTable}}
	store := &delivery.Store{API: ddb, Table: cfg.RotationTable}
	api := iam.NewFromConfig(base)
	tasks := make([]rotation.Task, keys)
	now := time.Now().UTC()
	err = parallel(8, keys, func(i int) error {
		user := userName(i)
		gh.AddRepo(repoOf(user))
		id, secret := paramNames(user)
		doc := &delivery.Document{Version: 1, Destinations: []delivery.Spec{
			{Type: "github", Repository: repoOf(user), Credential: deliveryCredential, URL: gh.URL()},
			{Type: "ssm", IDName: id, SecretName: secret},
		}}
		if err := store.Put(ctx, "", user, doc, "bench"); err != nil {
			return fmt.Errorf("destinations of %s: %w", user, err)
		}
		out, err := api.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(user)})
		if err != nil || len(out.AccessKeyMetadata) != 1 {
			return fmt.Errorf("the key of %s: %v", user, err)
		}
		k := out.AccessKeyMetadata[0]
		created := aws.ToTime(k.CreateDate)
		tasks[i] = rotation.Task{Execution: "bench-delivery", Item: rotation.Item{
			User: user, UserARN: "arn:aws:iam::123456789012:user/" + user, Email: user + "@example.com",
			Action: policy.Rotate, Reason: "key older than the maximum age",
			OldKey: rotation.KeyRef{ID: aws.ToString(k.AccessKeyId), Created: created, AgeDays: int(now.Sub(created).Hours() / 24)},
		}}
		return nil
	})
	if err != nil {
		gh.Close()
		return nil, nil, err
	}
	return b, tasks, nil
}

// deliverer builds DeliverNewKey as functions/deliver does, every SDK
// client counting its calls.
func (b *deliveryBench) deliverer() *rotation.Deliverer {
	b.counters = map[string]*Counter{"secretsmanager": NewCounter(), "ssm": NewCounter(), "dynamodb": NewCounter(), "sns": NewCounter()}
	hub := secretsmanager.NewFromConfig(b.base, func(o *secretsmanager.Options) {
		b.counters["secretsmanager"].Option(&o.APIOptions)
		b.countAttempts(&o.APIOptions)
	})
	ddb := dynamodb.NewFromConfig(b.base, func(o *dynamodb.Options) {
		b.counters["dynamodb"].Option(&o.APIOptions)
		b.countAttempts(&o.APIOptions)
	})
	ssmc := ssm.NewFromConfig(b.base, func(o *ssm.Options) { b.counters["ssm"].Option(&o.APIOptions); b.countAttempts(&o.APIOptions) })
	return &rotation.Deliverer{
		Records:   &ledger.Store{API: ddb, Table: b.cfg.RotationTable},
		Documents: &delivery.Store{API: ddb, Table: b.cfg.RotationTable},
		Secrets:   hub,
		Topic:     sns.NewFromConfig(b.base, func(o *sns.Options) { b.counters["sns"].Option(&o.APIOptions); b.countAttempts(&o.APIOptions) }),
		Env: delivery.Env{
			HTTP:       delivery.Client(quiet(), 20*time.Second),
			Credential: rotation.HubCredentials(hub),
			AllowHTTP:  true,
			AWS: func(context.Context, string, string) (delivery.AWSClients, error) {
				return delivery.AWSClients{SSM: ssmc, Secrets: hub}, nil
			},
		},
		Config: b.cfg,
		Log:    quiet(),
	}
}

// verify counts the destinations holding their key's new value, read
// straight from the emulator and moto.
func (b *deliveryBench) verify(ctx context.Context, tasks []rotation.Task) (int, error) {
	api := ssm.NewFromConfig(b.base)
	var mu sync.Mutex
	n := 0
	err := parallel(8, len(tasks), func(i int) error {
		t := tasks[i]
		held := 0
		if v, _ := b.gh.Value("repo:"+repoOf(t.Item.User), "AWS_ACCESS_KEY_ID"); v == t.NewKey.KeyID {
			held++
		}
		id, _ := paramNames(t.Item.User)
		out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(id), WithDecryption: aws.Bool(true)})
		if err == nil && aws.ToString(out.Parameter.Value) == t.NewKey.KeyID {
			held++
		}
		mu.Lock()
		n += held
		mu.Unlock()
		return nil
	})
	return n, err
}

// repoPath is the part of an emulator path up to a repository's secrets.
var repoPath = regexp.MustCompile(`^/repos/[^/]+/[^/]+/actions/`)

// endpointOf names a call by method and path, the repository left out:
// "GET secrets/public-key".
func endpointOf(c ghemu.Call) string {
	return c.Method + " " + repoPath.ReplaceAllString(c.Path, "")
}

// retryStep runs a step as the state machine's Retry would: again after
// interval while it returns an error the definition retries, up to
// attempts invocations in all.
func retryStep[T any](ctx context.Context, attempts int, interval time.Duration, f func() (T, error)) (T, error) {
	retry := map[string]bool{failures.Name(&failures.NewKeyNotReadyError{}): true}
	for _, n := range failures.Retryable() {
		retry[n] = true
	}
	var v T
	var err error
	for a := 1; ; a++ {
		if v, err = f(); err == nil {
			return v, nil
		}
		named := failures.Boundary(err)
		if !retry[failures.Name(named)] || a >= attempts {
			return v, named
		}
		select {
		case <-ctx.Done():
			return v, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// parallel runs work(0..n-1) on workers goroutines and returns the first
// error.
func parallel(workers, n int, work func(i int) error) error {
	next := make(chan int)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range workers {
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
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

func quiet() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }

// DeliveryTarget is the calls a key's delivery makes to each destination
// without faults: GitHub's public key, two writes and two reads back; SSM's
// DescribeParameters (the existing parameters' settings), two
// PutParameter and two GetParameter.
const DeliveryTarget = 5

// printDelivery writes the delivery rows; a run with faults is compared
// with the run without at the same size and concurrency.
func printDelivery(w io.Writer, runs []*DeliveryResult) {
	per := func(n, keys int) string { return trimFloat(float64(n) / float64(max(keys, 1))) }
	perOps := func(m map[string]int, keys int) string {
		var parts []string
		for _, k := range SortedOps(m) {
			parts = append(parts, k+"="+per(m[k], keys))
		}
		return strings.Join(parts, " ")
	}
	for _, d := range runs {
		p := fmt.Sprintf("delivery, %d keys to GitHub + SSM, %d at once", d.Keys, d.Concurrency)
		if d.FailRate > 0 {
			p += fmt.Sprintf(", %.0f%% of GitHub attempts 503", d.FailRate*100)
		}
		fmt.Fprintf(w, "%s: keys complete / incomplete / failed\t%d / %d / %d (%d of %d destinations hold the new key)\t(measure)\t\n", p, d.Complete, d.Incomplete, d.Failed, d.Written, 2*d.Keys)
		var on []string
		for _, n := range SortedOps(d.RetriedOn) {
			on = append(on, fmt.Sprintf("%s=%d", n, d.RetriedOn[n]))
		}
		if len(on) == 0 {
			on = []string{"nothing"}
		}
		fmt.Fprintf(w, "%s: step invocations / retries\t%d / %d (retry after %v; on %s)\t(measure)\t\n", p, d.Invocations, d.Retries, d.RetryInterval, strings.Join(on, " "))
		for _, m := range d.Unexpected {
			fmt.Fprintf(w, "%s: a retry not caused by an injected 503\t%.240s\t(measure)\t\n", p, m)
		}
		gh, ssmCalls := float64(d.GitHubTotal())/float64(max(d.Keys, 1)), float64(d.SSMTotal())/float64(max(d.Keys, 1))
		if d.FailRate == 0 {
			// A retry without injected faults (moto failing a call) adds
			// calls the target does not describe: the check says so.
			result := func(ok bool) string {
				if d.Retries > 0 && !ok {
					return fmt.Sprintf("n/a (%d retries on emulator errors)", d.Retries)
				}
				return check(ok)
			}
			fmt.Fprintf(w, "%s: GitHub calls per key\t%s (%s)\t<= %d\t%s\n", p, trimFloat(gh), perOps(d.GitHub, d.Keys), DeliveryTarget, result(gh <= DeliveryTarget))
			fmt.Fprintf(w, "%s: SSM calls per key\t%s\t<= %d\t%s\n", p, trimFloat(ssmCalls), DeliveryTarget, result(ssmCalls <= DeliveryTarget))
		} else {
			fmt.Fprintf(w, "%s: GitHub calls per key\t%s (%s; %d answered 503)\t(measure)\t\n", p, trimFloat(gh), perOps(d.GitHub, d.Keys), d.GitHubFailed)
			fmt.Fprintf(w, "%s: SSM calls per key\t%s\t(measure)\t\n", p, trimFloat(ssmCalls))
		}
		fmt.Fprintf(w, "%s: AWS calls per key (deliver step)\t%s (%s; %d HTTP attempts for %d calls)\t(measure)\t\n", p, per(d.AWSTotal(), d.Keys), perOps(d.AWS, d.Keys), d.AWSAttempts, d.AWSTotal())
		if d.FailRate > 0 {
			for _, c := range runs {
				if c.FailRate == 0 && c.Keys == d.Keys && c.Concurrency == d.Concurrency {
					fmt.Fprintf(w, "%s: extra calls the retries cost\t%d GitHub + %d AWS (%s + %s per key) over the run without faults\t(measure)\t\n", p,
						d.GitHubTotal()-c.GitHubTotal(), d.AWSTotal()-c.AWSTotal(), per(d.GitHubTotal()-c.GitHubTotal(), d.Keys), per(d.AWSTotal()-c.AWSTotal(), d.Keys))
				}
			}
		}
		fmt.Fprintf(w, "%s: wall time of delivery (create-and-store %v not in it)\t%v\t(measure)\t\n", p, d.Create.Round(100*time.Millisecond), d.Wall.Round(time.Millisecond))
	}
}
