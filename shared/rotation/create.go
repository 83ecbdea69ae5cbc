package rotation

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// CreateIAM is the part of IAM create-and-store calls.
type CreateIAM interface {
	ListKeysAPI
	TagsAPI
	CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error)
	DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, optFns ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error)
}

var _ CreateIAM = (*iam.Client)(nil)

// SecretsAPI is the part of Secrets Manager create-and-store calls.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
}

var _ SecretsAPI = (*secretsmanager.Client)(nil)

// VerifyFunc proves a key works by calling sts:GetCallerIdentity with it and
// returns the caller ARN.
type VerifyFunc func(ctx context.Context, keyID, secret string) (arn string, err error)

// StoredKey is the JSON held by a user's secret.
type StoredKey struct {
	AccessKeyID     string    `json:"accessKeyId"`
	SecretAccessKey string    `json:"secretAccessKey"`
	UserName        string    `json:"userName"`
	ReplacesKeyID   string    `json:"replacesKeyId,omitempty"`
	CreatedAt       time.Time `json:"createdAt"`
}

// claim is the secret version that reserves the rotation of one old key for
// one execution, so that two executions never both create a key.
type claim struct {
	Claim         string    `json:"keyrotorClaim"` // the old key id
	UserName      string    `json:"userName"`
	ClaimedBy     string    `json:"claimedBy"` // execution name
	ClaimedAt     time.Time `json:"claimedAt"`
	ReplacesKeyID string    `json:"replacesKeyId"`
}

const claimStage = "KEYROTOR_CLAIM"

// Creator is the create-and-store step.
type Creator struct {
	IAM     CreateIAM
	Secrets SecretsAPI
	Verify  VerifyFunc
	Config  config.Config
	Now     func() time.Time
	Log     *slog.Logger
}

// Handle creates (or reuses) the replacement of t.Item.OldKey and stores it.
func (c *Creator) Handle(ctx context.Context, t Task) (*NewKey, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	if it.Action != policy.Rotate {
		return nil, &failures.InvalidInputError{Field: "item.action", Msg: fmt.Sprintf("create-and-store handles rotate items, got %q", it.Action)}
	}
	name := SecretName(c.Config.SecretPrefix, it.User)
	log := logOf(c.Log).With("user", it.User, "oldKeyId", it.OldKey.ID, "secret", name)

	keys, exists, err := liveKeys(ctx, c.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if !exists {
		log.WarnContext(ctx, "user no longer exists; nothing to rotate")
		return &NewKey{Skipped: fmt.Sprintf("user %s no longer exists", it.User)}, nil
	}

	// 1. A key stored by an earlier attempt for this old key is reused.
	stored, arn, err := c.current(ctx, name)
	if err != nil {
		return nil, err
	}
	if stored != nil && stored.ReplacesKeyID == it.OldKey.ID {
		if k, ok := findKey(keys, stored.AccessKeyID); ok && k.Status == types.StatusTypeActive {
			log.InfoContext(ctx, "reusing stored key", "newKeyId", stored.AccessKeyID)
			return c.finish(ctx, it, stored, name, arn, true)
		}
	}
	old, ok := findKey(keys, it.OldKey.ID)
	if !ok {
		return &NewKey{Skipped: fmt.Sprintf("old key %s no longer exists; nothing to replace", it.OldKey.ID)}, nil
	}
	if old.Status != types.StatusTypeActive {
		return &NewKey{Skipped: fmt.Sprintf("old key %s is no longer Active; nothing to replace", it.OldKey.ID)}, nil
	}

	// 2. Claim the rotation, then make room.
	cl, err := c.claim(ctx, t, name)
	if err != nil {
		return nil, err
	}
	if keys, err = c.makeRoom(ctx, it, keys, cl, log); err != nil {
		return nil, err
	}
	if len(keys) >= 2 {
		return nil, &failures.KeyLimitError{User: it.User, Msg: "already has two access keys and keyrotor may remove neither; no key was created"}
	}

	// 3. Create and store at once; a key that cannot be stored is deleted.
	out, err := c.IAM.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(it.User)})
	if err != nil {
		var le *types.LimitExceededException
		if errors.As(err, &le) {
			return nil, &failures.KeyLimitError{User: it.User, Msg: "IAM refused a new key (LimitExceeded: two keys already)"}
		}
		return nil, fmt.Errorf("create access key for %s: %w", it.User, err)
	}
	sk := &StoredKey{
		AccessKeyID: aws.ToString(out.AccessKey.AccessKeyId), SecretAccessKey: aws.ToString(out.AccessKey.SecretAccessKey),
		UserName: it.User, ReplacesKeyID: it.OldKey.ID, CreatedAt: aws.ToTime(out.AccessKey.CreateDate).UTC(),
	}
	log = log.With("newKeyId", sk.AccessKeyID)
	log.InfoContext(ctx, "created access key")
	arn, err = c.store(ctx, name, sk)
	if err != nil {
		log.ErrorContext(ctx, "could not store the new key; deleting it", "error", err.Error())
		if _, derr := c.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(it.User), AccessKeyId: aws.String(sk.AccessKeyID)}); derr != nil && !isNoSuchEntity(derr) {
			// The claim lets the next attempt recognise and remove it.
			log.ErrorContext(ctx, "could not delete the unstored key; the next attempt removes it", "error", derr.Error())
		}
		return nil, err
	}
	log.InfoContext(ctx, "stored new key", "secretArn", arn)
	return c.finish(ctx, it, sk, name, arn, false)
}

// finish records the replacement on the user and proves the key works.
func (c *Creator) finish(ctx context.Context, it Item, sk *StoredKey, name, arn string, reused bool) (*NewKey, error) {
	if err := writeTag(ctx, c.IAM, it.User, tagReplacedBy+it.OldKey.ID, sk.AccessKeyID); err != nil {
		return nil, err
	}
	if c.Verify != nil {
		got, err := c.Verify(ctx, sk.AccessKeyID, sk.SecretAccessKey)
		if err != nil {
			return nil, &failures.NewKeyNotReadyError{User: it.User, KeyID: sk.AccessKeyID, Msg: "sts:GetCallerIdentity with the new key failed: " + failures.APICodeOr(err, "error")}
		}
		if it.UserARN != "" && got != it.UserARN {
			return nil, &failures.NewKeyNotReadyError{User: it.User, KeyID: sk.AccessKeyID, Msg: fmt.Sprintf("sts:GetCallerIdentity with the new key answered as %s, want %s", got, it.UserARN)}
		}
	}
	return &NewKey{KeyID: sk.AccessKeyID, Created: sk.CreatedAt, SecretName: name, SecretARN: arn, Reused: reused}, nil
}

// current returns the stored key of the secret's AWSCURRENT version, if the
// secret exists and holds one.
func (c *Creator) current(ctx context.Context, name string) (*StoredKey, string, error) {
	out, err := c.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, "", nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("read secret %s: %w", name, err)
	}
	var sk StoredKey
	if json.Unmarshal([]byte(aws.ToString(out.SecretString)), &sk) != nil || sk.AccessKeyID == "" {
		return nil, aws.ToString(out.ARN), nil
	}
	return &sk, aws.ToString(out.ARN), nil
}

// claim reserves the rotation of t.Item.OldKey for t.Execution. The claim is
// a secret version whose ClientRequestToken is derived from the user and the
// old key: Secrets Manager refuses the same token with a different value, so
// exactly one execution's claim is accepted, and the same execution's retry
// is accepted again (same value).
func (c *Creator) claim(ctx context.Context, t Task, name string) (*claim, error) {
	it := t.Item
	token := versionToken("claim", it.User, it.OldKey.ID)
	cl := &claim{Claim: it.OldKey.ID, UserName: it.User, ClaimedBy: t.Execution, ReplacesKeyID: it.OldKey.ID}
	// The claim time is part of the value, so it must be the same on a
	// retry: take it from the version if it exists.
	if prev, err := c.claimVersion(ctx, name, token); err != nil {
		return nil, err
	} else if prev != nil {
		if prev.ClaimedBy != t.Execution {
			return nil, &failures.RotationInProgressError{User: it.User, OldKeyID: it.OldKey.ID, Holder: prev.ClaimedBy}
		}
		return prev, nil
	}
	cl.ClaimedAt = nowOf(c.Now).UTC().Truncate(time.Second)
	body, _ := json.Marshal(cl)
	_, err := c.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), SecretString: aws.String(string(body)), ClientRequestToken: aws.String(token),
		KmsKeyId: optional(c.Config.KMSKeyID), Description: aws.String("IAM access key of " + it.User + ", managed by keyrotor"),
	})
	var exists *smtypes.ResourceExistsException
	if errors.As(err, &exists) {
		_, err = c.Secrets.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(name), SecretString: aws.String(string(body)), ClientRequestToken: aws.String(token),
			VersionStages: []string{claimStage},
		})
	}
	if errors.As(err, &exists) {
		// Same token, other value: another execution claimed it first.
		prev, perr := c.claimVersion(ctx, name, token)
		if perr != nil {
			return nil, perr
		}
		holder := "unknown"
		if prev != nil {
			if prev.ClaimedBy == t.Execution {
				return prev, nil
			}
			holder = prev.ClaimedBy
		}
		return nil, &failures.RotationInProgressError{User: it.User, OldKeyID: it.OldKey.ID, Holder: holder}
	}
	if err != nil {
		return nil, fmt.Errorf("claim rotation in secret %s: %w", name, err)
	}
	return cl, nil
}

func (c *Creator) claimVersion(ctx context.Context, name, token string) (*claim, error) {
	out, err := c.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name), VersionId: aws.String(token)})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read claim of secret %s: %w", name, err)
	}
	var cl claim
	if json.Unmarshal([]byte(aws.ToString(out.SecretString)), &cl) != nil || cl.Claim == "" {
		return nil, nil
	}
	return &cl, nil
}

// makeRoom deletes, before a new key is created, the user's other key when
// keyrotor may: the item's RemoveFirst key (Inactive, deactivated by keyrotor
// more than a grace period ago, checked again live), or a key this rotation
// created earlier whose storage failed and whose deletion failed too
// (created after the claim, not the stored key, not the old key).
func (c *Creator) makeRoom(ctx context.Context, it Item, keys []types.AccessKeyMetadata, cl *claim, log *slog.Logger) ([]types.AccessKeyMetadata, error) {
	var ledger Ledger
	kept := keys[:0:0]
	for _, k := range keys {
		id := aws.ToString(k.AccessKeyId)
		remove := false
		switch {
		case id == it.OldKey.ID:
		case id == it.RemoveFirst && k.Status == types.StatusTypeInactive:
			if ledger == nil {
				var err error
				if ledger, err = readLedger(ctx, c.IAM, it.User); err != nil {
					return nil, err
				}
			}
			at := ledger.DeactivatedAt(id)
			remove = !at.IsZero() && !nowOf(c.Now).Before(at.Add(c.Config.GracePeriod))
		case k.Status == types.StatusTypeActive && createdDuring(aws.ToTime(k.CreateDate), cl.ClaimedAt):
			remove = true // an unstored key of this very rotation
		}
		if !remove {
			kept = append(kept, k)
			continue
		}
		log.InfoContext(ctx, "removing key to make room", "keyId", id, "status", string(k.Status))
		if _, err := c.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(it.User), AccessKeyId: aws.String(id)}); err != nil && !isNoSuchEntity(err) {
			return nil, fmt.Errorf("delete key %s of %s: %w", id, it.User, err)
		}
		if err := removeTags(ctx, c.IAM, it.User, ledgerKeys(id)...); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// orphanWindow bounds how long after its claim a key counts as created by
// that rotation. A key a person creates later is never taken for an orphan.
const orphanWindow = 15 * time.Minute

func createdDuring(created, claimedAt time.Time) bool {
	return !created.Before(claimedAt.Add(-time.Second)) && created.Before(claimedAt.Add(orphanWindow))
}

// store writes sk as the secret's current version. The version token is
// derived from the new key id, so a repeated call is a no-op. When the call
// fails ambiguously (the change may have happened), the secret is read back.
func (c *Creator) store(ctx context.Context, name string, sk *StoredKey) (string, error) {
	body, _ := json.Marshal(sk)
	token := versionToken("key", sk.UserName, sk.AccessKeyID)
	out, err := c.Secrets.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(name), SecretString: aws.String(string(body)), ClientRequestToken: aws.String(token),
	})
	if err == nil {
		return aws.ToString(out.ARN), nil
	}
	if got, arn, rerr := c.current(ctx, name); rerr == nil && got != nil && got.AccessKeyID == sk.AccessKeyID {
		return arn, nil
	}
	return "", fmt.Errorf("store new key of %s in secret %s: %w", sk.UserName, name, err)
}

// versionToken is a UUID-shaped token derived from its parts.
func versionToken(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	b := h.Sum(nil)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

func checkItem(it Item) error {
	switch {
	case it.User == "":
		return &failures.InvalidInputError{Field: "item.user", Msg: "missing"}
	case it.OldKey.ID == "":
		return &failures.InvalidInputError{Field: "item.oldKey.id", Msg: "missing"}
	case it.Action != policy.Rotate && it.Action != policy.Retire && it.Action != policy.RetirePassword:
		return &failures.InvalidInputError{Field: "item.action", Msg: fmt.Sprintf("want rotate, retire or retire-password, got %q", it.Action)}
	}
	return nil
}
