// Package local runs keyrotor's synthesized state machine on this machine:
// a local Lambda service runs the function binaries over the Lambda Runtime
// API, and the aws-local-stepfunctions engine (Node) runs the definition
// that `cdk synth` produced, invoking them through the Lambda Invoke API.
package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Function is one Lambda the server runs.
type Function struct {
	Name    string            // what the engine invokes (FunctionName, or the end of an ARN)
	Binary  string            // path to the bootstrap executable for this host
	Env     map[string]string // the function's environment
	Timeout time.Duration     // per invocation (default 60s)
	Memory  int               // MB, reported in AWS_LAMBDA_FUNCTION_MEMORY_SIZE
	// MaxConcurrency bounds the processes started for this function (default 8).
	MaxConcurrency int
	// Reserved is the function's reserved concurrency
	// (ReservedConcurrentExecutions); 0 means none. With Reserved
	// invocations in flight, another is throttled as Lambda throttles it:
	// the Invoke API answers 429 TooManyRequestsException (see
	// ThrottleError), and the function does not run.
	Reserved int
}

// Stats counts what the server did.
type Stats struct {
	Invocations map[string]int // by function
	Errors      map[string]int // by error type
	// ColdStarts: per function, process start to its first request for
	// work on the Runtime API (the runtime is initialised and ready).
	ColdStarts map[string][]time.Duration
	// PeakRSSKB: per function, the largest peak resident set of its
	// processes that have ended.
	PeakRSSKB map[string]int64
	// Throttles: per function, invocations refused for its reserved
	// concurrency (not counted in Invocations, as in Lambda's metrics).
	Throttles map[string]int
}

// ThrottleError is an invocation refused because the function's reserved
// concurrency is in use.
//
// The Invoke API answers it as AWS Lambda does (Lambda API Reference,
// "Invoke", https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html:
// "Lambda returns TooManyRequestsException if running the function would
// cause you to exceed a concurrency limit at either the account level
// (ConcurrentInvocationLimitExceeded) or function level
// (ReservedFunctionConcurrentInvocationLimitExceeded)"; Errors:
// TooManyRequestsException, HTTP Status Code: 429; the error's members
// are Type, message, Reason and retryAfterSeconds, the last from a
// Retry-After header, which this server does not send). Step Functions
// reports the failed task as Lambda.TooManyRequestsException.
type ThrottleError struct {
	Function string
	Reserved int
}

func (e *ThrottleError) Error() string {
	return fmt.Sprintf("function %s: reserved concurrency %d in use: Rate Exceeded.", e.Function, e.Reserved)
}

// Server is a local Lambda service.
type Server struct {
	url    string
	logDir string
	srv    *http.Server
	closed atomic.Bool

	mu    sync.Mutex
	fns   map[string]*fnRuntime
	stats Stats
}

func newStats() Stats {
	return Stats{Invocations: map[string]int{}, Errors: map[string]int{}, ColdStarts: map[string][]time.Duration{},
		PeakRSSKB: map[string]int64{}, Throttles: map[string]int{}}
}

type invocation struct {
	id       string
	payload  []byte
	deadline time.Time
	done     chan result
}

type result struct {
	payload   []byte
	errorType string // "" on success
}

// fnRuntime is one function: its queue and its processes.
type fnRuntime struct {
	fn    Function
	srv   *Server
	queue chan *invocation
	logs  io.WriteCloser

	mu       sync.Mutex
	pending  map[string]*invocation
	procs    map[*process]bool
	waiting  int // processes blocked in /next
	inflight int // invocations admitted and not yet answered
}

// process is one running bootstrap with its own Runtime API listener, so
// the invocation it holds is known when it dies.
type process struct {
	rt      *fnRuntime
	cmd     *exec.Cmd
	http    *http.Server
	started time.Time
	first   atomic.Bool
	mu      sync.Mutex
	current *invocation
	served  bool // it took at least one invocation
	tail    *tailWriter
}

// NewServer starts the Invoke API on a free loopback port. Function logs
// (stdout and stderr of every process) go to logDir/<name>.log.
func NewServer(fns []Function, logDir string) (*Server, error) {
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	s := &Server{logDir: logDir, fns: map[string]*fnRuntime{}, stats: newStats()}
	for _, f := range fns {
		if _, err := os.Stat(f.Binary); err != nil {
			s.Close()
			return nil, fmt.Errorf("function %s: %w (run `make build-host`)", f.Name, err)
		}
		logs, err := os.OpenFile(filepath.Join(logDir, f.Name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			s.Close()
			return nil, err
		}
		if f.Timeout == 0 {
			f.Timeout = 60 * time.Second
		}
		if f.MaxConcurrency == 0 {
			f.MaxConcurrency = 8
		}
		s.fns[f.Name] = &fnRuntime{fn: f, srv: s, queue: make(chan *invocation, 1<<16), logs: &syncWriter{w: logs}, pending: map[string]*invocation{}, procs: map[*process]bool{}}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		s.Close()
		return nil, err
	}
	s.url = "http://" + ln.Addr().String()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", s.invoke)
	// The engine opens a connection for every invoke attempt; idle ones
	// are closed so thousands of retried children do not exhaust file
	// descriptors (seen in the 2,000-key benchmark).
	s.srv = &http.Server{Handler: mux, IdleTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// URL is the Invoke API endpoint (AWS_ENDPOINT_URL_LAMBDA).
func (s *Server) URL() string { return s.url }

// Stats returns a copy of the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := newStats()
	for k, v := range s.stats.ColdStarts {
		out.ColdStarts[k] = append([]time.Duration(nil), v...)
	}
	for k, v := range s.stats.PeakRSSKB {
		out.PeakRSSKB[k] = v
	}
	for k, v := range s.stats.Invocations {
		out.Invocations[k] = v
	}
	for k, v := range s.stats.Errors {
		out.Errors[k] = v
	}
	for k, v := range s.stats.Throttles {
		out.Throttles[k] = v
	}
	return out
}

// Invoke runs one invocation of function name and returns its payload, or
// the function error's type and its error payload. It fails with a
// *ThrottleError when the function's reserved concurrency is in use.
func (s *Server) Invoke(ctx context.Context, name string, payload []byte) (out []byte, errorType string, err error) {
	rt := s.lookup(name)
	if rt == nil {
		return nil, "", fmt.Errorf("no local function %q", name)
	}
	rt.mu.Lock()
	if rt.fn.Reserved > 0 && rt.inflight >= rt.fn.Reserved {
		rt.mu.Unlock()
		s.mu.Lock()
		s.stats.Throttles[rt.fn.Name]++
		s.mu.Unlock()
		return nil, "", &ThrottleError{Function: rt.fn.Name, Reserved: rt.fn.Reserved}
	}
	rt.inflight++
	rt.mu.Unlock()
	defer func() {
		rt.mu.Lock()
		rt.inflight--
		rt.mu.Unlock()
	}()
	s.mu.Lock()
	s.stats.Invocations[rt.fn.Name]++
	s.mu.Unlock()
	inv := &invocation{id: newID(), payload: payload, deadline: time.Now().Add(rt.fn.Timeout), done: make(chan result, 1)}
	rt.mu.Lock()
	rt.pending[inv.id] = inv
	if rt.waiting == 0 && len(rt.procs) < rt.fn.MaxConcurrency {
		if err := rt.spawn(); err != nil {
			delete(rt.pending, inv.id)
			rt.mu.Unlock()
			return nil, "", err
		}
	}
	rt.mu.Unlock()
	rt.queue <- inv
	timer := time.NewTimer(rt.fn.Timeout)
	defer timer.Stop()
	var r result
	select {
	case r = <-inv.done:
	case <-timer.C:
		rt.forget(inv.id)
		// As Lambda reports a timed-out invocation.
		r = result{errorType: "Sandbox.Timedout", payload: errorPayload("Sandbox.Timedout", fmt.Sprintf("Task timed out after %.2f seconds", rt.fn.Timeout.Seconds()))}
	case <-ctx.Done():
		rt.forget(inv.id)
		return nil, "", ctx.Err()
	}
	if r.errorType != "" {
		s.mu.Lock()
		s.stats.Errors[r.errorType]++
		s.mu.Unlock()
	}
	return r.payload, r.errorType, nil
}

func (s *Server) lookup(name string) *fnRuntime {
	if i := strings.LastIndex(name, ":function:"); i >= 0 {
		name = name[i+len(":function:"):]
	}
	if i := strings.Index(name, ":"); i >= 0 { // a qualifier
		name = name[:i]
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fns[name]
}

// invoke is the Lambda Invoke API (RequestResponse).
func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	out, errType, err := s.Invoke(r.Context(), r.PathValue("name"), body)
	var throttled *ThrottleError
	if errors.As(err, &throttled) {
		// As Lambda answers (see ThrottleError).
		w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		json.NewEncoder(w).Encode(map[string]string{"Reason": "ReservedFunctionConcurrentInvocationLimitExceeded", "Type": "User", "message": "Rate Exceeded."})
		return
	}
	if err != nil {
		w.Header().Set("X-Amzn-ErrorType", "ResourceNotFoundException")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		json.NewEncoder(w).Encode(map[string]string{"Type": "User", "message": err.Error()})
		return
	}
	if errType != "" {
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	w.WriteHeader(http.StatusOK)
	w.Write(out)
}

func (rt *fnRuntime) forget(id string) {
	rt.mu.Lock()
	delete(rt.pending, id)
	rt.mu.Unlock()
}

// spawn starts one more bootstrap process (rt.mu held).
func (rt *fnRuntime) spawn() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	p := &process{rt: rt, tail: &tailWriter{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", p.next)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", p.response)
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", p.fail)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusAccepted) })
	p.http = &http.Server{Handler: mux}

	cmd := exec.Command(rt.fn.Binary)
	cmd.Dir = filepath.Dir(rt.fn.Binary)
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"AWS_LAMBDA_RUNTIME_API=" + ln.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME=" + rt.fn.Name,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		fmt.Sprintf("AWS_LAMBDA_FUNCTION_MEMORY_SIZE=%d", max(rt.fn.Memory, 128)),
		"AWS_LAMBDA_LOG_FORMAT=JSON",
		"_HANDLER=bootstrap",
		"LAMBDA_TASK_ROOT=" + filepath.Dir(rt.fn.Binary),
		"TZ=UTC",
	}
	for k, v := range rt.fn.Env {
		env = append(env, k+"="+v)
	}
	cmd.Env = env
	cmd.Stdout = rt.logs
	cmd.Stderr = io.MultiWriter(rt.logs, p.tail)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	p.started = time.Now() // before Serve: its handlers read it
	go p.http.Serve(ln)
	if err := cmd.Start(); err != nil {
		p.http.Close()
		return fmt.Errorf("start %s: %w", rt.fn.Binary, err)
	}
	p.cmd = cmd
	rt.procs[p] = true
	go p.watch()
	return nil
}

// watch fails the invocation the process held when it exits; a process that
// dies before taking one (a start-up failure, such as bad configuration)
// fails the next queued invocation with its last error output.
func (p *process) watch() {
	err := p.cmd.Wait()
	p.http.Close()
	rt := p.rt

	rt.mu.Lock()
	delete(rt.procs, p)
	rt.mu.Unlock()
	if rt.srv.closed.Load() {
		return
	}
	msg := "Runtime exited"
	if err != nil {
		msg = "Runtime exited with error: " + err.Error()
	}
	if t := p.tail.String(); t != "" {
		msg += ": " + t
	}
	p.mu.Lock()
	inv, served := p.current, p.served
	p.mu.Unlock()
	if inv == nil && served {
		return // it exited between invocations (aws-lambda-go does so after a panic)
	}
	if inv == nil {
		select {
		case inv = <-rt.queue:
		default:
			return
		}
	}
	rt.finish(inv.id, result{errorType: "Runtime.ExitError", payload: errorPayload("Runtime.ExitError", msg)})
}

// next hands the oldest queued invocation to this process.
func (p *process) next(w http.ResponseWriter, r *http.Request) {
	rt := p.rt
	if p.first.CompareAndSwap(false, true) {
		rt.srv.mu.Lock()
		rt.srv.stats.ColdStarts[rt.fn.Name] = append(rt.srv.stats.ColdStarts[rt.fn.Name], time.Since(p.started))
		rt.srv.mu.Unlock()
	}
	rt.mu.Lock()
	rt.waiting++
	rt.mu.Unlock()
	defer func() {
		rt.mu.Lock()
		rt.waiting--
		rt.mu.Unlock()
	}()
	var inv *invocation
	for inv == nil {
		select {
		case inv = <-rt.queue:
			rt.mu.Lock()
			_, live := rt.pending[inv.id]
			rt.mu.Unlock()
			if !live { // timed out or cancelled while queued
				inv = nil
			}
		case <-r.Context().Done():
			return
		}
	}
	p.mu.Lock()
	p.current, p.served = inv, true
	p.mu.Unlock()
	h := w.Header()
	h.Set("Lambda-Runtime-Aws-Request-Id", inv.id)
	h.Set("Lambda-Runtime-Deadline-Ms", fmt.Sprint(inv.deadline.UnixMilli()))
	h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:"+rt.fn.Name)
	h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
	h.Set("Content-Type", "application/json")
	w.Write(inv.payload)
}

func (rt *fnRuntime) finish(id string, res result) {
	rt.mu.Lock()
	inv, ok := rt.pending[id]
	delete(rt.pending, id)
	rt.mu.Unlock()
	if ok {
		inv.done <- res
	}
}

func (p *process) release() {
	p.mu.Lock()
	p.current = nil
	p.mu.Unlock()
}

func (p *process) response(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	p.release()
	p.rt.finish(r.PathValue("id"), result{payload: body})
	w.WriteHeader(http.StatusAccepted)
}

func (p *process) fail(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var e struct {
		ErrorType    string `json:"errorType"`
		ErrorMessage string `json:"errorMessage"`
	}
	json.Unmarshal(body, &e)
	if e.ErrorType == "" {
		e.ErrorType = r.Header.Get("Lambda-Runtime-Function-Error-Type")
	}
	if e.ErrorType == "" {
		e.ErrorType = "Unhandled"
	}
	p.release()
	p.rt.finish(r.PathValue("id"), result{errorType: e.ErrorType, payload: errorPayload(e.ErrorType, e.ErrorMessage)})
	w.WriteHeader(http.StatusAccepted)
}

func errorPayload(typ, msg string) []byte {
	b, _ := json.Marshal(map[string]string{"errorType": typ, "errorMessage": msg})
	return b
}

// Close stops every process and listener.
func (s *Server) Close() {
	s.closed.Store(true)
	if s.srv != nil {
		s.srv.Close()
	}
	s.mu.Lock()
	fns := s.fns
	s.mu.Unlock()
	for _, rt := range fns {
		rt.mu.Lock()
		var procs []*process
		for p := range rt.procs {
			procs = append(procs, p)
		}
		rt.mu.Unlock()
		for _, p := range procs {
			if p.cmd.Process != nil {
				s.recordPeakRSS(rt.fn.Name, p.cmd.Process.Pid)
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			}
			p.http.Close()
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			rt.mu.Lock()
			n := len(rt.procs)
			rt.mu.Unlock()
			if n == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		rt.logs.Close()
	}
}

var idN atomic.Uint64

func newID() string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", uint32(time.Now().UnixNano()), idN.Add(1))
}

// syncWriter serialises writes from several processes to one log file.
type syncWriter struct {
	mu sync.Mutex
	w  io.WriteCloser
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (s *syncWriter) Close() error { return s.w.Close() }

// tailWriter keeps the last line written, for start-up failures.
type tailWriter struct {
	mu   sync.Mutex
	last string
}

func (t *tailWriter) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, l := range strings.Split(strings.TrimSpace(string(p)), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			t.last = l
		}
	}
	return len(p), nil
}

func (t *tailWriter) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.last) > 500 {
		return t.last[:500]
	}
	return t.last
}

// recordPeakRSS reads the process's peak resident set (VmHWM) while it is
// still alive: rusage after exit would count the forking parent's pages.
func (s *Server) recordPeakRSS(fn string, pid int) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb int64
			fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb)
			s.mu.Lock()
			s.stats.PeakRSSKB[fn] = max(s.stats.PeakRSSKB[fn], kb)
			s.mu.Unlock()
		}
	}
}
