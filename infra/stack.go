package main

import (
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatch"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudwatchactions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsevents"
	"github.com/aws/aws-cdk-go/awscdk/v2/awseventstargets"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	sfn "github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/rotation"
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
	{true, "CheckAdoptionFunction", "check-adoption", 128, 120, "checks, during an adoption window, whether the new key replaced the old one (CheckAdoption)"},
	{true, "DeactivateFunction", "deactivate", 128, 120, "deactivates the old key (DeactivateOldKey)"},
	{true, "DeleteFunction", "delete", 128, 120, "deletes the old key after the grace period (DeleteOldKey)"},
	{true, "DeliverFunction", "deliver", 128, 300, "delivers the new key to the user's destinations and reads each back (DeliverNewKey)"},
	{false, "SummarizeFunction", "summarize", 256, 300, "totals the run and tells admins (SummarizeRun)"},
}

// NewKeyRotorStack defines every keyrotor resource.
func NewKeyRotorStack(scope constructs.Construct, id string, props *KeyRotorStackProps) awscdk.Stack {
	stack := awscdk.NewStack(scope, &id, &props.StackProps)
	// ResultWriterV2 renders only with this feature flag.
	stack.Node().SetContext(jsii.String("@aws-cdk/aws-stepfunctions:useDistributedMapResultWriterV2"), true)
	s := props.Settings
	cfg := s.Config

	// The customer-managed key for secrets and the bucket (the admin topic
	// has its own: see adminTopic).
	var key awskms.IKey
	if s.KMSKeyArn != "" {
		key = awskms.Key_FromKeyArn(stack, jsii.String("Key"), jsii.String(s.KMSKeyArn))
	} else {
		region := *stack.Region()
		key = awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{
			Description:       jsii.String("keyrotor: encrypts rotated access keys, reports and admin messages"),
			EnableKeyRotation: jsii.Bool(true),
			RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
			Policy: keyPolicy(stack, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("UseOnlyThroughSecretsManagerS3AndDynamoDB"),
				Principals: &[]awsiam.IPrincipal{awsiam.NewAccountRootPrincipal()},
				Actions:    jsii.Strings("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*"),
				Resources:  jsii.Strings("*"),
				Conditions: &map[string]any{"StringEquals": map[string]any{
					"kms:CallerAccount": *stack.Account(),
					"kms:ViaService": jsii.Strings("secretsmanager."+region+".amazonaws.com", "s3."+region+".amazonaws.com",
						"dynamodb."+region+".amazonaws.com"),
				}},
			})),
		})
	}

	topicKey, topic := adminTopic(stack, s.AdminEmails)

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
	table := rotationTable(stack, key)
	env[config.EnvRotationTable] = *table.TableName()
	if cfg.Organization() {
		// The account the functions run in (the hub): its users are reached
		// without the member role. cfg.Env() already carries the scope, the
		// exclusions and the stages (KEYROTOR_ORG_*).
		env[config.EnvHomeAccount] = *stack.Account()
	}
	fns := map[string]awslambda.Function{}
	for _, f := range functions {
		fns[f.dir] = newFunction(stack, f, props.AssetDir, env, s.LogRetentionDays, s.LambdaConcurrency, grants{
			stack: stack, cfg: cfg, key: key, topicKey: topicKey, topic: topic, bucket: bucket, table: table,
		})
	}

	// A stored key's resource policy lets the deliver step's role in
	// (rotation.SecretPolicy): create-and-store puts it there.
	fns["create-and-store"].AddEnvironment(jsii.String(config.EnvDeliverRoleARN), fns["deliver"].Role().RoleArn(), nil)

	// Under /aws/vendedlogs/: a state machine logging to a group outside it
	// adds the group to the account's CloudWatch Logs resource policy,
	// which is limited to 5,120 characters (Step Functions Developer Guide,
	// "Avoiding CloudWatch Logs resource policy size restrictions",
	// https://docs.aws.amazon.com/step-functions/latest/dg/bp-cwl.html).
	// Named after the stack and its id (the group is retained when the
	// stack is deleted: a new stack of the same name gets a new group).
	smLogs := awslogs.NewLogGroup(stack, jsii.String("StateMachineLogs"), &awslogs.LogGroupProps{
		LogGroupName: awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("/aws/vendedlogs/states/"), stack.StackName(), jsii.String("-"),
			awscdk.Fn_Select(jsii.Number(2), awscdk.Fn_Split(jsii.String("/"), stack.StackId(), nil))}),
		Retention:     retention(s.LogRetentionDays),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	// Each key's grace period and deletion: its own execution, named after
	// the user and the key, so the daily execution ends the same day.
	graceScope := constructs.NewConstruct(stack, jsii.String("Grace"))
	grace := sfn.NewStateMachine(stack, jsii.String("GraceStateMachine"), &sfn.StateMachineProps{
		StateMachineName: jsii.String("KeyRotorGrace"),
		StateMachineType: sfn.StateMachineType_STANDARD,
		DefinitionBody:   sfn.DefinitionBody_FromChainable(graceWorkflow(graceScope, fns)),
		TracingEnabled:   jsii.Bool(true),
		Logs:             &sfn.LogOptions{Destination: smLogs, Level: sfn.LogLevel_ALL, IncludeExecutionData: jsii.Bool(true)},
	})
	cdknag.NagSuppressions_AddResourceSuppressions(grace, &[]*cdknag.NagPackSuppression{{
		Id:     jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("The key's own state machine invokes the check-adoption, deactivate and delete functions' versions (CDK scopes each grant to one function's ARN and its versions) and writes to its log group."),
	}}, jsii.Bool(true))
	definition := workflow(stack, fns, bucket, grace, s.FanOutConcurrency)
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

	failedAlarm(stack, "FailedExecutionsAlarm", sm, topic,
		"A keyrotor execution failed: open the Step Functions console, find the failed state and user, fix, then Redrive.")
	failedAlarm(stack, "FailedGraceExecutionsAlarm", grace, topic,
		"A keyrotor grace-and-delete execution failed: its name is the user and key; fix, then Redrive it (or the next daily run finishes it).")

	board := dashboard(stack, cfg, sm, grace, topic)

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
	awscdk.NewCfnOutput(stack, jsii.String("GraceStateMachineArn"), &awscdk.CfnOutputProps{Value: grace.StateMachineArn()})
	awscdk.NewCfnOutput(stack, jsii.String("RotationTableName"), &awscdk.CfnOutputProps{Value: table.TableName()})
	awscdk.NewCfnOutput(stack, jsii.String("ReportBucketName"), &awscdk.CfnOutputProps{Value: bucket.BucketName()})
	awscdk.NewCfnOutput(stack, jsii.String("AdminTopicArn"), &awscdk.CfnOutputProps{Value: topic.TopicArn()})
	awscdk.NewCfnOutput(stack, jsii.String("DashboardName"), &awscdk.CfnOutputProps{
		Value:       board.DashboardName(),
		Description: jsii.String("The CloudWatch dashboard: keys by age band, rotations by state, the oldest key to rotate, failures"),
	})
	awscdk.NewCfnOutput(stack, jsii.String("ReadOwnSecretPolicyArn"), &awscdk.CfnOutputProps{
		Value:       readOwn.ManagedPolicyArn(),
		Description: jsii.String("The " + readOwnSecretPolicyName + "-<region> policy: attach it to the IAM users (or a group) whose keys keyrotor rotates"),
	})
	awscdk.Aspects_Of(stack).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return stack
}

// keyAdminActions are what the account's IAM policies may grant on a key
// keyrotor creates besides its use through services: its administration
// (the "key administrators" statement of the KMS Developer Guide, "Default
// key policy":
// https://docs.aws.amazon.com/kms/latest/developerguide/key-policy-default.html#key-policy-default-allow-administrators).
// The default statement that gives the account root kms:* would let any
// identity policy with kms:Decrypt on "*" use the key directly; this one
// keeps root for administration only (ibid., "Allows access to the AWS
// account and enables IAM policies").
var keyAdminActions = []string{"kms:Create*", "kms:Describe*", "kms:Enable*", "kms:List*", "kms:Put*", "kms:Update*", "kms:Revoke*",
	"kms:Disable*", "kms:Get*", "kms:Delete*", "kms:TagResource", "kms:UntagResource", "kms:ScheduleKeyDeletion", "kms:CancelKeyDeletion"}

// keyPolicy is the policy of a key keyrotor creates: the account
// administers it, and uses it only as use allows (statements through
// kms:ViaService). Given as the key's Policy, it replaces CDK's default
// (root kms:*); the key's later grants add to it.
func keyPolicy(stack awscdk.Stack, use ...awsiam.PolicyStatement) awsiam.PolicyDocument {
	statements := append([]awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("AccountAdministersTheKey"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewAccountRootPrincipal()},
		Actions:    jsii.Strings(keyAdminActions...),
		Resources:  jsii.Strings("*"),
	})}, use...)
	return awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements})
}

// failedAlarm tells the admin topic when an execution of sm fails.
func failedAlarm(stack awscdk.Stack, id string, sm sfn.StateMachine, topic awssns.ITopic, description string) {
	alarm := awscloudwatch.NewAlarm(stack, jsii.String(id), &awscloudwatch.AlarmProps{
		AlarmDescription:   jsii.String(description),
		Metric:             sm.MetricFailed(&awscloudwatch.MetricOptions{Period: awscdk.Duration_Minutes(jsii.Number(5)), Statistic: jsii.String("Sum")}),
		Threshold:          jsii.Number(1),
		EvaluationPeriods:  jsii.Number(1),
		ComparisonOperator: awscloudwatch.ComparisonOperator_GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
		TreatMissingData:   awscloudwatch.TreatMissingData_NOT_BREACHING,
	})
	alarm.AddAlarmAction(awscloudwatchactions.NewSnsAction(topic))
}

// grants holds what function roles are granted on.
type grants struct {
	stack    awscdk.Stack
	cfg      config.Config
	key      awskms.IKey
	topicKey awskms.IKey // publishers to the topic need it
	topic    awssns.Topic
	bucket   awss3.Bucket
	table    awsdynamodb.Table
}

func newFunction(stack awscdk.Stack, f fnSpec, assetDir string, env map[string]string, logDays, reserved int, g grants) awslambda.Function {
	logs := awslogs.NewLogGroup(stack, jsii.String(f.id+"Logs"), &awslogs.LogGroupProps{
		Retention:     retention(logDays),
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
	rp := &awsiam.RoleProps{
		AssumedBy:   awsiam.NewServicePrincipal(jsii.String("lambda.amazonaws.com"), nil),
		Description: jsii.String("keyrotor " + f.dir + ": " + f.describe),
	}
	org := g.cfg.Organization() && slices.Contains(MemberFunctions, f.dir)
	if org {
		// The member role trusts exactly these names (aws:PrincipalArn, in
		// member.go); the region is the stack's (a token when the stack is
		// environment-agnostic).
		rp.RoleName = jsii.String(HubRoleName(f.dir, *stack.Region()))
	}
	role := awsiam.NewRole(stack, jsii.String(f.id+"Role"), rp)
	role.AddToPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions: jsii.Strings("logs:CreateLogStream", "logs:PutLogEvents"), Resources: jsii.Strings(*logs.LogGroupArn()),
	}))
	for _, st := range g.statements(f.dir) {
		role.AddToPolicy(st)
	}
	reason := "Wildcards only where IAM allows nothing narrower: any IAM user may own a key (user/*), " +
		"secrets are named by user under the configured prefix, report objects by date and execution, log streams by invocation; " +
		"credential-report actions support no resource."
	if org {
		reason += orgNagReason
	}
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"), Reason: jsii.String(reason),
	}}, jsii.Bool(true))
	vars := map[string]*string{}
	for k, v := range env {
		vars[k] = jsii.String(v)
	}
	if f.dir == "create-and-store" {
		// The one keyrotor principal a stored key's resource policy lets
		// in (rotation.SecretPolicy).
		vars[config.EnvStoreRoleARN] = role.RoleArn()
	}
	var concurrency *float64
	if f.perUser && reserved > 0 {
		// Opt-in (lambdaConcurrency): bounds the IAM calls of thousands of
		// child executions; a child waiting out its grace period holds no
		// Lambda. Lambda refuses a reservation that leaves the account less
		// than its unreserved minimum (100, or less in accounts with a low
		// quota), so it needs an account quota of at least 100 + 5 x N:
		// https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html
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

// orgNagReason completes the IAM5 reason of a MemberFunction's role in the
// organization mode.
const orgNagReason = " Organization mode: sts:AssumeRole on the member role in any account (iam::*:role/" + config.MemberRoleName +
	", only in the hub's organization: aws:ResourceOrgID); the Organizations list actions and iam:ListAccountAliases support no resource."

// statements grants fn exactly the actions in Permissions (as granted
// grants them), each on the narrowest resource IAM supports.
func (g grants) statements(fn string) []awsiam.PolicyStatement {
	arn := func(service, resource string) string {
		return "arn:" + *g.stack.Partition() + ":" + service + ":" + regionFor(service, *g.stack.Region()) + ":" + accountFor(service, *g.stack.Account()) + ":" + resource
	}
	users := arn("iam", "user/*")
	resources := map[string][]string{
		"iam:GetGroup":                     {arn("iam", "group/"+g.cfg.ExemptGroup)},
		"secretsmanager:GetSecretValue":    {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:CreateSecret":      {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:PutSecretValue":    {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:RestoreSecret":     {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:DescribeSecret":    {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:GetResourcePolicy": {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:PutResourcePolicy": {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"secretsmanager:TagResource":       {arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*")},
		"dynamodb:GetItem":                 {*g.table.TableArn()},
		"dynamodb:PutItem":                 {*g.table.TableArn()},
		"dynamodb:Scan":                    {*g.table.TableArn()},
		"dynamodb:BatchGetItem":            {*g.table.TableArn()},
		"states:DescribeExecution":         {arn("states", "execution:KeyRotor:*")},
		"ses:SendEmail":                    {arn("ses", "identity/*"), arn("ses", "configuration-set/*")},
		"sns:Publish":                      {*g.topic.TopicArn()},
		"s3:ListBucket":                    {*g.bucket.BucketArn()},
		"kms:Encrypt":                      {*g.key.KeyArn()},
		"kms:Decrypt":                      g.keys(fn),
		"kms:GenerateDataKey":              g.keys(fn),
	}
	objects := map[string][]string{
		"find":      {"plans/*", "reports/*"},
		"summarize": {"plans/*", "results/*", "runs/*"},
	}
	if fn == "deliver" {
		for action, rs := range g.deliveryResources(arn) {
			resources[action] = rs
		}
	}
	byResource := map[string][]string{}
	var assumeRole bool
	for _, action := range Permissions[fn] {
		if !granted(fn, action, g.cfg.ExemptGroup, g.cfg.RetirePasswords, g.cfg.Organization()) {
			continue
		}
		if rs, ok := resources[action]; ok && len(rs) == 0 {
			continue // a delivery action with no name to write: not granted
		}
		if action == "sts:AssumeRole" {
			assumeRole = true // a statement of its own, with its condition
			continue
		}
		rs, ok := resources[action]
		switch {
		case ok:
		case anyResource[action]:
			rs = []string{"*"}
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
	if assumeRole {
		out = append(out, memberRoleStatement(g.stack, g.cfg)...)
	}
	// The hub's own account is rotated with these roles: its exempt users
	// are protected as a member's are (member.go, exemptDeny).
	if slices.ContainsFunc(Permissions[fn], func(a string) bool { return slices.Contains(CredentialWriteActions, a) }) {
		out = append(out, exemptDeny(*g.stack.Partition(), g.cfg.ExemptTag))
		if len(g.cfg.ExcludedUserPaths) > 0 {
			out = append(out, pathsDeny(*g.stack.Partition(), g.cfg.ExcludedUserPaths))
		}
	}
	return out
}

// memberRoleStatement lets a hub function assume the member role
// (config.MemberRoleName, the name the member stack gives it) in any
// account of the hub's own organization. The member role's trust policy
// decides which hub roles may (member.go); this side keeps the hub's
// roles from assuming a role of that name outside the organization.
// aws:ResourceOrgID is the organization of the account that owns the
// resource, here the role assumed; ${aws:PrincipalOrgID} is the calling
// role's organization (IAM User Guide, "AWS global condition context
// keys", aws:ResourceOrgID and aws:PrincipalOrgID:
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-resourceorgid).
//
// The scope narrows it where a policy can say so: a scope that lists
// accounts only allows those accounts' member roles; the excluded accounts'
// member roles are denied (an OU's accounts are not expressible without
// the organization's path: org.InScope and the StackSet keep those out).
func memberRoleStatement(stack awscdk.Stack, cfg config.Config) []awsiam.PolicyStatement {
	role := func(account string) string {
		return "arn:" + *stack.Partition() + ":iam::" + account + ":role/" + config.MemberRoleName
	}
	resources := []string{role("*")}
	if org.AccountsOnly(cfg.OrgScope) {
		resources = nil
		for _, a := range cfg.OrgScope {
			if !slices.Contains(cfg.OrgExclude, a) {
				resources = append(resources, role(a))
			}
		}
	}
	out := []awsiam.PolicyStatement{awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Actions:    jsii.Strings("sts:AssumeRole"),
		Resources:  jsii.Strings(resources...),
		Conditions: &map[string]any{"StringEquals": map[string]any{"aws:ResourceOrgID": "${aws:PrincipalOrgID}"}},
	})}
	if len(cfg.OrgExclude) > 0 {
		var denied []string
		for _, a := range cfg.OrgExclude {
			denied = append(denied, role(a))
		}
		out = append(out, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
			Sid: jsii.String("DenyExcludedAccounts"), Effect: awsiam.Effect_DENY,
			Actions: jsii.Strings("sts:AssumeRole"), Resources: jsii.Strings(denied...),
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

// readOwnSecretPolicyName names the read-own-secret policy, followed by
// "-" and the region: a managed policy's name is unique in the account, not
// in a region, so a deployment in a second region would otherwise fail to
// create it.
const readOwnSecretPolicyName = "KeyRotorReadOwnSecret"

// readOwnSecretPolicy lets an IAM user read only its own secret.
func readOwnSecretPolicy(stack awscdk.Stack, prefix string, key awskms.IKey) awsiam.ManagedPolicy {
	// Secrets are matched by the user's unique id, not its name: IAM
	// substitutes ${aws:username} unescaped (IAM User Guide, "IAM policy
	// elements: Variables and tags"), while secret names cannot hold a
	// comma and keyrotor escapes "," and "=" in them, so a name pattern
	// fails some legal user names and can match another user's secret
	// ("a=3Db" vs "a=b"). create-and-store tags each secret with the
	// user's unique id (keyrotor:user-id); ${aws:userid} is that id for an
	// IAM user, and Secrets Manager supports secretsmanager:ResourceTag/<key>
	// on GetSecretValue and DescribeSecret (Secrets Manager User Guide,
	// "Control access to secrets using tags").
	secrets := "arn:" + *stack.Partition() + ":secretsmanager:" + *stack.Region() + ":" + *stack.Account() + ":secret:" + prefix + "*"
	policy := awsiam.NewManagedPolicy(stack, jsii.String("ReadOwnSecretPolicy"), &awsiam.ManagedPolicyProps{
		ManagedPolicyName: jsii.String(readOwnSecretPolicyName + "-" + *stack.Region()),
		Description:       jsii.String("Attach to IAM users or groups: each user may read only its own rotated access key from Secrets Manager."),
		Statements: &[]awsiam.PolicyStatement{
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("ReadOwnRotatedKey"),
				Actions:    jsii.Strings("secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"),
				Resources:  jsii.Strings(secrets),
				Conditions: &map[string]any{"StringEquals": map[string]any{"secretsmanager:ResourceTag/" + rotation.TagUserID: "${aws:userid}"}},
			}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
				Sid:        jsii.String("DecryptThroughSecretsManager"),
				Actions:    jsii.Strings("kms:Decrypt"),
				Resources:  jsii.Strings(*key.KeyArn()),
				Conditions: &map[string]any{"StringEquals": map[string]any{"kms:ViaService": "secretsmanager." + *stack.Region() + ".amazonaws.com"}},
			}),
		},
	})
	// The hub and every member stack hold this policy: its one wildcard is
	// explained once, here.
	cdknag.NagSuppressions_AddResourceSuppressions(policy, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Secrets under the prefix, each readable only when its keyrotor:user-id tag equals the caller's ${aws:userid}: " +
			"a name pattern cannot match every legal user name (see readOwnSecretPolicy)."),
	}}, jsii.Bool(true))
	return policy
}
