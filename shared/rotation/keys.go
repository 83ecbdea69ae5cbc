package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// ListKeysAPI is the part of IAM that lists a user's keys.
type ListKeysAPI interface {
	ListAccessKeys(ctx context.Context, in *iam.ListAccessKeysInput, optFns ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error)
}

var _ iam.ListAccessKeysAPIClient = ListKeysAPI(nil)

// liveKeys lists user's keys. A user that does not exist yields ok=false.
func liveKeys(ctx context.Context, api ListKeysAPI, user string) (keys []types.AccessKeyMetadata, ok bool, err error) {
	p := iam.NewListAccessKeysPaginator(api, &iam.ListAccessKeysInput{UserName: aws.String(user)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if isNoSuchEntity(err) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("list access keys of %s: %w", user, err)
		}
		keys = append(keys, out.AccessKeyMetadata...)
	}
	return keys, true, nil
}

func findKey(keys []types.AccessKeyMetadata, id string) (types.AccessKeyMetadata, bool) {
	for _, k := range keys {
		if aws.ToString(k.AccessKeyId) == id {
			return k, true
		}
	}
	return types.AccessKeyMetadata{}, false
}

// SecretName is where the key of user is stored: prefix + user name. IAM
// user names may hold ',' which secret names may not, so ',' is written as
// "=2C" and '=' as "=3D" (a one-to-one mapping; names without either are
// unchanged).
func SecretName(prefix, user string) string {
	if !strings.ContainsAny(user, ",=") {
		return prefix + user
	}
	r := strings.NewReplacer("=", "=3D", ",", "=2C")
	return prefix + r.Replace(user)
}

// nowOf is a step's clock: its Now field, or the real time.
func nowOf(now func() time.Time) time.Time {
	if now != nil {
		return now()
	}
	return time.Now()
}

// logOf is a step's logger: its Log field, or the default.
func logOf(l *slog.Logger) *slog.Logger {
	if l != nil {
		return l
	}
	return slog.Default()
}

// ListTagsAPI is the part of IAM that reads a user's tags (owner address,
// exemption). keyrotor never writes user tags: they are the customer's.
type ListTagsAPI interface {
	ListUserTags(ctx context.Context, in *iam.ListUserTagsInput, optFns ...func(*iam.Options)) (*iam.ListUserTagsOutput, error)
}

// userTags returns every tag of user.
func userTags(ctx context.Context, api ListTagsAPI, user string) (map[string]string, error) {
	tags := map[string]string{}
	p := iam.NewListUserTagsPaginator(api, &iam.ListUserTagsInput{UserName: aws.String(user)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list tags of %s: %w", user, err)
		}
		for _, t := range out.Tags {
			tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return tags, nil
}

func isNoSuchEntity(err error) bool {
	var nse *types.NoSuchEntityException
	return errors.As(err, &nse)
}
