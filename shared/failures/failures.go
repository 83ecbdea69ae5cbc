// Package failures defines the errors the state machine branches or retries on.
//
// Step Functions sees a Lambda error by the Go type name of the value the
// handler returns (aws-lambda-go reports reflect.TypeOf(err).Elem().Name()).
// Every function returns one of these types unwrapped at its boundary (see
// Boundary), and the CDK stack builds its Retry and Catch lists from Name, so
// the two can never drift apart.
package failures

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"

	"github.com/aws/smithy-go"
)

// ThrottlingError: an AWS API refused the call for rate reasons. Retried by
// the orchestrator with exponential backoff and full jitter.
type ThrottlingError struct{ Op, Msg string }

func (e *ThrottlingError) Error() string { return fmt.Sprintf("%s throttled: %s", e.Op, e.Msg) }

// TransientError: a 5xx, a timeout or a dropped connection. The call may or
// may not have taken effect; every step is written to converge when re-run.
type TransientError struct{ Op, Msg string }

func (e *TransientError) Error() string { return fmt.Sprintf("%s failed transiently: %s", e.Op, e.Msg) }

// ReportNotReadyError: the IAM credential report is still being generated.
// find never sleeps; the orchestrator retries it.
type ReportNotReadyError struct{ State string }

func (e *ReportNotReadyError) Error() string {
	return fmt.Sprintf("credential report not ready yet (state %s); retry later", e.State)
}

// NewKeyNotReadyError: a freshly created key is not yet accepted by STS
// (IAM is eventually consistent). The key is stored; a retry reuses it.
type NewKeyNotReadyError struct{ User, KeyID, Msg string }

func (e *NewKeyNotReadyError) Error() string {
	return fmt.Sprintf("new key %s of %s not usable yet: %s", e.KeyID, e.User, e.Msg)
}

// RotationInProgressError: another execution holds the rotation claim for
// this user and old key. Retried; the other execution's key is then reused.
type RotationInProgressError struct{ User, OldKeyID, Holder string }

func (e *RotationInProgressError) Error() string {
	return fmt.Sprintf("rotation of %s key %s is in progress in execution %s", e.User, e.OldKeyID, e.Holder)
}

// KeyLimitError: the user already has two keys and neither may be removed
// by keyrotor, so no new key can be created. Not retried.
type KeyLimitError struct{ User, Msg string }

func (e *KeyLimitError) Error() string { return fmt.Sprintf("user %s: %s", e.User, e.Msg) }

// InvalidInputError: the execution input or a step payload is malformed.
// Field names the offending field; nothing was changed. Not retried.
type InvalidInputError struct{ Field, Msg string }

func (e *InvalidInputError) Error() string {
	if e.Field == "" {
		return "invalid input: " + e.Msg
	}
	return fmt.Sprintf("invalid input field %q: %s", e.Field, e.Msg)
}

// SendRejectedError: SES or SNS refused a message (for example an
// unverified sender). Not retried: a person must fix the configuration.
type SendRejectedError struct{ Channel, Msg string }

func (e *SendRejectedError) Error() string {
	return fmt.Sprintf("%s rejected the message: %s", e.Channel, e.Msg)
}

// ConflictError: a rotation record changed between a step's read and its
// write (another execution or step wrote it first). Retried: the step reads
// the record again and converges.
type ConflictError struct{ ID string }

func (e *ConflictError) Error() string {
	return fmt.Sprintf("rotation record %s changed concurrently; re-read and retry", e.ID)
}

// NotVisibleYetError: IAM does not yet show what keyrotor just wrote (a new
// key not yet listed, a status change not yet seen). IAM is eventually
// consistent ("Changes that I make are not always immediately visible",
// IAM User Guide, Troubleshooting IAM); the orchestrator retries.
type NotVisibleYetError struct{ What string }

func (e *NotVisibleYetError) Error() string {
	return fmt.Sprintf("not visible in IAM yet: %s; retrying", e.What)
}

// AccountUnreachableError: keyrotor cannot act in a member account of the
// organization: the member role is missing or denied (sts:AssumeRole), or
// an SCP or the role denies an action there. Account is the 12-digit id and
// Msg says what to fix. Not retried: a person must deploy or fix the
// member stack; every other account goes on.
type AccountUnreachableError struct{ Account, Msg string }

func (e *AccountUnreachableError) Error() string {
	return fmt.Sprintf("account %s unreachable: %s", e.Account, e.Msg)
}

// OutOfScopeError: a step was asked to act on an account or a user
// outside the configured scope (an excluded account, an account not in an
// explicit scope list, a member account in a single-account deployment),
// or on a rotation record that belongs to another account or user than the
// item names. Nothing was changed. Not retried: the input is wrong (a
// forged or stale plan), not the moment.
type OutOfScopeError struct{ Account, User, Msg string }

func (e *OutOfScopeError) Error() string {
	who := e.Account
	if e.User != "" {
		who += "/" + e.User
	}
	if who == "" {
		return "out of scope: " + e.Msg
	}
	return fmt.Sprintf("out of scope: %s: %s", who, e.Msg)
}

// StepError: any other failure. Not retried by name; the execution fails
// and shows the message.
type StepError struct{ Msg string }

func (e *StepError) Error() string { return e.Msg }

// Name returns the error name Step Functions shows for err's type.
func Name(err error) string {
	t := reflect.TypeOf(err)
	if t.Kind() == reflect.Pointer {
		return t.Elem().Name()
	}
	return t.Name()
}

// Retryable lists the error names the orchestrator retries with backoff.
func Retryable() []string {
	return []string{Name(&ThrottlingError{}), Name(&TransientError{}), Name(&ConflictError{}), Name(&NotVisibleYetError{})}
}

// All lists every named error, for documentation and template tests.
func All() []string {
	return []string{
		Name(&ThrottlingError{}), Name(&TransientError{}), Name(&ReportNotReadyError{}),
		Name(&NewKeyNotReadyError{}), Name(&RotationInProgressError{}), Name(&KeyLimitError{}),
		Name(&InvalidInputError{}), Name(&SendRejectedError{}), Name(&ConflictError{}), Name(&NotVisibleYetError{}),
		Name(&AccountUnreachableError{}), Name(&OutOfScopeError{}), Name(&StepError{}),
	}
}

// throttleCodes are the API error codes AWS services use for rate limiting.
//
// Quota errors are deliberately absent: a retry cannot fix them, and
// retrying one as throttling only delays the failure by the whole backoff.
//   - IAM's LimitExceeded: a quota such as two access keys or 50 tags per
//     user (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html);
//     IAM throttling is "Throttling".
//   - LimitExceededException: a quota in the services keyrotor calls:
//     Secrets Manager ("would exceed one of the Secrets Manager quotas",
//     https://docs.aws.amazon.com/secretsmanager/latest/apireference/API_CreateSecret.html),
//     KMS ("a quota was exceeded") and SES v2 (a resource could not be
//     created because of service limits). Their throttling is
//     ThrottlingException or TooManyRequestsException. The SDK's default
//     retryer (aws/retry DefaultThrottleErrorCodes) does count
//     LimitExceededException as throttling, for services such as Kinesis that
//     also use it for too many concurrent requests; keyrotor calls none of them
//     (DynamoDB returns it only for too many concurrent control-plane
//     operations, such as CreateTable, which the functions never call).
var throttleCodes = map[string]bool{
	"Throttling": true, "ThrottlingException": true, "ThrottledException": true,
	"TooManyRequestsException": true, "RequestLimitExceeded": true, "RequestThrottled": true,
	"RequestThrottledException": true, "SlowDown": true, "PriorRequestNotComplete": true,
	// DynamoDB's "request was denied due to request throttling"
	// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Programming.Errors.html).
	"ProvisionedThroughputExceededException": true,
}

// IsThrottle reports whether err is an AWS throttling error.
func IsThrottle(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && throttleCodes[ae.ErrorCode()]
}

// IsTransient reports whether err is a 5xx, a timeout or a broken connection.
func IsTransient(err error) bool {
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorFault() == smithy.FaultServer {
		return true
	}
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) && re.HTTPStatusCode() >= 500 {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	msg := err.Error()
	for _, s := range []string{"connection reset", "EOF", "connection refused", "broken pipe", "timeout", "deadline exceeded"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// APICode returns the AWS error code of err, or "".
func APICode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// Boundary turns any error into one of the named types, so the name Step
// Functions sees is always one the state machine knows. Named errors pass
// through unchanged (unwrapped); AWS throttling and transient failures keep
// the wrapping context in their message.
func Boundary(err error) error {
	if err == nil {
		return nil
	}
	for _, target := range []any{
		new(*ThrottlingError), new(*TransientError), new(*ReportNotReadyError), new(*NewKeyNotReadyError),
		new(*RotationInProgressError), new(*KeyLimitError), new(*InvalidInputError), new(*SendRejectedError),
		new(*ConflictError), new(*NotVisibleYetError), new(*AccountUnreachableError), new(*OutOfScopeError), new(*StepError),
	} {
		if errors.As(err, target) {
			return reflect.ValueOf(target).Elem().Interface().(error)
		}
	}
	switch {
	case IsThrottle(err):
		return &ThrottlingError{Op: "aws", Msg: err.Error()}
	case IsTransient(err):
		return &TransientError{Op: "aws", Msg: err.Error()}
	}
	return &StepError{Msg: err.Error()}
}

// APICodeOr returns the AWS error code of err, or def. Use it where an
// error's full text could echo request data.
func APICodeOr(err error, def string) string {
	if c := APICode(err); c != "" {
		return c
	}
	return def
}
