package rotation

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// CreateIAM is the part of IAM create-and-store calls.
type CreateIAM interface {
	ListKeysAPI
	CreateAccessKey(ctx context.Context, in *iam.CreateAccessKeyInput, optFns ...func(*iam.Options)) (*iam.CreateAccessKeyOutput, error)
	DeleteAccessKey(ctx context.Context, in *iam.DeleteAccessKeyInput, optFns ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error)
	GetUser(ctx context.Context, in *iam.GetUserInput, optFns ...func(*iam.Options)) (*iam.GetUserOutput, error)
}

var _ CreateIAM = (*iam.Client)(nil)

// SecretsAPI is the part of Secrets Manager create-and-store calls.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	CreateSecret(ctx context.Context, in *secretsmanager.CreateSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.CreateSecretOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	RestoreSecret(ctx context.Context, in *secretsmanager.RestoreSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.RestoreSecretOutput, error)
	GetResourcePolicy(ctx context.Context, in *secretsmanager.GetResourcePolicyInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetResourcePolicyOutput, error)
	PutResourcePolicy(ctx context.Context, in *secretsmanager.PutResourcePolicyInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutResourcePolicyOutput, error)
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

// Secret tags. TagUserID holds the IAM user's unique id (AIDA...): the
// read-own-secret policy lets a user read a secret only when this tag
// equals its ${aws:userid}, which works for every legal user name (secret
// names cannot hold a comma; ${aws:username} is not escaped).
const (
	TagUserID  = "keyrotor:user-id"
	TagManaged = "keyrotor:managed"
)

// Creator is the create-and-store step.
type Creator struct {
	IAM     CreateIAM
	Secrets SecretsAPI
	Records Records
	Topic   PublishAPI
	Verify  VerifyFunc
	Config  config.Config
	Now     func() time.Time
	Log     *slog.Logger
}

// Handle creates (or reuses) the replacement of t.Item.OldKey and stores
// it. Its progress is recorded in the rotation record before and after
// every change, so a re-run in this or a later execution never creates a
// second key, and a key keyrotor cannot prove it created is never deleted.
func (c *Creator) Handle(ctx context.Context, t Task) (*NewKey, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	if it.Action != policy.Rotate {
		return nil, &failures.InvalidInputError{Field: "item.action", Msg: fmt.Sprintf("create-and-store handles rotate items, got %q", it.Action)}
	}
	if t.Execution == "" {
		return nil, &failures.InvalidInputError{Field: "execution", Msg: "missing: the state machine passes $$.Execution.Name"}
	}
	name := SecretName(c.Config.SecretPrefix, it.User)
	log := logOf(c.Log).With("user", it.User, "oldKeyId", it.OldKey.ID, "secret", name)
	rc := rotationCtx{recs: c.Records, topic: c.Topic, cfg: c.Config, execution: t.Execution, now: nowOf(c.Now).UTC().Truncate(time.Second), log: log}

	keys, exists, err := liveKeys(ctx, c.IAM, it.User)
	if err != nil {
		return nil, err
	}
	if !exists {
		if rec, _ := c.Records.Get(ctx, RecordID(it)); rec != nil && rec.State.InFlight() && rc.checkRecord(rec, it) == nil {
			if err := rc.end(ctx, rec, it.OldKey.ID, fmt.Sprintf("user %s was deleted", it.User), false, false); err != nil {
				return nil, err
			}
		}
		return &NewKey{Skipped: fmt.Sprintf("user %s no longer exists", it.User)}, nil
	}
	old, oldOK := findKey(keys, it.OldKey.ID)
	rec, stop, err := rc.open(ctx, it, ledger.Due, ledger.Facts{Start: oldOK && old.Status == types.StatusTypeActive, OldKnown: oldOK, OldActive: oldOK && old.Status == types.StatusTypeActive})
	if err != nil {
		return nil, err
	}
	if stop != "" {
		log.InfoContext(ctx, "not acting on this rotation", "why", stop)
		return &NewKey{Skipped: stop}, nil
	}
	if !oldOK {
		return &NewKey{Skipped: "old key deleted by a person"}, rc.end(ctx, rec, it.OldKey.ID, fmt.Sprintf("old key %s was deleted by a person; nothing to replace", it.OldKey.ID), false, true)
	}
	if rec.State == ledger.Started && old.Status != types.StatusTypeActive {
		return &NewKey{Skipped: "old key no longer Active"}, rc.end(ctx, rec, it.OldKey.ID, fmt.Sprintf("old key %s was deactivated by a person before keyrotor replaced it; nothing to replace", it.OldKey.ID), false, false)
	}

	// 1. A new key recorded by an earlier attempt (or the previous,
	// held rotation) is reused, never created twice.
	if rec.NewKeyID == "" && rec.PrevNewKeyID != "" {
		if k, ok := findKey(keys, rec.PrevNewKeyID); ok && k.Status == types.StatusTypeActive {
			sk, arn, err := c.current(ctx, name)
			if err != nil {
				return nil, err
			}
			owned := false
			if sk != nil && sk.AccessKeyID == rec.PrevNewKeyID {
				if owned, err = c.owned(ctx, name, it.User); err != nil {
					return nil, err
				}
			}
			if owned {
				rec.NewKeyID, rec.NewKeyCreated, rec.SecretName, rec.SecretARN = sk.AccessKeyID, aws.ToTime(k.CreateDate).UTC(), name, arn
				rec.Move(rc.now, ledger.Stored, t.Execution, "reusing the new key of rotation "+strconv.Itoa(rec.Rotation-1)+", still Active and stored")
				if err := c.Records.Put(ctx, rec); err != nil {
					return nil, err
				}
			}
		}
	}
	if rec.NewKeyID != "" {
		return c.resume(ctx, rc, t, rec, keys, name, log)
	}

	// 2. Make room: a key keyrotor deactivated whose grace has passed may
	// go. Any other key is someone's: with two keys, nothing is created.
	if keys, err = c.makeRoom(ctx, rc, it, keys, log); err != nil {
		return nil, err
	}
	if rec.State == ledger.Creating {
		// An earlier attempt called CreateAccessKey and never learned the
		// key id. A key created since then may be that key, or a person's:
		// keyrotor cannot prove which, so it deletes nothing and stops.
		for _, k := range keys {
			id := aws.ToString(k.AccessKeyId)
			if id != it.OldKey.ID && !aws.ToTime(k.CreateDate).Before(rec.CreatingAt.Add(-time.Second)) {
				what := fmt.Sprintf("key %s appeared while keyrotor was creating a replacement for %s, and keyrotor cannot prove it created it (its secret, if it did, was never stored). If nobody uses %s, delete it; keyrotor then resumes the rotation", id, it.OldKey.ID, id)
				if err := rc.attention(ctx, rec, it.OldKey.ID, what); err != nil {
					return nil, err
				}
				return &NewKey{Skipped: "stopped: " + what}, nil
			}
		}
	}
	if len(keys) >= 2 {
		return nil, &failures.KeyLimitError{User: it.User, Msg: "already has two access keys and keyrotor may remove neither; no key was created"}
	}

	// 3. The secret the key goes to must be keyrotor's (a person may have
	// created one of that name in advance, to read the key): looked at
	// before a key is created, and again when storing (store).
	ownerID, err := c.userID(ctx, it.User)
	if err != nil {
		return nil, err
	}
	if o, exists, err := c.inspect(ctx, name, ownerID); err != nil {
		return nil, err
	} else if exists && len(o.why) > 0 {
		return c.refuse(ctx, rc, rec, name, o, "")
	}

	// 4. Record the intent, create, record the key id at once, store.
	clearAttention(rec, rc.now, t.Execution)
	if rec.State != ledger.Creating {
		rec.CreatingAt = rc.now
		rec.Move(rc.now, ledger.Creating, t.Execution, "creating the new key")
		if err := c.Records.Put(ctx, rec); err != nil {
			return nil, err
		}
	}
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
	rec.NewKeyID, rec.NewKeyCreated = sk.AccessKeyID, sk.CreatedAt
	rec.Move(rc.now, ledger.Created, t.Execution, "created new key "+sk.AccessKeyID)
	if err := c.Records.Put(ctx, rec); err != nil {
		// The write may have taken effect with its answer lost: read back.
		fresh, gerr := c.Records.Get(ctx, rec.ID)
		if gerr != nil || fresh == nil || fresh.NewKeyID != sk.AccessKeyID {
			// Unrecorded, the key would be unprovable later: remove it
			// now, while this attempt still knows it created it.
			c.discard(ctx, it.User, sk.AccessKeyID, log)
			return nil, err
		}
		rec = fresh
	}
	arn, note, err := c.store(ctx, name, sk, ownerID)
	if err != nil {
		log.ErrorContext(ctx, "could not store the new key; deleting it", "error", err.Error())
		var no *notOwnedError
		if c.discard(ctx, it.User, sk.AccessKeyID, log) {
			rec.NewKeyID, rec.NewKeyCreated = "", time.Time{}
			rec.Move(rc.now, ledger.Started, t.Execution, "the new key could not be stored; deleted it")
			if errors.As(err, &no) {
				return c.refuse(ctx, rc, rec, name, no.ownership, sk.AccessKeyID)
			}
			if perr := c.Records.Put(ctx, rec); perr != nil {
				log.ErrorContext(ctx, "could not record the deletion", "error", perr.Error())
			}
		}
		return nil, err
	}
	rec.SecretName, rec.SecretARN = name, arn
	rec.Move(rc.now, ledger.Stored, t.Execution, "stored in "+name+note)
	if err := c.Records.Put(ctx, rec); err != nil {
		return nil, err
	}
	log.InfoContext(ctx, "stored new key", "secretArn", arn)
	return c.finish(ctx, it, sk, rec, false, note)
}

// resume continues a rotation whose new key is already recorded.
func (c *Creator) resume(ctx context.Context, rc rotationCtx, t Task, rec *ledger.Record, keys []types.AccessKeyMetadata, name string, log *slog.Logger) (*NewKey, error) {
	it := t.Item
	k, ok := findKey(keys, rec.NewKeyID)
	switch {
	case !ok && rc.now.Sub(rec.NewKeyCreated) < newKeyVisibleWindow:
		return nil, &failures.NotVisibleYetError{What: fmt.Sprintf("new key %s of %s, created %s", rec.NewKeyID, it.User, rec.NewKeyCreated.Format(time.RFC3339))}
	case !ok:
		why := fmt.Sprintf("the new key %s was deleted by a person; the old key %s stays as it is", rec.NewKeyID, it.OldKey.ID)
		return &NewKey{Skipped: why}, rc.end(ctx, rec, it.OldKey.ID, why, true, true)
	case k.Status != types.StatusTypeActive:
		why := fmt.Sprintf("the new key %s was deactivated by a person; the old key %s stays as it is", rec.NewKeyID, it.OldKey.ID)
		return &NewKey{Skipped: why}, rc.end(ctx, rec, it.OldKey.ID, why, true, true)
	}
	sk, arn, err := c.current(ctx, name)
	if err != nil {
		return nil, err
	}
	owned := true
	if sk != nil && sk.AccessKeyID == rec.NewKeyID {
		if owned, err = c.owned(ctx, name, it.User); err != nil {
			return nil, err
		}
	}
	if !owned {
		why := fmt.Sprintf("secret %s holds the new key %s but is no longer keyrotor's (its resource policy, tags, key or replicas were changed): "+
			"whoever changed it may have read the key; the old key %s stays as it is. Delete the new key %s if it may have been read", name, rec.NewKeyID, it.OldKey.ID, rec.NewKeyID)
		return &NewKey{Skipped: why}, rc.end(ctx, rec, it.OldKey.ID, why, true, true)
	}
	if sk == nil || sk.AccessKeyID != rec.NewKeyID {
		if rec.State != ledger.Created {
			why := fmt.Sprintf("secret %s no longer holds the new key %s (a person changed it); the old key %s stays as it is", name, rec.NewKeyID, it.OldKey.ID)
			return &NewKey{Skipped: why}, rc.end(ctx, rec, it.OldKey.ID, why, true, true)
		}
		// Created but never stored: nobody can have its secret. keyrotor
		// recorded creating it, so it deletes it and creates another.
		log.InfoContext(ctx, "an earlier attempt's key was never stored; deleting it", "newKeyId", rec.NewKeyID)
		if _, err := c.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(it.User), AccessKeyId: aws.String(rec.NewKeyID)}); err != nil && !isNoSuchEntity(err) {
			return nil, fmt.Errorf("delete unstored key %s of %s: %w", rec.NewKeyID, it.User, err)
		}
		rec.Move(rc.now, ledger.Started, t.Execution, "deleted new key "+rec.NewKeyID+": an earlier attempt never stored it")
		rec.NewKeyID, rec.NewKeyCreated = "", time.Time{}
		if err := c.Records.Put(ctx, rec); err != nil {
			return nil, err
		}
		return nil, &failures.TransientError{Op: "create-and-store", Msg: "removed an unstored key of an earlier attempt; creating another on retry"}
	}
	if rec.State == ledger.Created {
		rec.SecretName, rec.SecretARN = name, arn
		rec.Move(rc.now, ledger.Stored, t.Execution, "found stored in "+name)
		if err := c.Records.Put(ctx, rec); err != nil {
			return nil, err
		}
	}
	log.InfoContext(ctx, "reusing recorded key", "newKeyId", rec.NewKeyID)
	return c.finish(ctx, it, sk, rec, true, "")
}

// owned reports whether the secret name is keyrotor's for user. An error
// reading it is returned, never taken for "not keyrotor's": a throttled
// or lost call must not end a rotation as if a person changed the secret.
func (c *Creator) owned(ctx context.Context, name, user string) (bool, error) {
	id, err := c.userID(ctx, user)
	if err != nil {
		return false, err
	}
	o, exists, err := c.inspect(ctx, name, id)
	if err != nil {
		return false, err
	}
	return exists && len(o.why) == 0, nil
}

// userID returns the IAM user's unique id (AIDA...): the owner the
// secret's tag and resource policy name.
func (c *Creator) userID(ctx context.Context, user string) (string, error) {
	if c.Config.StoreRoleARN == "" {
		return "", fmt.Errorf("config: %s is not set: the stack sets it to create-and-store's role, the one keyrotor principal a stored key's resource policy lets in", config.EnvStoreRoleARN)
	}
	u, err := c.IAM.GetUser(ctx, &iam.GetUserInput{UserName: aws.String(user)})
	if err != nil {
		return "", fmt.Errorf("get user %s: %w", user, err)
	}
	return aws.ToString(u.User.UserId), nil
}

// refuse leaves the rotation waiting with attention: the secret name is
// not keyrotor's. Each run looks again; once a person deleted the secret,
// the rotation goes on.
func (c *Creator) refuse(ctx context.Context, rc rotationCtx, rec *ledger.Record, name string, o ownership, discarded string) (*NewKey, error) {
	what := notOwned(name, o, discarded)
	rc.log.WarnContext(ctx, "the secret is not keyrotor's; nothing stored", "secretArn", o.arn)
	if err := rc.attention(ctx, rec, rec.ID, what); err != nil {
		return nil, err
	}
	return &NewKey{Skipped: "stopped: " + what}, nil
}

// discard deletes a key this very attempt created and could not keep.
func (c *Creator) discard(ctx context.Context, user, id string, log *slog.Logger) bool {
	if _, err := c.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(user), AccessKeyId: aws.String(id)}); err != nil && !isNoSuchEntity(err) {
		log.ErrorContext(ctx, "could not delete the unkept key", "error", err.Error())
		return false
	}
	return true
}

// finish proves the key works.
func (c *Creator) finish(ctx context.Context, it Item, sk *StoredKey, rec *ledger.Record, reused bool, note string) (*NewKey, error) {
	if c.Verify != nil && sk.SecretAccessKey != "" {
		got, err := c.Verify(ctx, sk.AccessKeyID, sk.SecretAccessKey)
		if err != nil {
			return nil, &failures.NewKeyNotReadyError{User: it.User, KeyID: sk.AccessKeyID, Msg: "sts:GetCallerIdentity with the new key failed: " + failures.APICodeOr(err, "error")}
		}
		if it.UserARN != "" && got != it.UserARN {
			return nil, &failures.NewKeyNotReadyError{User: it.User, KeyID: sk.AccessKeyID, Msg: fmt.Sprintf("sts:GetCallerIdentity with the new key answered as %s, want %s", got, it.UserARN)}
		}
		// An adoption window counts only uses of the new key after
		// keyrotor's own: the proof's time is recorded (rounded up, as
		// IAM's last-use time may be a little later than this clock's).
		rec.ProofAt = nowOf(c.Now).UTC().Truncate(time.Second).Add(time.Second)
		if err := c.Records.Put(ctx, rec); err != nil {
			return nil, err
		}
	}
	return &NewKey{KeyID: rec.NewKeyID, Created: rec.NewKeyCreated, SecretName: rec.SecretName, SecretARN: rec.SecretARN, Reused: reused, Rotation: rec.Rotation, Note: strings.TrimPrefix(note, "; ")}, nil
}

// current returns the stored key of the secret's AWSCURRENT version, if the
// secret exists and holds one.
func (c *Creator) current(ctx context.Context, name string) (*StoredKey, string, error) {
	out, err := c.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	var nf *smtypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, "", nil
	}
	if isScheduledForDeletion(err) {
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

// makeRoom deletes, before a new key is created, the user's other key when
// keyrotor may: an Inactive key whose rotation record shows keyrotor
// deactivated it and its grace period has passed (checked live).
func (c *Creator) makeRoom(ctx context.Context, rc rotationCtx, it Item, keys []types.AccessKeyMetadata, log *slog.Logger) ([]types.AccessKeyMetadata, error) {
	kept := keys[:0:0]
	for _, k := range keys {
		id := aws.ToString(k.AccessKeyId)
		if id == it.OldKey.ID || id != it.RemoveFirst || k.Status != types.StatusTypeInactive {
			kept = append(kept, k)
			continue
		}
		other, err := c.Records.Get(ctx, id)
		if err != nil {
			return nil, err
		}
		if other == nil || other.State != ledger.Deactivated || rc.now.Before(other.DeleteAfter) {
			kept = append(kept, k)
			continue
		}
		log.InfoContext(ctx, "removing a key keyrotor deactivated, past its grace, to make room", "keyId", id)
		if _, err := c.IAM.DeleteAccessKey(ctx, &iam.DeleteAccessKeyInput{UserName: aws.String(it.User), AccessKeyId: aws.String(id)}); err != nil && !isNoSuchEntity(err) {
			return nil, fmt.Errorf("delete key %s of %s: %w", id, it.User, err)
		}
		other.Outcome = fmt.Sprintf("deleted after its grace period (deactivated %s), to make room for the rotation of %s", other.DeactivatedAt.UTC().Format(time.RFC3339), it.OldKey.ID)
		other.ExpiresAt = rc.now.Add(finishedRetention).Unix()
		other.Owner, other.LeaseUntil = "", time.Time{}
		other.Move(rc.now, ledger.Deleted, rc.execution, other.Outcome)
		if err := c.Records.Put(ctx, other); err != nil {
			return nil, err
		}
	}
	return kept, nil
}

// store writes sk as the secret's current version, into a secret keyrotor
// proves is its own (a *notOwnedError otherwise, with nothing written):
// created empty, with keyrotor's KMS key and tags (the user's unique id,
// for the read-own-secret policy), or an existing one with exactly those,
// no replica, no rotation of its own and keyrotor's resource policy or
// none. A secret a person scheduled for deletion is restored (it refuses
// new values until then). keyrotor's resource policy goes on before the
// value, on every store; the secret is then looked at again, now that only
// keyrotor and the break-glass principals may change it, and written by
// its ARN, so a secret deleted and re-created under the same name in the
// meantime is not written. The version token is derived from the new key
// id, so a repeated call is a no-op; when the write fails ambiguously, the
// secret is read back. note tells what else was done ("; restored ...").
func (c *Creator) store(ctx context.Context, name string, sk *StoredKey, ownerID string) (arn, note string, err error) {
	body, _ := json.Marshal(sk)
	token := versionToken("key", sk.UserName, sk.AccessKeyID)
	created, cerr := c.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{
		Name: aws.String(name), KmsKeyId: optional(c.Config.KMSKeyID),
		Tags:        []smtypes.Tag{{Key: aws.String(TagUserID), Value: aws.String(ownerID)}, {Key: aws.String(TagManaged), Value: aws.String("true")}},
		Description: aws.String("IAM access key of " + sk.UserName + ", managed by keyrotor"),
	})
	if cerr == nil {
		arn = aws.ToString(created.ARN)
	} else {
		// It exists (a ResourceExistsException, or "scheduled for
		// deletion"), or the call failed, perhaps after taking effect.
		o, exists, err := c.inspect(ctx, name, ownerID)
		switch {
		case err != nil:
			return "", "", err
		case !exists:
			return "", "", fmt.Errorf("create secret %s: %w", name, cerr)
		case len(o.why) > 0:
			return "", "", &notOwnedError{o}
		}
		arn = o.arn
		if o.deleted {
			if _, rerr := c.Secrets.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(arn)}); rerr != nil {
				return "", "", fmt.Errorf("restore secret %s (scheduled for deletion): %w", name, rerr)
			}
			note = fmt.Sprintf("; restored secret %s, which a person had scheduled for deletion", name)
			// Its resource policy is readable now.
			if o, _, err := c.inspect(ctx, arn, ownerID); err != nil {
				return "", "", err
			} else if len(o.why) > 0 {
				return "", "", &notOwnedError{o}
			}
		}
	}
	if _, err := c.Secrets.PutResourcePolicy(ctx, &secretsmanager.PutResourcePolicyInput{
		SecretId: aws.String(arn), ResourcePolicy: aws.String(SecretPolicy(c.Config, ownerID)), BlockPublicPolicy: aws.Bool(true),
	}); err != nil {
		return "", "", fmt.Errorf("put keyrotor's resource policy on secret %s: %w", name, err)
	}
	o, exists, err := c.inspect(ctx, arn, ownerID)
	switch {
	case err != nil:
		return "", "", err
	case !exists:
		return "", "", fmt.Errorf("secret %s (%s) was deleted while keyrotor stored a key in it", name, arn)
	case len(o.why) > 0:
		return "", "", &notOwnedError{o}
	}
	put := func() (*secretsmanager.PutSecretValueOutput, error) {
		return c.Secrets.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
			SecretId: aws.String(arn), SecretString: aws.String(string(body)), ClientRequestToken: aws.String(token),
		})
	}
	_, err = put()
	if isScheduledForDeletion(err) {
		if _, rerr := c.Secrets.RestoreSecret(ctx, &secretsmanager.RestoreSecretInput{SecretId: aws.String(arn)}); rerr != nil {
			return "", "", fmt.Errorf("restore secret %s (scheduled for deletion): %w", name, rerr)
		}
		note = fmt.Sprintf("; restored secret %s, which a person had scheduled for deletion", name)
		_, err = put()
	}
	if err != nil {
		arn, err := c.readBack(ctx, arn, sk, fmt.Errorf("store new key of %s in secret %s: %w", sk.UserName, name, err))
		return arn, note, err
	}
	return arn, note, nil
}

// readBack returns the secret's ARN when it holds sk after all (the failed
// call took effect), else err.
func (c *Creator) readBack(ctx context.Context, id string, sk *StoredKey, err error) (string, error) {
	if got, arn, rerr := c.current(ctx, id); rerr == nil && got != nil && got.AccessKeyID == sk.AccessKeyID {
		return arn, nil
	}
	return "", err
}

// notOwned tells the admins, with attention on the rotation, that the
// secret named for its user's key is not keyrotor's, and what to do.
func notOwned(name string, o ownership, discarded string) string {
	what := fmt.Sprintf("secret %s (%s) is not one keyrotor created: %s. ", name, o.arn, strings.Join(o.why, "; "))
	if discarded != "" {
		what += fmt.Sprintf("keyrotor stored nothing in it and deleted the new key %s it had just created (nobody saw its secret). ", discarded)
	} else {
		what += "keyrotor created no new key and stored nothing in it. "
	}
	return what + fmt.Sprintf("Whoever can read or change that secret could read the new key: find out who created it, then delete it for good "+
		"(aws secretsmanager delete-secret --secret-id %s --force-delete-without-recovery); keyrotor then creates its own at the next run", o.arn)
}

// isScheduledForDeletion reports Secrets Manager's refusal to touch a
// secret scheduled for deletion ("InvalidRequestException ... marked for
// deletion"; CreateSecret answers the same for its name).
func isScheduledForDeletion(err error) bool {
	var ir *smtypes.InvalidRequestException
	return errors.As(err, &ir) && strings.Contains(strings.ToLower(ir.ErrorMessage()), "deletion")
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
