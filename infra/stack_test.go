package main

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/shared/asl"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/settings"
)

var update = flag.Bool("update", false, "rewrite docs/workflow.mmd from the synthesized definition")

type synthesized struct {
	stack    awscdk.Stack
	template assertions.Template
	raw      []byte
	def      map[string]any
	defJSON  []byte
	grace    map[string]any // the grace-and-delete state machine
}

var (
	once    sync.Once
	base    *synthesized
	offOnce sync.Once
	off     *synthesized
)

// synth builds the stack from context, with placeholder function assets.
func synth(t *testing.T, ctx map[string]any) *synthesized {
	t.Helper()
	dir := t.TempDir()
	for _, f := range functions {
		os.MkdirAll(filepath.Join(dir, f.dir), 0o755)
		os.WriteFile(filepath.Join(dir, f.dir, "bootstrap"), []byte("placeholder"), 0o755)
	}
	s, err := settings.FromContext(func(k string) (any, bool) { v, ok := ctx[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	app := awscdk.NewApp(nil)
	stack := NewKeyRotorStack(app, "KeyRotor", &KeyRotorStackProps{Settings: s, AssetDir: dir})
	tmpl := assertions.Template_FromStack(stack, nil)
	raw, _ := json.Marshal(tmpl.ToJSON())
	var lt local.Template
	json.Unmarshal(raw, &lt)
	anyName := func(id string) (string, bool) { return "arn:aws:lambda:us-east-1:123456789012:function:" + id, true }
	defJSON, err := lt.Definition(local.Resolver{Ref: func(id string) (string, bool) { return id, true }, GetAtt: func(id, _ string) (string, bool) { return anyName(id) }})
	if err != nil {
		t.Fatal(err)
	}
	var def map[string]any
	json.Unmarshal(defJSON, &def)
	graceJSON, err := lt.DefinitionOf(local.Resolver{Ref: func(id string) (string, bool) { return id, true }, GetAtt: func(id, _ string) (string, bool) { return anyName(id) }}, local.GraceStateMachine)
	if err != nil {
		t.Fatal(err)
	}
	var grace map[string]any
	json.Unmarshal(graceJSON, &grace)
	return &synthesized{stack: stack, template: tmpl, raw: raw, def: def, defJSON: defJSON, grace: grace}
}

var defaultCtx = map[string]any{"senderAddress": "keyrotor@example.com", "adminEmails": "sec@example.com,ops@example.com", "fanOutConcurrency": "75", "exemptGroup": "breakglass"}

func get(t *testing.T) *synthesized {
	once.Do(func() { base = synth(t, defaultCtx) })
	if base == nil {
		t.Fatal("synthesis failed earlier")
	}
	return base
}

func states(def map[string]any) map[string]any { return def["States"].(map[string]any) }

func childStates(def map[string]any) map[string]any {
	m := states(def)["RotateEachUser"].(map[string]any)
	return m["ItemProcessor"].(map[string]any)["States"].(map[string]any)
}

func TestFunctions(t *testing.T) {
	s := get(t)
	s.template.ResourceCountIs(jsii.String("AWS::Lambda::Function"), jsii.Number(float64(len(functions))))
	for _, f := range functions {
		s.template.HasResourceProperties(jsii.String("AWS::Lambda::Function"), map[string]any{
			"Description":   "keyrotor: " + f.describe,
			"Runtime":       "provided.al2023",
			"Architectures": []any{"arm64"},
			"Handler":       "bootstrap",
			"MemorySize":    f.memory,
			"Timeout":       f.timeout,
			// Reserved concurrency is opt-in (lambdaConcurrency): see
			// TestReservedConcurrencyOptIn.
			"ReservedConcurrentExecutions": assertions.Match_Absent(),
			"LoggingConfig":                assertions.Match_ObjectLike(&map[string]any{"LogFormat": "JSON"}),
			"Environment": map[string]any{"Variables": assertions.Match_ObjectLike(&map[string]any{
				config.EnvMaxKeyAgeDays: "90", config.EnvUnusedDays: "45", config.EnvGracePeriod: "168h0m0s",
				config.EnvSecretPrefix: "iam-access-keys/", config.EnvSender: "keyrotor@example.com",
				config.EnvEmailTag: "email", config.EnvExemptTag: "keyrotor:exempt", config.EnvExemptGroup: "breakglass",
				config.EnvReportBucket: assertions.Match_AnyValue(), config.EnvAdminTopicARN: assertions.Match_AnyValue(),
				// Secrets are encrypted with the stack's customer-managed key.
				config.EnvKMSKeyID: map[string]any{"Fn::GetAtt": []any{assertions.Match_StringLikeRegexp(jsii.String("^Key[0-9A-F]+$")), "Arn"}},
			})},
		})
	}
}

func TestStateMachine(t *testing.T) {
	s := get(t)
	s.template.HasResourceProperties(jsii.String("AWS::StepFunctions::StateMachine"), map[string]any{
		"StateMachineType":     "STANDARD",
		"TracingConfiguration": map[string]any{"Enabled": true},
		"LoggingConfiguration": assertions.Match_ObjectLike(&map[string]any{"Level": "ALL"}),
	})
	top := states(s.def)
	var names []string
	for n := range top {
		names = append(names, n)
	}
	sort.Strings(names)
	want := []string{"AnyUserFailed", "DryRunComplete", "FindDueKeys", "IsDryRun", "RetryFailedUsers", "RotateEachUser", "RotationComplete", "SummarizeRun"}
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("top-level states = %v; want %v", names, want)
	}
	var child []string
	for n := range childStates(s.def) {
		child = append(child, n)
	}
	sort.Strings(child)
	// The day's execution ends at deactivation: no Wait in a child (a
	// failure is seen the same day); each key's grace period runs in its
	// own execution of the grace state machine, started once.
	wantChild := []string{"AdoptionWindowStarted", "CreateAndStoreNewKey", "DeactivateOldKey", "DeleteOldKey", "DeliverNewKey", "DeliveryIncomplete", "GraceOrDelete", "GracePeriodStarted", "NewKeyReady",
		"NoticeNotSent", "NoticeSent", "NotifyOwner", "ReplaceOrRetire", "RotationStopped", "StartAdoptionWindow", "StartGracePeriod"}
	if !reflect.DeepEqual(child, wantChild) {
		t.Fatalf("per-user states = %v; want %v", child, wantChild)
	}
	for n, st := range childStates(s.def) {
		if st.(map[string]any)["Type"] == "Wait" {
			t.Fatalf("child state %s waits: the grace period belongs to the grace state machine", n)
		}
	}
	if s.def["StartAt"] != "FindDueKeys" {
		t.Fatalf("StartAt = %v", s.def["StartAt"])
	}
	start := childStates(s.def)["StartGracePeriod"].(map[string]any)
	params := start["Parameters"].(map[string]any)
	if start["Resource"] != "arn:aws:states:::states:startExecution" || params["Name.$"] != "$.deactivation.graceExecution" {
		t.Fatalf("StartGracePeriod = %v; want a request-response StartExecution named by the deactivation", start)
	}
	caught := false
	for _, c := range start["Catch"].([]any) {
		for _, e := range c.(map[string]any)["ErrorEquals"].([]any) {
			caught = caught || e == "StepFunctions.ExecutionAlreadyExistsException"
		}
	}
	if !caught {
		t.Fatal("a second start of a key's grace execution must be a no-op (catch ExecutionAlreadyExists)")
	}
	// An adoption window runs in the key's own execution: the daily
	// child only starts it, and only CheckAdoption's verdict leads to
	// the deactivation there.
	win := childStates(s.def)["StartAdoptionWindow"].(map[string]any)
	if win["Resource"] != "arn:aws:states:::states:startExecution" || win["Parameters"].(map[string]any)["Name.$"] != "$.notice.adoption.execution" {
		t.Fatalf("StartAdoptionWindow = %v; want a request-response StartExecution named by notify's adoption", win)
	}
	choice := states(s.grace)[s.grace["StartAt"].(string)].(map[string]any)
	if choice["Type"] != "Choice" || choice["Default"] != "WaitForGracePeriod" || choice["Choices"].([]any)[0].(map[string]any)["Next"] != "CheckAdoption" {
		t.Fatalf("the key's execution starts at %v; want a Choice: the adoption window (CheckAdoption) or the grace Wait", choice)
	}
	loop := states(s.grace)["WaitForNextCheck"].(map[string]any)
	if loop["TimestampPath"] != "$.adoption.nextCheck" || loop["Next"] != "CheckAdoption" {
		t.Fatalf("the adoption window must wait in the state machine until the next check: %v", loop)
	}
	for n, st := range states(s.grace) {
		m := st.(map[string]any)
		if m["Type"] == "Choice" {
			for _, c := range m["Choices"].([]any) {
				if c.(map[string]any)["Next"] == "DeactivateAfterSwitchOver" && n != "SwitchOver" {
					t.Fatalf("%s leads to the deactivation; only the adoption check's verdict may", n)
				}
			}
		}
	}
	wait := states(s.grace)["WaitForGracePeriod"].(map[string]any)
	if wait["TimestampPath"] != "$.deactivation.deleteAfter" || wait["Seconds"] != nil || wait["SecondsPath"] != nil || wait["Next"] != "DeleteOldKey" {
		t.Fatalf("the grace Wait must wait until a recorded timestamp, then delete: %v", wait)
	}
	// Two failed-execution alarms and the overdue-key alarm (TestOverdueKeyAlarm).
	s.template.ResourceCountIs(jsii.String("AWS::CloudWatch::Alarm"), jsii.Number(3))
	s.template.HasResourceProperties(jsii.String("AWS::DynamoDB::Table"), map[string]any{
		"BillingMode":                      "PAY_PER_REQUEST",
		"KeySchema":                        []any{map[string]any{"AttributeName": "id", "KeyType": "HASH"}},
		"TimeToLiveSpecification":          map[string]any{"AttributeName": "expiresAt", "Enabled": true},
		"PointInTimeRecoverySpecification": map[string]any{"PointInTimeRecoveryEnabled": true},
		"SSESpecification":                 assertions.Match_ObjectLike(&map[string]any{"SSEEnabled": true, "SSEType": "KMS"}),
	})
	m := top["RotateEachUser"].(map[string]any)
	pc := m["ItemProcessor"].(map[string]any)["ProcessorConfig"].(map[string]any)
	if pc["Mode"] != "DISTRIBUTED" || pc["ExecutionType"] != "STANDARD" {
		t.Fatalf("fan-out = %v; want a DISTRIBUTED map of STANDARD child executions", pc)
	}
	if m["MaxConcurrency"] != float64(75) || m["ToleratedFailurePercentagePath"] != "$.plan.toleratedFailurePercentage" {
		t.Fatalf("map concurrency/tolerance = %v / %v", m["MaxConcurrency"], m["ToleratedFailurePercentagePath"])
	}
	ir := m["ItemReader"].(map[string]any)
	if ir["Resource"] != "arn:aws:states:::s3:getObject" || ir["ReaderConfig"].(map[string]any)["InputType"] != "JSON" ||
		!reflect.DeepEqual(ir["Parameters"], map[string]any{"Bucket.$": "$.plan.bucket", "Key.$": "$.plan.itemsKey"}) {
		t.Fatalf("ItemReader = %v", ir)
	}
	if rw, ok := m["ResultWriter"].(map[string]any); !ok || rw["Resource"] != "arn:aws:states:::s3:putObject" {
		t.Fatalf("ResultWriter = %v", m["ResultWriter"])
	}
	if top["RetryFailedUsers"].(map[string]any)["Next"] != "RotateEachUser" {
		t.Fatal("the retry pass must return to RotateEachUser")
	}
}

// TestRetryNames: every Retry lists only names of the Go error types (or
// Lambda service errors), every task retries throttling with backoff and
// full jitter, and the step-specific retries are where they belong.
func TestRetryNames(t *testing.T) {
	s := get(t)
	known := map[string]bool{}
	for _, n := range failures.All() {
		known[n] = true
	}
	all := map[string]any{}
	for k, v := range states(s.def) {
		all[k] = v
	}
	for k, v := range childStates(s.def) {
		all[k] = v
	}
	retried := map[string][]string{}
	for name, st := range all {
		m := st.(map[string]any)
		if m["Type"] != "Task" || strings.HasPrefix(m["Resource"].(string), "arn:aws:states:::states:") {
			continue
		}
		throttled := false
		for _, r := range m["Retry"].([]any) {
			rr := r.(map[string]any)
			for _, e := range rr["ErrorEquals"].([]any) {
				es := e.(string)
				if !known[es] && !strings.HasPrefix(es, "Lambda.") && es != "Sandbox.Timedout" && es != "States.Timeout" {
					t.Errorf("%s retries %q, which is not a Go error type in shared/failures", name, es)
				}
				retried[name] = append(retried[name], es)
				if es == failures.Name(&failures.ThrottlingError{}) {
					throttled = rr["JitterStrategy"] == "FULL" && rr["BackoffRate"].(float64) > 1
				}
			}
		}
		if !throttled {
			t.Errorf("%s does not retry ThrottlingError with backoff and full jitter", name)
		}
	}
	has := func(state, err string) bool {
		for _, e := range retried[state] {
			if e == err {
				return true
			}
		}
		return false
	}
	if !has("FindDueKeys", "ReportNotReadyError") || !has("CreateAndStoreNewKey", "NewKeyNotReadyError") {
		t.Errorf("step retries = %v", retried)
	}
	// Eventual consistency and a record changed concurrently are retried
	// everywhere; a throttled Lambda has its own patient retrier.
	for state := range retried {
		for _, e := range []string{"NotVisibleYetError", "ConflictError", "Lambda.TooManyRequestsException"} {
			if !has(state, e) {
				t.Errorf("%s does not retry %s", state, e)
			}
		}
	}
	for _, never := range []string{"KeyLimitError", "InvalidInputError", "SendRejectedError", "AccountUnreachableError", "OutOfScopeError", "StepError"} {
		for state := range retried {
			if has(state, never) {
				t.Errorf("%s retries %s, which a retry cannot fix", state, never)
			}
		}
	}
}

// TestStartExecutionErrorNames pins the errors the key's own execution's
// starts retry and catch to the names the Step Functions documentation and
// AWS's own samples give (cited in workflow.go): the limit and service
// errors retried, the already-exists error caught under both spellings,
// and no name that no document gives (StepFunctions.StepFunctionsException).
func TestStartExecutionErrorNames(t *testing.T) {
	s := get(t)
	wantRetry := []string{"StepFunctions.ExecutionLimitExceeded", "StepFunctions.ExecutionLimitExceededException",
		"StepFunctions.AWSStepFunctionsException", "StepFunctions.SdkClientException", "States.Timeout"}
	wantCatch := []string{"StepFunctions.ExecutionAlreadyExistsException", "StepFunctions.ExecutionAlreadyExists"}
	for _, name := range []string{"StartGracePeriod", "StartAdoptionWindow"} {
		st := childStates(s.def)[name].(map[string]any)
		var retry, catch []string
		for _, r := range st["Retry"].([]any) {
			for _, e := range r.(map[string]any)["ErrorEquals"].([]any) {
				retry = append(retry, e.(string))
			}
		}
		for _, c := range st["Catch"].([]any) {
			for _, e := range c.(map[string]any)["ErrorEquals"].([]any) {
				catch = append(catch, e.(string))
			}
		}
		if !reflect.DeepEqual(retry, wantRetry) {
			t.Errorf("%s retries %q; want %q", name, retry, wantRetry)
		}
		if !reflect.DeepEqual(catch, wantCatch) {
			t.Errorf("%s catches %q; want %q", name, catch, wantCatch)
		}
	}
	// The local engine's StartExecution answers a name already used with
	// the name the definition catches.
	if !slices.Contains(wantCatch, local.ExecutionAlreadyExists) {
		t.Errorf("the local engine answers %q; the definition catches %q", local.ExecutionAlreadyExists, wantCatch)
	}
}

// TestStateMachineLogGroup: both state machines log to one group under
// /aws/vendedlogs/states/, so that enabling their logging does not add to
// the account's CloudWatch Logs resource policy (5,120 characters; Step
// Functions Developer Guide, "Avoiding CloudWatch Logs resource policy
// size restrictions"), and the group's name is new for each stack
// instance (it is retained when the stack is deleted).
func TestStateMachineLogGroup(t *testing.T) {
	s := get(t)
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	if err := json.Unmarshal(s.raw, &tmpl); err != nil {
		t.Fatal(err)
	}
	machines := 0
	for id, r := range tmpl.Resources {
		if r.Type != "AWS::StepFunctions::StateMachine" {
			continue
		}
		machines++
		dest := r.Properties["LoggingConfiguration"].(map[string]any)["Destinations"].([]any)[0]
		arn := dest.(map[string]any)["CloudWatchLogsLogGroup"].(map[string]any)["LogGroupArn"].(map[string]any)["Fn::GetAtt"].([]any)
		group := tmpl.Resources[arn[0].(string)]
		name, _ := json.Marshal(group.Properties["LogGroupName"])
		if group.Type != "AWS::Logs::LogGroup" || !strings.Contains(string(name), `"/aws/vendedlogs/states/KeyRotor-"`) || !strings.Contains(string(name), "AWS::StackId") {
			t.Errorf("%s logs to %s named %s; want a log group under /aws/vendedlogs/states/ named after the stack and its id", id, arn[0], name)
		}
	}
	if machines != 2 {
		t.Fatalf("%d state machines; want 2", machines)
	}
}

// rolePolicies collects, per function dir, the actions of its role.
func rolePolicies(t *testing.T, s *synthesized) map[string][]string {
	var tmpl struct {
		Resources map[string]struct {
			Type       string
			Properties map[string]any
		}
	}
	json.Unmarshal(s.raw, &tmpl)
	roleOf := map[string]string{}
	for _, f := range functions {
		for id := range tmpl.Resources {
			if strings.HasPrefix(id, f.id+"Role") && tmpl.Resources[id].Type == "AWS::IAM::Role" {
				roleOf[id] = f.dir
			}
		}
	}
	out := map[string][]string{}
	for _, r := range tmpl.Resources {
		if r.Type != "AWS::IAM::Policy" {
			continue
		}
		for _, ref := range r.Properties["Roles"].([]any) {
			dir := roleOf[ref.(map[string]any)["Ref"].(string)]
			if dir == "" {
				continue
			}
			for _, st := range r.Properties["PolicyDocument"].(map[string]any)["Statement"].([]any) {
				if st.(map[string]any)["Effect"] == "Deny" {
					continue // the protections (TestProtectedUsersDenied), not grants
				}
				switch a := st.(map[string]any)["Action"].(type) {
				case string:
					out[dir] = append(out[dir], a)
				case []any:
					for _, x := range a {
						out[dir] = append(out[dir], x.(string))
					}
				}
			}
		}
	}
	for _, r := range tmpl.Resources {
		if r.Type == "AWS::IAM::Role" {
			if mp := r.Properties["ManagedPolicyArns"]; mp != nil {
				t.Errorf("a role has managed policies: %v", mp)
			}
		}
	}
	return out
}

// TestLeastPrivilege: each role allows exactly its function's calls.
func TestLeastPrivilege(t *testing.T) {
	checkRoles(t, get(t), false, false)
	ctx := map[string]any{"retirePasswords": "true", "deliveryParameters": []any{"/ci/*"}, "deliverySecrets": []any{"ci/aws"}}
	for k, v := range defaultCtx {
		ctx[k] = v
	}
	checkRoles(t, synth(t, ctx), true, false)
	ctx["organizationScope"] = "all"
	checkRoles(t, synth(t, ctx), true, true)
}

// checkRoles: each role allows exactly its function's actions (the
// password actions only with retirePasswords, the organization mode's
// only with organizationScope), none with a wildcard.
func checkRoles(t *testing.T, s *synthesized, retirePasswords, organization bool) {
	got := rolePolicies(t, s)
	for dir, want := range Permissions {
		w := []string{"logs:CreateLogStream", "logs:PutLogEvents"}
		for _, a := range want {
			// The delivery settings go with retirePasswords in these
			// syntheses: unset in the first, set in the others.
			if granted(dir, a, "breakglass", retirePasswords, organization) && (DeliveryOnly[a] == "" || dir != "deliver" || retirePasswords) {
				w = append(w, a)
			}
		}
		g := got[dir]
		sort.Strings(w)
		sort.Strings(g)
		if !reflect.DeepEqual(g, w) {
			t.Errorf("%s role actions = %v\nwant %v", dir, g, w)
		}
		for _, a := range g {
			if strings.Contains(a, "*") {
				t.Errorf("%s role has a wildcard action %s", dir, a)
			}
		}
	}
}

func TestAlarmScheduleTopicKeyBucket(t *testing.T) {
	s := get(t)
	s.template.HasResourceProperties(jsii.String("AWS::CloudWatch::Alarm"), map[string]any{
		"MetricName": "ExecutionsFailed", "Namespace": "AWS/States", "Threshold": 1,
		"AlarmActions": assertions.Match_AnyValue(),
	})
	s.template.HasResourceProperties(jsii.String("AWS::Events::Rule"), map[string]any{"ScheduleExpression": "rate(1 day)", "State": "ENABLED"})
	s.template.ResourceCountIs(jsii.String("AWS::SNS::Subscription"), jsii.Number(2))
	s.template.HasResourceProperties(jsii.String("AWS::SNS::Subscription"), map[string]any{"Protocol": "email", "Endpoint": "sec@example.com"})
	s.template.HasResourceProperties(jsii.String("AWS::SNS::Topic"), map[string]any{"KmsMasterKeyId": assertions.Match_AnyValue()})
	s.template.HasResourceProperties(jsii.String("AWS::KMS::Key"), map[string]any{"EnableKeyRotation": true})
	s.template.HasResourceProperties(jsii.String("AWS::S3::Bucket"), map[string]any{
		"BucketEncryption":               map[string]any{"ServerSideEncryptionConfiguration": []any{assertions.Match_ObjectLike(&map[string]any{"ServerSideEncryptionByDefault": map[string]any{"SSEAlgorithm": "aws:kms", "KMSMasterKeyID": assertions.Match_AnyValue()}})}},
		"PublicAccessBlockConfiguration": map[string]any{"BlockPublicAcls": true, "BlockPublicPolicy": true, "IgnorePublicAcls": true, "RestrictPublicBuckets": true},
		"VersioningConfiguration":        map[string]any{"Status": "Enabled"},
		"LifecycleConfiguration":         map[string]any{"Rules": []any{assertions.Match_ObjectLike(&map[string]any{"ExpirationInDays": 400})}},
	})
	s.template.HasResourceProperties(jsii.String("AWS::S3::BucketPolicy"), map[string]any{"PolicyDocument": map[string]any{
		"Statement": assertions.Match_ArrayWith(&[]any{assertions.Match_ObjectLike(&map[string]any{"Effect": "Deny", "Condition": map[string]any{"Bool": map[string]any{"aws:SecureTransport": "false"}}})}),
	}})
	s.template.HasResourceProperties(jsii.String("AWS::Logs::LogGroup"), map[string]any{"RetentionInDays": 90})

	offOnce.Do(func() { off = synth(t, map[string]any{"schedule": "off"}) })
	off.template.ResourceCountIs(jsii.String("AWS::Events::Rule"), jsii.Number(0))
}

// TestNag: cdk-nag's AwsSolutions checks find nothing unsuppressed, and
// every suppression has a reason.
func TestNag(t *testing.T) {
	s := get(t)
	ann := assertions.Annotations_FromStack(s.stack)
	match := assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))
	for _, found := range []int{len(*ann.FindError(jsii.String("*"), match)), len(*ann.FindWarning(jsii.String("*"), match))} {
		if found > 0 {
			for _, f := range *ann.FindError(jsii.String("*"), match) {
				t.Errorf("cdk-nag error: %v %v", *f.Id, f.Entry.Data)
			}
			for _, f := range *ann.FindWarning(jsii.String("*"), match) {
				t.Errorf("cdk-nag warning: %v %v", *f.Id, f.Entry.Data)
			}
			break
		}
	}
	reasons := regexp.MustCompile(`"reason":"([^"]*)"`).FindAllStringSubmatch(string(s.raw), -1)
	for _, r := range reasons {
		if len(r[1]) < 20 {
			t.Errorf("suppression without a real reason: %q", r[1])
		}
	}
}

// TestMermaid keeps docs/workflow.mmd (shown in README) in step with the
// synthesized definition. Refresh: go test ./infra -run Mermaid -update
func TestMermaid(t *testing.T) {
	got, err := asl.Mermaid(get(t).defJSON)
	if err != nil {
		t.Fatal(err)
	}
	const file = "../docs/workflow.mmd"
	if *update {
		os.WriteFile(file, []byte(got), 0o644)
	}
	want, _ := os.ReadFile(file)
	if string(want) != got {
		t.Fatalf("docs/workflow.mmd is out of date: run `go test ./infra -run Mermaid -update` and copy it into README")
	}
	readme, _ := os.ReadFile("../README.md")
	if !strings.Contains(string(readme), "```mermaid\n"+got+"```") {
		t.Fatalf("README.md's mermaid block differs from docs/workflow.mmd: copy the file into README")
	}
}

// TestDocsLayout keeps docs/layout.md's map true: every function directory
// and every make target is in it.
func TestDocsLayout(t *testing.T) {
	doc, err := os.ReadFile("../docs/layout.md")
	if err != nil {
		t.Fatal(err)
	}
	dirs, _ := filepath.Glob("../functions/*/main.go")
	if len(dirs) == 0 {
		t.Fatal("no functions/*/main.go")
	}
	for _, d := range dirs {
		if fn := filepath.Base(filepath.Dir(d)); !strings.Contains(string(doc), "`"+fn+"`") {
			t.Errorf("docs/layout.md does not name the function %s", fn)
		}
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mk), "\n") {
		if !strings.HasPrefix(line, ".PHONY:") {
			continue
		}
		for _, target := range strings.Fields(strings.TrimPrefix(line, ".PHONY:")) {
			if !strings.Contains(string(doc), "make "+target) {
				t.Errorf("docs/layout.md does not describe make %s", target)
			}
		}
	}
}

// TestDocsSettings keeps docs/deploying.md's table of context settings
// complete: every key keyrotor reads has its row (the organization mode's
// keys there or in docs/organizations.md's).
func TestDocsSettings(t *testing.T) {
	doc, err := os.ReadFile("../docs/deploying.md")
	if err != nil {
		t.Fatal(err)
	}
	orgDoc, err := os.ReadFile("../docs/organizations.md")
	if err != nil {
		t.Fatal(err)
	}
	orgKeys := []string{settings.KeyOrganizationScope, settings.KeyOrganizationExclude, settings.KeyOrganizationStages,
		settings.KeyHubAccount, settings.KeyOrganizationalUnits, settings.KeyDelegatedAdmin}
	for _, k := range settings.Keys {
		row := "| `" + k + "` |"
		if strings.Contains(string(doc), row) || slices.Contains(orgKeys, k) && strings.Contains(string(orgDoc), row) {
			continue
		}
		if slices.Contains(orgKeys, k) {
			t.Errorf("neither docs/deploying.md nor docs/organizations.md has a row for the context setting %s", k)
		} else {
			t.Errorf("docs/deploying.md lacks a row for the context setting %s", k)
		}
	}
}

// TestDocsPermissions keeps docs/deploying.md's table of each function's actions in
// step with infra/permissions.go. That table is the single-account one: the
// organization mode's actions (OrgOnly) are docs/organizations.md's
// (TestDocsHubPermissions).
func TestDocsPermissions(t *testing.T) {
	readme, err := os.ReadFile("../docs/deploying.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range functions {
		var actions []string
		for _, a := range Permissions[f.dir] {
			if !slices.Contains(OrgOnly[f.dir], a) {
				actions = append(actions, a)
			}
		}
		row := "| " + f.dir + " | " + strings.Join(actions, ", ") + " |"
		if !strings.Contains(string(readme), row) {
			t.Errorf("docs/deploying.md lacks the row %s", row)
		}
	}
}
