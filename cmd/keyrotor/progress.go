package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor/internal/local"
)

// progress prints an execution as it runs, every line attributable to a
// user or a total: the run's own top-level states as they end (a Map also
// as it starts), one line of counts for the users of the map and one for
// the key executions (grace-and-delete, adoption window) running
// alongside, and a line naming the user for each retry (with its reason),
// failure, and old key kept.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	started map[string]time.Time // the run's own top-level states
	total   int
	done    int
	failed  int
	lastBar time.Time
	// failure holds the last failure of a state, by execution and map
	// iteration: the reason of the retry that follows it.
	failure map[string]local.Event
	keys    keyCounts
	seen    map[string]bool // key executions started
	lastKey time.Time
	// kinds are the top-level states' types: only the states that do
	// work (Task, Map) get an "ok" line; a Choice or a Succeed says
	// nothing a person needs.
	kinds map[string]string
	// lastRetry is the last retry line without its time: the same retry
	// again (a state retried with the same reason) is not printed twice.
	lastRetry string
}

// keyCounts totals the key executions of a run.
type keyCounts struct{ started, deleted, kept, failed int }

func (k keyCounts) running() int { return k.started - k.deleted - k.kept - k.failed }

func newProgress(w io.Writer) *progress {
	// The periodic lines count from now: the first event is not "a long
	// time since the last line".
	now := time.Now()
	p := &progress{w: w, started: map[string]time.Time{}, failure: map[string]local.Event{}, seen: map[string]bool{}, kinds: map[string]string{}, lastBar: now, lastKey: now}
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

// who names the user of an event: "alice", or "111122223333/alice" in a
// member account.
func who(e local.Event) string {
	if e.Account != "" {
		return e.Account + "/" + e.User
	}
	return e.User
}

func (p *progress) event(e local.Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fkey := fmt.Sprintf("%s/%d/%s", e.Execution, e.Index, e.State)
	switch e.Type {
	case "StateFailed":
		p.failure[fkey] = e
		return
	case "StateRetried":
		p.clearBar()
		where := ""
		switch {
		case e.Execution != "":
			where = " for " + who(e) + " (key execution)"
		case e.User != "":
			where = " for " + who(e)
		}
		line := fmt.Sprintf("retry %s%s: %s", e.State, where, reason(p.failure[fkey]))
		if line == p.lastRetry {
			return
		}
		p.lastRetry = line
		fmt.Fprintf(p.w, "%s  %s\n", clock(e.Time), line)
		return
	}
	if e.Execution != "" {
		p.keyEvent(e)
		return
	}
	switch {
	case e.Type == "StateEntered" && e.Index < 0:
		p.started[e.State] = e.Time
		p.kinds[e.State] = e.StateType
		if e.StateType == "Map" {
			p.done, p.failed = 0, 0
			p.clearBar()
			fmt.Fprintf(p.w, "%s  > %s\n", clock(e.Time), e.State)
		}
	case e.Type == "StateExited" && e.Index < 0:
		if k := p.kinds[e.State]; k == "Choice" || k == "Succeed" || k == "Pass" {
			return
		}
		p.clearBar()
		took := max(e.Time.Sub(p.started[e.State]), 0)
		fmt.Fprintf(p.w, "%s  ok %s (%s)\n", clock(e.Time), e.State, took.Round(time.Millisecond))
	case e.Type == "MapIterationSucceeded":
		p.done++
		p.bar(false)
	case e.Type == "MapIterationFailed":
		p.done++
		p.failed++
		p.clearBar()
		fmt.Fprintf(p.w, "%s  user %s FAILED: %s %s\n", clock(e.Time), who(e), e.Error, e.Cause)
	}
}

// keyEvent counts a key execution's start and end; an old key kept or an
// execution failed is a line of its own, naming the user.
func (p *progress) keyEvent(e local.Event) {
	switch e.Type {
	case "StateEntered":
		if p.seen[e.Execution] {
			return
		}
		p.seen[e.Execution] = true
		p.keys.started++
	case "ExecutionSucceeded":
		var out struct {
			Item    struct{ OldKey struct{ ID string } }
			Cleanup *struct {
				Deleted bool
				Reason  string
			}
		}
		json.Unmarshal(e.Output, &out)
		if out.Cleanup != nil && out.Cleanup.Deleted {
			p.keys.deleted++
			break
		}
		p.keys.kept++
		why := "the execution ended without deleting it"
		if out.Cleanup != nil && out.Cleanup.Reason != "" {
			why = out.Cleanup.Reason
		}
		p.clearBar()
		fmt.Fprintf(p.w, "%s  %s: old key %s kept: %s\n", clock(e.Time), who(e), out.Item.OldKey.ID, strings.TrimPrefix(why, "not deleted: "))
	case "ExecutionFailed", "ExecutionAborted", "ExecutionTimedOut":
		p.keys.failed++
		p.clearBar()
		fmt.Fprintf(p.w, "%s  %s: key execution %s FAILED: %s %s\n", clock(e.Time), who(e), e.Execution, e.Error, e.Cause)
	default:
		return
	}
	p.keyLine(e.Time)
}

// keyLine prints the key executions' counts: on a terminal in place, else
// when they all ended, or at most every 10 seconds.
func (p *progress) keyLine(t time.Time) {
	k := p.keys
	line := fmt.Sprintf("%s  key executions: %d started, %d in their grace period or adoption window, %d old %s deleted, %d kept, %d failed",
		clock(t), k.started, k.running(), k.deleted, plural(k.deleted, "key", "keys"), k.kept, k.failed)
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K"+line)
		return
	}
	if k.running() == 0 || time.Since(p.lastKey) > 10*time.Second {
		p.lastKey = time.Now()
		fmt.Fprintln(p.w, line)
	}
}

// reason is a failure's error and cause, shortened to one line.
func reason(f local.Event) string {
	if f.Error == "" {
		return "(no reason recorded)"
	}
	c := strings.Join(strings.Fields(f.Cause), " ")
	if len(c) > 160 {
		c = c[:157] + "..."
	}
	if c == "" || c == f.Error {
		return f.Error
	}
	return f.Error + ": " + c
}

func (p *progress) clearBar() {
	if p.tty {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// bar draws the users' progress: redrawn in place on a terminal;
// otherwise a line at the end, half-way for ten users or more, and every
// 30 s of a long map.
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
	half := func(n int) int { return n * 2 / total }
	midway := total >= 10 && half(p.done) != half(p.done-1) // a few users: the end alone
	if force || p.done == total || midway || time.Since(p.lastBar) > 30*time.Second {
		p.lastBar = time.Now()
		fmt.Fprintln(p.w, line)
	}
}

func clock(t time.Time) string { return t.Local().Format("15:04:05") }
