package main

import (
	"encoding/json"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/metrics"
)

// dashboardMetrics lists the metrics of the synthesized dashboard by
// widget title, with Ref X resolved to "X" and GetAtt X.Arn to "X.Arn".
func dashboardMetrics(t *testing.T, s *synthesized) []local.DashboardMetric {
	t.Helper()
	var lt local.Template
	if err := json.Unmarshal(s.raw, &lt); err != nil {
		t.Fatal(err)
	}
	ms, err := lt.DashboardMetrics(local.Resolver{
		Ref:    func(id string) (string, bool) { return id, true },
		GetAtt: func(id, attr string) (string, bool) { return id + "." + attr, true },
	})
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestDashboard: the stack has one dashboard; every metric keyrotor emits
// is graphed (with the dimension the functions emit), and the failed
// executions of both state machines are too.
func TestDashboard(t *testing.T) {
	s := get(t)
	if n := len(resources(t, s, "AWS::CloudWatch::Dashboard")); n != 1 {
		t.Fatalf("%d dashboards; want 1", n)
	}
	ms := dashboardMetrics(t, s)
	var own []string
	failedOf := map[string]bool{}
	for _, m := range ms {
		switch m.Namespace {
		case metrics.Namespace:
			if !reflect.DeepEqual(m.Dimensions, map[string]string{metrics.Dimension: metrics.Service}) {
				t.Errorf("widget %q: %s; want the dimension %s=%s the functions emit", m.Widget, m, metrics.Dimension, metrics.Service)
			}
			if !slices.Contains(own, m.Name) {
				own = append(own, m.Name)
			}
		case "AWS/States":
			if m.Name == "ExecutionsFailed" {
				failedOf[m.Dimensions["StateMachineArn"]] = true
			}
		default:
			t.Errorf("widget %q graphs %s", m.Widget, m)
		}
	}
	want := slices.Clone(metrics.All)
	sort.Strings(own)
	sort.Strings(want)
	if !reflect.DeepEqual(own, want) {
		t.Errorf("the dashboard graphs %v; want every metric the functions emit: %v", own, want)
	}
	var machines []string
	for arn := range failedOf {
		machines = append(machines, arn)
	}
	sort.Strings(machines)
	if len(machines) != 2 || !strings.HasPrefix(machines[0], "GraceStateMachine") || !strings.HasPrefix(machines[1], "StateMachine") {
		t.Errorf("ExecutionsFailed graphed for %v; want both state machines", machines)
	}
	out := outputs(t, s)
	if !strings.HasPrefix(resolve(t, out["DashboardName"]), "Dashboard") {
		t.Errorf("output DashboardName = %v; want the dashboard", out["DashboardName"])
	}
}

// TestOverdueKeyAlarm: the alarm on the oldest key to rotate fires past
// its cycle, the adoption window and the grace period, and tells the
// admins' topic, like the failed-execution alarms.
func TestOverdueKeyAlarm(t *testing.T) {
	tests := []struct {
		name string
		s    func(*testing.T) *synthesized
		want float64
	}{
		{name: "defaults: 90 + 0 + 7", s: get, want: 97},
		{name: "adoption window and grace", s: func(t *testing.T) *synthesized {
			return synth(t, withCtx(defaultCtx, "maxKeyAgeDays", "60", "adoptionDays", "14", "graceDays", "3"))
		}, want: 77},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.s(t)
			var alarm *resource
			for id, r := range resources(t, s, "AWS::CloudWatch::Alarm") {
				if strings.HasPrefix(id, "OverdueKeyAlarm") {
					alarm = &r
				}
			}
			if alarm == nil {
				t.Fatal("no OverdueKeyAlarm")
			}
			p := alarm.Properties
			if p["Threshold"] != tc.want || p["ComparisonOperator"] != "GreaterThanThreshold" {
				t.Errorf("threshold %v %v; want GreaterThanThreshold %v", p["ComparisonOperator"], p["Threshold"], tc.want)
			}
			stat := p["Metrics"].([]any)[0].(map[string]any)["MetricStat"].(map[string]any)
			m := stat["Metric"].(map[string]any)
			if m["Namespace"] != metrics.Namespace || m["MetricName"] != metrics.OldestKeyAgeDays || stat["Stat"] != "Maximum" {
				t.Errorf("alarm metric %v (%v); want the Maximum of %s/%s", m, stat["Stat"], metrics.Namespace, metrics.OldestKeyAgeDays)
			}
			actions, _ := p["AlarmActions"].([]any)
			if len(actions) != 1 || !strings.HasPrefix(resolve(t, p["AlarmActions"].([]any)[0]), "AdminTopic") {
				t.Errorf("alarm actions %v; want the admins' topic", p["AlarmActions"])
			}
		})
	}
}

func outputs(t *testing.T, s *synthesized) map[string]any {
	t.Helper()
	var tmpl struct {
		Outputs map[string]struct{ Value any }
	}
	if err := json.Unmarshal(s.raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	for k, v := range tmpl.Outputs {
		out[k] = v.Value
	}
	return out
}
