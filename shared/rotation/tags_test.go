package rotation_test

import (
	"context"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// tagCounter counts the users whose tags find reads.
type tagCounter struct {
	*iam.Client
	mu    sync.Mutex
	users map[string]int
}

func (c *tagCounter) ListUserTags(ctx context.Context, in *iam.ListUserTagsInput, o ...func(*iam.Options)) (*iam.ListUserTagsOutput, error) {
	c.mu.Lock()
	c.users[aws.ToString(in.UserName)]++
	c.mu.Unlock()
	return c.Client.ListUserTags(ctx, in, o...)
}

// TestMotoPlanReadsEveryTagOnlyInDryRun: a dry run (the audit, `keyrotor
// plan`) reads the tags of every user with a credential, so a user tagged
// exempt with nothing due is planned exempt; the daily run reads the tags
// of the users with a due credential only, as before: no call per user.
func TestMotoPlanReadsEveryTagOnlyInDryRun(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	seedUser(t, a, "due", 100, 2)
	for _, u := range []string{"quiet-1", "quiet-2", "quiet-3"} {
		seedUser(t, a, u, 10, 1)
	}
	seedUser(t, a, "quiet-exempt", 10, 1, "keyrotor:exempt", "TRUE")
	a.User(t, "no-credentials", "keyrotor:exempt", "true")
	a.Clock(t, 0)
	cases := []struct {
		name, input string
		tagsOf      []string
		exempt      int
	}{
		{"daily run", `{}`, []string{"due"}, 0},
		{"dry run", `{"dryRun":true}`, []string{"due", "quiet-1", "quiet-2", "quiet-3", "quiet-exempt"}, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tc := &tagCounter{Client: a.IAM, users: map[string]int{}}
			s.find.IAM = tc
			p := s.plan(t, c.input)
			if len(tc.users) != len(c.tagsOf) {
				t.Errorf("Handle(%s) read the tags of %v; want %v", c.input, tc.users, c.tagsOf)
			}
			for _, u := range c.tagsOf {
				if tc.users[u] != 1 {
					t.Errorf("Handle(%s) read %s's tags %d times; want once", c.input, u, tc.users[u])
				}
			}
			if p.Counts.Exempt != c.exempt || len(p.Exempt) != c.exempt {
				t.Fatalf("Handle(%s) exempt %d %+v; want %d", c.input, p.Counts.Exempt, p.Exempt, c.exempt)
			}
			if c.exempt > 0 {
				if x := p.Exempt[0]; x.User != "quiet-exempt" || x.KeyID != "access_key_1" || x.Action != policy.Exempt || x.Reason != "tagged keyrotor:exempt=true" {
					t.Errorf("Handle(%s) exempt %+v; want quiet-exempt's access_key_1, tagged keyrotor:exempt=true", c.input, x)
				}
			}
		})
	}
}
