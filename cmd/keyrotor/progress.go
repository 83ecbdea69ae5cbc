package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor/internal/local"
)

// progress prints the execution as it runs: each top-level state as it
// starts and ends, a bar over the users of the map, and per-user failures.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	started map[string]time.Time
	total   int
	done    int
	failed  int
	lastBar time.Time
}

func newProgress(w io.Writer) *progress {
	p := &progress{w: w, started: map[string]time.Time{}}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// expect sets how many users the map will run (from the plan, if known).
func (p *progress) expect(n int) {
	p.mu.Lock()
	p.total = n
	p.mu.Unlock()
}

func (p *progress) event(e local.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case e.Type == "StateEntered" && e.Index < 0:
		p.started[e.State] = e.Time
		if e.StateType == "Map" {
			p.done, p.failed = 0, 0
		}
		fmt.Fprintf(p.w, "%s  > %s\n", clock(e.Time), e.State)
	case e.Type == "StateExited" && e.Index < 0:
		p.clearBar()
		fmt.Fprintf(p.w, "%s  ok %s (%s)\n", clock(e.Time), e.State, e.Time.Sub(p.started[e.State]).Round(time.Millisecond))
	case e.Type == "StateFailed" && e.Index < 0:
		p.clearBar()
		fmt.Fprintf(p.w, "%s  FAILED %s: %s %s\n", clock(e.Time), e.State, e.Error, e.Cause)
	case e.Type == "StateRetried":
		who := ""
		if e.User != "" {
			who = " for " + e.User
		}
		p.clearBar()
		fmt.Fprintf(p.w, "%s  retry %s%s\n", clock(e.Time), e.State, who)
	case e.Type == "MapIterationSucceeded":
		p.done++
		p.bar(false)
	case e.Type == "MapIterationFailed":
		p.done++
		p.failed++
		p.clearBar()
		fmt.Fprintf(p.w, "%s  user %s FAILED: %s %s\n", clock(e.Time), e.User, e.Error, e.Cause)
	}
}

func (p *progress) clearBar() {
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// bar draws the users' progress: redrawn in place on a terminal, a line at
// most every few seconds (and at the end) otherwise.
func (p *progress) bar(force bool) {
	total := max(p.total, p.done)
	if total == 0 {
		return
	}
	const width = 30
	fill := p.done * width / total
	line := fmt.Sprintf("           [%s%s] %d/%d users done", strings.Repeat("#", fill), strings.Repeat(".", width-fill), p.done, total)
	if p.failed > 0 {
		line += fmt.Sprintf(", %d failed", p.failed)
	}
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K"+line)
		return
	}
	if force || p.done == total || time.Since(p.lastBar) > 2*time.Second {
		p.lastBar = time.Now()
		fmt.Fprintln(p.w, line)
	}
}

func clock(t time.Time) string { return t.Local().Format("15:04:05") }
