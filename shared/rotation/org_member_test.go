package rotation_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestMotoOrganizationMemberProtectsUsers: a member account protects its
// users locally, whatever the hub asks. The member stack (the synthesized
// template, deployed with ExcludedUserPaths=/breakglass/) denies its role
// writing the keys of a user tagged exempt and of users under the
// excluded path, and the emulated AWS (the fault proxy's RoleDenies)
// enforces that Deny: create-and-store, asked by a forged item to rotate
// them, is refused by AWS, and so is a direct call with the member role's
// credentials (a compromised hub). Another user of the account is rotated.
func TestMotoOrganizationMemberProtectsUsers(t *testing.T) {
	if _, err := os.Stat(memberTemplate); err != nil {
		t.Fatalf("%s missing: run `make synth` (make test does)", memberTemplate)
	}
	ctx := context.Background()
	hub := awstest.New(t)
	o := awstest.NewOrg(t, hub.Endpoint, []awstest.MemberSpec{{Name: "dev", OU: "Development"}})
	dev := o.Member(t, "dev")
	dev.DeployMemberStackWith(t, memberTemplate, map[string]string{"ExcludedUserPaths": "/breakglass/"})
	oldKey := map[string]string{}
	for _, u := range []struct{ name, path, tag string }{{"alice", "/", "true"}, {"root-admin", "/breakglass/", ""}, {"carol", "/", ""}} {
		in := &iam.CreateUserInput{UserName: aws.String(u.name), Path: aws.String(u.path)}
		if u.tag != "" {
			in.Tags = []types.Tag{{Key: aws.String(config.DefaultExemptTag), Value: aws.String(u.tag)}}
		}
		if _, err := dev.IAM.CreateUser(ctx, in); err != nil {
			t.Fatal(err)
		}
		oldKey[u.name] = dev.Key(t, u.name)
	}

	p, err := faultproxy.New(hub.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.RoleChecks, p.RoleDenies = true, true
	t.Cleanup(p.Close)
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: p.URL(), Region: "us-east-1", StaticTestCredentials: true, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	c := config.Default()
	c.OrgScope, c.HomeAccount, c.AdminTopicARN = []string{o.Root}, awstest.DefaultAccount, hub.Topic(t, "keyrotor-admins")
	recs := hub.Records(t, "rotations")
	env := lambdastep.Env{Config: c, AWS: cfg, Log: slog.New(slog.NewJSONHandler(&strings.Builder{}, nil))}
	create := lambdastep.PerAccount(env, "create-and-store", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.NewKey, error) {
		cr := &rotation.Creator{IAM: iam.NewFromConfig(a.AWS), Secrets: secretsmanager.NewFromConfig(a.AWS), Records: recs, Topic: hub.SNS, Config: a.Config}
		return cr.Handle
	})

	tests := []struct {
		name    string
		user    string
		refused bool
	}{
		{"tagged exempt", "alice", true},
		{"under an excluded path", "root-admin", true},
		{"another user", "carol", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			task := rotation.Task{Execution: "forged", Item: rotation.Item{Account: dev.ID, User: tt.user, Action: policy.Rotate,
				Reason: "asked by the hub", OldKey: rotation.KeyRef{ID: oldKey[tt.user]}}}
			nk, err := create(ctx, task)
			keys := dev.Keys(t, tt.user)
			if !tt.refused {
				if err != nil || len(keys) != 2 || keys[nk.KeyID] != "Active" {
					t.Fatalf("create = %+v, %v; keys %v; want a new Active key", nk, err, keys)
				}
				return
			}
			var ue *failures.AccountUnreachableError
			if !errors.As(err, &ue) || !strings.Contains(ue.Msg, "iam:CreateAccessKey was denied") || !strings.Contains(ue.Msg, "the member account protects this user") {
				t.Fatalf("create = %+v, %v; want AccountUnreachableError naming iam:CreateAccessKey", nk, err)
			}
			if len(keys) != 1 || keys[oldKey[tt.user]] != "Active" {
				t.Fatalf("keys = %v; want only the old key, Active", keys)
			}
			// A compromised hub, with the member role's own credentials.
			s := &org.Sessions{Home: cfg, HomeAccount: awstest.DefaultAccount, STS: sts.NewFromConfig(cfg), SessionName: "compromised"}
			member := iam.NewFromConfig(s.Config(dev.ID))
			_, uerr := member.UpdateAccessKey(ctx, &iam.UpdateAccessKeyInput{UserName: aws.String(tt.user), AccessKeyId: aws.String(oldKey[tt.user]), Status: types.StatusTypeInactive})
			_, derr := member.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(tt.user), AccessKeyId: aws.String(oldKey[tt.user])})
			for _, e := range []error{uerr, derr} {
				var ae smithy.APIError
				if !errors.As(e, &ae) || ae.ErrorCode() != "AccessDenied" {
					t.Errorf("direct call with the member role = %v; want AccessDenied", e)
				}
			}
			if keys := dev.Keys(t, tt.user); len(keys) != 1 || keys[oldKey[tt.user]] != "Active" {
				t.Fatalf("keys after direct calls = %v; want the old key, Active", keys)
			}
		})
	}
}
