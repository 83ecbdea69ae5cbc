package main

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	sfn "github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/metrics"
)

// dashboardName names the dashboard, followed by "-" and the region:
// dashboard names are unique in the account, not in a region.
const dashboardName = "KeyRotor"

// metric is one of keyrotor's own metrics (shared/metrics: the functions
// emit them as embedded metric format log lines).
func metric(name, statistic string, period awscdk.Duration) awscloudwatch.Metric {
	return awscloudwatch.NewMetric(&awscloudwatch.MetricProps{
		Namespace:     jsii.String(metrics.Namespace),
		MetricName:    jsii.String(name),
		DimensionsMap: &map[string]*string{metrics.Dimension: jsii.String(metrics.Service)},
		Statistic:     jsii.String(statistic),
		Period:        period,
		Label:         jsii.String(name),
	})
}

// overdueDays is the age past which a key keyrotor is to rotate is overdue:
// its cycle (maxKeyAgeDays), the adoption window (adoptionDays, 0 by
// default) and the grace period (graceDays). A key rotated on time is
// Inactive, then deleted, by then.
func overdueDays(cfg config.Config) int {
	return cfg.MaxKeyAgeDays + int(cfg.AdoptionWindow.Hours()/24) + int(cfg.GracePeriod.Hours()/24)
}

// dashboard is the picture an operator opens: keys by age band, rotations
// by state, the oldest key to rotate (with its alarm), failed executions
// of both state machines, mails refused, switch-overs and the runs'
// results. The alarm tells the admins' topic when the oldest key to rotate
// is older than overdueDays.
func dashboard(stack awscdk.Stack, cfg config.Config, sm, grace sfn.StateMachine, topic awssns.ITopic) awscloudwatch.Dashboard {
	day := awscdk.Duration_Days(jsii.Number(1))
	hour := awscdk.Duration_Hours(jsii.Number(1))
	overdue := overdueDays(cfg)
	alarm := awscloudwatch.NewAlarm(stack, jsii.String("OverdueKeyAlarm"), &awscloudwatch.AlarmProps{
		AlarmDescription: jsii.String(fmt.Sprintf("An Active access key keyrotor is to rotate is older than %d days (maxKeyAgeDays %d + adoptionDays + graceDays): "+
			"its rotation is stuck. Run `keyrotor status` to see what needs attention.", overdue, cfg.MaxKeyAgeDays)),
		Metric:             metric(metrics.OldestKeyAgeDays, "Maximum", day),
		Threshold:          jsii.Number(float64(overdue)),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_THRESHOLD,
		// No data: no run emitted the figure (no schedule yet, or the run
		// failed: the failed-execution alarms tell that).
		TreatMissingData: awscloudwatch.TreatMissingData_MISSING,
	})
	alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))

	graph := func(title string, stacked bool, ms ...awscloudwatch.IMetric) awscloudwatch.IWidget {
		return awscloudwatch.NewGraphWidget(&awscloudwatch.GraphWidgetProps{
			Title: jsii.String(title), Left: &ms, Stacked: jsii.Bool(stacked), Width: jsii.Number(12), Height: jsii.Number(6),
		})
	}
	gauges := func(names ...string) []awscloudwatch.IMetric {
		var out []awscloudwatch.IMetric
		for _, n := range names {
			out = append(out, metric(n, "Maximum", hour))
		}
		return out
	}
	counts := func(names ...string) []awscloudwatch.IMetric {
		var out []awscloudwatch.IMetric
		for _, n := range names {
			out = append(out, metric(n, "Sum", day))
		}
		return out
	}
	failed := func(m sfn.StateMachine, label string) awscloudwatch.IMetric {
		return m.MetricFailed(&awscloudwatch.MetricOptions{Period: hour, Statistic: jsii.String("Sum"), Label: jsii.String(label)})
	}
	d := awscloudwatch.NewDashboard(stack, jsii.String("Dashboard"), &awscloudwatch.DashboardProps{
		DashboardName:   jsii.String(dashboardName + "-" + *stack.Region()),
		DefaultInterval: awscdk.Duration_Days(jsii.Number(14)),
	})
	d.AddWidgets(
		graph("Active access keys by age band (fresh < 90 days, aging 90-365, old > 365)", true, gauges(metrics.KeysFresh, metrics.KeysAging, metrics.KeysOld)...),
		graph("Rotations by state", false, gauges(metrics.RotationsInFlight, metrics.RotationsAdopting, metrics.RotationsInGrace, metrics.RotationsHeld, metrics.RotationsAttention)...),
	)
	d.AddWidgets(
		awscloudwatch.NewAlarmWidget(&awscloudwatch.AlarmWidgetProps{
			Title: jsii.String(fmt.Sprintf("Oldest key to rotate, in days (alarm over %d)", overdue)), Alarm: alarm, Width: jsii.Number(12), Height: jsii.Number(6),
		}),
		graph("Failed executions", false, failed(sm, "KeyRotor (daily)"), failed(grace, "KeyRotorGrace (per key)")),
	)
	d.AddWidgets(
		graph("Mails refused (owner notices and reminders)", false, counts(metrics.MailsRefused)...),
		graph("Switch-overs after an adoption window, by evidence / deadline / person", true, counts(metrics.SwitchOverEvidence, metrics.SwitchOverDeadline, metrics.SwitchOverPerson)...),
	)
	d.AddWidgets(
		graph("Each run's results", false, counts(metrics.RunRotated, metrics.RunRetired, metrics.RunFailed, metrics.RunWaiting)...),
	)
	return d
}
