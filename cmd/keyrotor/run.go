package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/failures"
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
	endpoint := fs.String("endpoint", "", "AWS-compatible endpoint already running, e.g. http://127.0.0.1:5000 (required)")
	inputPath := fs.String("input", "", "execution input: a JSON file, - for standard input, or the JSON itself such as '{\"users\":[\"alice\"]}' (default {})")
	wait := fs.Duration("wait", 0, "grace period for this run: the functions and the Wait state both use it")
	redrive := fs.String("redrive", "", "the work directory of a failed run: run that execution again from the state that failed, as Step Functions' RedriveExecution does")
	var rf runFlags
	rf.register(fs)
	allowRemote := fs.Bool("allow-remote-endpoint", false, "allow an --endpoint that is not on this machine (not an emulator: the run creates and deletes keys there)")
	if code, ok := parseFlags(fs, args, "usage: keyrotor run --endpoint URL [--input FILE|-|JSON] [--wait DURATION]\n       keyrotor run --endpoint URL --redrive WORK-DIR [--wait DURATION]\n\nRuns the synthesized state machine once against the endpoint; with --redrive, runs the\nfailed execution of WORK-DIR again from its failed state (same name and input; steps and\nusers that succeeded are not run again). Progress goes to stderr, the execution's output\nJSON to stdout. Exit 0 only if the execution succeeded and no rotation was left waiting\nor needing a person; 2 for a usage error or a bad input.", stdout, stderr); !ok {
		return code
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
	if err := checkEndpoint(*endpoint, *allowRemote); err != nil {
		fmt.Fprintf(stderr, "keyrotor run: %v\n", err)
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
	if res.Status != "SUCCEEDED" && res.Error == failures.Name(&failures.InvalidInputError{}) && res.FailedState == "FindDueKeys" {
		// The input passed the local checks but not the account's (a user
		// that does not exist): a bad input, said once; nothing changed.
		fmt.Fprintf(stderr, "keyrotor run: --input: %s; nothing changed\n", inputCause(res.Cause))
		return 2
	}
	fmt.Fprintln(stdout, string(res.Output))
	if res.Status != "SUCCEEDED" {
		reportFailure(stderr, res)
		return 1
	}
	if reportGrace(stderr, res) > 0 {
		return 1
	}
	reportDeliveries(stderr, res.Output)
	fmt.Fprintf(stderr, "execution SUCCEEDED in %s, and its %d grace-and-delete executions; logs in %s\n", res.Duration.Round(time.Millisecond), len(res.Grace), res.LogDir)
	if why := needsPerson(res.Output); why != "" {
		fmt.Fprintf(stderr, "keyrotor run: %s\n", why)
		return exitNeedsPerson
	}
	return 0
}

// exitNeedsPerson is run's exit status when the execution succeeded but
// left rotations waiting or needing a person.
const exitNeedsPerson = 3

// needsPerson says in one line what a succeeded run left for a person:
// rotations waiting (their notice did not go out, or their new key is not
// delivered everywhere yet, so nothing was deactivated) and conditions
// needing a person; "" when none.
func needsPerson(output json.RawMessage) string {
	var sum rotation.Summary
	if json.Unmarshal(output, &sum) != nil {
		return ""
	}
	var parts []string
	first := ""
	if n := sum.Totals.Waiting; n > 0 {
		// Waiting: the notice did not go out, or the new key is not
		// delivered everywhere yet (the reason says which).
		parts = append(parts, fmt.Sprintf("%d %s waiting (old key still Active)", n, plural(n, "rotation is", "rotations are")))
		for _, o := range sum.Users {
			if o.Result == "waiting" && first == "" {
				first = fmt.Sprintf("%s: %s", o.User, o.Reason)
			}
		}
	}
	if n := len(sum.Attention); n > 0 {
		parts = append(parts, fmt.Sprintf("%d %s a person", n, plural(n, "condition needs", "conditions need")))
		if first == "" {
			first = fmt.Sprintf("%s: %s", sum.Attention[0].User, sum.Attention[0].Reason)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return fmt.Sprintf("%s; first: %s (the output's \"users\" and \"attention\" list them all)", strings.Join(parts, " and "), first)
}

// reportDeliveries says, for each user whose new key has destinations,
// where it was delivered and read back and where not, with why (the run
// summary's delivered and undelivered).
func reportDeliveries(w io.Writer, output json.RawMessage) {
	var sum rotation.Summary
	if json.Unmarshal(output, &sum) != nil {
		return
	}
	for _, o := range sum.Users {
		if len(o.Delivered)+len(o.Undelivered) == 0 {
			continue
		}
		who := o.User
		if o.Account != "" {
			who += " in account " + o.Account
		}
		fmt.Fprintf(w, "delivery of %s's new key %s: %d of %d destinations hold it\n", who, dash(o.NewKeyID), len(o.Delivered), len(o.Delivered)+len(o.Undelivered))
		for _, d := range o.Delivered {
			fmt.Fprintf(w, "  delivered and read back: %s\n", d)
		}
		for _, d := range o.Undelivered {
			fmt.Fprintf(w, "  NOT delivered: %s\n", d)
		}
	}
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// inputCause is the find function's refusal of the input, without the
// error type the engine repeats in front of it.
func inputCause(cause string) string {
	var obj struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal([]byte(cause), &obj) == nil && obj.ErrorMessage != "" {
		cause = obj.ErrorMessage
	}
	name := failures.Name(&failures.InvalidInputError{})
	for strings.HasPrefix(strings.TrimSpace(cause), name+":") {
		cause = strings.TrimPrefix(strings.TrimSpace(cause), name+":")
	}
	return strings.TrimPrefix(strings.TrimSpace(cause), "invalid input ")
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

// readInput reads and checks the execution input (a file, - for standard
// input, or the JSON itself): the same strict rules as the find function,
// so a bad input fails here, before anything runs.
func readInput(path string, stdin io.Reader) (json.RawMessage, error) {
	var b []byte
	var err error
	from := "file " + path
	switch t := strings.TrimSpace(path); {
	case t == "":
		b = []byte(`{}`)
	case t == "-":
		from = "standard input"
		b, err = io.ReadAll(stdin)
	case strings.HasPrefix(t, "{"):
		from = "inline JSON"
		b = []byte(t)
	default:
		b, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil, fmt.Errorf("%s is empty: give the execution input as a JSON object, such as {} or {\"users\":[\"alice\"]}", from)
	}
	if _, err := rotation.ParseRequest(b); err != nil {
		return nil, err
	}
	return json.RawMessage(b), nil
}

// checkEndpoint refuses an endpoint that is not on this machine unless
// allowed: run and demo create keys, secrets and tables, and delete old
// keys, wherever the endpoint points.
func checkEndpoint(endpoint string, allowRemote bool) error {
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return fmt.Errorf("--endpoint %q: want a URL such as http://127.0.0.1:5000", endpoint)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if ip := net.ParseIP(host); host == "localhost" || ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--endpoint %s is not on this machine: keyrotor run creates and deletes access keys there; "+
		"point it at an emulator on 127.0.0.1, or add --allow-remote-endpoint if that endpoint is one", endpoint)
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
