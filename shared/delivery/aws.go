package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
)

// AWSClients are the AWS clients of one account and region, for the ssm
// and secretsmanager destinations (see ssm.go and secretsmanager.go for
// the calls each makes).
type AWSClients struct {
	SSM     SSMAPI
	Secrets SecretsAPI
}

var (
	accountPattern = regexp.MustCompile(`^[0-9]{12}$`)
	// regionPattern is the shape of a region name (us-east-1,
	// ap-southeast-5, us-gov-west-1, eu-isoe-west-1).
	regionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)
)

// IsAWS reports whether s is written through AWS clients (Env.AWS): the
// ssm and secretsmanager types.
func (s Spec) IsAWS() bool { return s.Type == "ssm" || s.Type == "secretsmanager" }

// AccountFor returns the account an AWS destination of a user in
// userAccount is written in, and the field that names it: its account;
// else the account of a secretId given as an ARN; else the user's own
// account (field ""), which for a user of keyrotor's own account is
// keyrotor's. "" stands for keyrotor's own account. A destination of
// another type has no account ("", "").
func (s Spec) AccountFor(userAccount string) (account, field string) {
	switch {
	case !s.IsAWS():
		return "", ""
	case s.Account != "":
		return s.Account, "account"
	}
	if s.Type == "secretsmanager" && strings.HasPrefix(s.SecretID, "arn:") {
		if a, err := arn.Parse(s.SecretID); err == nil && a.AccountID != "" {
			return a.AccountID, "secretId"
		}
	}
	return userAccount, ""
}

// checkPlace checks the account and region of an AWS destination: both
// optional (account "": the user's own account, see AccountFor; region
// "": keyrotor's own).
func checkPlace(s Spec, field string) error {
	if s.Account != "" && !accountPattern.MatchString(s.Account) {
		return &FieldError{Field: join(field, "account"), Msg: fmt.Sprintf("%q is not an AWS account id; want its 12 digits, or leave it out for the user's own account", s.Account)}
	}
	if s.Region != "" && !regionPattern.MatchString(s.Region) {
		return &FieldError{Field: join(field, "region"), Msg: fmt.Sprintf("%q is not a region name; want one such as us-east-1, or leave it out for keyrotor's own region", s.Region)}
	}
	return nil
}

// place names an account and region for Where.
func place(account, region string) string {
	a := "keyrotor's account"
	if account != "" {
		a = "account " + account
	}
	r := "keyrotor's region"
	if region != "" {
		r = region
	}
	return a + ", " + r
}

// clients returns the AWS clients of a spec's account and region.
func clients(ctx context.Context, env Env, where, account, region string) (AWSClients, error) {
	if env.AWS == nil {
		return AWSClients{}, fmt.Errorf("%s: no AWS clients in this environment", where)
	}
	c, err := env.AWS(ctx, account, region)
	if err != nil {
		return AWSClients{}, fmt.Errorf("%s: %w", where, err)
	}
	return c, nil
}

// statusRefused is the Status of keyrotor's own refusal of what an API
// answered (a String parameter, a secret that is missing or holds no JSON
// object): 422, as an API answers a request it cannot process, so the
// Error is not Retryable: a person must act.
const statusRefused = http.StatusUnprocessableEntity

// awsError turns an AWS SDK error into an *Error: the HTTP status and the
// API's error code only. The service's message is left out: some echo
// the request (a parameter's value, a secret's string). A throttling
// error (the SDK's own list: ThrottlingException and the like, which the
// services answer with HTTP 400) counts as 429, so it is Retryable.
func awsError(where, op string, err error) error {
	e := &Error{Where: where, Op: op}
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		e.Status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	switch {
	case errors.As(err, &ae):
		e.Msg = ae.ErrorCode()
	case e.Status != 0:
		e.Msg = "an answer without an error code"
	case errors.Is(err, context.Canceled):
		e.Msg = "no answer: canceled"
	case errors.Is(err, context.DeadlineExceeded):
		e.Msg = "no answer: timed out"
	default:
		e.Msg = "no answer"
	}
	if e.Status < 500 && retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary {
		e.Status = http.StatusTooManyRequests
	}
	return e
}
