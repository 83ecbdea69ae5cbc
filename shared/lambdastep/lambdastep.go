// Package lambdastep is the wiring every keyrotor function shares: JSON
// logs, configuration from the environment, the AWS SDK configuration, and a
// handler wrapper that returns only the named error types of package
// failures, so Step Functions' Retry and Catch see the names they list.
package lambdastep

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/shared/awsconf/lambdaenv"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/org"
)

// Env is what a function's main needs.
type Env struct {
	Config config.Config
	AWS    aws.Config
	Log    *slog.Logger
	// Now is the steps' clock: the real time, or in local runs the
	// emulator's settable clock (see LocalClock).
	Now func() time.Time
}

// EnvLocalClock names a file holding a clock offset in seconds, shared with
// the emulator (internal/motoserver). Local runs and the calendar
// simulation set it so the steps and moto agree on the day; the stack never
// sets it.
const EnvLocalClock = "KEYROTOR_LOCAL_CLOCK_FILE"

// LocalClock returns the clock of a function: time.Now plus the offset in
// the file named by EnvLocalClock, read at each call.
func LocalClock(getenv func(string) string) func() time.Time {
	path := getenv(EnvLocalClock)
	if path == "" {
		return time.Now
	}
	return func() time.Time {
		b, err := os.ReadFile(path)
		if err != nil {
			return time.Now()
		}
		sec, err := strconv.ParseFloat(strings.TrimSpace(string(b)), 64)
		if err != nil {
			return time.Now()
		}
		return time.Now().Add(time.Duration(sec * float64(time.Second)))
	}
}

// Records is the rotation record store named by the configuration.
func (e Env) Records() *ledger.Store {
	return &ledger.Store{API: dynamodb.NewFromConfig(e.AWS), Table: e.Config.RotationTable}
}

// Setup loads the configuration and the SDK configuration once, at start-up.
// A bad setting ends the process with a message naming the variable (the
// Lambda init fails, visibly, before any work is done).
func Setup(function string) Env {
	log := lambdacontext.NewLogger().With("function", function)
	slog.SetDefault(log)
	cfg, err := config.FromEnv(os.Getenv)
	if err != nil {
		log.Error("invalid configuration", "error", err.Error())
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The SDK retries throttled calls only (up to 8 attempts, backoff with
	// jitter); everything else goes back to the state machine's Retry on
	// the named errors, where each step converges when re-run.
	awsCfg, err := lambdaenv.Config(os.Getenv, 8)
	if err != nil {
		log.Error("load AWS configuration", "error", err.Error())
		os.Exit(1)
	}
	if cfg.RotationTable == "" {
		msg := "config: " + config.EnvRotationTable + " is not set: the stack sets it to the rotation record table"
		log.Error("invalid configuration", "error", msg)
		fmt.Fprintln(os.Stderr, msg)
		os.Exit(1)
	}
	return Env{Config: cfg, AWS: awsCfg, Log: log, Now: LocalClock(os.Getenv)}
}

// Start runs handle as the Lambda handler, converting its errors with
// failures.Boundary and logging them (by name and message, never payloads).
func Start[In, Out any](env Env, handle func(context.Context, In) (Out, error)) {
	lambda.Start(Wrap(env.Log, handle))
}

// Wrap is Start's handler conversion, exposed for tests.
func Wrap[In, Out any](log *slog.Logger, handle func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	return func(ctx context.Context, in In) (Out, error) {
		// Stop AWS calls (and their throttling backoff) a little before
		// Lambda's deadline, so the step returns a TransientError the state
		// machine retries, rather than being cut off mid-flight.
		if dl, ok := ctx.Deadline(); ok {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, dl.Add(-3*time.Second))
			defer cancel()
		}
		out, err := handle(ctx, in)
		if err != nil {
			named := failures.Boundary(err)
			log.ErrorContext(ctx, "step failed", "errorType", failures.Name(named), "error", named.Error())
			var zero Out
			return zero, named
		}
		return out, nil
	}
}

// Account is what a step needs to act in one account of the organization
// mode: the AWS configuration acting there and the functions'
// configuration with that account's key for the secrets stored there.
type Account struct {
	ID     string // "" : the account the function runs in
	AWS    aws.Config
	Config config.Config
}

// PerAccount returns a handler that runs each input with the step build
// makes for the input's account, built once per account and reused. The
// home account ("" or the hub's id) uses the function's own configuration;
// a member account the member role, assumed first (a refusal is an
// *failures.AccountUnreachableError with the fix, and so is an access
// denied in that account). An account out of the configured scope (a
// member account in a single-account deployment, an excluded account: see
// org.InScope) is an *failures.OutOfScopeError, before any AWS call.
func PerAccount[In interface{ AccountID() string }, Out any](env Env, function string, build func(Account) func(context.Context, In) (Out, error)) func(context.Context, In) (Out, error) {
	sessions := &org.Sessions{Home: env.AWS, HomeAccount: env.Config.HomeAccount, STS: sts.NewFromConfig(env.AWS), SessionName: "keyrotor-" + function}
	var mu sync.Mutex
	steps := map[string]func(context.Context, In) (Out, error){}
	return func(ctx context.Context, in In) (Out, error) {
		var zero Out
		account := in.AccountID()
		if sessions.IsHome(account) {
			account = ""
		}
		// Every step checks the scope again: find planned only accounts in
		// scope, but the step acts on whatever its input names.
		if err := org.InScope(env.Config, in.AccountID()); err != nil {
			return zero, err
		}
		mu.Lock()
		step, ok := steps[account]
		mu.Unlock()
		if !ok {
			a := Account{ID: account, AWS: env.AWS, Config: env.Config}
			if account != "" {
				c, err := sessions.Reach(ctx, account)
				if err != nil {
					return zero, err
				}
				a.AWS = c
				a.Config.KMSKeyID = config.MemberKeyAlias
				// In a member account keyrotor acts as the member role:
				// the principal its secrets' resource policy lets in.
				a.Config.StoreRoleARN = org.RoleARN(partitionOf(env.Config.StoreRoleARN), account)
			}
			step = build(a)
			mu.Lock()
			steps[account] = step
			mu.Unlock()
		}
		out, err := step(ctx, in)
		if err != nil && account != "" {
			err = org.Denied(account, err)
		}
		return out, err
	}
}

// partitionOf returns the partition of an ARN ("aws" when there is none).
func partitionOf(arn string) string {
	if p := strings.Split(arn, ":"); len(p) > 1 && p[1] != "" {
		return p[1]
	}
	return "aws"
}
