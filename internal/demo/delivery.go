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
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
)

// Reader reads the key a pipeline finds where keyrotor delivers it (a CI
// system's secrets, SSM parameters); ok is false while it holds none.
type Reader func(ctx context.Context) (k Key, ok bool, err error)

// KeyLister is the IAM call a delivered pipeline makes to see whether the
// key it signs with is Active.
type KeyLister interface {
	ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, optFns ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error)
}

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
// signs an S3 call with the key. A failed call is recorded, and so is a
// call signed with a key IAM does not list as Active: IAM refuses those,
// and the emulator does not.
func (p *DeliveredPipeline) Run(ctx context.Context, base aws.Config, keys KeyLister) {
	every := p.Every
	if every == 0 {
		every = time.Second
	}
	p.mu.Lock()
	p.key = p.Old
	p.mu.Unlock()
	for ctx.Err() == nil {
		p.job(ctx, base, keys)
		select {
		case <-ctx.Done():
		case <-time.After(every):
		}
	}
}

func (p *DeliveredPipeline) job(ctx context.Context, base aws.Config, keys KeyLister) {
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
	list, err := keys.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(p.User)})
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		p.fail("list the keys of %s: %v", p.User, err)
		return
	}
	active := false
	for _, m := range list.AccessKeyMetadata {
		active = active || aws.ToString(m.AccessKeyId) == k.ID && m.Status == "Active"
	}
	cfg := base.Copy()
	cfg.Credentials = credentials.NewStaticCredentialsProvider(k.ID, k.Secret, "")
	cfg.RetryMaxAttempts = 1
	_, err = s3.NewFromConfig(cfg, func(o *s3.Options) { o.UsePathStyle = true }).ListBuckets(ctx, &s3.ListBucketsInput{})
	if ctx.Err() != nil {
		return
	}
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	switch {
	case err != nil:
		p.fail("job signed with %s failed: %v", k.ID, err)
	case !active:
		p.fail("job signed with %s, which IAM does not list as Active: IAM refuses it", k.ID)
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
