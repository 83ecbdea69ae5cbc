// Package awsconf loads the AWS SDK configuration for the command line and
// the tests: the standard chain, with an optional endpoint override for
// emulators (AWS_ENDPOINT_URL is honoured by the SDK itself; Load adds an
// explicit one for tests and the CLI flag). The Lambdas use lambdaenv,
// which keeps the SDK's config package (shared config files, SSO, IMDS)
// out of their binaries.
package awsconf

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
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
