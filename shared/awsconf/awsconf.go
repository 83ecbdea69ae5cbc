// Package awsconf loads the AWS SDK configuration the same way for the
// Lambdas, the command line and the tests: the standard chain, with an
// optional endpoint override for emulators (AWS_ENDPOINT_URL is honoured by
// the SDK itself; Load adds an explicit one for tests and the CLI flag).
package awsconf

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/keyrotor/keyrotor/shared/failures"
)

// Options tune Load.
type Options struct {
	Endpoint string // e.g. http://127.0.0.1:5000; empty: the SDK's normal resolution
	Region   string // empty: from the environment, else us-east-1 with an endpoint
	// StaticTestCredentials uses fixed dummy credentials (for emulators).
	StaticTestCredentials bool
	// MaxAttempts for the SDK's own retryer; 0 keeps the SDK default (3).
	// The orchestrator retries named errors, so the Lambdas keep this low.
	MaxAttempts int
	// HTTPTimeout bounds every call; 0 means 30s.
	HTTPTimeout time.Duration
}

// Load returns an aws.Config for opts.
func Load(ctx context.Context, opts Options) (aws.Config, error) {
	timeout := opts.HTTPTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	lo := []func(*config.LoadOptions) error{
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)),
	}
	if opts.Region != "" {
		lo = append(lo, config.WithRegion(opts.Region))
	}
	if opts.Endpoint != "" {
		lo = append(lo, config.WithBaseEndpoint(opts.Endpoint))
	}
	if opts.StaticTestCredentials {
		lo = append(lo, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("testing", "testing", "")))
	}
	if opts.MaxAttempts > 0 {
		lo = append(lo, config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(o *retry.StandardOptions) { o.MaxAttempts = opts.MaxAttempts })
		}))
	}
	cfg, err := config.LoadDefaultConfig(ctx, lo...)
	if err != nil {
		return aws.Config{}, err
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return cfg, nil
}

// FromLambdaEnv builds the SDK configuration from the environment the
// Lambda runtime provides (AWS_REGION and the execution role's credentials
// in AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN), plus
// AWS_ENDPOINT_URL when set (local runs). It avoids the config package's
// shared-config, SSO and IMDS machinery, which a Lambda never uses and which
// adds about 2 MB to every binary.
func FromLambdaEnv(getenv func(string) string, maxAttempts int) (aws.Config, error) {
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
