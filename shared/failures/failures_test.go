package failures

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/smithy-go"
)

// TestBoundary: whatever a step returns, Step Functions sees one of the
// named types, by its Go type name.
func TestBoundary(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"named, wrapped", fmt.Errorf("create: %w", &KeyLimitError{User: "a"}), "KeyLimitError"},
		{"throttling API error", fmt.Errorf("list: %w", &smithy.GenericAPIError{Code: "Throttling", Message: "Rate exceeded"}), "ThrottlingError"},
		{"throttling exception", &smithy.GenericAPIError{Code: "ThrottlingException"}, "ThrottlingError"},
		{"server fault", &smithy.GenericAPIError{Code: "InternalFailure", Fault: smithy.FaultServer}, "TransientError"},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), "TransientError"},
		{"connection reset", errors.New("read tcp: connection reset by peer"), "TransientError"},
		{"client fault", &smithy.GenericAPIError{Code: "AccessDenied", Fault: smithy.FaultClient}, "StepError"},
		{"plain", errors.New("boom"), "StepError"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Name(Boundary(tt.err)); got != tt.want {
				t.Errorf("Name(Boundary(%v)) = %s; want %s", tt.err, got, tt.want)
			}
		})
	}
	if Boundary(nil) != nil {
		t.Error("Boundary(nil) != nil")
	}
	for _, n := range All() {
		if n == "" {
			t.Error("an unnamed error type")
		}
	}
}

// TestIsThrottle: only rate-limit codes are throttling. A quota (IAM's
// LimitExceeded, or LimitExceededException from Secrets Manager, KMS or
// SES) cannot be outwaited, so it must fail the step, not be retried.
func TestIsThrottle(t *testing.T) {
	tests := []struct {
		name string
		code string
		want bool
	}{
		{"iam throttling", "Throttling", true},
		{"secrets manager throttling", "ThrottlingException", true},
		{"sns throttling", "ThrottledException", true},
		{"sesv2 throttling", "TooManyRequestsException", true},
		{"s3 slow down", "SlowDown", true},
		{"dynamodb throttling", "ProvisionedThroughputExceededException", true},
		{"iam quota", "LimitExceeded", false},
		{"secrets manager quota", "LimitExceededException", false},
		{"access denied", "AccessDenied", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := fmt.Errorf("call: %w", &smithy.GenericAPIError{Code: tt.code, Fault: smithy.FaultClient})
			if got := IsThrottle(err); got != tt.want {
				t.Errorf("IsThrottle(%s) = %v; want %v", tt.code, got, tt.want)
			}
			wantName := "StepError"
			if tt.want {
				wantName = "ThrottlingError"
			}
			if got := Name(Boundary(err)); got != wantName {
				t.Errorf("Name(Boundary(%s)) = %s; want %s", tt.code, got, wantName)
			}
		})
	}
}
