package faultproxy_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/internal/faultproxy"
)

// tagsN returns n tags prefix1=v ... prefixN=v.
func tagsN(prefix string, n int) []iamtypes.Tag {
	var out []iamtypes.Tag
	for i := 1; i <= n; i++ {
		out = append(out, iamtypes.Tag{Key: aws.String(fmt.Sprintf("%s%d", prefix, i)), Value: aws.String("v")})
	}
	return out
}

// TestMotoTagLimits: with TagLimits, TagUser through the real SDK meets
// IAM's quotas (50 tags per user, counting those it has; keys 1-128
// characters, values 0-256) with IAM's errors, and a refused call leaves
// the user's tags as they were.
func TestMotoTagLimits(t *testing.T) {
	tests := []struct {
		name       string
		existing   int // tags the user has before
		tags       []iamtypes.Tag
		wantCode   string // "" for success
		wantStatus int
		wantTags   int // tags moto holds afterwards
	}{
		{"50th tag", 49, tagsN("new", 1), "", 200, 50},
		{"51st tag", 50, tagsN("new", 1), "LimitExceeded", 409, 50},
		{"51 in one call", 0, tagsN("new", 51), "ValidationError", 400, 0},
		{"overwrite at 50", 50, tagsN("old", 3), "", 200, 50},
		{"overwrite and one more", 50, append(tagsN("old", 1), tagsN("new", 1)...), "LimitExceeded", 409, 50},
		{"key of 128", 0, []iamtypes.Tag{{Key: aws.String(strings.Repeat("k", 128)), Value: aws.String("v")}}, "", 200, 1},
		{"key of 129", 0, []iamtypes.Tag{{Key: aws.String(strings.Repeat("k", 129)), Value: aws.String("v")}}, "ValidationError", 400, 0},
		{"key of 128 runes", 0, []iamtypes.Tag{{Key: aws.String(strings.Repeat("é", 128)), Value: aws.String("v")}}, "", 200, 1},
		{"empty value", 1, []iamtypes.Tag{{Key: aws.String("k"), Value: aws.String("")}}, "", 200, 2},
		{"value of 256", 0, []iamtypes.Tag{{Key: aws.String("k"), Value: aws.String(strings.Repeat("v", 256))}}, "", 200, 1},
		{"value of 257", 0, []iamtypes.Tag{{Key: aws.String("k"), Value: aws.String(strings.Repeat("v", 257))}}, "ValidationError", 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			direct, proxied, p := through(t)
			p.TagLimits = true
			var seed []string
			for _, tg := range tagsN("old", tt.existing) {
				seed = append(seed, *tg.Key, *tg.Value)
			}
			direct.User(t, "alice", seed...)
			before := direct.Tags(t, "alice")

			_, err := proxied.IAM.TagUser(context.Background(), &iam.TagUserInput{UserName: aws.String("alice"), Tags: tt.tags})
			after := direct.Tags(t, "alice")
			if len(after) != tt.wantTags {
				t.Errorf("after TagUser, moto holds %d tags; want %d", len(after), tt.wantTags)
			}
			if tt.wantCode == "" {
				if err != nil {
					t.Fatalf("TagUser: %v", err)
				}
				return
			}
			var api smithy.APIError
			if !errors.As(err, &api) || api.ErrorCode() != tt.wantCode {
				t.Fatalf("TagUser error = %v; want %s", err, tt.wantCode)
			}
			var resp *awshttp.ResponseError
			if !errors.As(err, &resp) || resp.HTTPStatusCode() != tt.wantStatus {
				t.Errorf("TagUser error = %v; want HTTP %d", err, tt.wantStatus)
			}
			if tt.wantCode == "LimitExceeded" {
				var limit *iamtypes.LimitExceededException
				if !errors.As(err, &limit) {
					t.Errorf("TagUser error %T is not *types.LimitExceededException", err)
				}
			}
			if !maps.Equal(after, before) {
				t.Errorf("a refused TagUser changed the tags: %v; were %v", after, before)
			}
		})
	}
}

// TestMotoTagLimitsOff: by default the proxy passes TagUser through, and
// moto accepts a 51st tag (the gap TagLimits closes).
func TestMotoTagLimitsOff(t *testing.T) {
	direct, proxied, _ := through(t)
	direct.User(t, "alice")
	if _, err := proxied.IAM.TagUser(context.Background(), &iam.TagUserInput{UserName: aws.String("alice"), Tags: tagsN("k", 50)}); err != nil {
		t.Fatal(err)
	}
	if _, err := proxied.IAM.TagUser(context.Background(), &iam.TagUserInput{UserName: aws.String("alice"), Tags: tagsN("more", 1)}); err != nil {
		t.Fatalf("TagUser of a 51st tag without TagLimits: %v", err)
	}
	if n := len(direct.Tags(t, "alice")); n != 51 {
		t.Fatalf("moto holds %d tags; want 51", n)
	}
}

// clock is a settable clock for Proxy.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestMotoConsistency: within Consistency of an access key write made
// through the proxy, ListAccessKeys through it shows the keys as they were
// before the write, while moto already holds the change; after the window
// it shows the truth. Each step is one write, then reads inside and after
// the window.
func TestMotoConsistency(t *testing.T) {
	direct, proxied, p := through(t)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p.Consistency, p.Now = 5*time.Second, c.Now
	ctx := context.Background()
	user := aws.String("alice")
	direct.User(t, "alice")
	old := direct.Key(t, "alice")
	var created string

	steps := []struct {
		name         string
		write        func(t *testing.T)
		stale, fresh func() map[string]string // keys (id -> status) inside the window, and after
	}{
		{
			name: "create",
			write: func(t *testing.T) {
				out, err := proxied.IAM.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: user})
				if err != nil {
					t.Fatal(err)
				}
				created = aws.ToString(out.AccessKey.AccessKeyId)
			},
			stale: func() map[string]string { return map[string]string{old: "Active"} },
			fresh: func() map[string]string { return map[string]string{old: "Active", created: "Active"} },
		},
		{
			name: "update",
			write: func(t *testing.T) {
				if _, err := proxied.IAM.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: user, AccessKeyId: aws.String(old), Status: iamtypes.StatusTypeInactive}); err != nil {
					t.Fatal(err)
				}
			},
			stale: func() map[string]string { return map[string]string{old: "Active", created: "Active"} },
			fresh: func() map[string]string { return map[string]string{old: "Inactive", created: "Active"} },
		},
		{
			name: "delete",
			write: func(t *testing.T) {
				if _, err := proxied.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: user, AccessKeyId: aws.String(old)}); err != nil {
					t.Fatal(err)
				}
			},
			stale: func() map[string]string { return map[string]string{old: "Inactive", created: "Active"} },
			fresh: func() map[string]string { return map[string]string{created: "Active"} },
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.write(t)
			if got, want := direct.Keys(t, "alice"), s.fresh(); !maps.Equal(got, want) {
				t.Fatalf("moto holds %v; want %v", got, want)
			}
			c.Add(4 * time.Second)
			if got, want := proxied.Keys(t, "alice"), s.stale(); !maps.Equal(got, want) {
				t.Errorf("ListAccessKeys 4s after %s = %v; want the view before it, %v", s.name, got, want)
			}
			c.Add(time.Second)
			if got, want := proxied.Keys(t, "alice"), s.fresh(); !maps.Equal(got, want) {
				t.Errorf("ListAccessKeys 5s after %s = %v; want %v", s.name, got, want)
			}
		})
	}

	// Two writes within the window: the view is from before the first.
	t.Run("create then delete", func(t *testing.T) {
		id := proxied.Key(t, "alice")
		if _, err := proxied.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: user, AccessKeyId: aws.String(created)}); err != nil {
			t.Fatal(err)
		}
		if got, want := proxied.Keys(t, "alice"), map[string]string{created: "Active"}; !maps.Equal(got, want) {
			t.Errorf("ListAccessKeys = %v; want the view before both writes, %v", got, want)
		}
		c.Add(5 * time.Second)
		if got, want := proxied.Keys(t, "alice"), map[string]string{id: "Active"}; !maps.Equal(got, want) {
			t.Errorf("ListAccessKeys after the window = %v; want %v", got, want)
		}
	})

	// Another user's writes do not touch this user's view, and the
	// deleted key shows its old metadata.
	t.Run("metadata", func(t *testing.T) {
		direct.User(t, "bob")
		bobKey := direct.Key(t, "bob")
		before, err := proxied.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")})
		if err != nil {
			t.Fatal(err)
		}
		proxied.Key(t, "alice") // a write to alice only
		if _, err := proxied.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String("bob"), AccessKeyId: aws.String(bobKey)}); err != nil {
			t.Fatal(err)
		}
		after, err := proxied.IAM.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String("bob")})
		if err != nil {
			t.Fatal(err)
		}
		if len(after.AccessKeyMetadata) != 1 || len(before.AccessKeyMetadata) != 1 {
			t.Fatalf("ListAccessKeys(bob) = %+v; want the deleted key", after.AccessKeyMetadata)
		}
		b, a := before.AccessKeyMetadata[0], after.AccessKeyMetadata[0]
		if aws.ToString(a.UserName) != "bob" || aws.ToString(a.AccessKeyId) != bobKey || a.Status != b.Status || !aws.ToTime(a.CreateDate).Equal(aws.ToTime(b.CreateDate)) {
			t.Errorf("deleted key listed as %+v; want as before, %+v", a, b)
		}
	})
}

// TestMotoConsistencyDropResponse: a write whose answer the proxy drops
// still happened, so it opens the window too.
func TestMotoConsistencyDropResponse(t *testing.T) {
	direct, proxied, p := through(t)
	c := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	p.Consistency, p.Now = 5*time.Second, c.Now
	direct.User(t, "alice")
	p.FailNth("CreateAccessKey", 1, faultproxy.DropResponse)
	if _, err := proxied.IAM.CreateAccessKey(context.Background(), &iam.CreateAccessKeyInput{UserName: aws.String("alice")}); err == nil {
		t.Fatal("CreateAccessKey answered through DropResponse")
	}
	if got := direct.Keys(t, "alice"); len(got) != 1 {
		t.Fatalf("moto holds %v; want the key created behind the dropped answer", got)
	}
	if got := proxied.Keys(t, "alice"); len(got) != 0 {
		t.Errorf("ListAccessKeys within the window = %v; want none", got)
	}
	c.Add(5 * time.Second)
	if got := proxied.Keys(t, "alice"); len(got) != 1 {
		t.Errorf("ListAccessKeys after the window = %v; want the key", got)
	}
}

// TestMotoConsistencyOff: by default ListAccessKeys shows a new key at
// once.
func TestMotoConsistencyOff(t *testing.T) {
	direct, proxied, _ := through(t)
	direct.User(t, "alice")
	id := proxied.Key(t, "alice")
	if got := proxied.Keys(t, "alice"); len(got) != 1 || got[id] != "Active" {
		t.Fatalf("ListAccessKeys = %v; want %s Active", got, id)
	}
}

// TestMotoAttribution: every call through the proxy is attributed to the
// access key that signed it, with the IAM action that authorizes it, so a
// test can hold what each function did against its role's policy.
func TestMotoAttribution(t *testing.T) {
	direct, proxied, p := through(t)
	ctx := context.Background()
	direct.User(t, "alice")
	direct.Bucket(t, "runs")
	as := func(keyID string) aws.Config {
		cfg := proxied.Config.Copy()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(keyID, "secret", "")
		return cfg
	}
	planner, rotator := as("AKIAPLANNER000000001"), as("AKIAROTATOR000000001")
	if _, err := s3.NewFromConfig(planner, func(o *s3.Options) { o.UsePathStyle = true }).ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("runs")}); err != nil {
		t.Fatal(err)
	}
	if _, err := iam.NewFromConfig(planner).ListUsers(ctx, &iam.ListUsersInput{}); err != nil {
		t.Fatal(err)
	}
	if _, err := iam.NewFromConfig(rotator).CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String("alice")}); err != nil {
		t.Fatal(err)
	}
	if _, err := secretsmanager.NewFromConfig(rotator).CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("iam-access-keys/alice"), SecretString: aws.String("s")}); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, c := range p.Log() {
		got[c.AccessKeyID] = append(got[c.AccessKeyID], c.Action)
	}
	want := map[string][]string{
		"AKIAPLANNER000000001": {"s3:ListBucket", "iam:ListUsers"},
		"AKIAROTATOR000000001": {"iam:CreateAccessKey", "secretsmanager:CreateSecret"},
	}
	if !maps.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("actions by key = %v; want %v", got, want)
	}
}
