package rotation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/notice"
	"github.com/keyrotor/keyrotor/shared/policy"
)

// MailAPI sends e-mail (SES v2).
type MailAPI interface {
	SendEmail(ctx context.Context, in *sesv2.SendEmailInput, optFns ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error)
}

// PublishAPI publishes to the admin topic (SNS).
type PublishAPI interface {
	Publish(ctx context.Context, in *sns.PublishInput, optFns ...func(*sns.Options)) (*sns.PublishOutput, error)
}

var (
	_ MailAPI    = (*sesv2.Client)(nil)
	_ PublishAPI = (*sns.Client)(nil)
)

// Notifier is the notify step. The old key is deactivated only after its
// notice went out: SES accepted the owner's mail, or, when the owner has no
// address, the admins' message was published. The rotation record holds
// the outcome, so the owner gets at most one mail per rotation; a refused
// or unknown send is recorded, told to the admins once, and tried again by
// the next run (no lock ever silences a later attempt).
type Notifier struct {
	Records Records
	Mail    MailAPI
	Topic   PublishAPI
	Config  config.Config
	Region  string
	Now     func() time.Time
	Log     *slog.Logger
	Metrics *metrics.Emitter // MailsRefused; nil: none
}

// Handle notifies the owner and the admins about t.
func (n *Notifier) Handle(ctx context.Context, t Task) (*Notice, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	if skip := t.Skip(); skip != "" {
		return &Notice{MailStatus: "skipped", Skipped: skip}, nil
	}
	if it.Action == policy.Rotate && (t.NewKey == nil || t.NewKey.KeyID == "") {
		return nil, &failures.InvalidInputError{Field: "newKey.keyId", Msg: "a rotate item reaches notify only after create-and-store"}
	}
	if t.Execution == "" {
		return nil, &failures.InvalidInputError{Field: "execution", Msg: "missing: the state machine passes $$.Execution.Name"}
	}
	log := logOf(n.Log).With("user", it.User, "oldKeyId", it.OldKey.ID)
	now := nowOf(n.Now).UTC().Truncate(time.Second)
	rc := rotationCtx{recs: n.Records, topic: n.Topic, cfg: n.Config, execution: t.Execution, now: now, log: log}
	// A retirement starts here; a rotation started in create-and-store.
	ev := ledger.Continue
	if it.Action != policy.Rotate {
		ev = ledger.Due
	}
	rec, stop, err := rc.open(ctx, it, ev, ledger.Facts{Start: it.Action != policy.Rotate})
	if err != nil {
		return nil, err
	}
	if stop != "" {
		log.InfoContext(ctx, "not acting on this rotation", "why", stop)
		return &Notice{MailStatus: "skipped", Skipped: stop}, nil
	}
	// What the owner is told: deactivation follows this notice at once;
	// the deletion follows the grace period.
	stops := now
	if !rec.DeactivatedAt.IsZero() {
		stops = rec.DeactivatedAt
	}
	// With an adoption window the old key stays Active until the new key
	// is in use: the owner is told the latest time.
	window := n.windowOf(rec, it)
	if window {
		stops = now.Add(n.Config.Window(rec.Evidence))
		if rec.Adoption != nil {
			stops = rec.Adoption.Until
		} else if rec.Notice == ledger.NoticeAccepted && !rec.Evidence {
			stops = rec.NoticeAt.Add(n.Config.AdoptionWindow)
		}
	}
	res := &Notice{StopsWorking: stops, DeleteAfter: stops.Add(n.Config.GracePeriod), MailedTo: it.Email}
	msg := n.ownerMessage(t, res)
	msg.Delivered, msg.Undelivered, msg.Evidence = deliveryLists(t.Delivery)
	if window {
		msg.Window = &notice.Window{Every: n.Config.CheckEvery(), Grace: n.Config.GracePeriod, OldLastUsed: itemLastUse(it.OldKey), NewLastUsed: "not yet"}
	}

	if rec.Notice == ledger.NoticeAccepted {
		res.MailStatus, res.Accepted, res.MessageID = "already-sent", true, rec.MessageID
		if rec.NoticeChannel == "admins" {
			res.MailStatus, res.MailedTo = "admins", ""
		}
		if err := n.tellAdmins(ctx, rec, msg, res); err != nil {
			return nil, err
		}
		return n.handOff(ctx, rc, rec, res, window)
	}
	if it.Email == "" {
		// No owner address: the admins' message is the notice.
		res.MailStatus, res.MailedTo = "admins", ""
		id, err := publish(ctx, n.Topic, n.Config.AdminTopicARN, notice.AdminRotation(msg, "no-address", ""))
		if err != nil {
			return nil, err
		}
		if n.Topic == nil || n.Config.AdminTopicARN == "" {
			return n.notSent(ctx, rc, rec, res, ledger.NoticeRefused, fmt.Sprintf("user %s has no owner address (tag %s) and no admin topic is configured, so nobody could be told; the old key stays Active. Tag the user with its owner's address", it.User, n.Config.EmailTag))
		}
		res.Accepted, res.AdminNotice = true, id
		if err := n.accepted(ctx, rc, rec, "admins", id, "no owner address: the admins were told"); err != nil {
			return nil, err
		}
		return n.handOff(ctx, rc, rec, res, window)
	}
	if _, problem := notice.OwnerAddress(it.Email, n.Config.OwnerEmailDomains); problem != "" {
		// The tag is anyone's with iam:TagUser: not mailed, and the
		// value is quoted (cut, control characters removed) for the admins.
		res.MailedTo = ""
		return n.notSent(ctx, rc, rec, res, ledger.NoticeRefused, fmt.Sprintf("the owner address of user %s (tag %s) %s %s; no mail was sent and the old key %s stays Active. "+
			"Set the tag to the owner's address; keyrotor mails again on its next run", it.User, n.Config.EmailTag, notice.Quote(it.Email), problem, it.OldKey.ID))
	}
	id, err := n.send(ctx, it.Email, msg)
	if err != nil {
		if failures.IsThrottle(err) {
			return nil, err // nothing was sent; the orchestrator retries
		}
		if definite(err) {
			return n.notSent(ctx, rc, rec, res, ledger.NoticeRefused, fmt.Sprintf("the owner's mail to %s was refused (%s); the old key %s stays Active. Fix the address (tag %s) or SES; keyrotor mails again on its next run", it.Email, err.Error(), it.OldKey.ID, n.Config.EmailTag))
		}
		return n.notSent(ctx, rc, rec, res, ledger.NoticeUnknown, fmt.Sprintf("the outcome of the owner's mail to %s is unknown (%s); the old key %s stays Active and keyrotor mails again on its next run", it.Email, failures.APICodeOr(err, "no answer"), it.OldKey.ID))
	}
	res.MailStatus, res.MessageID, res.Accepted = "sent", id, true
	n.Metrics.Emit(map[string]float64{metrics.MailsRefused: 0})
	log.InfoContext(ctx, "owner notified", "to", it.Email, "messageId", id)
	if err := n.accepted(ctx, rc, rec, "mail", id, "owner mailed at "+it.Email); err != nil {
		return nil, err
	}
	if err := n.tellAdmins(ctx, rec, msg, res); err != nil {
		return nil, err
	}
	return n.handOff(ctx, rc, rec, res, window)
}

// windowOf reports whether the rotation has an adoption window: it was
// given one (it keeps it, whatever the setting is now), or it is a
// replacement not yet deactivated and the setting asks for one.
func (n *Notifier) windowOf(rec *ledger.Record, it Item) bool {
	if rec.Adoption != nil {
		return rec.State == ledger.Adopting
	}
	return n.Config.Window(rec.Evidence) > 0 && it.Action == policy.Rotate && rec.DeactivatedAt.IsZero() &&
		(rec.State == ledger.Notified || rec.Notice != ledger.NoticeAccepted)
}

// deliveryLists are the owner's mail's lines about delivery: where the new
// key was delivered, and where it is not yet (with why), for a person to
// put it there or wait for the next run.
func deliveryLists(d *Delivery) (delivered, left []string, evidence bool) {
	if d == nil {
		return nil, nil, false
	}
	for _, l := range d.Left {
		left = append(left, l.Where+": "+l.Reason)
	}
	return d.Delivered, left, d.Evidence
}

// handOff gives a rotation whose notice went out to its adoption window,
// run by the key's own execution (named after the user and the key): the
// state machine starts it, and it alone deactivates the old key. A window
// whose execution stopped (its lease passed, so this execution took the
// rotation over) gets a new execution name: Step Functions keeps a name
// for 90 days. The same execution handing off again (a retry, a Redrive)
// keeps the name: starting it again is a no-op.
func (n *Notifier) handOff(ctx context.Context, rc rotationCtx, rec *ledger.Record, res *Notice, window bool) (*Notice, error) {
	if !window || len(rec.Undelivered()) > 0 {
		// Without a window, or before every destination holds the new
		// key (the next run delivers the rest, then hands off).
		return res, nil
	}
	switch ad := rec.Adoption; {
	case ad == nil:
		until := rec.NoticeAt.Add(n.Config.AdoptionWindow)
		if rec.Evidence {
			// Counted from the delivery's completion (now), not from a
			// notice that may be days older.
			until = rc.now.Add(n.Config.Window(true))
		}
		rec.Adoption = &ledger.Adoption{Until: until, Every: int64(n.Config.CheckEvery() / time.Second),
			Execution: executionName(rec.Account, rec.User, rec.ID, rec.Rotation, 0)}
		rec.Move(rc.now, ledger.Adopting, rc.execution, "adoption window until "+until.UTC().Format(time.RFC3339)+": the old key stays Active until the new key is in use")
	case ad.HandedOffBy != rc.execution:
		// An earlier execution handed the window off, and its execution
		// stopped checking (this one holds the lease).
		ad.Attempt++
		ad.Execution = executionName(rec.Account, rec.User, rec.ID, rec.Rotation, ad.Attempt)
		rec.Log(rc.now, rec.State, rc.execution, "the window's execution stopped: it goes on in "+ad.Execution)
	}
	rec.Adoption.HandedOffBy = rc.execution
	if err := rc.recs.Put(ctx, rec); err != nil {
		return nil, err
	}
	res.Adoption = &Adoption{Execution: rec.Adoption.Execution, Until: rec.Adoption.Until}
	res.StopsWorking, res.DeleteAfter = rec.Adoption.Until, rec.Adoption.Until.Add(n.Config.GracePeriod)
	return res, nil
}

// itemLastUse describes an item's old key's last use as find saw it.
func itemLastUse(k KeyRef) string {
	if k.LastUsed == nil {
		return "never"
	}
	u := &ledger.Use{At: *k.LastUsed, Service: k.LastUsedService}
	return u.String()
}

// notSent records a notice that did not go out, tells the admins once and
// ends this execution's part: nothing is deactivated.
func (n *Notifier) notSent(ctx context.Context, rc rotationCtx, rec *ledger.Record, res *Notice, outcome, what string) (*Notice, error) {
	rec.Notice, rec.NoticeAt = outcome, rc.now
	n.Metrics.Emit(map[string]float64{metrics.MailsRefused: metrics.Flag(outcome == ledger.NoticeRefused)})
	if err := rc.attention(ctx, rec, rec.ID, what); err != nil {
		return nil, err
	}
	res.MailStatus, res.Accepted, res.Waiting = outcome, false, what
	return res, nil
}

// accepted records that the notice went out. The mail cannot be taken
// back: a write that fails is tried again here (a re-run would mail
// again), and one that lost a race or whose answer was lost is re-applied
// to a fresh read.
func (n *Notifier) accepted(ctx context.Context, rc rotationCtx, rec *ledger.Record, channel, id, note string) error {
	base := *rec
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 100 * time.Millisecond):
			}
			fresh, gerr := n.Records.Get(ctx, rec.ID)
			switch {
			case gerr != nil && attempt < 6:
				continue
			case gerr != nil:
				return gerr
			case fresh == nil:
				return nil
			case fresh.Notice == ledger.NoticeAccepted && fresh.MessageID == id:
				*rec = *fresh // the earlier write took effect
				return nil
			}
			*rec = *fresh
		} else {
			*rec = base
		}
		rec.Notice, rec.NoticeAt, rec.NoticeChannel, rec.MessageID = ledger.NoticeAccepted, rc.now, channel, id
		if channel == "mail" {
			rec.OwnerMails++
		} else {
			rec.AdminsTold = true
		}
		if !strings.HasPrefix(rec.Attention, attentionDelivery) {
			// The notice's own conditions clear; a delivery's stays
			// until deliver clears it.
			clearAttention(rec, rc.now, rc.execution)
		}
		rec.Move(rc.now, ledger.Notified, rc.execution, note)
		err := n.Records.Put(ctx, rec)
		if err == nil || attempt == 6 {
			return err
		}
		n.logf(ctx, "recording the accepted notice failed; trying again", err)
	}
}

func (n *Notifier) logf(ctx context.Context, msg string, err error) {
	logOf(n.Log).WarnContext(ctx, msg, "error", err.Error())
}

// tellAdmins publishes the admins' rotation message once per rotation.
func (n *Notifier) tellAdmins(ctx context.Context, rec *ledger.Record, msg notice.Owner, res *Notice) error {
	if rec.AdminsTold {
		return nil
	}
	id, err := publish(ctx, n.Topic, n.Config.AdminTopicARN, notice.AdminRotation(msg, res.MailStatus, res.MailedTo))
	if err != nil {
		return err
	}
	res.AdminNotice = id
	rec.AdminsTold = true
	return n.Records.Put(ctx, rec)
}

func (n *Notifier) ownerMessage(t Task, res *Notice) notice.Owner {
	it := t.Item
	o := notice.Owner{
		User: it.User, Action: string(it.Action), Reason: it.Reason, Region: n.Region,
		Account: ownerAccount(n.Config, it), AccountAlias: it.AccountAlias,
		OldKey:       notice.Key{ID: it.OldKey.ID, Created: it.OldKey.Created, AgeDays: it.OldKey.AgeDays, LastUsed: it.OldKey.LastUsed},
		StopsWorking: res.StopsWorking, DeleteAfter: res.DeleteAfter,
	}
	if t.NewKey != nil {
		o.NewKeyID, o.SecretName = t.NewKey.KeyID, t.NewKey.SecretName
	}
	return o
}

func (n *Notifier) send(ctx context.Context, to string, o notice.Owner) (string, error) {
	if n.Config.Sender == "" {
		return "", &failures.SendRejectedError{Channel: "SES", Msg: fmt.Sprintf("no sender address configured: set the senderAddress context (%s) to an SES-verified address", config.EnvSender)}
	}
	m, err := notice.OwnerMail(o)
	if err != nil {
		return "", &failures.StepError{Msg: "render owner mail: " + err.Error()}
	}
	return n.sendMail(ctx, to, m)
}

// sendMail sends a rendered mail from the configured sender.
func (n *Notifier) sendMail(ctx context.Context, to string, m notice.Mail) (string, error) {
	if n.Config.Sender == "" {
		return "", &failures.SendRejectedError{Channel: "SES", Msg: fmt.Sprintf("no sender address configured: set the senderAddress context (%s) to an SES-verified address", config.EnvSender)}
	}
	// Every owner mail (the notice, the reminders) goes to a checked
	// address only.
	if _, problem := notice.OwnerAddress(to, n.Config.OwnerEmailDomains); problem != "" {
		return "", &failures.SendRejectedError{Channel: "SES", Msg: "the owner address " + notice.Quote(to) + " " + problem}
	}
	out, err := n.Mail.SendEmail(ctx, &sesv2.SendEmailInput{
		FromEmailAddress: aws.String(n.Config.Sender),
		Destination:      &sestypes.Destination{ToAddresses: []string{to}},
		Content: &sestypes.EmailContent{Simple: &sestypes.Message{
			Subject: &sestypes.Content{Data: aws.String(m.Subject), Charset: aws.String("UTF-8")},
			Body: &sestypes.Body{
				Text: &sestypes.Content{Data: aws.String(m.Text), Charset: aws.String("UTF-8")},
				Html: &sestypes.Content{Data: aws.String(m.HTML), Charset: aws.String("UTF-8")},
			},
		}},
	})
	if err != nil {
		if failures.IsThrottle(err) || failures.IsTransient(err) {
			return "", fmt.Errorf("send mail to %s: %w", to, err)
		}
		var ae smithy.APIError
		if errors.As(err, &ae) {
			return "", &failures.SendRejectedError{Channel: "SES", Msg: fmt.Sprintf("%s: %s (sender %s; verify the sender identity in SES, and in the SES sandbox the recipient too)", ae.ErrorCode(), ae.ErrorMessage(), n.Config.Sender)}
		}
		return "", fmt.Errorf("send mail to %s: %w", to, err)
	}
	return aws.ToString(out.MessageId), nil
}

// definite reports whether a failed call certainly had no effect: the
// service answered with a refusal (not a 5xx, not a broken connection).
func definite(err error) bool {
	var sr *failures.SendRejectedError
	if errors.As(err, &sr) || failures.IsThrottle(err) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorFault() != smithy.FaultServer && !failures.IsTransient(err)
}

func publish(ctx context.Context, api PublishAPI, topic string, m notice.Admin) (string, error) {
	if topic == "" || api == nil {
		return "", nil
	}
	out, err := api.Publish(ctx, &sns.PublishInput{TopicArn: aws.String(topic), Subject: aws.String(m.Subject), Message: aws.String(m.Body)})
	if err != nil {
		if !failures.IsThrottle(err) && !failures.IsTransient(err) {
			var ae smithy.APIError
			if errors.As(err, &ae) {
				return "", &failures.SendRejectedError{Channel: "SNS", Msg: fmt.Sprintf("%s: %s (topic %s)", ae.ErrorCode(), ae.ErrorMessage(), topic)}
			}
		}
		return "", fmt.Errorf("publish to %s: %w", topic, err)
	}
	return aws.ToString(out.MessageId), nil
}
