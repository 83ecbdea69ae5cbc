package local

import (
	"encoding/json"
	"fmt"
	"strings"
)

// DashboardMetric is one metric a dashboard widget graphs.
type DashboardMetric struct {
	Widget     string            // the widget's title
	Namespace  string            // KeyRotor, AWS/States...
	Name       string            // the metric name
	Dimensions map[string]string // resolved values
}

// DashboardMetrics lists the metrics of every widget of the template's
// dashboards (AWS::CloudWatch::Dashboard), with r resolving the body; an
// alarm widget's metric is its alarm's (the template's
// AWS::CloudWatch::Alarm whose ARN the widget names, r.GetAtt(id, "Arn")).
func (t *Template) DashboardMetrics(r Resolver) ([]DashboardMetric, error) {
	alarms := map[string]string{} // resolved ARN -> logical id
	for _, id := range t.OfType("AWS::CloudWatch::Alarm") {
		if arn, ok := r.GetAtt(id, "Arn"); ok {
			alarms[arn] = id
		}
	}
	var out []DashboardMetric
	for _, id := range t.OfType("AWS::CloudWatch::Dashboard") {
		var p struct{ DashboardBody any }
		if err := json.Unmarshal(t.Resources[id].Properties, &p); err != nil {
			return nil, err
		}
		body, err := r.Resolve(p.DashboardBody)
		if err != nil {
			return nil, fmt.Errorf("dashboard %s: %w", id, err)
		}
		var b struct {
			Widgets []struct {
				Properties struct {
					Title       string  `json:"title"`
					Metrics     [][]any `json:"metrics"`
					Annotations struct {
						Alarms []string `json:"alarms"`
					} `json:"annotations"`
				} `json:"properties"`
			} `json:"widgets"`
		}
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			return nil, fmt.Errorf("dashboard %s body: %w", id, err)
		}
		for _, w := range b.Widgets {
			title := w.Properties.Title
			for _, m := range w.Properties.Metrics {
				dm := DashboardMetric{Widget: title, Dimensions: map[string]string{}}
				var strs []string
				for _, x := range m {
					if s, ok := x.(string); ok {
						strs = append(strs, s)
					}
				}
				if len(strs) < 2 {
					return nil, fmt.Errorf("dashboard %s widget %q: metric %v has no namespace and name", id, title, m)
				}
				dm.Namespace, dm.Name = strs[0], strs[1]
				for i := 2; i+1 < len(strs); i += 2 {
					dm.Dimensions[strs[i]] = strs[i+1]
				}
				out = append(out, dm)
			}
			for _, arn := range w.Properties.Annotations.Alarms {
				aid, ok := alarms[arn]
				if !ok {
					return nil, fmt.Errorf("dashboard %s widget %q: alarm %s is not in the template", id, title, arn)
				}
				ms, err := t.alarmMetrics(aid, r)
				if err != nil {
					return nil, err
				}
				for _, m := range ms {
					m.Widget = title
					out = append(out, m)
				}
			}
		}
	}
	return out, nil
}

// alarmMetrics returns the metric of an alarm (MetricName, or its one
// MetricStat).
func (t *Template) alarmMetrics(id string, r Resolver) ([]DashboardMetric, error) {
	var p struct {
		Namespace, MetricName string
		Dimensions            []struct{ Name, Value any }
		Metrics               []struct {
			MetricStat *struct {
				Metric struct {
					Namespace, MetricName string
					Dimensions            []struct{ Name, Value any }
				}
			}
		}
	}
	if err := json.Unmarshal(t.Resources[id].Properties, &p); err != nil {
		return nil, err
	}
	dims := func(ds []struct{ Name, Value any }) (map[string]string, error) {
		out := map[string]string{}
		for _, d := range ds {
			n, err := r.Resolve(d.Name)
			if err != nil {
				return nil, err
			}
			v, err := r.Resolve(d.Value)
			if err != nil {
				return nil, err
			}
			out[n] = v
		}
		return out, nil
	}
	var out []DashboardMetric
	if p.MetricName != "" {
		d, err := dims(p.Dimensions)
		if err != nil {
			return nil, err
		}
		out = append(out, DashboardMetric{Namespace: p.Namespace, Name: p.MetricName, Dimensions: d})
	}
	for _, m := range p.Metrics {
		if m.MetricStat == nil {
			continue
		}
		d, err := dims(m.MetricStat.Metric.Dimensions)
		if err != nil {
			return nil, err
		}
		out = append(out, DashboardMetric{Namespace: m.MetricStat.Metric.Namespace, Name: m.MetricStat.Metric.MetricName, Dimensions: d})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("alarm %s has no metric", id)
	}
	return out, nil
}

// String names the metric like the console: namespace, name, dimensions.
func (m DashboardMetric) String() string {
	var dims []string
	for k, v := range m.Dimensions {
		dims = append(dims, k+"="+v)
	}
	return m.Namespace + " " + m.Name + " {" + strings.Join(dims, ",") + "}"
}
