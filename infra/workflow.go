package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslambda"
	"github.com/aws/aws-cdk-go/awscdk/v2/awss3"
	sfn "github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctions"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsstepfunctionstasks"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/shared/failures"
)

// lambdaTask builds Lambda tasks with keyrotor's retry policy.
type lambdaTask func(scope constructs.Construct, id, fn string, payload sfn.TaskInput, resultPath string, extra ...*sfn.RetryProps) awsstepfunctionstasks.LambdaInvoke

// workflow builds the daily rotation's definition (see docs/design.md): it
// ends once every due key is deactivated (or stopped, with its reason);
// each key's grace period and deletion run in the grace state machine.
func workflow(stack awscdk.Stack, fns map[string]awslambda.Function, bucket awss3.Bucket, grace sfn.IStateMachine, concurrency int) sfn.IChainable {
	task := newLambdaTask(fns)
	find := task(stack, "FindDueKeys", "find", sfn.TaskInput_FromObject(&map[string]any{
		"request":       sfn.JsonPath_EntirePayload(),
		"executionName": sfn.JsonPath_StringAt(jsii.String("$$.Execution.Name")),
		"executionId":   sfn.JsonPath_StringAt(jsii.String("$$.Execution.Id")),
	}), "$.plan", &sfn.RetryProps{Errors: jsii.Strings(failures.Name(&failures.ReportNotReadyError{})),
		Interval: awscdk.Duration_Seconds(jsii.Number(5)), BackoffRate: jsii.Number(1.5), MaxAttempts: jsii.Number(10)})

	create := task(stack, "CreateAndStoreNewKey", "create-and-store", nil, "$.newKey",
		&sfn.RetryProps{Errors: jsii.Strings(failures.Name(&failures.NewKeyNotReadyError{})), Interval: awscdk.Duration_Seconds(jsii.Number(2)),
			BackoffRate: jsii.Number(1.5), MaxAttempts: jsii.Number(10)})
	deliver := task(stack, "DeliverNewKey", "deliver", nil, "$.delivery")
	notify := task(stack, "NotifyOwner", "notify", nil, "$.notice")
	deactivate := task(stack, "DeactivateOldKey", "deactivate", nil, "$.deactivation")
	del := task(stack, "DeleteOldKey", "delete", nil, "$.cleanup")
	stopped := sfn.NewSucceed(stack, jsii.String("RotationStopped"), &sfn.SucceedProps{
		Comment: jsii.String("This execution does nothing more for the key; the step's output says why (held, in flight elsewhere, ended by a person's action)."),
	})
	notSent := sfn.NewSucceed(stack, jsii.String("NoticeNotSent"), &sfn.SucceedProps{
		Comment: jsii.String("The owner's notice did not go out: nothing is deactivated; the admins were told and the next run tries again."),
	})
	startGrace := startKeyExecution(stack, grace, "StartGracePeriod", "GracePeriodStarted",
		"Starts the key's own grace-and-delete execution, named after the user and the key; a second start is a no-op.", "",
		"$.deactivation.graceExecution", "$.execution", "deactivation", "$.deactivation", "$.grace")

	next := sfn.NewChoice(stack, jsii.String("GraceOrDelete"), &sfn.ChoiceProps{
		Comment: jsii.String("grace: start the key's grace-and-delete execution; delete: a resumed rotation whose grace is already over; stop: held or ended"),
	}).When(sfn.Condition_StringEquals(jsii.String("$.deactivation.next"), jsii.String("grace")), startGrace, nil).
		When(sfn.Condition_StringEquals(jsii.String("$.deactivation.next"), jsii.String("delete")), del, nil).
		Otherwise(stopped)
	deactivate.Next(next)
	startWindow := startKeyExecution(stack, grace, "StartAdoptionWindow", "AdoptionWindowStarted",
		"Starts the key's own execution for its adoption window (then its grace period), named after the user and the key; a second start is a no-op.",
		"The old key stays Active until the new key is in use (or the window ends); the key's own execution decides.",
		"$.notice.adoption.execution", "$.notice.adoption.execution", "adoption", "$.notice.adoption", "$.window")

	undelivered := sfn.NewSucceed(stack, jsii.String("DeliveryIncomplete"), &sfn.SucceedProps{
		Comment: jsii.String("A destination does not hold the new key yet: nothing is deactivated; the owner's mail said what is left, the admins were told, and the next run delivers the rest."),
	})
	noticeSent := sfn.NewChoice(stack, jsii.String("NoticeSent"), &sfn.ChoiceProps{
		Comment: jsii.String("The old key is deactivated only after its owner's notice went out and every destination holds the new key; with an adoption window, by the key's own execution once the new key is in use."),
	}).When(sfn.Condition_And(sfn.Condition_IsPresent(jsii.String("$.delivery.complete")), sfn.Condition_BooleanEquals(jsii.String("$.delivery.complete"), jsii.Bool(false))), undelivered, nil).
		When(sfn.Condition_IsPresent(jsii.String("$.notice.adoption")), startWindow, nil).
		When(sfn.Condition_BooleanEquals(jsii.String("$.notice.accepted"), jsii.Bool(true)), deactivate, nil).
		When(sfn.Condition_IsPresent(jsii.String("$.notice.skipped")), stopped, nil).
		Otherwise(notSent)
	notify.Next(noticeSent)
	deliver.Next(notify)
	keyReady := sfn.NewChoice(stack, jsii.String("NewKeyReady"), nil).
		When(sfn.Condition_IsPresent(jsii.String("$.newKey.skipped")), stopped, nil).Otherwise(deliver)
	create.Next(keyReady)
	perUser := sfn.NewChoice(stack, jsii.String("ReplaceOrRetire"), &sfn.ChoiceProps{
		Comment: jsii.String("rotate: a new key first; retire: an unused key goes without replacement"),
	}).When(sfn.Condition_StringEquals(jsii.String("$.item.action"), jsii.String("rotate")), create, nil).Otherwise(notify)

	fanOut := sfn.NewDistributedMap(stack, jsii.String("RotateEachUser"), &sfn.DistributedMapProps{
		Comment: jsii.String("One child execution per due key, up to the map's concurrency; the first pass tolerates failures so no user waits on another."),
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

	summarize := task(stack, "SummarizeRun", "summarize", sfn.TaskInput_FromObject(&map[string]any{
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

// The errors of the optimized StartExecution integration
// (arn:aws:states:::states:startExecution), which Step Functions reports
// as StepFunctions.<error>:
//
//   - Retried: StepFunctions.ExecutionLimitExceeded, the Step Functions
//     Developer Guide's own Retry for StartExecution's limits and throttling
//     ("Start workflow executions from a task state in Step Functions",
//     https://docs.aws.amazon.com/step-functions/latest/dg/concepts-nested-workflows.html),
//     and its ...Exception spelling: the guide has service error names take
//     the Exception suffix even where the API reference omits it ("Learning
//     to use AWS service SDK integrations in Step Functions",
//     https://docs.aws.amazon.com/step-functions/latest/dg/supported-services-awssdk.html);
//     StepFunctions.AWSStepFunctionsException, the service's base exception,
//     as AWS's own solutions retry their startExecution tasks
//     (aws-solutions/data-transfer-from-amazon-s3-glacier-vaults-to-amazon-s3,
//     source/solution/infrastructure/workflows/orchestrator.py);
//     StepFunctions.SdkClientException, the client-side failure the guide
//     names for Lambda (Lambda.SdkClientException, "Handle transient Lambda
//     service exceptions"); States.Timeout.
//   - Caught (a second start of the same name: a no-op):
//     StepFunctions.ExecutionAlreadyExistsException, the name executions
//     report ("Execution Already Exists: ... Error Code:
//     ExecutionAlreadyExists"), and StepFunctions.ExecutionAlreadyExists, the
//     API's error code as the guide's examples and AWS's samples spell
//     StepFunctions.ExecutionLimitExceeded (StartExecution API reference,
//     Errors: ExecutionAlreadyExists, 400).
//
// StepFunctions.StepFunctionsException, listed before, is in no AWS
// document. infra's TestStartExecutionErrorNames pins these lists.
var (
	startExecutionRetried = []string{"StepFunctions.ExecutionLimitExceeded", "StepFunctions.ExecutionLimitExceededException",
		"StepFunctions.AWSStepFunctionsException", "StepFunctions.SdkClientException", "States.Timeout"}
	startExecutionExists = []string{"StepFunctions.ExecutionAlreadyExistsException", "StepFunctions.ExecutionAlreadyExists"}
)

// startKeyExecution starts a key's own execution of the grace state
// machine, named by namePath (after the user and the key), with the item
// and the object at objectPath as its field what (deactivation, or
// adoption: the key's execution branches on which it gets). A second start of the same name is
// a no-op: Step Functions answers ExecutionAlreadyExists when the name was
// used with other input or has ended, and the definition catches it.
func startKeyExecution(stack awscdk.Stack, grace sfn.IStateMachine, id, doneID, comment, doneComment, namePath, executionPath, what, objectPath, resultPath string) sfn.IChainable {
	start := awsstepfunctionstasks.NewStepFunctionsStartExecution(stack, jsii.String(id), &awsstepfunctionstasks.StepFunctionsStartExecutionProps{
		Comment:             jsii.String(comment),
		StateMachine:        grace,
		Name:                sfn.JsonPath_StringAt(jsii.String(namePath)),
		IntegrationPattern:  sfn.IntegrationPattern_REQUEST_RESPONSE,
		AssociateWithParent: jsii.Bool(true),
		Input: sfn.TaskInput_FromObject(&map[string]any{
			"execution": sfn.JsonPath_StringAt(jsii.String(executionPath)),
			"item":      sfn.JsonPath_ObjectAt(jsii.String("$.item")),
			what:        sfn.JsonPath_ObjectAt(jsii.String(objectPath)),
		}),
		ResultSelector: &map[string]any{"executionArn": sfn.JsonPath_StringAt(jsii.String("$.ExecutionArn"))},
		ResultPath:     jsii.String(resultPath),
	})
	start.AddRetry(&sfn.RetryProps{Errors: jsii.Strings(startExecutionRetried...),
		Interval: awscdk.Duration_Seconds(jsii.Number(2)), BackoffRate: jsii.Number(2), MaxAttempts: jsii.Number(8), JitterStrategy: sfn.JitterType_FULL})
	var props *sfn.SucceedProps
	if doneComment != "" {
		props = &sfn.SucceedProps{Comment: jsii.String(doneComment)}
	}
	done := sfn.NewSucceed(stack, jsii.String(doneID), props)
	start.AddCatch(done, &sfn.CatchProps{Errors: jsii.Strings(startExecutionExists...), ResultPath: jsii.String(resultPath + "AlreadyStarted")})
	return start.Next(done)
}

// graceWorkflow builds the definition of a key's own execution: with an
// adoption window, check once per interval (a Wait loop: no Lambda runs
// between checks) until the new key is in use or the window ends, then
// deactivate the old key; then wait until the recorded deleteAfter time (a
// retry or Redrive never extends or shortens it) and delete the old key if
// its rotation record still allows it.
func graceWorkflow(scope constructs.Construct, fns map[string]awslambda.Function) sfn.IChainable {
	task := newLambdaTask(fns)
	wait := sfn.NewWait(scope, jsii.String("WaitForGracePeriod"), &sfn.WaitProps{
		Comment: jsii.String("Waits until the recorded deleteAfter time."),
		Time:    sfn.WaitTime_TimestampPath(jsii.String("$.deactivation.deleteAfter")),
	})
	del := task(scope, "DeleteOldKey", "delete", nil, "$.cleanup")
	wait.Next(del)

	check := task(scope, "CheckAdoption", "check-adoption", nil, "$.adoption")
	nextCheck := sfn.NewWait(scope, jsii.String("WaitForNextCheck"), &sfn.WaitProps{
		Comment: jsii.String("Waits until the next check of the adoption window (at the latest its end)."),
		Time:    sfn.WaitTime_TimestampPath(jsii.String("$.adoption.nextCheck")),
	})
	nextCheck.Next(check)
	deactivate := task(scope, "DeactivateAfterSwitchOver", "deactivate", nil, "$.deactivation")
	stopped := sfn.NewSucceed(scope, jsii.String("RotationStopped"), &sfn.SucceedProps{
		Comment: jsii.String("Nothing more for this key here; the step's output says why (held, ended by a person's action, taken over by a later execution)."),
	})
	deactivate.Next(sfn.NewChoice(scope, jsii.String("GraceOrDeleteAfterSwitchOver"), nil).
		When(sfn.Condition_StringEquals(jsii.String("$.deactivation.next"), jsii.String("grace")), wait, nil).
		When(sfn.Condition_StringEquals(jsii.String("$.deactivation.next"), jsii.String("delete")), del, nil).
		Otherwise(stopped))
	check.Next(sfn.NewChoice(scope, jsii.String("SwitchOver"), &sfn.ChoiceProps{
		Comment: jsii.String("wait: not adopted yet; deactivate: adopted on evidence, the window ended, or a person deactivated the old key; stop: ended or taken over"),
	}).When(sfn.Condition_StringEquals(jsii.String("$.adoption.next"), jsii.String("wait")), nextCheck, nil).
		When(sfn.Condition_StringEquals(jsii.String("$.adoption.next"), jsii.String("deactivate")), deactivate, nil).
		Otherwise(stopped))
	return sfn.NewChoice(scope, jsii.String("AdoptionWindowOrGrace"), &sfn.ChoiceProps{
		Comment: jsii.String("Started by StartAdoptionWindow: the adoption window first; by StartGracePeriod: the grace period."),
	}).When(sfn.Condition_IsPresent(jsii.String("$.adoption")), check, nil).Otherwise(wait)
}

// newLambdaTask returns the builder of keyrotor's Lambda tasks.
func newLambdaTask(fns map[string]awslambda.Function) lambdaTask {
	retryable := failures.Retryable()
	// Lambda's own failures, including a timed-out invocation
	// (Sandbox.Timedout): every step is safe to run again.
	lambdaErrors := []string{"Lambda.ServiceException", "Lambda.AWSLambdaException", "Lambda.SdkClientException", "Sandbox.Timedout"}
	timeouts := map[string]float64{}
	for _, f := range functions {
		timeouts[f.dir] = f.timeout
	}
	task := func(scope constructs.Construct, id, fn string, payload sfn.TaskInput, resultPath string, extra ...*sfn.RetryProps) awsstepfunctionstasks.LambdaInvoke {
		t := awsstepfunctionstasks.NewLambdaInvoke(scope, jsii.String(id), &awsstepfunctionstasks.LambdaInvokeProps{
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
		// Lambda throttles (a function at its reserved concurrency, or the
		// account's concurrency) have their own retrier, patient enough to
		// outlast a backlog of thousands of children: up to about 12 hours
		// (retriers keep separate attempt counts: AWS Step Functions
		// Developer Guide, "Handling errors in Step Functions workflows").
		t.AddRetry(&sfn.RetryProps{Errors: jsii.Strings("Lambda.TooManyRequestsException"), Interval: awscdk.Duration_Seconds(jsii.Number(5)),
			BackoffRate: jsii.Number(2), MaxAttempts: jsii.Number(150), MaxDelay: awscdk.Duration_Seconds(jsii.Number(300)), JitterStrategy: sfn.JitterType_FULL})
		// A function that hit its timeout: Lambda.Unknown ("Handle Lambda
		// service exceptions", Step Functions Developer Guide), or the
		// Task's own timeout (States.Timeout). Every step is safe to run
		// again; a timeout tends to repeat, so only twice.
		t.AddRetry(&sfn.RetryProps{Errors: jsii.Strings("Lambda.Unknown", "States.Timeout"), Interval: awscdk.Duration_Seconds(jsii.Number(10)),
			BackoffRate: jsii.Number(2), MaxAttempts: jsii.Number(2), JitterStrategy: sfn.JitterType_FULL})
		return t
	}
	return task
}
