package delivery

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// TestAWSError: an SDK error becomes an *Error with the HTTP status and
// the API's code, never the service's message; throttling is Retryable.
func TestAWSError(t *testing.T) {
	answer := func(status int, code string) error {
		return &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err:      &smithy.GenericAPIError{Code: code, Message: "value 'wJalrXUtnFEMI/K7MDENG' failed to satisfy constraint"},
		}}
	}
	tests := []struct {
		name      string
		err       error
		status    int
		msg       string
		retryable bool
	}{
		{"denied", answer(400, "AccessDeniedException"), 400, "AccessDeniedException", false},
		{"validation", answer(400, "ValidationException"), 400, "ValidationException", false},
		{"throttled", answer(400, "ThrottlingException"), 429, "ThrottlingException", true},
		{"server", answer(500, "InternalServerError"), 500, "InternalServerError", true},
		{"no code", &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 502}}, Err: errors.New("<html>")}}, 502, "an answer without an error code", true},
		{"no answer", errors.New("dial tcp 127.0.0.1:1: connection refused"), 0, "no answer", true},
		{"canceled", context.Canceled, 0, "no answer: canceled", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := awsError("ssm parameters /a, /b", "put parameter /b", tt.err)
			var e *Error
			if !errors.As(err, &e) || e.Status != tt.status || e.Msg != tt.msg || e.Retryable() != tt.retryable {
				t.Fatalf("awsError(%v) = %#v; want status %d, %q, retryable %v", tt.err, err, tt.status, tt.msg, tt.retryable)
			}
			if strings.Contains(err.Error(), "wJalr") || strings.Contains(err.Error(), "html") {
				t.Fatalf("awsError(%v) = %q: shows the service's message", tt.err, err)
			}
		})
	}
}
