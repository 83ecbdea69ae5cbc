package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func init() { commands["run"] = runRun }

// runFlags are the flags shared by run and demo.
type runFlags struct {
	template, bin, name, workDir string
	concurrency                  int
	retryInterval                time.Duration
	// The adoption window for this run (0: as deployed), and the time
	// between its checks: the functions and the Wait loop both use them.
	adoptionWindow, adoptionCheck time.Duration
}

func (f *runFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.template, "template", "cdk.out/KeyRotor.template.json", "the synthesized template (make synth)")
	fs.StringVar(&f.bin, "bin", "build/host", "the functions built for this machine (make build-host)")
	fs.StringVar(&f.name, "name", "", "execution name (default local-<time>)")
	fs.StringVar(&f.workDir, "work-dir", "", "where logs and the execution history go (default build/run/<name>, for demo build/demo/<name>)")
	fs.IntVar(&f.concurrency, "concurrency", 8, "processes per function")
	fs.DurationVar(&f.retryInterval, "retry-interval", 100*time.Millisecond, "replaces every Retry interval of the definition, so local retries are quick")
	fs.DurationVar(&f.adoptionWindow, "adoption-window", 0, "adoption window for this run (e.g. 30s): the old key stays Active until the new key is in use, at most this long (default: the deployed adoptionDays)")
	fs.DurationVar(&f.adoptionCheck, "adoption-check", 0, "time between two adoption checks for this run (e.g. 5s; default one day)")
}

// check fails early when the template is missing or older than cdk.json,
// so a local run always uses the configuration a deployment would.
func (f *runFlags) check() error {
	if f.adoptionWindow < 0 || f.adoptionCheck < 0 || f.adoptionCheck > 0 && f.adoptionWindow == 0 {
		return fmt.Errorf("--adoption-window and --adoption-check must not be negative, and --adoption-check needs --adoption-window (e.g. --adoption-window 30s --adoption-check 5s)")
	}
	ti, err := os.Stat(f.template)
	if err != nil {
		return fmt.Errorf("--template %s: not found: run `make synth`", f.template)
	}
	if ci, err := os.Stat(filepath.Join(filepath.Dir(filepath.Dir(f.template)), "cdk.json")); err == nil && ci.ModTime().After(ti.ModTime()) {
		return fmt.Errorf("--template %s is older than cdk.json: run `make synth` so the run uses the current context", f.template)
	}
	return nil
}

func runRun(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	endpoint := fs.String("endpoint", "", "AWS-compatible endpoint already running, e.g. http://127.0.0.1:5000 (required)")
	inputPath := fs.String("input", "", "execution input: a JSON file, or - for standard input (default {})")
	wait := fs.Duration("wait", 0, "grace period for this run: the functions and the Wait state both use it")
	redrive := fs.String("redrive", "", "the work directory of a failed run: run that execution again from the state that failed, as Step Functions' RedriveExecution does")
	var rf runFlags
	rf.register(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: keyrotor run --endpoint URL [--input FILE|-] [--wait DURATION]\n       keyrotor run --endpoint URL --redrive WORK-DIR [--wait DURATION]\n\nRuns the synthesized state machine once against the endpoint; with --redrive, runs the\nfailed execution of WORK-DIR again from its failed state (same name and input; steps and\nusers that succeeded are not run again). Progress goes to stderr, the execution's output\nJSON to stdout. Exit 0 only if the execution succeeded.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *endpoint == "" {
		fmt.Fprintln(stderr, "keyrotor run: --endpoint is required, e.g. --endpoint http://127.0.0.1:5000 (a running moto_server)")
		return 2
	}
	if *wait < 0 {
		fmt.Fprintln(stderr, "keyrotor run: --wait must not be negative (e.g. 0s, 30s, 168h)")
		return 2
	}
	if *redrive != "" {
		for _, f := range []string{"input", "name", "work-dir"} {
			if flagSet(fs, f) {
				fmt.Fprintf(stderr, "keyrotor run: --%s cannot be used with --redrive: a redrive runs the failed execution with its own %s\n", f, map[string]string{"input": "input", "name": "name", "work-dir": "work directory"}[f])
				return 2
			}
		}
		rf.workDir = *redrive
	}
	input, err := readInput(*inputPath, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor run: --input: %v\n", err)
		return 2
	}
	if err := rf.check(); err != nil {
		fmt.Fprintf(stderr, "keyrotor run: %v\n", err)
		return 2
	}
	p := newProgress(stderr)
	res, err := runLocal(ctx, rf, *endpoint, input, *wait, p, *redrive != "")
	var nr *local.NotRedrivableError
	if errors.As(err, &nr) {
		fmt.Fprintf(stderr, "keyrotor run: --redrive %s: %v\n", *redrive, err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor run: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, string(res.Output))
	if res.Status != "SUCCEEDED" {
		reportFailure(stderr, res)
		return 1
	}
	if reportGrace(stderr, res) > 0 {
		return 1
	}
	fmt.Fprintf(stderr, "execution SUCCEEDED in %s, and its %d grace-and-delete executions; logs in %s\n", res.Duration.Round(time.Millisecond), len(res.Grace), res.LogDir)
	return 0
}

// reportGrace names every grace-and-delete execution that did not succeed
// and returns how many.
func reportGrace(w io.Writer, res *local.Result) int {
	for _, g := range res.Grace {
		switch {
		case g.Err != nil:
			fmt.Fprintf(w, "grace-and-delete execution %s could not run: %v\n", g.Name, g.Err)
		case g.Result.Status != "SUCCEEDED":
			fmt.Fprintf(w, "grace-and-delete execution %s FAILED at state %s: %s: %s\n", g.Name, g.Result.FailedState, g.Result.Error, g.Result.Cause)
		}
	}
	return res.GraceFailed()
}

func reportFailure(w io.Writer, res *local.Result) {
	fmt.Fprintf(w, "execution FAILED at state %s: %s: %s\n", res.FailedState, res.Error, res.Cause)
	if res.FailedIn != "" {
		fmt.Fprintf(w, "  failed in %s\n", res.FailedIn)
	}
	fmt.Fprintf(w, "  history: %s\n  logs: %s\n", res.HistoryFile, res.LogDir)
}

// readInput reads and checks the execution input: the same strict rules
// as the find function, so a bad input fails here, before anything runs.
func readInput(path string, stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	var err error
	switch path {
	case "":
		b = []byte(`{}`)
	case "-":
		b, err = io.ReadAll(stdin)
	default:
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	if _, err := rotation.ParseRequest(b); err != nil {
		return nil, err
	}
	if len(b) == 0 {
		b = []byte(`{}`)
	}
	return json.RawMessage(b), nil
}

// flagSet reports whether the flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// testOptions, when set (by tests), adjusts the options of every local
// execution the command starts (a runner-side fault, for example).
var testOptions func(*local.Options)

// execute runs the state machine locally with progress.
func execute(ctx context.Context, rf runFlags, endpoint string, input json.RawMessage, wait time.Duration, p *progress) (*local.Result, error) {
	return runLocal(ctx, rf, endpoint, input, wait, p, false)
}

// runLocal runs the state machine locally with progress; with redrive, it
// redrives the failed execution of rf.workDir instead.
func runLocal(ctx context.Context, rf runFlags, endpoint string, input json.RawMessage, wait time.Duration, p *progress, redrive bool) (*local.Result, error) {
	interval := rf.retryInterval
	var plan struct {
		Plan struct {
			Counts struct{ Rotate, Retire int }
		}
	}
	o := local.Options{
		Endpoint: endpoint, Template: rf.template, BinDir: rf.bin, Input: input, Wait: wait,
		RetryInterval: &interval, ExecutionName: rf.name, WorkDir: rf.workDir, MaxConcurrency: rf.concurrency,
		AdoptionWindow: rf.adoptionWindow, AdoptionCheck: rf.adoptionCheck,
		Progress: p.event,
		OnPlan: func(raw json.RawMessage) {
			if json.Unmarshal(raw, &plan) == nil {
				p.expect(plan.Plan.Counts.Rotate + plan.Plan.Counts.Retire)
			}
		},
	}
	if testOptions != nil {
		testOptions(&o)
	}
	var res *local.Result
	var err error
	if redrive {
		res, err = local.Redrive(ctx, o, rf.workDir)
	} else {
		res, err = local.Run(ctx, o)
	}
	if errors.Is(err, context.Canceled) {
		return nil, errors.New("interrupted; everything it started has been stopped")
	}
	return res, err
}
