package demo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	ghemu "github.com/keyrotor/keyrotor/internal/emulators/github"
	glemu "github.com/keyrotor/keyrotor/internal/emulators/gitlab"
	"github.com/keyrotor/keyrotor/shared/delivery"
)

// Reader reads the key a pipeline finds where keyrotor delivers it (a CI
// system's secrets, SSM parameters); ok is false while it holds none.
type Reader func(ctx context.Context) (k Key, ok bool, err error)

// DeliveredPipeline is a workload that takes its key from a destination,
// as a CI job takes it from its secrets: it starts with the old key and
// uses whatever the destination holds from then on. It never reads
// Secrets Manager: only delivery gets the new key to it.
type DeliveredPipeline struct {
	User  string
	Old   Key
	Read  Reader
	Every time.Duration // between two jobs (default 1s)

	mu       sync.Mutex
	key      Key
	calls    int
	failures []string
	switched time.Time
}

// Run plays jobs until ctx ends. Each job reads the destination first: a
// pair whose id and secret both differ from the current key replaces it
// (a job that starts between the destination's two writes keeps the pair
// it had, as one that read both values before the write would). It then
// signs an S3 call with the key. A failed call is recorded: a key that is
// no longer Active fails, as AWS refuses it (the emulator does too:
// internal/motoserver).
func (p *DeliveredPipeline) Run(ctx context.Context, base aws.Config) {
	every := p.Every
	if every == 0 {
		every = time.Second
	}
	p.mu.Lock()
	p.key = p.Old
	p.mu.Unlock()
	for ctx.Err() == nil {
		p.job(ctx, base)
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

func (p *DeliveredPipeline) job(ctx context.Context, base aws.Config) {
	p.mu.Lock()
	k := p.key
	p.mu.Unlock()
	if got, ok, err := p.Read(ctx); err != nil && ctx.Err() == nil {
		p.fail("read the key from its destination: %v", err)
		return
	} else if ok && got.ID != k.ID && got.Secret != k.Secret {
		k = got
		p.mu.Lock()
		p.key, p.switched = k, time.Now()
		p.mu.Unlock()
	}
	cfg := base.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(k.ID, k.Secret, "")
	cfg.RetryMaxAttempts = 1
	_, err := s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	if err != nil {
		p.fail("job signed with %s failed: %v", k.ID, err)
	}
}

func (p *DeliveredPipeline) fail(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.failures = append(p.failures, time.Now().UTC().Format("15:04:05.000")+" "+fmt.Sprintf(format, args...))
}

// Result is what the pipeline saw: its jobs, the failed ones, the key it
// uses now and when it took that key from its destination (zero: never).
func (p *DeliveredPipeline) Result() (calls int, failures []string, key Key, switched time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, append([]string(nil), p.failures...), p.key, p.switched
}

// ValueReader is a CI emulator's view of a secret or variable: its
// plaintext (internal/emulators' Value).
type ValueReader func(scope, name string) (string, bool)

// FromCI reads the key from a CI emulator's two values in scope.
func FromCI(value ValueReader, scope, idName, secretName string) Reader {
	return func(context.Context) (Key, bool, error) {
		id, ok1 := value(scope, idName)
		secret, ok2 := value(scope, secretName)
		return Key{id, secret}, ok1 && ok2 && id != "" && secret != "", nil
	}
}

// ParameterGetter is the SSM call FromSSM makes.
type ParameterGetter interface {
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

// FromSSM reads the key from two SSM parameters (decrypted); a missing
// parameter is no key yet.
func FromSSM(api ParameterGetter, idName, secretName string) Reader {
	return func(ctx context.Context) (Key, bool, error) {
		var vals [2]string
		for i, name := range []string{idName, secretName} {
			out, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
			if err != nil {
				var nf *ssmtypes.ParameterNotFound
				if errors.As(err, &nf) {
					return Key{}, false, nil
				}
				return Key{}, false, err
			}
			vals[i] = aws.ToString(out.Parameter.Value)
		}
		return Key{vals[0], vals[1]}, true, nil
	}
}

// DeliveryUsers are the delivery act's users, each with one destination
// its pipeline reads its key from: a GitHub repository secret, two SSM
// parameters, and a GitLab project variable whose API is down for the
// whole act (its rotation keeps the old key Active).
var DeliveryUsers = []string{"app-deployer", "nightly-etl", "mobile-release"}

// Delivery is the delivery act's world: the CI emulators, the users' old
// keys and their pipelines.
type Delivery struct {
	GitHub    *ghemu.Server
	GitLab    *glemu.Server
	Keys      map[string]Key
	Pipelines map[string]*DeliveredPipeline // by user
}

// Close stops the emulators.
func (d *Delivery) Close() {
	d.GitHub.Close()
	d.GitLab.Close()
}

// SecretCreator is the Secrets Manager call that stores the CI tokens in
// the hub.
type SecretCreator interface {
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
}

// SeedDelivery creates DeliveryUsers, each with a 100-day-old key in use;
// starts the GitHub and GitLab emulators on loopback (GitLab answering 500
// until a day from now), stores their tokens in the hub secrets
// keyrotor-delivery/github and keyrotor-delivery/gitlab, and registers
// each user's destinations in store, as `keyrotor destinations set` does.
// Each user's pipeline reads its key from its destination (params: the
// SSM client the SSM pipeline reads with).
func SeedDelivery(ctx context.Context, api IAM, secrets SecretCreator, params ParameterGetter, store *delivery.Store, clock Clock) (*Delivery, error) {
	keys, err := seedDeliveryUsers(ctx, api, clock, DeliveryUsers)
	if err != nil {
		return nil, err
	}
	gh, err := ghemu.Start()
	if err != nil {
		return nil, err
	}
	gl, err := glemu.Start()
	if err != nil {
		gh.Close()
		return nil, err
	}
	d := &Delivery{GitHub: gh, GitLab: gl, Keys: keys}
	gh.AddRepo("octo/app")
	gl.AddProject("mobile/app")
	gl.FailUntil(time.Now().Add(24 * time.Hour))
	for name, token := range map[string]string{"keyrotor-delivery/github": gh.Token(), "keyrotor-delivery/gitlab": gl.Token()} {
		if _, err := secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String(token)}); err != nil {
			d.Close()
			return nil, fmt.Errorf("store the token %s: %w", name, err)
		}
	}
	const idVar, secretVar = "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"
	specs := map[string]delivery.Spec{
		"app-deployer":   {Type: "github", Repository: "octo/app", Credential: "keyrotor-delivery/github", URL: gh.URL()},
		"nightly-etl":    {Type: "ssm", IDName: "/ci/nightly-etl/aws-access-key-id", SecretName: "/ci/nightly-etl/aws-secret-access-key"},
		"mobile-release": {Type: "gitlab", Project: "mobile/app", Credential: "keyrotor-delivery/gitlab", URL: gl.URL()},
	}
	readers := map[string]Reader{
		"app-deployer":   FromCI(gh.Value, "repo:octo/app", idVar, secretVar),
		"nightly-etl":    FromSSM(params, specs["nightly-etl"].IDName, specs["nightly-etl"].SecretName),
		"mobile-release": FromCI(gl.Value, "project:mobile/app", idVar, secretVar),
	}
	d.Pipelines = map[string]*DeliveredPipeline{}
	for _, u := range DeliveryUsers {
		doc := &delivery.Document{Version: 1, Destinations: []delivery.Spec{specs[u]}}
		if err := store.Put(ctx, "", u, doc, "keyrotor demo"); err != nil {
			d.Close()
			return nil, fmt.Errorf("register the destinations of %s: %w", u, err)
		}
		d.Pipelines[u] = &DeliveredPipeline{User: u, Old: keys[u], Read: readers[u]}
	}
	return d, nil
}

// seedDeliveryUsers creates users, each with an owner e-mail tag and a
// 100-day-old key, and returns their keys.
func seedDeliveryUsers(ctx context.Context, api IAM, clock Clock, users []string) (map[string]Key, error) {
	defer clock(0)
	keys := map[string]Key{}
	if err := clock(-100 * 24 * time.Hour); err != nil {
		return nil, err
	}
	for _, name := range users {
		if _, err := api.CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name),
			Tags: []iamtypes.Tag{{Key: aws.String("email"), Value: aws.String(name + "@example.com")}}}); err != nil {
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
