package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// Documents reads a user's destinations (delivery.Store): nil when the
// user has none; a *delivery.FieldError when the stored document no
// longer validates.
type Documents interface {
	Get(ctx context.Context, account, user string) (*delivery.Document, error)
}

// StoredKeyReader reads the new key from its secret, in the user's account.
type StoredKeyReader interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
}

// DeliveryTriesPerRun is how many times one execution tries a destination
// that fails retryably (throttled, 5xx, no answer): the orchestrator's
// Retry spaces them; after that the rotation waits for the next run with
// the old key Active.
const DeliveryTriesPerRun = 3

// Deliverer is the DeliverNewKey step: after create-and-store, before the
// owner's notice, it writes the new key to every destination the user's
// document lists and reads each back. Progress is recorded per
// destination before and after each write, so a re-run (Retry, Redrive,
// a later run's takeover) asks a destination whether it holds the key
// before writing it again, and skips the verified ones.
type Deliverer struct {
	Records   Records
	Documents Documents
	// Secrets reads stored keys in the user's account (in organization
	// mode a member's, through its member role: lambdastep.PerAccount).
	Secrets StoredKeyReader
	Topic   PublishAPI
	// Env builds the destinations (HTTP client, tokens from the hub's
	// secrets, AWS clients).
	Env    delivery.Env
	Config config.Config
	Now    func() time.Time
	Log    *slog.Logger
}

// Handle delivers t's new key.
func (d *Deliverer) Handle(ctx context.Context, t Task) (*Delivery, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	if err := org.InScope(d.Config, it.Account); err != nil {
		return nil, err
	}
	if skip := t.Skip(); skip != "" {
		return &Delivery{Complete: true, Skipped: skip}, nil
	}
	if it.Action != policy.Rotate {
		return nil, &failures.InvalidInputError{Field: "item.action", Msg: fmt.Sprintf("deliver handles rotate items, got %q", it.Action)}
	}
	if t.NewKey == nil || t.NewKey.KeyID == "" {
		return nil, &failures.InvalidInputError{Field: "newKey.keyId", Msg: "a rotate item reaches deliver only after create-and-store"}
	}
	if t.Execution == "" {
		return nil, &failures.InvalidInputError{Field: "execution", Msg: "missing: the state machine passes $$.Execution.Name"}
	}
	log := logOf(d.Log).With("user", it.User, "oldKeyId", it.OldKey.ID, "newKeyId", t.NewKey.KeyID)
	rc := rotationCtx{recs: d.Records, topic: d.Topic, cfg: d.Config, execution: t.Execution, now: nowOf(d.Now).UTC().Truncate(time.Second), log: log}

	userAccount := homeless(d.Config, it.Account)
	doc, docErr := d.Documents.Get(ctx, userAccount, it.User)
	if docErr != nil && !isFieldError(docErr) {
		return nil, fmt.Errorf("read the destinations of %s: %w", it.User, docErr)
	}
	if docErr == nil {
		// An AWS destination in an account out of scope: the whole
		// document is refused, as find refuses it.
		docErr = CheckDestinationAccounts(d.Config, userAccount, doc)
	}
	if doc == nil && docErr == nil {
		// No destinations: nothing to do, and nothing read or written.
		return &Delivery{Complete: true}, nil
	}
	rec, stop, err := rc.open(ctx, it, ledger.Continue, ledger.Facts{})
	if err != nil {
		return nil, err
	}
	if stop != "" {
		log.InfoContext(ctx, "not acting on this rotation", "why", stop)
		return &Delivery{Complete: true, Skipped: stop}, nil
	}
	if rec.NewKeyID != t.NewKey.KeyID {
		return &Delivery{Complete: true, Skipped: fmt.Sprintf("the rotation's new key is %s, not %s", rec.NewKeyID, t.NewKey.KeyID)}, nil
	}
	if docErr != nil {
		what := fmt.Sprintf("the destinations of user %s do not validate (%s): nothing was delivered and the old key %s stays Active. "+
			"Fix them with `keyrotor destinations set --user %s`; the next run delivers", it.User, docErr.Error(), it.OldKey.ID, it.User)
		if err := rc.attention(ctx, rec, it.OldKey.ID, what); err != nil {
			return nil, err
		}
		return &Delivery{Destinations: 0, Left: []Undelivered{{Where: "every destination of " + it.User, Reason: docErr.Error()}}}, nil
	}

	key, err := d.storedKey(ctx, rec)
	if err != nil {
		return nil, err
	}
	if !rec.Evidence && doc.Evidence() {
		rec.Evidence = true
		rec.Log(rc.now, rec.State, rc.execution, "delivered keys switch over on evidence: the old key goes off only once the new key is in use")
	}
	res := &Delivery{Destinations: len(doc.Destinations), Evidence: rec.Evidence}
	retry := false
	for i, spec := range doc.Destinations {
		where, ok, reason, retryable, err := d.deliverOne(ctx, rc, rec, i, d.placed(spec, userAccount), key, log)
		if err != nil {
			return nil, err // the record could not be written: retried as a whole
		}
		if ok {
			res.Delivered = append(res.Delivered, where)
			continue
		}
		res.Left = append(res.Left, Undelivered{Where: where, Reason: reason})
		if e := rec.Delivery(where); retryable && e.Tries < DeliveryTriesPerRun {
			retry = true
		}
	}
	res.Complete = len(res.Left) == 0
	if res.Complete {
		if strings.HasPrefix(rec.Attention, attentionDelivery) {
			clearAttention(rec, rc.now, rc.execution)
		}
		if err := d.Records.Put(ctx, rec); err != nil {
			return nil, err
		}
		log.InfoContext(ctx, "new key delivered", "destinations", len(res.Delivered))
		return res, nil
	}
	if retry {
		if err := d.Records.Put(ctx, rec); err != nil {
			return nil, err
		}
		return nil, &failures.TransientError{Op: "deliver", Msg: fmt.Sprintf("%d of %d destinations failed; trying again: %s", len(res.Left), res.Destinations, leftText(res.Left))}
	}
	what := fmt.Sprintf("%s%d of %d destinations of user %s do not hold the new key %s: %s. The old key %s stays Active; the next run tries them again (or fix them: `keyrotor destinations show --user %s`)",
		attentionDelivery, len(res.Left), res.Destinations, it.User, rec.NewKeyID, leftText(res.Left), it.OldKey.ID, it.User)
	if err := rc.attention(ctx, rec, it.OldKey.ID, what); err != nil {
		return nil, err
	}
	log.WarnContext(ctx, "new key not delivered everywhere", "left", len(res.Left))
	return res, nil
}

// attentionDelivery begins every attention deliver records, so it clears
// its own and no other.
const attentionDelivery = "delivery: "

// deliverOne brings one destination to hold key: asked first when an
// earlier attempt began writing (so a write that took effect is not made
// again), written otherwise (recorded before and after), then read back.
func (d *Deliverer) deliverOne(ctx context.Context, rc rotationCtx, rec *ledger.Record, i int, spec delivery.Spec, key delivery.Key, log *slog.Logger) (where string, ok bool, reason string, retryable bool, err error) {
	berr := d.allowed(spec, fmt.Sprintf("destinations[%d]", i))
	var dest delivery.Destination
	if berr == nil {
		dest, berr = delivery.Build(ctx, spec, d.Env)
	}
	if berr != nil {
		where = fmt.Sprintf("destinations[%d] (%s)", i, spec.Type)
		e := rec.Delivery(where)
		e.State, e.Reason = ledger.DeliveryFailed, redact(berr.Error(), key)
		return where, false, e.Reason, isRetryable(berr), nil
	}
	where = dest.Where()
	e := rec.Delivery(where)
	if e.TriedBy != rc.execution {
		e.TriedBy, e.Tries = rc.execution, 0
	}
	log = log.With("destination", where)
	if e.State == ledger.DeliveryVerified {
		return where, true, "", false, nil
	}
	fail := func(why string, ferr error) (string, bool, string, bool, error) {
		detail := ferr.Error()
		var de *delivery.Error
		if errors.As(ferr, &de) {
			detail = de.Detail()
		}
		e.State, e.Reason = ledger.DeliveryFailed, redact(why+": "+detail, key)
		log.WarnContext(ctx, "delivery failed", "reason", e.Reason)
		return where, false, e.Reason, isRetryable(ferr), nil
	}
	resume := false
	if e.WriteAt.IsZero() && rec.PrevNewKeyID != "" && rec.PrevNewKeyID == rec.NewKeyID {
		// This rotation reuses the previous rotation's new key (a held
		// rotation restarted): a destination written then holds it
		// already, and is not written again.
		held, herr := dest.Holds(ctx, key, rec.NewKeyCreated)
		if herr != nil {
			e.Tries++
			return fail("reading it", herr)
		}
		if held {
			e.State, e.VerifiedAt, e.Reason = ledger.DeliveryVerified, rc.now, ""
			rec.Log(rc.now, rec.State, rc.execution, "delivered to "+where+" (it holds the reused key already)")
			return where, true, "", false, nil
		}
	}
	if !e.WriteAt.IsZero() {
		// An earlier attempt began writing: did it take effect?
		held, herr := dest.Holds(ctx, key, e.WriteAt)
		if herr != nil {
			e.Tries++
			return fail("reading it back", herr)
		}
		if held {
			e.State, e.VerifiedAt, e.Reason = ledger.DeliveryVerified, rc.now, ""
			rec.Log(rc.now, rec.State, rc.execution, "delivered to "+where+" (an earlier attempt's write, read back)")
			return where, true, "", false, nil
		}
		// Not whole: a destination that can finish the earlier write
		// writes only what it lacks, so WriteAt stays when that write
		// began (the read-back counts the value it wrote).
		_, resume = dest.(delivery.Resumer)
	}
	if !resume {
		e.WriteAt = rc.now
	}
	e.State, e.Tries = ledger.DeliveryWriting, e.Tries+1
	if err := d.Records.Put(ctx, rec); err != nil {
		return where, false, "", false, err
	}
	write := dest.Write
	if resume {
		write = func(ctx context.Context, k delivery.Key) error {
			return dest.(delivery.Resumer).Resume(ctx, k, e.WriteAt)
		}
	}
	if werr := write(ctx, key); werr != nil {
		return fail("writing", werr)
	}
	held, herr := dest.Holds(ctx, key, e.WriteAt)
	switch {
	case herr != nil:
		return fail("written, reading it back", herr)
	case !held:
		e.State, e.Reason = ledger.DeliveryFailed, "written, but reading it back does not show the new key"
		return where, false, e.Reason, true, nil
	}
	e.State, e.VerifiedAt, e.Reason = ledger.DeliveryVerified, rc.now, ""
	rec.Log(rc.now, rec.State, rc.execution, "delivered to "+where)
	log.InfoContext(ctx, "delivered and read back")
	return where, true, "", false, nil
}

// placed returns spec with the account it is written in when that is not
// keyrotor's own (Spec.AccountFor: an AWS destination without an account is
// written in its user's account, so a member user's goes through that
// member's role). A hub user's destination keeps account "", so its Where,
// which names its delivery in the record, is what it always was.
func (d *Deliverer) placed(spec delivery.Spec, userAccount string) delivery.Spec {
	if account, _ := spec.AccountFor(userAccount); !org.IsHome(d.Config, account) {
		spec.Account = account
	}
	return spec
}

// allowed refuses an AWS destination the deployment does not let
// delivery write (deliveryParameters, deliverySecrets: the deliver role is
// granted exactly those), and a credential outside the hub's delivery
// prefix, before any call.
func (d *Deliverer) allowed(s delivery.Spec, field string) error {
	switch s.Type {
	case "ssm":
		for _, name := range []string{s.IDName, s.SecretName} {
			if !config.DeliveryAllowed(d.Config.DeliveryParameters, name) {
				return &delivery.FieldError{Field: field, Msg: fmt.Sprintf("parameter %s is not one delivery may write: add it (or a prefix ending in *) to deliveryParameters in cdk.json and deploy", name)}
			}
		}
	case "secretsmanager":
		name := s.SecretID
		if a, err := arn.Parse(name); err == nil {
			name = strings.TrimPrefix(a.Resource, "secret:")
		}
		if !config.DeliveryAllowed(d.Config.DeliverySecrets, name) && !config.DeliveryAllowed(d.Config.DeliverySecrets, strings.TrimSuffix(name, name[max(0, len(name)-7):])) {
			return &delivery.FieldError{Field: field, Msg: fmt.Sprintf("secret %s is not one delivery may write: add it (or a prefix ending in *) to deliverySecrets in cdk.json and deploy", s.SecretID)}
		}
	}
	if s.Credential != "" && !strings.HasPrefix(s.Credential, config.DeliveryCredentialPrefix) {
		return &delivery.FieldError{Field: field + ".credential", Msg: fmt.Sprintf("%q: a destination's token must be a hub secret named under %s (the deliver role reads no other)", s.Credential, config.DeliveryCredentialPrefix)}
	}
	return nil
}

// HubCredentials reads a destination's token from the hub secret the
// document names (delivery.Env.Credential), only under
// config.DeliveryCredentialPrefix.
func HubCredentials(api StoredKeyReader) func(ctx context.Context, name string) (string, error) {
	return func(ctx context.Context, name string) (string, error) {
		if !strings.HasPrefix(name, config.DeliveryCredentialPrefix) {
			return "", &delivery.FieldError{Field: "credential", Msg: fmt.Sprintf("%q is not under %s", name, config.DeliveryCredentialPrefix)}
		}
		out, err := api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
		if err != nil {
			return "", fmt.Errorf("read the token in hub secret %s: %s", name, failures.APICodeOr(err, "error"))
		}
		return aws.ToString(out.SecretString), nil
	}
}

// storedKey reads the new key from the secret create-and-store wrote.
func (d *Deliverer) storedKey(ctx context.Context, rec *ledger.Record) (delivery.Key, error) {
	id := rec.SecretARN
	if id == "" {
		id = rec.SecretName
	}
	if id == "" {
		return delivery.Key{}, &failures.InvalidInputError{Field: "record.secretArn", Msg: "the rotation record names no secret: create-and-store stores the key first"}
	}
	out, err := d.Secrets.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(id)})
	if err != nil {
		return delivery.Key{}, fmt.Errorf("read the new key from secret %s: %s", id, failures.APICodeOr(err, "error"))
	}
	var sk StoredKey
	if json.Unmarshal([]byte(aws.ToString(out.SecretString)), &sk) != nil || sk.AccessKeyID != rec.NewKeyID || sk.SecretAccessKey == "" {
		return delivery.Key{}, &failures.NotVisibleYetError{What: fmt.Sprintf("secret %s does not hold the new key %s", id, rec.NewKeyID)}
	}
	return delivery.Key{AccessKeyID: sk.AccessKeyID, SecretAccessKey: sk.SecretAccessKey}, nil
}

// redact removes the secret from a text (a destination's message could,
// in principle, echo what it was sent).
func redact(s string, k delivery.Key) string {
	if k.SecretAccessKey != "" {
		s = strings.ReplaceAll(s, k.SecretAccessKey, "[redacted]")
	}
	return s
}

func isRetryable(err error) bool {
	var de *delivery.Error
	if errors.As(err, &de) {
		return de.Retryable()
	}
	return failures.IsThrottle(err) || failures.IsTransient(err)
}

func isFieldError(err error) bool {
	var fe *delivery.FieldError
	return errors.As(err, &fe)
}

func leftText(left []Undelivered) string {
	parts := make([]string, 0, len(left))
	for _, l := range left {
		parts = append(parts, l.Where+" ("+l.Reason+")")
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
