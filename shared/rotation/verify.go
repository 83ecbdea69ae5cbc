package rotation

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// STSVerifier proves a key with sts:GetCallerIdentity, using base for the
// region, endpoint and HTTP client and the key itself as credentials. It
// makes a single attempt: retries for IAM's eventual consistency belong to
// the state machine (NewKeyNotReadyError).
func STSVerifier(base aws.Config) VerifyFunc {
	return func(ctx context.Context, keyID, secret string) (string, error) {
		cfg := base.Copy()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(keyID, secret, "")
		cfg.RetryMaxAttempts = 1
		out, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return "", err
		}
		return aws.ToString(out.Arn), nil
	}
}
