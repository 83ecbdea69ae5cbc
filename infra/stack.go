package main

import (
	"path/filepath"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	sfn "github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctionstasks"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/settings"
)

// KeyRotorStackProps configures the stack.
type KeyRotorStackProps struct {
	awscdk.StackProps
	Settings settings.Settings
	// AssetDir holds build/<function>/bootstrap (make build). Tests point
	// it at placeholder files.
	AssetDir string
}

// fnSpec describes one function of the workflow.
type fnSpec struct {
	perUser  bool // runs once per due key (reserved concurrency applies)
	id, dir  string
	memory   float64
	timeout  float64 // seconds
	describe string
}

var functions = []fnSpec{
	{false, "FindFunction", "find", 256, 900, "finds the access keys that are due (FindDueKeys)"},
	{true, "CreateAndStoreFunction", "create-and-store", 128, 120, "creates the new key and stores it in Secrets Manager (CreateAndStoreNewKey)"},
	{true, "NotifyFunction", "notify", 128, 120, "mails the owner where the new key is and tells admins (NotifyOwner)"},
	{true, "DeactivateFunction", "deactivate", 128, 120, "deactivates the old key (DeactivateOldKey)"},
	{true, "DeleteFunction", "delete", 128, 120, "deletes the old key after the grace period (DeleteOldKey)"},
	{false, "SummarizeFunction", "summarize", 256, 300, "totals the run and tells admins (SummarizeRun)"},
}

// NewKeyRotorStack defines every keyrotor resource.
func NewKeyRotorStack(scope constructs.Construct, id string, props *KeyRotorStackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, &id, &props.StackProps)
	// ResultWriterV2 renders only with this feature flag.
	stack.Node().SetContext(jsii.String("@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2"), true)
	s := props.Settings
	cfg := s.Config

	// The customer-managed key for secrets, the topic and the bucket.
	var key awskms.IKey
	if s.KMSKeyArn != "" {
		key = awskms.Key_FromKeyArn(stack, jsii.String("Key"), jsii.String(s.KMSKeyArn))
	} else {
		key = awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{
			Description:       jsii.String("keyrotor: encrypts rotated access keys, reports and admin messages"),
			EnableKeyRotation: jsii.Bool(true),
			RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		})
	}

	topic := awssns.NewTopic(stack, jsii.String("AdminTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("keyrotor admins"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	for _, addr := range s.AdminEmails {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(addr), nil))
	}
	// Services that publish to the topic need the key too.
	for _, svc := range []string{"cloudwatch.amazonaws.com", "events.amazonaws.com"} {
		key.GrantEncryptDecrypt(awsiam.NewServicePrincipal(jsii.String(svc), nil))
	}

	accessLogs := awss3.NewBucket(stack, jsii.String("AccessLogsBucket"), &awss3.BucketProps{
		Encryption:        awss3.BucketEncryption_S3_MANAGED,
		BlockPublicAccess: awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:        jsii.Bool(true),
		Versioned:         jsii.Bool(true),
		ObjectOwnership:   awss3.ObjectOwnership_BUCKET_OWNER_PREFERRED,
		LifecycleRules:    &[]*awss3.LifecycleRule{{Expiration: awscdk.Duration_Days(jsii.Number(float64(s.ReportRetentionDays)))}},
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	cdknag.NagSuppressions_AddResourceSuppressions(accessLogs, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-S1"), Reason: jsii.String("This bucket receives the report bucket's server access logs; logging it to itself would loop."),
	}}, jsii.Bool(true))
	bucket := awss3.NewBucket(stack, jsii.String("ReportBucket"), &awss3.BucketProps{
		Encryption:             awss3.BucketEncryption_KMS,
		EncryptionKey:          key,
		BucketKeyEnabled:       jsii.Bool(true),
		BlockPublicAccess:      awss3.BlockPublicAccess_BLOCK_ALL(),
		EnforceSSL:             jsii.Bool(true),
		Versioned:              jsii.Bool(true),
		ServerAccessLogsBucket: accessLogs,
		ServerAccessLogsPrefix: jsii.String("report-bucket/"),
		LifecycleRules: &[]*awss3.LifecycleRule{{
			Expiration:                  awscdk.Duration_Days(jsii.Number(float64(s.ReportRetentionDays))),
			NoncurrentVersionExpiration: awscdk.Duration_Days(jsii.Number(30)),
		}},
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})

	// Functions, each with its own role and log group.
	env := cfg.Env()
	env[config.EnvReportBucket] = *bucket.BucketName()
	env[config.EnvAdminTopicARN] = *topic.TopicArn()
	env[config.EnvKMSKeyID] = *key.KeyArn()
	fns := map[string]awslambda.Function{}
	for _, f := range functions {
		fns[f.dir] = newFunction(stack, f, props.AssetDir, env, s.LogRetentionDays, s.LambdaConcurrency, grants{
			stack: stack, cfg: cfg, key: key, topic: topic, bucket: bucket,
		})
	}

	definition := workflow(stack, fns, bucket, s.FanOutConcurrency)
	smLogs := awslogs.NewLogGroup(stack, jsii.String("StateMachineLogs"), &awslogs.LogGroupProps{
		Retention:     retention(s.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	sm := sfn.NewStateMachine(stack, jsii.String("StateMachine"), &sfn.StateMachineProps{
		StateMachineName: jsii.String("KeyRotor"),
		StateMachineType: sfn.StateMachineType_STANDARD,
		DefinitionBody:   sfn.DefinitionBody_FromChainable(definition),
		TracingEnabled:   jsii.Bool(true),
		// Execution data is logged: no state ever holds a secret (the
		// secret goes from CreateAccessKey straight to Secrets Manager).
		Logs: &sfn.LogOptions{Destination: smLogs, Level: sfn.LogLevel_ALL, IncludeExecutionData: jsii.Bool(true)},
	})
	// The Distributed Map reads the plan and writes results in the bucket.
	bucket.GrantReadWrite(sm, nil)
	cdknag.NagSuppressions_AddResourceSuppressions(sm, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("The Distributed Map needs the bucket's objects (plans/, results/), its own child executions and Lambda versions; CDK scopes each to the one resource."),
	}}, jsii.Bool(true))

	alarm := awscloudwatch.NewAlarm(stack, jsii.String("FailedExecutionsAlarm"), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String("A keyrotor execution failed: open the Step Functions console, find the failed state and user, fix, then Redrive."),
		Metric:             sm.MetricFailed(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))

	if s.Schedule != "" {
		awsevents.NewRule(stack, jsii.String("Schedule"), &awsevents.RuleProps{
			Description: jsii.String("Starts keyrotor's rotation: " + s.Schedule),
			Schedule:    awsevents.Schedule_Expression(jsii.String(s.Schedule)),
			Targets: &[]awsevents.IRuleTarget{awseventstargets.NewSfnStateMachine(sm, &awseventstargets.SfnStateMachineProps{
				Input: awsevents.RuleTargetInput_FromObject(map[string]any{}),
			})},
		})
	}

	readOwn := readOwnSecretPolicy(stack, cfg.SecretPrefix, key)

	awscdk.NewCfnOutput(stack, jsii.String("StateMachineArn"), &awscdk.CfnOutputProps{Value: sm.StateMachineArn()})
	awscdk.NewCfnOutput(stack, jsii.String("ReportBucketName"), &awscdk.CfnOutputProps{Value: bucket.BucketName()})
	awscdk.NewCfnOutput(stack, jsii.String("AdminTopicArn"), &awscdk.CfnOutputProps{Value: topic.TopicArn()})
	awscdk.NewCfnOutput(stack, jsii.String("ReadOwnSecretPolicyArn"), &awscdk.CfnOutputProps{Value: readOwn.ManagedPolicyArn()})
	awscdk.Aspects_Of(stack).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return stack
}

// grants holds what function roles are granted on.
type grants struct {
	stack  awscdk.Stack
	cfg    config.Config
	key    awskms.IKey
	topic  awssns.Topic
	bucket awss3.Bucket
}

func newFunction(stack awscdk.Stack, f fnSpec, assetDir string, env map[string]string, logDays, reserved int, g grants) awslambda.Function {
	logs := awslogs.NewLogGroup(stack, jsii.String(f.id+"Logs"), &awslogs.LogGroupProps{
		Retention:     retention(logDays),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	role := awsiam.NewRole(stack, jsii.String(f.id+"Role"), &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("keyrotor " + f.dir + ": " + f.describe),
	})
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"), Resources: jsii.Strings(*logs.LogGroupArn()),
	}))
	for _, st := range g.statements(f.dir) {
		role.AddToPolicy(st)
	}
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Wildcards only where IAM allows nothing narrower: any IAM user may own a key (user/*), " +
			"secrets are named by user under the configured prefix, report objects by date and execution, log streams by invocation; " +
			"credential-report actions support no resource."),
	}}, jsii.Bool(true))
	vars := map[string]*string{}
	for k, v := range env {
		vars[k] = jsii.String(v)
	}
	var concurrency *float64
	if f.perUser {
		// Bounds the IAM calls of thousands of child executions; a child
		// waiting out its grace period holds no Lambda.
		concurrency = jsii.Number(float64(reserved))
	}
	return awslambda.NewFunction(stack, jsii.String(f.id), &awslambda.FunctionProps{
		ReservedConcurrentExecutions: concurrency,
		Description:                  jsii.String("keyrotor: " + f.describe),
		Runtime:                      awslambda.Runtime_PROVIDED_AL2023(),
		Architecture:                 awslambda.Architecture_ARM_64(),
		Handler:                      jsii.String("bootstrap"),
		Code:                         awslambda.Code_FromAsset(jsii.String(filepath.Join(assetDir, f.dir)), nil),
		MemorySize:                   jsii.Number(f.memory),
		Timeout:                      awscdk.Duration_Seconds(jsii.Number(f.timeout)),
		Environment:                  &vars,
		LoggingFormat:                awslambda.LoggingFormat_JSON,
		LogGroup:                     logs,
		Role:                         role,
	})
}

// statements grants fn exactly the actions in Permissions, each on the
// narrowest resource IAM supports.
func (g grants) statements(fn string) []awsiam.PolicyStatement {
	arn := func(service, resource string) string {
		return "arn:" + *g.stack.Partition() + ":" + service + ":" + regionFor(service, *g.stack.Region()) + ":" + accountFor(service, *g.stack.Account()) + ":" + resource
	}
	users := arn("iam", "user/*")
	resources := map[string][]string{
		"iam:GenerateCredentialReport":  {"*"},
		"iam:GetCredentialReport":       {"*"},
		"iam:GetGroup":                  {arn("iam", "group/"+g.cfg.ExemptGroup)},
		"secretsmanager:GetSecretValue": {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:CreateSecret":   {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:PutSecretValue": {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"ses:SendEmail":                 {arn("ses", "identity/*"), arn("ses", "configuration-set/*")},
		"sns:Publish":                   {*g.topic.TopicArn()},
		"s3:ListBucket":                 {*g.bucket.BucketArn()},
		"kms:Encrypt":                   {*g.key.KeyArn()},
		"kms:Decrypt":                   {*g.key.KeyArn()},
		"kms:GenerateDataKey":           {*g.key.KeyArn()},
	}
	objects := map[string][]string{
		"find":      {"plans/*", "reports/*"},
		"notify":    {"ledger/*"},
		"summarize": {"plans/*", "results/*", "runs/*"},
	}
	byResource := map[string][]string{}
	for _, action := range Permissions[fn] {
		if action == "iam:GetGroup" && g.cfg.ExemptGroup == "" {
			continue
		}
		rs, ok := resources[action]
		switch {
		case ok:
		case strings.HasPrefix(action, "iam:"):
			rs = []string{users}
		case strings.HasPrefix(action, "s3:"):
			for _, p := range objects[fn] {
				rs = append(rs, *g.bucket.BucketArn()+"/"+p)
			}
		}
		key := strings.Join(rs, "|")
		byResource[key] = append(byResource[key], action)
	}
	keys := make([]string, 0, len(byResource))
	for k := range byResource {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []awsiam.PolicyStatement
	for _, k := range keys {
		out = append(out, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Actions: jsii.Strings(byResource[k]...), Resources: jsii.Strings(strings.Split(k, "|")...),
		}))
	}
	return out
}

// IAM ARNs have no region; S3 object ARNs are built from the bucket ARN.
func regionFor(service, region string) string {
	if service == "iam" {
		return ""
	}
	return region
}

func accountFor(_ string, account string) string { return account }

func retention(days int) awslogs.RetentionDays {
	for _, r := range []struct {
		d int
		r awslogs.RetentionDays
	}{
		{1, awslogs.RetentionDays_ONE_DAY}, {3, awslogs.RetentionDays_THREE_DAYS}, {5, awslogs.RetentionDays_FIVE_DAYS},
		{7, awslogs.RetentionDays_ONE_WEEK}, {14, awslogs.RetentionDays_TWO_WEEKS}, {30, awslogs.RetentionDays_ONE_MONTH},
		{60, awslogs.RetentionDays_TWO_MONTHS}, {90, awslogs.RetentionDays_THREE_MONTHS}, {120, awslogs.RetentionDays_FOUR_MONTHS},
		{150, awslogs.RetentionDays_FIVE_MONTHS}, {180, awslogs.RetentionDays_SIX_MONTHS}, {365, awslogs.RetentionDays_ONE_YEAR},
		{400, awslogs.RetentionDays_THIRTEEN_MONTHS}, {545, awslogs.RetentionDays_EIGHTEEN_MONTHS}, {731, awslogs.RetentionDays_TWO_YEARS},
		{1827, awslogs.RetentionDays_FIVE_YEARS}, {3653, awslogs.RetentionDays_TEN_YEARS},
	} {
		if days <= r.d {
			return r.r
		}
	}
	return awslogs.RetentionDays_TEN_YEARS
}

// readOwnSecretPolicy lets an IAM user read only the secret named after it.
// The secret ARN ends in "-" and six random characters: exactly six "?"
// keep alice from reading alice2's secret.
func readOwnSecretPolicy(stack awscdk.Stack, prefix string, key awskms.IKey) awsiam.ManagedPolicy {
	secret := "arn:" + *stack.Partition() + ":secretsmanager:" + *stack.Region() + ":" + *stack.Account() +
		":secret:" + prefix + "${aws:username}-??????"
	return awsiam.NewManagedPolicy(stack, jsii.String("ReadOwnSecretPolicy"), &awsiam.ManagedPolicyProps{
		ManagedPolicyName: jsii.String("KeyRotorReadOwnSecret"),
		Description:       jsii.String("Attach to IAM users or groups: each user may read only its own rotated access key from Secrets Manager."),
		Statements: &[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:       jsii.String("ReadOwnRotatedKey"),
				Actions:   jsii.Strings("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"),
				Resources: jsii.Strings(secret),
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("DecryptThroughSecretsManager"),
				Actions:    jsii.Strings("kms:Decrypt"),
				Resources:  jsii.Strings(*key.KeyArn()),
				Conditions: &map[string]any{"StringEquals": map[string]any{"kms:ViaService": "secretsmanager." + *stack.Region() + ".amazonaws.com"}},
			}),
		},
	})
}

// workflow builds the state machine definition (see docs/design.md).
func workflow(stack awscdk.Stack, fns map[string]awslambda.Function, bucket awss3.Bucket, concurrency int) sfn.IChainable {
	retryable := failures.Retryable()
	// Lambda's own failures, including a timed-out invocation
	// (Sandbox.Timedout): every step is safe to run again.
	lambdaErrors := []string{"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Lambda.TooManyRequestsException", "Sandbox.Timedout"}
	timeouts := map[string]float64{}
	for _, f := range functions {
		timeouts[f.dir] = f.timeout
	}
	task := func(id, fn string, payload sfn.TaskInput, resultPath string, extra ...*sfn.RetryProps) awsstepfunctionstasks.LambdaInvoke {
		t := awsstepfunctionstasks.NewLambdaInvoke(stack, jsii.String(id), &awsstepfunctionstasks.LambdaInvokeProps{
			// A little over the function's own timeout: a hung invocation
			// becomes States.Timeout instead of holding the state forever.
			TaskTimeout:              sfn.Timeout_Duration(awscdk.Duration_Seconds(jsii.Number(timeouts[fn] + 30))),
			LambdaFunction:           fns[fn],
			Payload:                  payload,
			PayloadResponseOnly:      jsii.Bool(true),
			RetryOnServiceExceptions: jsii.Bool(false),
			ResultPath:               jsii.String(resultPath),
		})
		for _, r := range extra {
			t.AddRetry(r)
		}
		t.AddRetry(&sfn.RetryProps{Errors: jsii.Strings(retryable...), Interval: awscdk.Duration_Seconds(jsii.Number(2)),
			BackoffRate: jsii.Number(2), MaxAttempts: jsii.Number(8), MaxDelay: awscdk.Duration_Seconds(jsii.Number(120)), JitterStrategy: sfn.JitterType_FULL})
		t.AddRetry(&sfn.RetryProps{Errors: jsii.Strings(lambdaErrors...), Interval: awscdk.Duration_Seconds(jsii.Number(2)),
			BackoffRate: jsii.Number(2), MaxAttempts: jsii.Number(12), MaxDelay: awscdk.Duration_Seconds(jsii.Number(60)), JitterStrategy: sfn.JitterType_FULL})
		return t
	}
	find := task("FindDueKeys", "find", sfn.TaskInput_FromObject(&map[string]any{
		"request":       sfn.JsonPath_EntirePayload(),
		"executionName": sfn.JsonPath_StringAt(jsii.String("$$.Execution.Name")),
	}), "$.plan", &sfn.RetryProps{Errors: jsii.Strings(failures.Name(&failures.ReportNotReadyError{})),
		Interval: awscdk.Duration_Seconds(jsii.Number(5)), BackoffRate: jsii.Number(1.5), MaxAttempts: jsii.Number(10)})

	create := task("CreateAndStoreNewKey", "create-and-store", nil, "$.newKey",
		&sfn.RetryProps{Errors: jsii.Strings(failures.Name(&failures.NewKeyNotReadyError{})), Interval: awscdk.Duration_Seconds(jsii.Number(2)),
			BackoffRate: jsii.Number(1.5), MaxAttempts: jsii.Number(10)},
		&sfn.RetryProps{Errors: jsii.Strings(failures.Name(&failures.RotationInProgressError{})), Interval: awscdk.Duration_Seconds(jsii.Number(30)),
			BackoffRate: jsii.Number(2), MaxAttempts: jsii.Number(6)})
	notify := task("NotifyOwner", "notify", nil, "$.notice")
	deactivate := task("DeactivateOldKey", "deactivate", nil, "$.deactivation")
	wait := sfn.NewWait(stack, jsii.String("WaitForGracePeriod"), &sfn.WaitProps{
		Comment: jsii.String("Waits until the recorded deleteAfter time: a retry or Redrive never extends the grace period."),
		Time:    sfn.WaitTime_TimestampPath(jsii.String("$.deactivation.deleteAfter")),
	})
	del := task("DeleteOldKey", "delete", nil, "$.cleanup")
	notify.Next(deactivate).Next(wait).Next(del)
	create.Next(notify)
	perUser := sfn.NewChoice(stack, jsii.String("ReplaceOrRetire"), &sfn.ChoiceProps{
		Comment: jsii.String("rotate: a new key first; retire: an unused key goes without replacement"),
	}).When(sfn.Condition_StringEquals(jsii.String("$.item.action"), jsii.String("rotate")), create, nil).Otherwise(notify)

	fanOut := sfn.NewDistributedMap(stack, jsii.String("RotateEachUser"), &sfn.DistributedMapProps{
		Comment: jsii.String("One child execution per due key, all at once up to the map's concurrency; the first pass tolerates failures so no user waits on another."),
		ItemReader: sfn.NewS3JsonItemReader(&sfn.S3FileItemReaderProps{
			BucketNamePath: sfn.JsonPath_StringAt(jsii.String("$.plan.bucket")),
			Key:            sfn.JsonPath_StringAt(jsii.String("$.plan.itemsKey")),
		}),
		ItemSelector: &map[string]any{
			"execution": sfn.JsonPath_StringAt(jsii.String("$$.Execution.Name")),
			"item":      sfn.JsonPath_ObjectAt(jsii.String("$$.Map.Item.Value")),
		},
		MaxConcurrency:                 jsii.Number(float64(concurrency)),
		ToleratedFailurePercentagePath: jsii.String("$.plan.toleratedFailurePercentage"),
		MapExecutionType:               sfn.StateMachineType_STANDARD,
		ResultWriterV2:                 sfn.NewResultWriterV2(&sfn.ResultWriterV2Props{Bucket: bucket, Prefix: jsii.String("results")}),
		ResultPath:                     jsii.String("$.results"),
	})
	fanOut.ItemProcessor(perUser, nil)

	summarize := task("SummarizeRun", "summarize", sfn.TaskInput_FromObject(&map[string]any{
		"plan":          sfn.JsonPath_ObjectAt(jsii.String("$.plan")),
		"results":       sfn.JsonPath_ObjectAt(jsii.String("$.results")),
		"executionName": sfn.JsonPath_StringAt(jsii.String("$$.Execution.Name")),
	}), "$.summary")
	retry := sfn.NewPass(stack, jsii.String("RetryFailedUsers"), &sfn.PassProps{
		Comment:    jsii.String("Second pass over the users whose first pass failed, with no tolerated failures: a persistent failure fails the execution here, ready for Redrive."),
		Parameters: &map[string]any{"plan": sfn.JsonPath_ObjectAt(jsii.String("$.summary.retryPlan"))},
	})
	done := sfn.NewSucceed(stack, jsii.String("RotationComplete"), &sfn.SucceedProps{OutputPath: jsii.String("$.summary")})
	anyFailed := sfn.NewChoice(stack, jsii.String("AnyUserFailed"), nil).
		When(sfn.Condition_IsPresent(jsii.String("$.summary.retryPlan")), retry, nil).Otherwise(done)
	retry.Next(fanOut)
	fanOut.Next(summarize).Next(anyFailed)

	dry := sfn.NewSucceed(stack, jsii.String("DryRunComplete"), &sfn.SucceedProps{OutputPath: jsii.String("$.plan")})
	isDry := sfn.NewChoice(stack, jsii.String("IsDryRun"), nil).
		When(sfn.Condition_BooleanEquals(jsii.String("$.plan.dryRun"), jsii.Bool(true)), dry, nil).Otherwise(fanOut)
	return find.Next(isDry)
}
