package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// AdoptionUsers are the demo's adoption-window users: one whose pipeline
// switches to the new key as soon as it is stored, one whose pipeline
// keeps the old key.
var AdoptionUsers = []string{"pipeline-switches", "pipeline-stays"}

// Key is an access key with its secret (the pipelines' own).
type Key struct{ ID, Secret string }

// SeedAdoption creates AdoptionUsers, each with a 100-day-old key in use,
// and returns their keys.
func SeedAdoption(ctx context.Context, api IAM, base aws.Config, clock Clock) (map[string]Key, error) {
	defer clock(0)
	keys := map[string]Key{}
	for _, name := range AdoptionUsers {
		if err := clock(-100 * 24 * time.Hour); err != nil {
			return nil, err
		}
		if _, err := api.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name),
			Tags: []types.Tag{{Key: aws.String("email"), Value: aws.String(name + "@example.com")}}}); err != nil {
			return nil, fmt.Errorf("create user %s: %w", name, err)
		}
		k, err := api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
		if err != nil {
			return nil, fmt.Errorf("create key for %s: %w", name, err)
		}
		keys[name] = Key{aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)}
	}
	return keys, clock(0)
}

// Pipeline plays a workload that signs an S3 call with the user's key
// every 300 ms until ctx ends (IAM records each key's last use). With
// switches, it moves to the new key as soon as keyrotor stores it in the
// secret named secretName, and never uses the old one again.
func Pipeline(ctx context.Context, base aws.Config, secrets *secretsmanager.Client, secretName string, old Key, switches bool) {
	k := old
	for ctx.Err() == nil {
		if switches && k == old {
			out, err := secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(secretName)})
			var stored struct {
				ID     string `json:"accessKeyId"`
				Secret string `json:"secretAccessKey"`
			}
			if err == nil && json.Unmarshal([]byte(aws.ToString(out.SecretString)), &stored) == nil && stored.ID != "" {
				k = Key{stored.ID, stored.Secret}
			}
		}
		cfg := base.Copy()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(k.ID, k.Secret, "")
		cfg.RetryMaxAttempts = 1
		// A deactivated key fails: the pipeline's problem, as in life.
		_, _ = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
		select {
		case <-ctx.Done():
		case <-time.After(300 * time.Millisecond):
		}
	}
}
