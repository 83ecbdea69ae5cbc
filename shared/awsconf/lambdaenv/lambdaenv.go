// Package lambdaenv builds the AWS SDK configuration of a Lambda from the
// environment the Lambda runtime provides, and the retry policy every
// keyrotor client shares. It imports no part of the SDK's config package
// (shared config files, SSO, IMDS), which a Lambda never uses: a function
// binary that imported it would carry about 2 MB more.
package lambdaenv

import (
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyrotor/keyrotor/shared/failures"
)

// Config builds the SDK configuration from the environment the
// Lambda runtime provides (AWS_REGION and the execution role's credentials
// in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), plus
// AWS_ENDPOINT_URL when set (local runs). It avoids the config package's
// shared-config, SSO and IMDS machinery, which a Lambda never uses and which
// adds about 2 MB to every binary.
func Config(getenv func(string) string, maxAttempts int) (aws.Config, error) {
	region := getenv("AWS_REGION")
	if region == "" {
		region = getenv("AWS_DEFAULT_REGION")
	}
	id, secret := getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY")
	if region == "" || id == "" || secret == "" {
		return aws.Config{}, fmt.Errorf("AWS_REGION, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set (the Lambda runtime sets them)")
	}
	cfg := aws.Config{
		Region:           region,
		Credentials:      aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(id, secret, getenv("AWS_SESSION_TOKEN"))),
		HTTPClient:       awshttp.NewBuildableClient().WithTimeout(30 * time.Second),
		Retryer:          func() aws.Retryer { return ThrottleRetryer(maxAttempts) },
		RetryMaxAttempts: max(maxAttempts, 1),
	}
	if ep := getenv("AWS_ENDPOINT_URL"); ep != "" {
		cfg.BaseEndpoint = aws.String(ep)
	}
	return cfg, nil
}

// ServiceEndpoint is the SDK's service-specific endpoint setting
// (AWS_ENDPOINT_URL_<SERVICE_ID>, for example AWS_ENDPOINT_URL_SFN), as a
// client option; without it the client keeps the config's endpoint. Local
// runs point Step Functions' API at the runner this way.
func ServiceEndpoint[O any](getenv func(string) string, serviceID string, set func(*O, *string)) func(*O) {
	return func(o *O) {
		if ep := getenv("AWS_ENDPOINT_URL_" + serviceID); ep != "" {
			set(o, aws.String(ep))
		}
	}
}

// ThrottleRetryer retries only throttled calls (which AWS did not carry
// out), with exponential backoff and jitter up to 10 s and no client-side
// retry quota, so a function survives heavy throttling. A 5xx, a timeout or
// a broken connection is not retried here: the call may have taken effect,
// and the step's own converge-on-re-run logic, driven by the state
// machine's Retry on TransientError, handles it.
func ThrottleRetryer(maxAttempts int) aws.Retryer {
	return retry.NewStandard(func(o *retry.StandardOptions) {
		o.MaxAttempts = max(maxAttempts, 1)
		o.MaxBackoff = 10 * time.Second
		o.RateLimiter = ratelimit.None
		o.Retryables = []retry.IsErrorRetryable{retry.IsErrorRetryableFunc(func(err error) aws.Ternary {
			if failures.IsThrottle(err) {
				return aws.TrueTernary
			}
			return aws.FalseTernary
		})}
	})
}
