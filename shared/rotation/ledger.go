package rotation

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// The ledger: IAM user tags that record a rotation's progress, keyed by the
// old key's ID, so that any step re-run (Retry, Redrive, a second execution)
// sees what earlier attempts did. All of them are removed when the old key
// is deleted.
const (
	tagReplacedBy  = "keyrotor:replaced-by:" // + old key id = new key id
	tagDeactivated = "keyrotor:deactivated:" // + old key id = RFC 3339 time keyrotor deactivated it
	tagNotified    = "keyrotor:notified:"    // + old key id = sending|mailed|done RFC 3339
)

// Ledger is the state of one user's ledger tags and other tags.
type Ledger map[string]string

// ReplacedBy returns the replacement recorded for old.
func (l Ledger) ReplacedBy(old string) string { return l[tagReplacedBy+old] }

// DeactivatedAt returns when keyrotor deactivated key, or zero.
func (l Ledger) DeactivatedAt(key string) time.Time {
	t, err := time.Parse(time.RFC3339, l[tagDeactivated+key])
	if err != nil {
		return time.Time{}
	}
	return t
}

// Notified returns the notify marker state for old ("" when none).
func (l Ledger) Notified(old string) (state string, at time.Time) {
	v := l[tagNotified+old]
	if v == "" {
		return "", time.Time{}
	}
	state, ts, _ := strings.Cut(v, " ")
	at, _ = time.Parse(time.RFC3339, ts)
	return state, at
}

// TagsAPI is the part of IAM the ledger uses.
type TagsAPI interface {
	ListUserTags(ctx context.Context, in *iam.ListUserTagsInput, optFns ...func(*iam.Options)) (*iam.ListUserTagsOutput, error)
	TagUser(ctx context.Context, in *iam.TagUserInput, optFns ...func(*iam.Options)) (*iam.TagUserOutput, error)
	UntagUser(ctx context.Context, in *iam.UntagUserInput, optFns ...func(*iam.Options)) (*iam.UntagUserOutput, error)
}

// ListTagsAPI is the read-only part.
type ListTagsAPI interface {
	ListUserTags(ctx context.Context, in *iam.ListUserTagsInput, optFns ...func(*iam.Options)) (*iam.ListUserTagsOutput, error)
}

// readLedger returns every tag of user (ledger and others).
func readLedger(ctx context.Context, api ListTagsAPI, user string) (Ledger, error) {
	l := Ledger{}
	p := iam.NewListUserTagsPaginator(api, &iam.ListUserTagsInput{UserName: aws.String(user)})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list tags of %s: %w", user, err)
		}
		for _, t := range out.Tags {
			l[aws.ToString(t.Key)] = aws.ToString(t.Value)
		}
	}
	return l, nil
}

func writeTag(ctx context.Context, api TagsAPI, user, key, value string) error {
	_, err := api.TagUser(ctx, &iam.TagUserInput{UserName: aws.String(user), Tags: []types.Tag{{Key: aws.String(key), Value: aws.String(value)}}})
	if err != nil {
		return fmt.Errorf("tag %s with %s: %w", user, key, err)
	}
	return nil
}

func removeTags(ctx context.Context, api TagsAPI, user string, keys ...string) error {
	_, err := api.UntagUser(ctx, &iam.UntagUserInput{UserName: aws.String(user), TagKeys: keys})
	if err != nil && !isNoSuchEntity(err) {
		return fmt.Errorf("untag %s: %w", user, err)
	}
	return nil
}

func ledgerKeys(old string) []string {
	return []string{tagReplacedBy + old, tagDeactivated + old, tagNotified + old}
}

func isNoSuchEntity(err error) bool {
	var nse *types.NoSuchEntityException
	return errors.As(err, &nse)
}
