// Package metrics writes keyrotor's metrics as CloudWatch embedded metric
// format (EMF) log lines: one JSON object per line on a function's
// standard output, from which CloudWatch Logs extracts the metrics (no
// cloudwatch:PutMetricData permission, no call on the step's path).
// Specification:
// https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html
//
// The metric names are declared here once: the functions emit them, the
// stack's dashboard and alarm (infra/dashboard.go) graph them, and
// `keyrotor status` prints the same figures.
package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Namespace is the CloudWatch namespace of keyrotor's metrics.
const Namespace = "KeyRotor"

// Dimension is the one dimension every metric carries (its value is
// Service): a dimension set that is never empty, so every metric is
// addressed the same way by the dashboard and the alarm.
const (
	Dimension = "Service"
	Service   = "keyrotor"
)

// The metrics. Gauges (the state of the account when find ran) and counts
// of events (a mail refused, a switch-over); events are emitted as 0 or 1 at
// every decision, so their graphs have no gaps and a Sum counts them.
const (
	// find, on every run that is not a dry run: the Active access keys by
	// age band (shared/audit.Band: fresh under 90 days, aging 90 to 365,
	// old over 365), and the age of the oldest Active key keyrotor is to
	// rotate (not exempt, not held by a person).
	KeysFresh        = "KeysFresh"
	KeysAging        = "KeysAging"
	KeysOld          = "KeysOld"
	OldestKeyAgeDays = "OldestKeyAgeDays"
	// find: rotations by state, from the rotation records.
	RotationsInFlight  = "RotationsInFlight"  // started, creating, created, stored, notified
	RotationsAdopting  = "RotationsAdopting"  // in their adoption window
	RotationsInGrace   = "RotationsInGrace"   // old key Inactive, waiting to be deleted
	RotationsHeld      = "RotationsHeld"      // a person's hold
	RotationsAttention = "RotationsAttention" // a condition only a person can fix
	// notify and check-adoption: a mail (notice or reminder) SES or SNS
	// refused.
	MailsRefused = "MailsRefused"
	// check-adoption: how an adoption window ended.
	SwitchOverEvidence = "SwitchOverEvidence"
	SwitchOverDeadline = "SwitchOverDeadline"
	SwitchOverPerson   = "SwitchOverPerson"
	// summarize: the run's results.
	RunRotated = "RunRotated"
	RunRetired = "RunRetired"
	RunFailed  = "RunFailed"
	RunWaiting = "RunWaiting"
)

// Units (EMF accepts CloudWatch's unit names; days have none).
const (
	Count = "Count"
	None  = "None"
)

// Units of the metrics that are not counts.
var units = map[string]string{OldestKeyAgeDays: None}

// Unit is the unit a metric is emitted with.
func Unit(name string) string {
	if u, ok := units[name]; ok {
		return u
	}
	return Count
}

// All lists every metric, in the order above.
var All = []string{KeysFresh, KeysAging, KeysOld, OldestKeyAgeDays,
	RotationsInFlight, RotationsAdopting, RotationsInGrace, RotationsHeld, RotationsAttention,
	MailsRefused, SwitchOverEvidence, SwitchOverDeadline, SwitchOverPerson,
	RunRotated, RunRetired, RunFailed, RunWaiting}

// Emitter writes EMF lines. A nil *Emitter emits nothing, so steps built
// without one (tests) need no check.
type Emitter struct {
	W io.Writer
	// Function names the emitting function in each line (a property, not
	// a dimension: it does not split the metrics).
	Function string
	Now      func() time.Time
	mu       sync.Mutex
}

// New returns an emitter writing to w for function.
func New(w io.Writer, function string) *Emitter {
	return &Emitter{W: w, Function: function}
}

// Line is one EMF document.
type Line struct {
	AWS struct {
		Timestamp         int64       `json:"Timestamp"`
		CloudWatchMetrics []Directive `json:"CloudWatchMetrics"`
	} `json:"_aws"`
}

// Directive is an EMF MetricDirective.
type Directive struct {
	Namespace  string       `json:"Namespace"`
	Dimensions [][]string   `json:"Dimensions"`
	Metrics    []Definition `json:"Metrics"`
}

// Definition is an EMF MetricDefinition.
type Definition struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// Encode returns the EMF document of values (one line, no newline):
// the metadata, the dimension, the function and each value as a member of
// the root, as the specification requires.
func Encode(at time.Time, function string, values map[string]float64) ([]byte, error) {
	if len(values) == 0 {
		return nil, fmt.Errorf("emf: no values")
	}
	names := make([]string, 0, len(values))
	for n := range values {
		names = append(names, n)
	}
	sort.Strings(names)
	d := Directive{Namespace: Namespace, Dimensions: [][]string{{Dimension}}}
	root := map[string]any{Dimension: Service}
	if function != "" {
		root["function"] = function
	}
	for _, n := range names {
		if _, reserved := root[n]; reserved || n == "_aws" {
			return nil, fmt.Errorf("emf: metric name %q is reserved", n)
		}
		d.Metrics = append(d.Metrics, Definition{Name: n, Unit: Unit(n)})
		root[n] = values[n]
	}
	var meta Line
	meta.AWS.Timestamp = at.UnixMilli()
	meta.AWS.CloudWatchMetrics = []Directive{d}
	root["_aws"] = meta.AWS
	return json.Marshal(root)
}

// Emit writes one EMF line with values. Errors are returned for tests; a
// step ignores them (a metric never fails a rotation).
func (e *Emitter) Emit(values map[string]float64) error {
	if e == nil || e.W == nil {
		return nil
	}
	now := time.Now
	if e.Now != nil {
		now = e.Now
	}
	b, err := Encode(now(), e.Function, values)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	_, err = e.W.Write(append(b, '\n'))
	return err
}

// Parse reads the EMF lines of a log (other lines are skipped) and returns
// the values of each metric in the keyrotor namespace, in order.
func Parse(log []byte) map[string][]float64 {
	out := map[string][]float64{}
	for _, line := range splitLines(log) {
		var root map[string]json.RawMessage
		if json.Unmarshal(line, &root) != nil || root["_aws"] == nil {
			continue
		}
		var meta struct {
			CloudWatchMetrics []Directive
		}
		if json.Unmarshal(root["_aws"], &meta) != nil {
			continue
		}
		for _, d := range meta.CloudWatchMetrics {
			if d.Namespace != Namespace {
				continue
			}
			for _, m := range d.Metrics {
				var v float64
				if json.Unmarshal(root[m.Name], &v) == nil {
					out[m.Name] = append(out[m.Name], v)
				}
			}
		}
	}
	return out
}

func splitLines(b []byte) [][]byte {
	var lines [][]byte
	start := 0
	for i, c := range b {
		if c == '\n' {
			lines = append(lines, b[start:i])
			start = i + 1
		}
	}
	if start < len(b) {
		lines = append(lines, b[start:])
	}
	return lines
}
