package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is everything one `make bench` measured.
type Report struct {
	Date      time.Time    `json:"date"`
	Cores     int          `json:"cores"`
	GoVersion string       `json:"goVersion"`
	Discovery []*Discovery `json:"discovery"`
	Run       *RunResult   `json:"run,omitempty"`
	// RunPerExecution is Run again with an engine process per key
	// execution, as local runs were: the side-by-side figure.
	RunPerExecution *RunResult      `json:"runEnginePerExecution,omitempty"`
	Throttled       *RunResult      `json:"throttledRun,omitempty"`
	Quota           *QuotaResult    `json:"quotaRun,omitempty"`
	Adoption        *AdoptionResult `json:"adoptionRun,omitempty"`
	Org             *OrgResult      `json:"organization,omitempty"`
	// Delivery is DeliverNewKey after create-and-store, without faults and
	// with the GitHub destination failing, at each concurrency.
	Delivery []*DeliveryResult `json:"delivery,omitempty"`
	Binaries []Binary          `json:"binaries,omitempty"`
}

// RunResult is a full local run's measurement.
type RunResult struct {
	DueUsers int           `json:"dueUsers"`
	Rotated  int           `json:"rotated"`
	Wall     time.Duration `json:"wallNs"` // the daily execution
	// Total is the whole local run: the daily execution and every grace
	// execution it started (a run returns when all have ended).
	Total             time.Duration  `json:"totalNs"`
	Grace             int            `json:"graceExecutions"`
	GraceFailed       int            `json:"graceFailed,omitempty"`
	PerExecution      bool           `json:"enginePerExecution,omitempty"`
	Invocations       map[string]int `json:"invocations"`
	Transitions       int            `json:"stateTransitions"`
	PerKeyInvocations float64        `json:"invocationsPerKey"`
	PerKeyTransitions float64        `json:"transitionsPerKey"`
	IdleUserTransit   int            `json:"transitionsForUserWithNothingDue"`
	ThrottledCalls    int            `json:"throttledCalls,omitempty"`
	Retries           int            `json:"retries,omitempty"`
	Status            string         `json:"status"`
}

// Binary is one function binary's measurement.
type Binary struct {
	Name      string        `json:"name"`
	SizeBytes int64         `json:"sizeBytes"`
	ColdStart time.Duration `json:"coldStartNs"`
	PeakRSSKB int64         `json:"peakRssKiB"`
}

// NewReport starts a report for this machine.
func NewReport() *Report {
	return &Report{Date: time.Now().UTC(), Cores: runtime.NumCPU(), GoVersion: runtime.Version()}
}

// Save writes the report as JSON under dir.
func (r *Report) Save(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "bench-"+r.Date.Format("20060102T150405Z")+".json")
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		return "", err
	}
	return path, os.WriteFile(filepath.Join(dir, "latest.json"), b, 0o644)
}

func check(ok bool) string {
	if ok {
		return "ok"
	}
	return "MISSED"
}

// Print writes the report as one readable table with the targets beside.
func (r *Report) Print(w io.Writer) {
	fmt.Fprintf(w, "keyrotor benchmark, %s, %d cores, %s, against moto_server on loopback\n\n", r.Date.Format("2006-01-02 15:04 MST"), r.Cores, r.GoVersion)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tvalue\ttarget\tresult")
	for _, d := range r.Discovery {
		p := fmt.Sprintf("discovery %d users (%d due)", d.Users, d.Due)
		var ops []string
		for _, op := range SortedOps(d.Calls) {
			ops = append(ops, fmt.Sprintf("%s=%d", op, d.Calls[op]))
		}
		fmt.Fprintf(tw, "%s: IAM calls\t%d (%s)\t<= %d\t%s\n", p, d.Total, strings.Join(ops, " "), d.Target, check(d.Total <= d.Target))
		fmt.Fprintf(tw, "%s: wall time\t%v\t< 30s (10,000 users)\t%s\n", p, d.Wall.Round(time.Millisecond), check(d.Users < 10000 || d.Wall < 30*time.Second))
		fmt.Fprintf(tw, "%s: keyrotor CPU\t%v\t< 2s (10,000 users)\t%s\n", p, d.CPU.Round(time.Millisecond), check(d.Users < 10000 || d.CPU < 2*time.Second))
		if a := d.Audit; a != nil {
			var ops []string
			for _, op := range SortedOps(a.Calls) {
				ops = append(ops, fmt.Sprintf("%s=%d", op, a.Calls[op]))
			}
			fmt.Fprintf(tw, "%s: audit (dry run) IAM calls\t%d (%s), %v\t<= 3 + due + users = %d\t%s\n", p, a.Total, strings.Join(ops, " "), a.Wall.Round(time.Millisecond), a.Target, check(a.Total <= a.Target))
		}
		if b := d.Baseline; b != nil {
			fmt.Fprintf(tw, "%s: list-every-user script\t%d calls, %v\t(comparison)\t%.0fx the calls\n", p, b.Calls, b.Wall.Round(time.Millisecond), float64(b.Calls)/float64(max(d.Total, 1)))
		}
	}
	for _, x := range []struct {
		name string
		r    *RunResult
	}{{"local run", r.Run}, {"local run, an engine process per key execution (before)", r.RunPerExecution}, {"local run, 30% IAM throttling", r.Throttled}} {
		if x.r == nil {
			continue
		}
		p := fmt.Sprintf("%s, %d due users", x.name, x.r.DueUsers)
		fmt.Fprintf(tw, "%s: status\t%s, %d rotated\tall rotated\t%s\n", p, x.r.Status, x.r.Rotated, check(x.r.Status == "SUCCEEDED" && x.r.Rotated == x.r.DueUsers))
		fmt.Fprintf(tw, "%s: wall time\t%v\t(measure)\t\n", p, x.r.Wall.Round(time.Millisecond))
		if x.r.Total > 0 {
			fmt.Fprintf(tw, "%s: whole run, %d grace executions (%d failed)\t%v\t(measure)\t\n", p, x.r.Grace, x.r.GraceFailed, x.r.Total.Round(time.Millisecond))
		}
		fmt.Fprintf(tw, "%s: Lambda invocations per key\t%.2f\t(measure)\t\n", p, x.r.PerKeyInvocations)
		fmt.Fprintf(tw, "%s: state transitions per key\t%.2f\t<= 15\t%s\n", p, x.r.PerKeyTransitions, check(x.r.PerKeyTransitions <= 15))
		fmt.Fprintf(tw, "%s: transitions for a user with nothing due\t%d\t0\t%s\n", p, x.r.IdleUserTransit, check(x.r.IdleUserTransit == 0))
		if x.r.ThrottledCalls > 0 {
			fmt.Fprintf(tw, "%s: throttled calls / state retries\t%d / %d\t(measure)\t\n", p, x.r.ThrottledCalls, x.r.Retries)
		}
	}
	if q := r.Quota; q != nil {
		p := fmt.Sprintf("quota run, %d due keys, reserved concurrency %d, %.0f%% IAM throttling", q.DueUsers, q.Reserved, q.ThrottleRate*100)
		fmt.Fprintf(tw, "%s: status\t%s, %d rotated, %d verified in IAM and Secrets Manager\tall in one execution\t%s\n", p, q.Status, q.Rotated, q.Verified,
			check(q.Status == "SUCCEEDED" && q.Rotated == q.DueUsers && q.Verified == q.DueUsers))
		synth := "reused"
		if q.Synth > 0 {
			synth = q.Synth.Round(100 * time.Millisecond).String()
		}
		fmt.Fprintf(tw, "%s: seeding / synth / verify\t%v / %s / %v\t(measure, not in wall time)\t\n", p, q.Seed.Round(100*time.Millisecond), synth, q.Verify.Round(100*time.Millisecond))
		fmt.Fprintf(tw, "%s: wall time (daily execution; %d grace executions deferred)\t%v\t(measure)\t\n", p, q.GraceDeferred, q.Wall.Round(time.Second))
		var lt []string
		for _, fn := range SortedOps(q.LambdaThrottles) {
			lt = append(lt, fmt.Sprintf("%s=%d", fn, q.LambdaThrottles[fn]))
		}
		fmt.Fprintf(tw, "%s: Lambda throttles absorbed (429)\t%d (%s)\t> 0, none fatal\t%s\n", p, q.LambdaThrottleTotal(), strings.Join(lt, " "), check(q.LambdaThrottleTotal() > 0 && q.Status == "SUCCEEDED"))
		fmt.Fprintf(tw, "%s: IAM throttles injected / state retries\t%d / %d\t(measure)\t\n", p, q.IAMThrottles, q.Retries)
		fmt.Fprintf(tw, "%s: state transitions per key\t%.2f\t<= 15\t%s\n", p, q.PerKeyTrans, check(q.PerKeyTrans <= 15))
		fmt.Fprintf(tw, "%s: largest state payload\t%.1f KiB (%s)\t<= 256 KiB\t%s\n", p, float64(q.Largest.Bytes)/1024, q.Largest.Where, check(q.Largest.Bytes <= StatePayloadLimit))
		fmt.Fprintf(tw, "%s: daily execution's own history events\t%d (of %d local events; children are their own executions)\t(measure)\t\n", p, q.ParentEvents, q.HistoryEvents)
		if q.RetryInterval > 0 {
			fmt.Fprintf(tw, "%s: retry interval\t%v for every Retry (the definition's intervals, backoff and jitter not used)\t\t\n", p, q.RetryInterval)
		} else {
			fmt.Fprintf(tw, "%s: retry interval\tthe definition's (backoff and jitter as deployed)\t\t\n", p)
		}
	}
	if a := r.Adoption; a != nil {
		a.print(tw)
	}
	if o := r.Org; o != nil {
		o.print(tw)
	}
	printDelivery(tw, r.Delivery)
	for _, b := range r.Binaries {
		fmt.Fprintf(tw, "binary %s: size\t%.1f MB\t<= 10 MB\t%s\n", b.Name, float64(b.SizeBytes)/1e6, check(b.SizeBytes <= 10e6))
		fmt.Fprintf(tw, "binary %s: cold start\t%v\t<= 50ms\t%s\n", b.Name, b.ColdStart.Round(100*time.Microsecond), check(b.ColdStart <= 50*time.Millisecond))
		fmt.Fprintf(tw, "binary %s: peak RSS\t%.1f MB\t<= 40 MB\t%s\n", b.Name, float64(b.PeakRSSKB)/1024, check(b.PeakRSSKB <= 40*1024))
	}
	tw.Flush()
}

// print writes the adoption-window rows of the report.
func (a *AdoptionResult) print(w io.Writer) {
	p := fmt.Sprintf("adoption window %v, check every %v, %d due keys (%d switch after %d checks)", a.Window, a.Check, a.Users, a.Switchers, a.SwitchAfter)
	fmt.Fprintf(w, "%s: status\t%s, %d adopting, %d key executions (%d failed), %d verified in IAM\tall switched over and deleted\t%s\n", p, a.Status, a.Adopting, a.KeyExecutions, a.KeyFailed, a.Verified,
		check(a.Status == "SUCCEEDED" && a.Adopting == a.Users && a.KeyExecutions == a.Users && a.KeyFailed == 0 && a.Verified == a.Users))
	fmt.Fprintf(w, "%s: switch-overs on evidence / deadline\t%d / %d (%d other)\t%d / %d (the pipelines)\t%s\n", p, a.Evidence, a.Deadline, a.Other, a.Switchers, a.Users-a.Switchers,
		check(a.Evidence == a.Switchers && a.Deadline == a.Users-a.Switchers && a.Other == 0 && !a.hasProblem("do not match the pipelines")))
	fmt.Fprintf(w, "%s: state transitions per check\t%s over %d checks (%s)\t3\t%s\n", p, a.TransPerCheck, a.Intervals, strings.Join(a.StatesInCheck, "; "), check(a.TransPerCheck.N > 0 && a.TransPerCheck.Min == 3 && a.TransPerCheck.Max == 3))
	fmt.Fprintf(w, "%s: Lambda invocations per check\t%s (service: check-adoption=%d, histories: %d CheckAdoption attempts, %d of them retries; other Lambda between checks: %d)\t1, none between checks\t%s\n", p,
		a.LambdaPerCheck, a.Invocations["check-adoption"], a.CheckAttempts, a.CheckRetries, a.OtherLambdaInChecks,
		check(a.LambdaPerCheck.N > 0 && a.LambdaPerCheck.Min == 1 && a.LambdaPerCheck.Max == 1 && a.Invocations["check-adoption"] == a.CheckAttempts && a.OtherLambdaInChecks == 0))
	var calls []string
	total := 0.0
	for _, op := range sortedKeys(a.CallsPerCheck) {
		calls = append(calls, fmt.Sprintf("%s=%s", op, trimFloat(a.CallsPerCheck[op])))
		total += a.CallsPerCheck[op]
	}
	fmt.Fprintf(w, "%s: AWS calls per check (check-adoption)\t%s (%s)\t(measure)\t\n", p, trimFloat(total), strings.Join(calls, " "))
	fmt.Fprintf(w, "%s: history events per check\t%s local (Step Functions, estimated: %s)\t(measure)\t\n", p, a.EventsPerCheck, a.SFNEventsCheck)
	for _, x := range []struct {
		how string
		k   KeyExecStats
	}{{"evidence", a.EvidenceKey}, {"deadline", a.DeadlineKey}} {
		fmt.Fprintf(w, "%s: key execution, %s switch-over\t%d runs: %s transitions, %s checks, %s Lambda invocations, %s local events (Step Functions, est.: %s), %v median\t(measure)\t\n",
			p, x.how, x.k.Count, x.k.Transitions, x.k.Checks, x.k.Lambda, x.k.LocalEvents, x.k.SFNEventsEst, x.k.Duration.Median.Round(100*time.Millisecond))
	}
	fmt.Fprintf(w, "%s: key execution's transitions besides 3 per check\t%s\t(measure; the same for any window)\t\n", p, a.Overhead)
	if a.ChecksAfterSwitch.N > 0 {
		fmt.Fprintf(w, "%s: checks after the pipeline's switch, to the evidence switch-over\t%s\t2 (the evidence rule)\t\n", p, a.ChecksAfterSwitch)
	}
	fmt.Fprintf(w, "%s: observed check interval / check start lag / notice to first check\t%v median, %v max / %v median, %v max / %v median, %v max\t(measure: the local harness)\t\n", p,
		a.CheckInterval.Median.Round(time.Millisecond), a.CheckInterval.Max.Round(time.Millisecond), a.CheckLag.Median.Round(time.Millisecond), a.CheckLag.Max.Round(time.Millisecond),
		a.FirstCheck.Median.Round(time.Millisecond), a.FirstCheck.Max.Round(time.Millisecond))
	fmt.Fprintf(w, "%s: largest state payload in the key executions\t%.1f KiB (%s; daily execution: %.1f KiB)\t<= 256 KiB\t%s\n", p, float64(a.Largest.Bytes)/1024, a.Largest.Where, float64(a.DailyLargest.Bytes)/1024, check(a.Largest.Bytes <= StatePayloadLimit))
	fmt.Fprintf(w, "%s: owner mails per rotation, evidence / deadline\t%s / %s\t<= %d (notice + %d reminders)\t%s\n", p, a.MailsEvidence, a.MailsDeadline, a.MaxMails, a.MaxMails-1,
		check(a.MailsEvidence.Max <= float64(a.MaxMails) && a.MailsDeadline.Max <= float64(a.MaxMails) && !a.hasProblem("owner mails")))
	fmt.Fprintf(w, "%s: wall time (seeding %v not in it)\t%v (daily execution %v)\t(measure)\t\n", p, a.Seed.Round(100*time.Millisecond), a.Wall.Round(100*time.Millisecond), a.Daily.Round(100*time.Millisecond))
}

func (a *AdoptionResult) hasProblem(s string) bool {
	for _, p := range a.Problems {
		if strings.Contains(p, s) {
			return true
		}
	}
	return false
}

func sortedKeys(m map[string]float64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
