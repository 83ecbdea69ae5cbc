package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"

	"github.com/keyrotor/keyrotor/internal/demo"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// AdoptionOptions configure the adoption-window scenario: what a rotation
// waiting for its new key to be adopted costs.
type AdoptionOptions struct {
	Users int // due users, each with a pipeline using its key; every second one switches
	// Window and Check replace the deployed adoption window and its check
	// interval (days and one day in a deployment); Grace is the grace
	// period after the switch-over.
	Window, Check, Grace time.Duration
	// SwitchAfter is how many checks of its key's window a switching
	// pipeline lets pass (read from the key execution's history) before it
	// picks the new key up from Secrets Manager and stops using the old
	// one: counted in checks, not seconds, so a slow local harness does
	// not move the switch relative to the window.
	SwitchAfter int
	// Every is how often each pipeline uses its key.
	Every    time.Duration
	Template string
	BinDir   string
	WorkDir  string
}

// AdoptionResult is the adoption-window measurement, read from the key
// executions' own histories (WorkDir/grace/<name>/history.jsonl).
type AdoptionResult struct {
	Users       int           `json:"dueUsers"`
	Switchers   int           `json:"switchingPipelines"`
	Window      time.Duration `json:"windowNs"`
	Check       time.Duration `json:"checkNs"`
	Grace       time.Duration `json:"graceNs"`
	SwitchAfter int           `json:"switchAfterChecks"`
	Seed        time.Duration `json:"seedNs"`
	// Wall is local.Run's whole time: the daily execution and every key's
	// own execution to its end; Daily the daily execution alone.
	Wall   time.Duration `json:"wallNs"`
	Daily  time.Duration `json:"dailyNs"`
	Status string        `json:"status"`
	// Adopting is the daily summary's count of rotations handed to their
	// adoption window; KeyExecutions the key executions started, of
	// which KeyFailed did not succeed.
	Adopting      int `json:"adopting"`
	KeyExecutions int `json:"keyExecutions"`
	KeyFailed     int `json:"keyExecutionsFailed"`
	// Evidence and Deadline count the switch-overs by how they came;
	// Other any other ending (a person, stopped, unfinished).
	Evidence int `json:"switchedOnEvidence"`
	Deadline int `json:"switchedOnDeadline"`
	Other    int `json:"otherEndings"`
	// Intervals are the check-to-check stretches measured (from one
	// CheckAdoption's start to the next), over every key execution.
	Intervals      int       `json:"checkIntervals"`
	TransPerCheck  Spread    `json:"transitionsPerCheck"`
	LambdaPerCheck Spread    `json:"lambdaInvocationsPerCheck"`
	EventsPerCheck Spread    `json:"localHistoryEventsPerCheck"`
	SFNEventsCheck Spread    `json:"stepFunctionsHistoryEventsPerCheckEstimate"`
	StatesInCheck  []string  `json:"statesInACheck"`
	CheckInterval  DurSpread `json:"observedCheckInterval"`
	// CheckLag is how late each check started after its nextCheck time
	// (the previous check's Lambda time included: nextCheck is set on
	// the schedule when that check starts); FirstCheck how long after the
	// owner's notice (the window's start) the key execution's first check
	// started. Both measure the local harness on this machine.
	CheckLag   DurSpread `json:"checkStartLag"`
	FirstCheck DurSpread `json:"noticeToFirstCheck"`
	// CallsPerCheck are check-adoption's AWS calls per invocation, by
	// operation (counted by a pass-through proxy from the functions'
	// signing keys).
	CallsPerCheck map[string]float64 `json:"awsCallsPerCheck"`
	// Invocations are the local Lambda service's counts for the whole run;
	// CheckAttempts the CheckAdoption attempts seen in the key histories
	// (states entered and retried), which must equal the service's
	// check-adoption count: no Lambda runs between checks.
	Invocations   map[string]int `json:"invocations"`
	CheckAttempts int            `json:"checkAdoptionAttemptsInHistories"`
	// CheckRetries are the CheckAdoption attempts that were retries (a
	// check that failed and ran again: more than 1 Lambda invocation in
	// that check).
	CheckRetries int `json:"checkAdoptionRetries"`
	// OtherLambdaInChecks counts Lambda tasks other than CheckAdoption
	// entered between two checks (none: no Lambda runs between checks).
	OtherLambdaInChecks int `json:"otherLambdaBetweenChecks"`
	// LambdaInKeyExecutions counts every Lambda task attempt in the key
	// executions, by state.
	LambdaInKeyExecutions map[string]int `json:"lambdaAttemptsInKeyExecutions"`
	// Per key execution, by how it switched over.
	EvidenceKey KeyExecStats `json:"evidenceKeyExecution"`
	DeadlineKey KeyExecStats `json:"deadlineKeyExecution"`
	// Overhead is a key execution's transitions besides 3 per check (the
	// entry Choice, the switch-over and the grace period, less the last
	// check's Wait): the same whatever the window's length.
	Overhead Spread `json:"transitionsBesides3PerCheck"`
	// ChecksAfterSwitch: for the evidence switch-overs, the checks after
	// the one the pipeline switched after, the switch-over check included
	// (the evidence rule: one check sees the new key in use, the next
	// finds the old one unused since; 2).
	ChecksAfterSwitch Spread `json:"checksAfterPipelineSwitch"`
	// Largest is the largest input or output in the key executions'
	// histories; DailyLargest the daily execution's.
	Largest      PayloadSize `json:"largestStatePayload"`
	DailyLargest PayloadSize `json:"dailyLargestStatePayload"`
	// Owner mails (SES) per rotation, by switch-over; MaxMails is the
	// notice plus the configured reminders.
	MailsEvidence Spread `json:"ownerMailsPerEvidenceRotation"`
	MailsDeadline Spread `json:"ownerMailsPerDeadlineRotation"`
	MaxMails      int    `json:"ownerMailsAllowed"`
	// Verified counts users whose old key is gone and whose one key is the
	// new one, Active, read back from IAM.
	Verified int      `json:"verified"`
	Problems []string `json:"problems,omitempty"`
}

// KeyExecStats sums up the key executions that switched over one way.
type KeyExecStats struct {
	Count         int       `json:"count"`
	Transitions   Spread    `json:"stateTransitions"`
	Checks        Spread    `json:"checks"`
	Lambda        Spread    `json:"lambdaInvocations"`
	LocalEvents   Spread    `json:"localHistoryEvents"`
	SFNEventsEst  Spread    `json:"stepFunctionsHistoryEventsEstimate"`
	Duration      DurSpread `json:"duration"`
	transitionsXs []float64
	checksXs      []float64
	lambdaXs      []float64
	eventsXs      []float64
	sfnXs         []float64
	durXs         []time.Duration
}

// Spread is a figure's mean, minimum and maximum over its samples.
type Spread struct {
	N    int     `json:"n"`
	Mean float64 `json:"mean"`
	Min  float64 `json:"min"`
	Max  float64 `json:"max"`
}

// DurSpread is a duration's median and maximum over its samples.
type DurSpread struct {
	N      int           `json:"n"`
	Median time.Duration `json:"medianNs"`
	Max    time.Duration `json:"maxNs"`
}

func spreadOf(xs []float64) Spread {
	s := Spread{N: len(xs)}
	for i, x := range xs {
		s.Mean += x
		if i == 0 || x < s.Min {
			s.Min = x
		}
		if i == 0 || x > s.Max {
			s.Max = x
		}
	}
	if len(xs) > 0 {
		s.Mean /= float64(len(xs))
	}
	return s
}

func durSpreadOf(ds []time.Duration) DurSpread {
	s := DurSpread{N: len(ds)}
	if len(ds) == 0 {
		return s
	}
	c := append([]time.Duration(nil), ds...)
	sort.Slice(c, func(i, j int) bool { return c[i] < c[j] })
	s.Median, s.Max = c[len(c)/2], c[len(c)-1]
	return s
}

// String prints a spread as "mean (min-max)", or one number when all
// samples are equal.
func (s Spread) String() string {
	if s.N == 0 {
		return "-"
	}
	if s.Min == s.Max {
		return trimFloat(s.Min)
	}
	return fmt.Sprintf("%s (%s-%s)", trimFloat(s.Mean), trimFloat(s.Min), trimFloat(s.Max))
}

func trimFloat(x float64) string {
	if x == float64(int64(x)) {
		return fmt.Sprintf("%d", int64(x))
	}
	return fmt.Sprintf("%.2f", x)
}

func (q *AdoptionResult) problem(format string, args ...any) {
	q.Problems = append(q.Problems, fmt.Sprintf(format, args...))
}

// adoptUser is one seeded user and the key its pipeline starts with.
type adoptUser struct {
	name, email string
	old         struct{ id, secret string }
	switches    bool
	// switchedAt is when the pipeline started using the new key (zero:
	// never).
	switchedAt time.Time
}

// AdoptionRun seeds o.Users users, each with a 100-day-old key in use by
// a pipeline, and runs the daily state machine once with an adoption
// window: every second pipeline moves to the new key after o.SwitchAfter
// checks of its window, the others never do. The run returns when every
// key's own execution has ended (switch-over, grace period, deletion).
// Its checks land in Problems; the caller fails the bench on any.
func AdoptionRun(ctx context.Context, base aws.Config, endpoint string, clock Clock, o AdoptionOptions) (*AdoptionResult, error) {
	q := &AdoptionResult{Users: o.Users, Window: o.Window, Check: o.Check, Grace: o.Grace, SwitchAfter: o.SwitchAfter}
	lambdaStates, err := lambdaTaskStates(o.Template)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	users, err := seedAdoption(ctx, base, clock, o.Users)
	if err != nil {
		return nil, err
	}
	q.Seed = time.Since(t0)
	for _, u := range users {
		if u.switches {
			q.Switchers++
		}
	}
	if _, err := sesv2.NewFromConfig(base).CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String("keyrotor@example.com")}); err != nil {
		return nil, err
	}

	// A pass-through proxy (no faults) attributes each call to the
	// function that signed it.
	proxy, err := faultproxy.New(endpoint)
	if err != nil {
		return nil, err
	}
	defer proxy.Close()

	pctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	var mu sync.Mutex
	sm := secretsmanager.NewFromConfig(base)
	prefix := config.Default().SecretPrefix
	for _, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := adoptPipeline(pctx, base, sm, prefix+u.name, filepath.Join(o.WorkDir, "grace"), u, o.SwitchAfter, o.Every)
			mu.Lock()
			u.switchedAt = at
			mu.Unlock()
		}()
	}
	interval := 50 * time.Millisecond
	t1 := time.Now()
	res, err := local.Run(ctx, local.Options{
		Endpoint: endpoint, FunctionEndpoint: proxy.URL(), Template: o.Template, BinDir: o.BinDir, Input: json.RawMessage(`{}`),
		Wait: o.Grace, AdoptionWindow: o.Window, AdoptionCheck: o.Check,
		RetryInterval: &interval, WorkDir: o.WorkDir, ExecutionName: filepath.Base(o.WorkDir), MaxConcurrency: 8,
	})
	q.Wall = time.Since(t1)
	stop()
	wg.Wait()
	if err != nil {
		return nil, err
	}
	q.Daily, q.Status, q.Invocations = res.Duration, res.Status, res.Invocations
	var sum rotation.Summary
	if json.Unmarshal(res.Output, &sum) == nil {
		q.Adopting = sum.Totals.Adopting
	}
	if res.Status != "SUCCEEDED" {
		q.problem("daily execution %s: %s %s: %s (in %s)", res.Status, res.FailedState, res.Error, res.Cause, res.FailedIn)
	}
	if q.Adopting != o.Users {
		q.problem("daily summary counts %d rotations in their adoption window; want all %d", q.Adopting, o.Users)
	}

	if ps, _, err := local.Payloads(res.HistoryFile); err == nil {
		for _, p := range ps {
			if p.Size > q.DailyLargest.Bytes {
				q.DailyLargest = PayloadSize{Bytes: p.Size, Where: p.Where}
			}
		}
	}
	how := map[string]string{} // user -> switch-over
	checks := map[string]int{} // user -> checks in the key execution
	var perCheckTrans, perCheckLambda, perCheckEvents, perCheckSFN, afterSwitch, overhead []float64
	var intervals, lags, firsts []time.Duration
	inCheck := map[string]bool{}
	q.LambdaInKeyExecutions = map[string]int{}
	q.KeyExecutions = len(res.Grace)
	for _, g := range res.Grace {
		if g.Err != nil || g.Result == nil {
			q.KeyFailed++
			q.problem("key execution %s: %v", g.Name, g.Err)
			continue
		}
		if g.Result.Status != "SUCCEEDED" {
			q.KeyFailed++
			q.problem("key execution %s %s: %s %s: %s", g.Name, g.Result.Status, g.Result.FailedState, g.Result.Error, g.Result.Cause)
		}
		h, err := readKeyHistory(g.Result.HistoryFile, lambdaStates)
		if err != nil {
			return nil, err
		}
		user := h.user
		if user == "" {
			var in struct{ Item struct{ User string } }
			json.Unmarshal(g.Input, &in)
			user = in.Item.User
		}
		how[user], checks[user] = h.switchOver, h.checks
		for st, n := range h.lambdaByState {
			q.LambdaInKeyExecutions[st] += n
		}
		q.CheckAttempts += h.lambdaByState["CheckAdoption"]
		q.CheckRetries += h.checkRetries
		for _, iv := range h.intervals {
			perCheckTrans = append(perCheckTrans, float64(iv.transitions))
			perCheckLambda = append(perCheckLambda, float64(iv.lambda))
			perCheckEvents = append(perCheckEvents, float64(iv.events))
			perCheckSFN = append(perCheckSFN, float64(iv.events+3*iv.lambda))
			intervals = append(intervals, iv.took)
			q.OtherLambdaInChecks += iv.otherLambda
			inCheck[strings.Join(iv.states, " > ")] = true
		}
		lags = append(lags, h.lags...)
		if !h.until.IsZero() && len(h.checkStarts) > 0 {
			firsts = append(firsts, h.checkStarts[0].Sub(h.until.Add(-o.Window)))
		}
		var ks *KeyExecStats
		switch h.switchOver {
		case ledger.SwitchEvidence:
			q.Evidence++
			ks = &q.EvidenceKey
			afterSwitch = append(afterSwitch, float64(h.checks-o.SwitchAfter))
		case ledger.SwitchDeadline:
			q.Deadline++
			ks = &q.DeadlineKey
		default:
			q.Other++
			q.problem("key execution %s ended with switch-over %q (%s); want evidence or deadline", g.Name, h.switchOver, h.note)
		}
		if ks != nil {
			overhead = append(overhead, float64(h.transitions-3*h.checks))
			ks.Count++
			ks.transitionsXs = append(ks.transitionsXs, float64(h.transitions))
			ks.checksXs = append(ks.checksXs, float64(h.checks))
			ks.lambdaXs = append(ks.lambdaXs, float64(h.lambda))
			ks.eventsXs = append(ks.eventsXs, float64(h.events))
			ks.sfnXs = append(ks.sfnXs, float64(h.events+3*h.lambda))
			ks.durXs = append(ks.durXs, g.Result.Duration)
		}
		ps, _, err := local.Payloads(g.Result.HistoryFile)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if p.Size > q.Largest.Bytes {
				q.Largest = PayloadSize{Bytes: p.Size, Where: p.Where + " in " + g.Name}
			}
		}
	}
	for _, ks := range []*KeyExecStats{&q.EvidenceKey, &q.DeadlineKey} {
		ks.Transitions, ks.Checks, ks.Lambda = spreadOf(ks.transitionsXs), spreadOf(ks.checksXs), spreadOf(ks.lambdaXs)
		ks.LocalEvents, ks.SFNEventsEst, ks.Duration = spreadOf(ks.eventsXs), spreadOf(ks.sfnXs), durSpreadOf(ks.durXs)
	}
	q.Intervals = len(perCheckTrans)
	q.TransPerCheck, q.LambdaPerCheck = spreadOf(perCheckTrans), spreadOf(perCheckLambda)
	q.EventsPerCheck, q.SFNEventsCheck = spreadOf(perCheckEvents), spreadOf(perCheckSFN)
	q.CheckInterval, q.CheckLag, q.FirstCheck = durSpreadOf(intervals), durSpreadOf(lags), durSpreadOf(firsts)
	q.CallsPerCheck = map[string]float64{}
	checkKey := local.FunctionKeyID("check-adoption")
	for _, c := range proxy.Log() {
		if c.AccessKeyID == checkKey && c.Fault == "" {
			q.CallsPerCheck[c.Service+":"+c.Operation]++
		}
	}
	for op, n := range q.CallsPerCheck {
		q.CallsPerCheck[op] = n / float64(max(q.Invocations["check-adoption"], 1))
	}
	q.ChecksAfterSwitch, q.Overhead = spreadOf(afterSwitch), spreadOf(overhead)
	for s := range inCheck {
		q.StatesInCheck = append(q.StatesInCheck, s)
	}
	sort.Strings(q.StatesInCheck)

	if q.KeyExecutions != o.Users {
		q.problem("%d key executions started; want one per due key (%d)", q.KeyExecutions, o.Users)
	}
	if q.Intervals == 0 {
		q.problem("no check-to-check interval in the key executions' histories")
	}
	if q.TransPerCheck.Min != 3 || q.TransPerCheck.Max != 3 {
		q.problem("state transitions per check %s; want 3 (CheckAdoption, SwitchOver, WaitForNextCheck), seen: %s", q.TransPerCheck, strings.Join(q.StatesInCheck, "; "))
	}
	if q.LambdaPerCheck.Min != 1 || q.LambdaPerCheck.Max != 1 {
		q.problem("Lambda invocations per check %s; want exactly 1 (CheckAdoption): %d CheckAdoption retries, %d other Lambda tasks between checks", q.LambdaPerCheck, q.CheckRetries, q.OtherLambdaInChecks)
	}
	if n := q.Invocations["check-adoption"]; n != q.CheckAttempts {
		q.problem("the local Lambda service ran check-adoption %d times; the key executions' histories hold %d CheckAdoption attempts", n, q.CheckAttempts)
	}
	var mismatched []string
	for _, u := range users {
		want := ledger.SwitchDeadline
		if u.switches {
			want = ledger.SwitchEvidence
		}
		if got := how[u.name]; got != want {
			mismatched = append(mismatched, fmt.Sprintf("%s: %q after %d checks, want %s (pipeline switched: %v)", u.name, got, checks[u.name], want, !u.switchedAt.IsZero()))
		}
	}
	if len(mismatched) > 0 {
		// Evidence needs o.SwitchAfter+2 checks inside the window: a
		// harness too slow to run them (checks far apart, or the first
		// long after the notice) ends a switcher on the deadline.
		q.problem("%d switch-overs do not match the pipelines (evidence needs %d checks in the window; here checks ran %v apart at the median, the first %v after the notice), e.g. %s",
			len(mismatched), o.SwitchAfter+2, q.CheckInterval.Median.Round(time.Second), q.FirstCheck.Median.Round(time.Second), strings.Join(mismatched[:min(5, len(mismatched))], "; "))
	}

	cfg := config.Default()
	cfg.AdoptionWindow, cfg.AdoptionCheck = o.Window, o.Check
	q.MaxMails = 1 + len(cfg.Reminders())
	mails, err := ownerMails(endpoint)
	if err != nil {
		return nil, err
	}
	var mEv, mDl []float64
	for _, u := range users {
		n := mails[u.email]
		if n == 0 || n > q.MaxMails {
			q.problem("%s got %d owner mails; want 1 to %d (the notice and at most %d reminders)", u.name, n, q.MaxMails, q.MaxMails-1)
		}
		switch how[u.name] {
		case ledger.SwitchEvidence:
			mEv = append(mEv, float64(n))
		case ledger.SwitchDeadline:
			mDl = append(mDl, float64(n))
		}
	}
	q.MailsEvidence, q.MailsDeadline = spreadOf(mEv), spreadOf(mDl)
	if q.Largest.Bytes > StatePayloadLimit {
		q.problem("largest state payload %d bytes (%s) exceeds Step Functions' %d", q.Largest.Bytes, q.Largest.Where, StatePayloadLimit)
	}

	bad, err := verifyAdopted(ctx, base, users)
	if err != nil {
		return nil, err
	}
	q.Verified = len(users) - len(bad)
	if len(bad) > 0 {
		q.problem("%d users not left with just the new key Active in IAM, e.g. %s", len(bad), strings.Join(bad[:min(5, len(bad))], "; "))
	}
	return q, nil
}

// seedAdoption creates n users, each with an owner address and a key 100
// days old; every second one's pipeline will switch.
func seedAdoption(ctx context.Context, base aws.Config, clock Clock, n int) ([]*adoptUser, error) {
	api := iam.NewFromConfig(base)
	defer clock(0)
	if err := clock(-100 * 24 * time.Hour); err != nil {
		return nil, err
	}
	users := make([]*adoptUser, n)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	next := make(chan int)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				u := &adoptUser{name: fmt.Sprintf("adopt-%04d", i), switches: i%2 == 0}
				u.email = u.name + "@example.com"
				_, err := api.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(u.name),
					Tags: []types.Tag{{Key: aws.String("email"), Value: aws.String(u.email)}}})
				var k *iam.CreateAccessKeyOutput
				if err == nil {
					k, err = api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(u.name)})
				}
				if err != nil {
					once.Do(func() { first = fmt.Errorf("seed %s: %w", u.name, err) })
					continue
				}
				u.old.id, u.old.secret = aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)
				users[i] = u
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		return nil, first
	}
	return users, clock(0)
}

// adoptPipeline plays a workload signing an S3 call with the user's key
// every `every` until ctx ends (IAM records each key's last use). A
// switching pipeline, once `after` checks of its key's window have ended
// (in the key execution's history under graceDir), reads the new key from
// secretName and never uses the old one again; it returns when it
// switched (zero: never).
func adoptPipeline(ctx context.Context, base aws.Config, sm *secretsmanager.Client, secretName, graceDir string, u *adoptUser, after int, every time.Duration) time.Time {
	id, secret := u.old.id, u.old.secret
	var switched time.Time
	for ctx.Err() == nil {
		if u.switches && switched.IsZero() && checksDone(graceDir, u) >= after {
			out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName)})
			var next struct {
				ID     string `json:"accessKeyId"`
				Secret string `json:"secretAccessKey"`
			}
			if err == nil && json.Unmarshal([]byte(aws.ToString(out.SecretString)), &next) == nil && next.ID != "" && next.ID != u.old.id {
				id, secret, switched = next.ID, next.Secret, time.Now()
			}
		}
		cfg := base.Copy()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(id, secret, "")
		cfg.RetryMaxAttempts = 1
		// A deactivated key fails: the pipeline's problem, as in life.
		_, _ = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
	return switched
}

// checksDone counts the CheckAdoption states that have ended in the
// history of u's key execution (named after the user and the old key).
func checksDone(graceDir string, u *adoptUser) int {
	files, _ := filepath.Glob(filepath.Join(graceDir, local.SafeName(u.name+"-"+u.old.id)+"-*", "history.jsonl"))
	if len(files) != 1 {
		return 0
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		return 0
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		var e struct {
			Type  string
			State *struct{ Name string }
		}
		if strings.Contains(line, `"CheckAdoption"`) && json.Unmarshal([]byte(line), &e) == nil && e.Type == "StateExited" && e.State != nil && e.State.Name == "CheckAdoption" {
			n++
		}
	}
	return n
}

// keyHistory is what one key execution's history.jsonl shows.
type keyHistory struct {
	user, switchOver, note string
	transitions, checks    int
	lambda, events         int
	lambdaByState          map[string]int
	checkRetries           int
	intervals              []checkInterval
	checkStarts            []time.Time
	lags                   []time.Duration
	until                  time.Time // the window's end
}

// checkInterval is one stretch from a CheckAdoption's start to the next's.
type checkInterval struct {
	transitions, lambda, events int
	otherLambda                 int // Lambda tasks other than CheckAdoption
	states                      []string
	took                        time.Duration
}

// readKeyHistory reads a key execution's history: its states entered,
// its Lambda attempts (lambdaStates entered or retried) and, between two
// CheckAdoption starts, what one check of the window costs.
func readKeyHistory(path string, lambdaStates map[string]bool) (*keyHistory, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := &keyHistory{lambdaByState: map[string]int{}}
	type ev struct {
		typ, state string
		at         time.Time
	}
	var evs []ev
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		var e struct {
			Type      string `json:"type"`
			Timestamp int64  `json:"timestamp"`
			Input     *struct {
				Item     struct{ User string } `json:"item"`
				Adoption *struct {
					Until time.Time `json:"until"`
				} `json:"adoption"`
			} `json:"input"`
			State *struct {
				Name  string `json:"name"`
				Input *struct {
					Adoption *struct {
						NextCheck time.Time `json:"nextCheck"`
					} `json:"adoption"`
				} `json:"input"`
				Output *struct {
					Adoption *rotation.Adoption `json:"adoption"`
				} `json:"output"`
			} `json:"state"`
		}
		if json.Unmarshal(sc.Bytes(), &e) != nil || e.Type == "Result" {
			continue
		}
		h.events++
		at := time.UnixMilli(e.Timestamp)
		name := ""
		if e.State != nil {
			name = e.State.Name
		}
		if e.Type == "ExecutionStarted" && e.Input != nil {
			h.user = e.Input.Item.User
			if e.Input.Adoption != nil {
				h.until = e.Input.Adoption.Until
			}
		}
		evs = append(evs, ev{e.Type, name, at})
		switch e.Type {
		case "StateEntered":
			h.transitions++
			if lambdaStates[name] {
				h.lambda++
				h.lambdaByState[name]++
			}
			if name == "CheckAdoption" {
				h.checks++
				h.checkStarts = append(h.checkStarts, at)
			}
		case "StateRetried":
			if lambdaStates[name] {
				h.lambda++
				h.lambdaByState[name]++
			}
			if name == "CheckAdoption" {
				h.checkRetries++
			}
		case "StateExited":
			if name == "CheckAdoption" && e.State.Output != nil && e.State.Output.Adoption != nil {
				h.switchOver, h.note = e.State.Output.Adoption.SwitchOver, e.State.Output.Adoption.Note
			}
			if name == "WaitForNextCheck" && e.State.Input != nil && e.State.Input.Adoption != nil && !e.State.Input.Adoption.NextCheck.IsZero() {
				h.lags = append(h.lags, at.Sub(e.State.Input.Adoption.NextCheck))
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Each stretch from one CheckAdoption start up to the next.
	start := -1
	for i, e := range evs {
		if e.typ != "StateEntered" || e.state != "CheckAdoption" {
			continue
		}
		if start >= 0 {
			iv := checkInterval{events: i - start, took: e.at.Sub(evs[start].at)}
			for _, x := range evs[start:i] {
				switch {
				case x.typ == "StateEntered":
					iv.transitions++
					iv.states = append(iv.states, x.state)
					if lambdaStates[x.state] {
						iv.lambda++
						if x.state != "CheckAdoption" {
							iv.otherLambda++
						}
					}
				case x.typ == "StateRetried" && lambdaStates[x.state]:
					iv.lambda++
				}
			}
			h.intervals = append(h.intervals, iv)
		}
		start = i
	}
	return h, nil
}

// lambdaTaskStates names the states, in both state machines of the
// template, that invoke a Lambda function.
func lambdaTaskStates(template string) (map[string]bool, error) {
	t, err := local.ReadTemplate(template)
	if err != nil {
		return nil, err
	}
	fns := map[string]bool{}
	for _, id := range t.OfType("AWS::Lambda::Function") {
		fns[id] = true
	}
	// A task names its function by ARN (Resource: the function's Arn) or
	// through lambda:invoke.
	ids := local.Resolver{
		Ref: func(id string) (string, bool) { return id, true },
		GetAtt: func(id, attr string) (string, bool) {
			if fns[id] && attr == "Arn" {
				return "arn:aws:lambda:us-east-1:123456789012:function:" + id, true
			}
			return id + "." + attr, true
		},
	}
	out := map[string]bool{}
	for _, id := range []string{local.MainStateMachine, local.GraceStateMachine} {
		def, err := t.DefinitionOf(ids, id)
		if err != nil {
			return nil, err
		}
		local.EachState(def, func(name string, raw json.RawMessage) {
			var s struct{ Type, Resource string }
			json.Unmarshal(raw, &s)
			if s.Type == "Task" && (strings.Contains(s.Resource, ":lambda:invoke") || strings.Contains(s.Resource, ":function:")) {
				out[name] = true
			}
		})
	}
	if !out["CheckAdoption"] {
		return nil, fmt.Errorf("%s: no CheckAdoption Lambda task in the key's state machine", template)
	}
	return out, nil
}

// ownerMails counts the mails moto recorded as sent (SES), by recipient.
func ownerMails(endpoint string) (map[string]int, error) {
	mails, err := demo.SentMails(endpoint)
	if err != nil {
		return nil, fmt.Errorf("read the mails moto recorded: %w", err)
	}
	out := map[string]int{}
	for _, m := range mails {
		for _, to := range m.To {
			out[to]++
		}
	}
	return out, nil
}

// verifyAdopted checks, in IAM, that each user's old key is gone and that
// one key, Active, is left. It returns the users that do not, with why.
func verifyAdopted(ctx context.Context, base aws.Config, users []*adoptUser) ([]string, error) {
	api := iam.NewFromConfig(base)
	var bad []string
	for _, u := range users {
		out, err := api.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(u.name)})
		if err != nil {
			return nil, fmt.Errorf("list access keys for %s: %w", u.name, err)
		}
		ks := out.AccessKeyMetadata
		switch {
		case len(ks) != 1:
			bad = append(bad, fmt.Sprintf("%s: %d keys; want 1", u.name, len(ks)))
		case aws.ToString(ks[0].AccessKeyId) == u.old.id:
			bad = append(bad, fmt.Sprintf("%s: the old key %s is left", u.name, u.old.id))
		case ks[0].Status != types.StatusTypeActive:
			bad = append(bad, fmt.Sprintf("%s: the new key is %s", u.name, ks[0].Status))
		}
	}
	return bad, nil
}
