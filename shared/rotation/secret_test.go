package rotation_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// foreignPolicy lets a principal of the account's choosing read the secret.
const foreignPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:user/mallory"},"Action":"secretsmanager:GetSecretValue","Resource":"*"}]}`

// withKey configures s with a KMS key of the emulated account, as the stack
// does, and returns its ARN.
func withKey(t *testing.T, s *steps) string {
	t.Helper()
	key, err := kms.NewFromConfig(s.acct.Config).CreateKey(context.Background(), &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	s.cfg.KMSKeyID = aws.ToString(key.KeyMetadata.Arn)
	s.rewire()
	return s.cfg.KMSKeyID
}

func userID(t *testing.T, a *awstest.Account, user string) string {
	t.Helper()
	u, err := a.IAM.GetUser(context.Background(), &iam.GetUserInput{UserName: aws.String(user)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(u.User.UserId)
}

func resourcePolicy(t *testing.T, a *awstest.Account, name string) string {
	t.Helper()
	p, err := a.Secrets.GetResourcePolicy(context.Background(), &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(p.ResourcePolicy)
}

// Defect 1 of issue 17: a principal who may create secrets creates
// <prefix><admin> in advance, made to let it read what is stored there (its
// own resource policy, a user-id tag naming itself, a key it controls or
// the default one, a replica elsewhere). keyrotor must store nothing in
// it: no key is created (or the one created is deleted), the rotation
// waits with attention, and the admins are told the secret's ARN and why.
func TestMotoForeignSecretGetsNoKey(t *testing.T) {
	tests := []struct {
		name string
		// make returns the CreateSecret input of the pre-created secret,
		// given keyrotor's key, the owner's and the attacker's ids.
		make    func(key, owner, attacker string) *secretsmanager.CreateSecretInput
		policy  string // a resource policy put on it, if any
		why     string // in the admins' message
		deleted bool   // scheduled for deletion, too
	}{
		{"foreign resource policy", func(key, owner, _ string) *secretsmanager.CreateSecretInput {
			return &secretsmanager.CreateSecretInput{KmsKeyId: aws.String(key), Tags: ownTags(owner)}
		}, foreignPolicy, "resource policy is not keyrotor's", false},
		{"foreign resource policy, scheduled for deletion", func(key, owner, _ string) *secretsmanager.CreateSecretInput {
			return &secretsmanager.CreateSecretInput{KmsKeyId: aws.String(key), Tags: ownTags(owner)}
		}, foreignPolicy, "resource policy is not keyrotor's", true},
		{"user-id tag naming another user", func(key, _, attacker string) *secretsmanager.CreateSecretInput {
			return &secretsmanager.CreateSecretInput{KmsKeyId: aws.String(key), Tags: ownTags(attacker)}
		}, "", "tags are not keyrotor's", false},
		{"an extra tag", func(key, owner, _ string) *secretsmanager.CreateSecretInput {
			return &secretsmanager.CreateSecretInput{KmsKeyId: aws.String(key), Tags: append(ownTags(owner), smtypes.Tag{Key: aws.String("team"), Value: aws.String("mallory")})}
		}, "", "tags are not keyrotor's", false},
		{"the default key", func(_, owner, _ string) *secretsmanager.CreateSecretInput {
			return &secretsmanager.CreateSecretInput{Tags: ownTags(owner)}
		}, "", "aws/secretsmanager", false},
		{"a replica", func(key, owner, _ string) *secretsmanager.CreateSecretInput {
			return &secretsmanager.CreateSecretInput{KmsKeyId: aws.String(key), Tags: ownTags(owner), AddReplicaRegions: []smtypes.ReplicaRegionType{{Region: aws.String("eu-west-1")}}}
		}, "", "replicated to eu-west-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := awstest.New(t)
			s := newSteps(t, a)
			key := withKey(t, s)
			ctx := context.Background()
			oldID, _ := seedUser(t, a, "admin", 100, 1)
			a.User(t, "mallory")
			name := rotation.SecretName(s.cfg.SecretPrefix, "admin")
			in := tt.make(key, userID(t, a, "admin"), userID(t, a, "mallory"))
			in.Name, in.SecretString = aws.String(name), aws.String(`{"waiting":"for the admin's key"}`)
			pre, err := a.Secrets.CreateSecret(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if tt.policy != "" {
				if _, err := a.Secrets.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String(name), ResourcePolicy: aws.String(tt.policy)}); err != nil {
					t.Fatal(err)
				}
			}
			if tt.deleted {
				if _, err := a.Secrets.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), RecoveryWindowInDays: aws.Int64(7)}); err != nil {
					t.Fatal(err)
				}
			}
			task := rotation.Task{Execution: "e1", Item: itemFor(t, s.plan(t, `{}`), "admin")}
			nk, err := s.create.Handle(ctx, task)
			if err != nil {
				t.Fatalf("create-and-store = %v; want the rotation stopped with attention", err)
			}
			if tt.deleted { // keyrotor restored it, then found the policy foreign
				if _, err := a.Secrets.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(name)}); err != nil {
					t.Fatal(err)
				}
			}
			if got := a.Secret(t, name); got != `{"waiting":"for the admin's key"}` {
				t.Errorf("the foreign secret now holds %s; want nothing stored in it", got)
			}
			if keys := a.Keys(t, "admin"); len(keys) != 1 || keys[oldID] != "Active" {
				t.Errorf("keys = %v; want the old key alone (no new key kept)", keys)
			}
			if nk.KeyID != "" || !strings.HasPrefix(nk.Skipped, "stopped:") {
				t.Errorf("create-and-store = %+v; want stopped, no key", nk)
			}
			r := s.record(t, oldID)
			if !strings.Contains(r.Attention, aws.ToString(pre.ARN)) || !strings.Contains(r.Attention, tt.why) || !r.State.InFlight() {
				t.Errorf("record = %s, attention %q; want in flight, attention naming %s and %q", r.State, r.Attention, aws.ToString(pre.ARN), tt.why)
			}
			if tt.policy != "" && resourcePolicy(t, a, name) != tt.policy {
				t.Errorf("the foreign policy was changed to %s", resourcePolicy(t, a, name))
			}
			_, notes := a.Sent(t)
			told := false
			for _, n := range notes {
				told = told || strings.Contains(n.Message, aws.ToString(pre.ARN)) && strings.Contains(n.Message, "force-delete-without-recovery")
			}
			if !told {
				t.Errorf("admins were told %+v; want the secret's ARN and how to delete it", notes)
			}

			// A person deletes the secret for good: the next attempt
			// rotates, into keyrotor's own secret.
			if len(in.AddReplicaRegions) > 0 {
				if _, err := a.Secrets.RemoveRegionsFromReplication(ctx, &secretsmanager.RemoveRegionsFromReplicationInput{SecretId: aws.String(name), RemoveReplicaRegions: []string{"eu-west-1"}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a.Secrets.DeleteSecret(ctx, &secretsmanager.DeleteSecretInput{SecretId: aws.String(name), ForceDeleteWithoutRecovery: aws.Bool(true)}); err != nil {
				t.Fatal(err)
			}
			nk, err = s.create.Handle(ctx, task)
			if err != nil || nk.KeyID == "" {
				t.Fatalf("create after the deletion = %+v, %v; want a stored key", nk, err)
			}
			var stored rotation.StoredKey
			json.Unmarshal([]byte(a.Secret(t, name)), &stored)
			if r := s.record(t, oldID); stored.AccessKeyID != nk.KeyID || r.Attention != "" || r.State != ledger.Stored {
				t.Errorf("stored %s, record %s attention %q; want %s stored and the attention cleared", stored.AccessKeyID, r.State, r.Attention, nk.KeyID)
			}
		})
	}
}

func ownTags(id string) []smtypes.Tag {
	return []smtypes.Tag{{Key: aws.String(rotation.TagUserID), Value: aws.String(id)}, {Key: aws.String(rotation.TagManaged), Value: aws.String("true")}}
}

// racingSecrets creates the foreign secret just before keyrotor's
// CreateSecret, after its first look found none.
type racingSecrets struct {
	rotation.SecretsAPI
	race func()
}

func (r *racingSecrets) CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, o ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error) {
	if r.race != nil {
		r.race()
		r.race = nil
	}
	return r.SecretsAPI.CreateSecret(ctx, in, o...)
}

// The foreign secret appears between keyrotor's first look and its
// CreateSecret: the key just created is deleted, nothing is stored.
func TestMotoForeignSecretRaceDiscardsTheNewKey(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	ctx := context.Background()
	oldID, _ := seedUser(t, a, "admin", 100, 1)
	name := rotation.SecretName(s.cfg.SecretPrefix, "admin")
	s.create.Secrets = &racingSecrets{SecretsAPI: a.Secrets, race: func() {
		if _, err := a.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), Tags: ownTags(userID(t, a, "admin"))}); err != nil {
			t.Error(err)
		}
		if _, err := a.Secrets.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String(name), ResourcePolicy: aws.String(foreignPolicy)}); err != nil {
			t.Error(err)
		}
	}}
	nk, err := s.create.Handle(ctx, rotation.Task{Execution: "e1", Item: itemFor(t, s.plan(t, `{}`), "admin")})
	if err != nil || nk.KeyID != "" {
		t.Fatalf("create-and-store = %+v, %v; want stopped", nk, err)
	}
	if keys := a.Keys(t, "admin"); len(keys) != 1 || keys[oldID] != "Active" {
		t.Errorf("keys = %v; want the new key deleted", keys)
	}
	if v, err := a.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)}); err == nil {
		t.Errorf("the foreign secret holds %s; want nothing", aws.ToString(v.SecretString))
	}
	if r := s.record(t, oldID); !strings.Contains(r.Attention, "deleted the new key") || r.NewKeyID != "" {
		t.Errorf("record attention %q, new key %q; want the discarded key told, none recorded", r.Attention, r.NewKeyID)
	}
}

// keyrotor's own secret carries its resource policy from before the first
// value; a secret keyrotor stored before it put one (same key and tags, no
// policy) is taken and gets it; so is one whose keyrotor policy lists other
// trusted principals (the break-glass setting changed since).
func TestMotoStoredSecretGetsKeyRotorsPolicy(t *testing.T) {
	a := awstest.New(t)
	s := newSteps(t, a)
	key := withKey(t, s)
	ctx := context.Background()
	for _, u := range []string{"ann", "old", "bea"} {
		seedUser(t, a, u, 100, 1)
	}
	earlier := s.cfg
	earlier.BreakGlass = []string{"arn:aws:iam::123456789012:role/FormerBreakGlass"}
	for user, policy := range map[string]string{"old": "", "bea": rotation.SecretPolicy(earlier, userID(t, a, "bea"))} {
		name := rotation.SecretName(s.cfg.SecretPrefix, user)
		if _, err := a.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(name), KmsKeyId: aws.String(key),
			Tags: ownTags(userID(t, a, user)), SecretString: aws.String(`{"accessKeyId":"AKIAOLDER"}`)}); err != nil {
			t.Fatal(err)
		}
		if policy != "" {
			if _, err := a.Secrets.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{SecretId: aws.String(name), ResourcePolicy: aws.String(policy)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	plan := s.plan(t, `{}`)
	for _, user := range []string{"ann", "old", "bea"} {
		nk, err := s.create.Handle(ctx, rotation.Task{Execution: "e1", Item: itemFor(t, plan, user)})
		if err != nil || nk.KeyID == "" {
			t.Fatalf("create for %s = %+v, %v", user, nk, err)
		}
		name := rotation.SecretName(s.cfg.SecretPrefix, user)
		if got, want := resourcePolicy(t, a, name), rotation.SecretPolicy(s.cfg, userID(t, a, user)); got != want {
			t.Errorf("%s resource policy = %s; want %s", name, got, want)
		}
		var stored rotation.StoredKey
		json.Unmarshal([]byte(a.Secret(t, name)), &stored)
		if stored.AccessKeyID != nk.KeyID {
			t.Errorf("%s holds %s; want %s", name, stored.AccessKeyID, nk.KeyID)
		}
	}
}
