package local

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// enginePool runs a local run's key executions (each key's grace period,
// started by StartGracePeriod and StartAdoptionWindow) side by side in one
// engine process (sfn-local.mjs --serve), started with the first of them:
// a run of 200 due keys starts one Node process for them, not 200 (which
// took the bench's full run from about 25 s to two minutes). The daily
// execution keeps its own process.
type enginePool struct {
	o      Options // the run's options (lambdaURL, region, work dir)
	mu     sync.Mutex
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	next   int
	jobs   map[int]chan []byte // job id -> its event lines, closed after its Result
	done   chan struct{}       // closed when the process's output ended
	err    error               // why the pool could not start
	stderr string
}

func newEnginePool(o Options) *enginePool {
	return &enginePool{o: o, jobs: map[int]chan []byte{}}
}

// start starts the engine process once.
func (p *enginePool) start() error {
	if p.cmd != nil || p.err != nil {
		return p.err
	}
	node, script, err := engineFiles()
	if err != nil {
		p.err = err
		return err
	}
	// The pool outlives any one execution's context: it ends when the run
	// closes it.
	cmd := engineCommand(context.Background(), p.o, node, script, "--serve")
	p.stderr = filepath.Join(p.o.WorkDir, "grace-engine.stderr")
	errf, _ := os.Create(p.stderr)
	cmd.Stderr = errf
	in, err := cmd.StdinPipe()
	if err != nil {
		p.err = err
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		p.err = err
		return err
	}
	if err := cmd.Start(); err != nil {
		p.err = fmt.Errorf("start the local engine: %w", err)
		return p.err
	}
	p.cmd, p.stdin, p.done = cmd, in, make(chan struct{})
	go p.demux(out, errf)
	return nil
}

// demux hands each line to its job's channel, closing the channel after
// the job's Result; when the process's output ends, every job still
// running ends too (without a Result: the engine died).
func (p *enginePool) demux(out io.Reader, errf *os.File) {
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<30)
	for sc.Scan() {
		var tag struct {
			Job  *int   `json:"job"`
			Type string `json:"type"`
		}
		if json.Unmarshal(sc.Bytes(), &tag) != nil || tag.Job == nil {
			continue
		}
		line := append([]byte(nil), sc.Bytes()...)
		p.mu.Lock()
		ch := p.jobs[*tag.Job]
		if tag.Type == "Result" {
			delete(p.jobs, *tag.Job)
		}
		p.mu.Unlock()
		if ch == nil {
			continue
		}
		ch <- line
		if tag.Type == "Result" {
			close(ch)
		}
	}
	p.mu.Lock()
	for id, ch := range p.jobs {
		close(ch)
		delete(p.jobs, id)
	}
	p.mu.Unlock()
	errf.Close()
	close(p.done)
}

// submit hands the pool a job file and returns its event lines.
func (p *enginePool) submit(jobPath string) (<-chan []byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.start(); err != nil {
		return nil, err
	}
	select {
	case <-p.done:
		return nil, fmt.Errorf("the local engine pool has ended: %s", p.why())
	default:
	}
	p.next++
	id := p.next
	// Buffered: the engine never waits on a slow reader of one job.
	ch := make(chan []byte, 1024)
	p.jobs[id] = ch
	if _, err := fmt.Fprintf(p.stdin, "%d %s\n", id, jobPath); err != nil {
		delete(p.jobs, id)
		return nil, fmt.Errorf("hand a job to the local engine: %w", err)
	}
	return ch, nil
}

// run runs one execution's job in the pool, as runEngine runs it in a
// process of its own.
func (p *enginePool) run(ctx context.Context, o Options, jobPath, logDir string) (*Result, error) {
	history, err := openHistory(o)
	if err != nil {
		return nil, err
	}
	defer history.Close()
	start := time.Now()
	lines, err := p.submit(jobPath)
	if err != nil {
		return nil, err
	}
	r, open, final := collect(o, history, logDir, func() ([]byte, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-ctx.Done():
			return nil, false
		}
	})
	r.Duration = time.Since(start)
	return settle(ctx, r, open, final, func() string { return "(the pooled engine): " + p.why() })
}

// why is what the engine wrote to stderr.
func (p *enginePool) why() string {
	b, _ := os.ReadFile(p.stderr)
	return strings.TrimSpace(string(b))
}

// close lets the engine finish its jobs and exit (kill: at once).
func (p *enginePool) close(kill bool) {
	p.mu.Lock()
	cmd, in := p.cmd, p.stdin
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	if kill {
		cmd.Cancel()
	}
	in.Close()
	<-p.done
	cmd.Wait()
}
