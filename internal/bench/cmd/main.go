// Command cmd is `make bench`: it measures keyrotor against moto_server on
// loopback and prints one table, saved as JSON under build/bench/.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyrotor/keyrotor/internal/bench"
	"github.com/keyrotor/keyrotor/internal/motoserver"
	"github.com/keyrotor/keyrotor/shared/awsconf"
)

func main() {
	sizes := flag.String("users", "1000,10000", "discovery: account sizes (5% due)")
	due := flag.Int("due", 200, "full local run: due users")
	out := flag.String("out", "build/bench", "where the JSON goes")
	only := flag.String("only", "", "run only these scenarios, comma-separated: "+strings.Join(scenarios, ", ")+" (default all)")
	var q bench.QuotaOptions
	flag.IntVar(&q.Keys, "quota-keys", 2000, "quota: due keys in the one execution")
	flag.IntVar(&q.Reserved, "quota-reserved", 10, "quota: reserved concurrency of each per-user function")
	flag.Float64Var(&q.Throttle, "quota-throttle", 0.2, "quota: fraction of the functions' IAM calls throttled")
	flag.DurationVar(&q.RetryInterval, "quota-retry-interval", 0, "quota: every Retry's interval in the local engine (0: the definition's, with backoff and jitter)")
	a := bench.AdoptionOptions{Grace: time.Second}
	flag.IntVar(&a.Users, "adoption-users", 40, "adoption: due keys, each with a pipeline using it; every second pipeline switches to the new key")
	flag.DurationVar(&a.Window, "adoption-window", 2*time.Minute, "adoption: the adoption window, 20 checks (days when deployed)")
	flag.DurationVar(&a.Check, "adoption-check", 6*time.Second, "adoption: time between two checks (a day when deployed; 40 keys checked every second outrun moto on 2 cores)")
	flag.IntVar(&a.SwitchAfter, "adoption-switch-after", 3, "adoption: checks of its key's window a switching pipeline lets pass before it moves to the new key")
	flag.DurationVar(&a.Every, "adoption-pipeline-every", 2*time.Second, "adoption: how often each pipeline uses its key")
	o := bench.OrgOptions{DuePct: 5}
	flag.IntVar(&o.Accounts, "org-accounts", 50, "org: member accounts")
	flag.IntVar(&o.Users, "org-users", 200, "org: users in each member account (5% due, as discovery)")
	flag.IntVar(&o.Workers, "org-seed-workers", 16, "org: seeding goroutines over all accounts")
	flag.IntVar(&o.Groups, "org-groups", 0, "org: also run this many finds at once, each on every Nth account (0: off; find itself assesses rotation.AccountWorkers accounts at a time)")
	var dv bench.DeliveryOptions
	flag.IntVar(&dv.Keys, "delivery-keys", 200, "delivery: due keys, each user with a GitHub repository secret and an SSM parameter pair")
	dvConc := flag.String("delivery-concurrency", "10,40", "delivery: DeliverNewKey invocations at once (the Distributed Map's children running; 10 is the quota bench's reserved concurrency), comma-separated for several runs")
	flag.Float64Var(&dv.FailRate, "delivery-fail", 0.5, "delivery: fraction of the GitHub destination's write attempts answered 503, in a second run at each concurrency (0: none)")
	flag.DurationVar(&dv.RetryInterval, "delivery-retry-interval", 50*time.Millisecond, "delivery: wait before the step's Retry (the definition's: 2s, backoff 2, full jitter)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	sel := map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains(scenarios, s) {
				fmt.Fprintf(os.Stderr, "bench: -only: no scenario %q (have %s)\n", s, strings.Join(scenarios, ", "))
				os.Exit(2)
			}
			sel[s] = true
		}
	}
	want := func(s string) bool { return len(sel) == 0 || sel[s] }
	var conc []int
	for _, c := range strings.Split(*dvConc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(c))
		if err != nil || n < 1 {
			fmt.Fprintf(os.Stderr, "bench: -delivery-concurrency: %q is not a positive number\n", c)
			os.Exit(2)
		}
		conc = append(conc, n)
	}
	if err := run(ctx, want, *sizes, *due, q, a, o, dv, conc, *out); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// scenarios are what -only selects: discovery over account sizes, the
// full local run undisturbed and with 30% IAM throttling, and the
// scale-under-quotas run (many due keys, reserved concurrency, throttling),
// the adoption window (what a rotation waiting for its new key costs), and
// discovery in organization mode over many member accounts, and delivery
// (DeliverNewKey to two destinations a key, without and with faults).
var scenarios = []string{"discovery", "run", "throttled", "quota", "adoption", "org", "delivery"}

func run(ctx context.Context, want func(string) bool, sizes string, due int, q bench.QuotaOptions, a bench.AdoptionOptions, o bench.OrgOptions,
	dv bench.DeliveryOptions, conc []int, outDir string) error {
	srv, err := motoserver.Start(filepath.Join(os.TempDir(), "keyrotor-bench-moto.log"))
	if err != nil {
		return err
	}
	defer srv.Stop()
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: srv.Endpoint, Region: "us-east-1", StaticTestCredentials: true})
	if err != nil {
		return err
	}
	rep := bench.NewReport()
	for _, s := range strings.Split(sizes, ",") {
		if strings.TrimSpace(s) == "" || !want("discovery") {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("--users: %q is not a number", s)
		}
		srv.Reset(ctx)
		fmt.Fprintf(os.Stderr, "seeding %d users...\n", n)
		nDue, err := bench.SeedScale(ctx, cfg, srv.SetClock, n, 5)
		if err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "discovery over %d users (%d due)...\n", n, nDue)
		d, err := bench.MeasureDiscovery(ctx, cfg, n, nDue)
		if err != nil {
			return err
		}
		if d.Baseline, err = bench.MeasureBaseline(ctx, cfg); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "audit (dry run) over %d users...\n", n)
		if d.Audit, err = bench.MeasureAudit(ctx, cfg, n, nDue); err != nil {
			return err
		}
		rep.Discovery = append(rep.Discovery, d)
	}
	if want("org") {
		srv.Reset(ctx)
		fmt.Fprintf(os.Stderr, "organization: %d member accounts x %d users, seeding...\n", o.Accounts, o.Users)
		t0 := time.Now()
		if rep.Org, err = bench.OrgDiscovery(ctx, cfg, srv.Endpoint, srv.SetClock, o); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "organization: find over %d accounts in %v (%v with seeding)\n", o.Accounts, rep.Org.Wall.Round(time.Millisecond), time.Since(t0).Round(time.Second))
		for _, d := range rep.Discovery {
			if d.Users == rep.Org.Users {
				rep.Org.Single, rep.Org.SingleSource = d, "this run's discovery bench"
			}
		}
		if rep.Org.Single == nil {
			srv.Reset(ctx)
			fmt.Fprintf(os.Stderr, "organization: single-account discovery over %d users for comparison...\n", rep.Org.Users)
			nDue, err := bench.SeedScale(ctx, cfg, srv.SetClock, rep.Org.Users, o.DuePct)
			if err != nil {
				return err
			}
			if rep.Org.Single, err = bench.MeasureDiscovery(ctx, cfg, rep.Org.Users, nDue); err != nil {
				return err
			}
			rep.Org.SingleSource = "measured by the org bench"
		}
	}
	template, bin := "cdk.out/KeyRotor.template.json", "build/host"
	for _, throttle := range []float64{0, 0.3} {
		if throttle == 0 && !want("run") || throttle > 0 && !want("throttled") {
			continue
		}
		srv.Reset(ctx)
		fmt.Fprintf(os.Stderr, "full local run, %d due users, %.0f%% IAM throttling...\n", due, throttle*100)
		work := filepath.Join(outDir, fmt.Sprintf("run-throttle-%.0f", throttle*100))
		os.RemoveAll(work)
		r, res, err := bench.FullRun(ctx, cfg, srv.Endpoint, srv.SetClock, template, bin, work, due, throttle, false)
		if err != nil {
			return err
		}
		if throttle == 0 {
			rep.Run = r
			rep.Binaries = bench.Binaries("build", res)
		} else {
			rep.Throttled = r
		}
		if throttle == 0 {
			// The same run with an engine process per key execution, as
			// local runs were before they shared one: side by side.
			srv.Reset(ctx)
			fmt.Fprintf(os.Stderr, "full local run, %d due users, an engine process per key execution (the comparison)...\n", due)
			work := filepath.Join(outDir, "run-engine-per-execution")
			os.RemoveAll(work)
			if rep.RunPerExecution, _, err = bench.FullRun(ctx, cfg, srv.Endpoint, srv.SetClock, template, bin, work, due, 0, true); err != nil {
				return err
			}
		}
	}
	if want("quota") {
		raiseFileLimit()
		fmt.Fprintf(os.Stderr, "synthesizing with lambdaConcurrency %d...\n", q.Reserved)
		tmpl, synth, err := bench.SynthQuotaTemplate(ctx, filepath.Join(outDir, "cdk-quota"), template, q.Reserved)
		if err != nil {
			return err
		}
		srv.Reset(ctx)
		q.Template, q.BinDir, q.WorkDir = tmpl, bin, filepath.Join(outDir, "run-quota")
		os.RemoveAll(q.WorkDir)
		fmt.Fprintf(os.Stderr, "quota run: %d due keys, reserved concurrency %d, %.0f%% IAM throttling...\n", q.Keys, q.Reserved, q.Throttle*100)
		if rep.Quota, err = bench.QuotaRun(ctx, cfg, srv.Endpoint, srv.SetClock, q); err != nil {
			return err
		}
		rep.Quota.Synth = synth
	}
	if want("adoption") {
		srv.Reset(ctx)
		a.Template, a.BinDir, a.WorkDir = template, bin, filepath.Join(outDir, "run-adoption")
		os.RemoveAll(a.WorkDir)
		fmt.Fprintf(os.Stderr, "adoption window: %d due keys, window %v checked every %v, %d pipelines switching after %d checks...\n", a.Users, a.Window, a.Check, (a.Users+1)/2, a.SwitchAfter)
		if rep.Adoption, err = bench.AdoptionRun(ctx, cfg, srv.Endpoint, srv.SetClock, a); err != nil {
			return err
		}
	}
	if want("delivery") {
		rates := []float64{0}
		if dv.FailRate > 0 {
			rates = append(rates, dv.FailRate)
		}
		for _, c := range conc {
			for _, rate := range rates {
				srv.Reset(ctx)
				x := dv
				x.Concurrency, x.FailRate = c, rate
				fmt.Fprintf(os.Stderr, "delivery: %d keys x 2 destinations, %d at once, %.0f%% of GitHub write attempts failing...\n", x.Keys, c, rate*100)
				d, err := bench.DeliveryRun(ctx, cfg, srv.SetClock, x)
				if err != nil {
					return err
				}
				rep.Delivery = append(rep.Delivery, d)
			}
		}
	}
	rep.Print(os.Stdout)
	path, err := rep.Save(outDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "\nsaved %s\n", path)
	var failed []string
	if rep.Quota != nil && len(rep.Quota.Problems) > 0 {
		failed = append(failed, fmt.Sprintf("quota run failed its checks:\n  %s", strings.Join(rep.Quota.Problems, "\n  ")))
	}
	if rep.Adoption != nil && len(rep.Adoption.Problems) > 0 {
		failed = append(failed, fmt.Sprintf("adoption run failed its checks:\n  %s", strings.Join(rep.Adoption.Problems, "\n  ")))
	}
	if rep.Org != nil && len(rep.Org.Problems)+len(rep.Org.Deviations) > 0 {
		failed = append(failed, fmt.Sprintf("organization bench failed its checks:\n  %s", strings.Join(append(rep.Org.Deviations, rep.Org.Problems...), "\n  ")))
	}
	for _, d := range rep.Delivery {
		if len(d.Problems) > 0 {
			failed = append(failed, fmt.Sprintf("delivery bench (%d at once, %.0f%% failing) failed its checks:\n  %s", d.Concurrency, d.FailRate*100, strings.Join(d.Problems, "\n  ")))
		}
	}
	if len(failed) > 0 {
		return errors.New(strings.Join(failed, "\n"))
	}
	return nil
}

// raiseFileLimit sets this process's open-file limit to its hard limit,
// explicitly, so the local engine inherits it (Go raises its own soft limit
// at start but restores the original in the processes it starts). The
// engine opens a new connection to the local Lambda service for every
// attempt and the service keeps idle connections open, so thousands of
// throttled retries can end in EMFILE: an artifact of the local harness.
func raiseFileLimit() {
	var lim syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim)
	}
}
