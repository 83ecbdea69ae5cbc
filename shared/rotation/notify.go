package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	sestypes "github.com/aws/aws-sdk-go-v2/service/sesv2/types"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
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

// Marker states of the notify ledger tag.
const (
	markSending = "sending" // set before the mail is sent
	markMailed  = "mailed"  // the mail went out (or there was no address)
	markDone    = "done"    // the admins were told too
)

// Notifier is the notify step. It sends the owner's mail at most once per
// rotation: a ledger tag is written before the send; a re-run that finds it
// does not send again. A send that SES clearly refused removes the tag (so
// a re-run after the fix sends); a send whose outcome is unknown (timeout,
// dropped connection) keeps it, and the admins are told to check.
type Notifier struct {
	IAM TagsAPI
	// Locks holds the notification locks (S3, in Config.ReportBucket): the
	// first execution to write a rotation's lock owns its notification, so
	// two executions over the same user send one mail, not two.
	Locks  ObjectsAPI
	Mail   MailAPI
	Topic  PublishAPI
	Config config.Config
	Region string
	Now    func() time.Time
	Log    *slog.Logger
}

// Handle notifies the owner and the admins about t.
func (n *Notifier) Handle(ctx context.Context, t Task) (*Notice, error) {
	it := t.Item
	if err := checkItem(it); err != nil {
		return nil, err
	}
	if skip := t.Skip(); skip != "" {
		return &Notice{MailStatus: "skipped"}, nil
	}
	if it.Action == policy.Rotate && (t.NewKey == nil || t.NewKey.KeyID == "") {
		return nil, &failures.InvalidInputError{Field: "newKey.keyId", Msg: "a rotate item reaches notify only after create-and-store"}
	}
	log := logOf(n.Log).With("user", it.User, "oldKeyId", it.OldKey.ID)
	if owner, err := n.lock(ctx, t); err != nil {
		return nil, err
	} else if owner != t.Execution {
		log.InfoContext(ctx, "another execution owns this notification", "owner", owner)
		return &Notice{MailStatus: "handled-by-other-execution", MailedTo: it.Email}, nil
	}
	ledger, err := readLedger(ctx, n.IAM, it.User)
	if isNoSuchEntity(err) {
		return &Notice{MailStatus: "skipped"}, nil
	}
	if err != nil {
		return nil, err
	}
	state, at := ledger.Notified(it.OldKey.ID)
	now := nowOf(n.Now).UTC().Truncate(time.Second)
	if at.IsZero() {
		at = now
	}
	// What the owner is told: deactivation follows this notice at once; the
	// deletion follows the grace period. A recorded deactivation wins.
	stops := at
	if d := ledger.DeactivatedAt(it.OldKey.ID); !d.IsZero() {
		stops = d
	}
	res := &Notice{StopsWorking: stops, DeleteAfter: stops.Add(n.Config.GracePeriod), MailedTo: it.Email}
	msg := n.ownerMessage(t, res)

	switch state {
	case markDone:
		res.MailStatus = "already-sent"
		return res, nil
	case markMailed:
		res.MailStatus = "already-sent"
	case markSending:
		// An earlier attempt began sending and never learned the outcome.
		res.MailStatus = "unknown"
		log.WarnContext(ctx, "an earlier send's outcome is unknown; not sending again")
	default:
		if err := writeTag(ctx, n.IAM, it.User, tagNotified+it.OldKey.ID, markSending+" "+now.Format(time.RFC3339)); err != nil {
			return nil, err
		}
		if it.Email == "" {
			res.MailStatus, res.MailedTo = "no-address", ""
		} else {
			id, err := n.send(ctx, it.Email, msg)
			if err != nil {
				if definite(err) {
					if rerr := removeTags(ctx, n.IAM, it.User, tagNotified+it.OldKey.ID); rerr != nil {
						log.ErrorContext(ctx, "could not clear the notify marker", "error", rerr.Error())
					}
				}
				return nil, err
			}
			res.MailStatus, res.MessageID = "sent", id
			log.InfoContext(ctx, "owner notified", "to", it.Email, "messageId", id)
		}
		if err := writeTag(ctx, n.IAM, it.User, tagNotified+it.OldKey.ID, markMailed+" "+now.Format(time.RFC3339)); err != nil {
			return nil, err
		}
	}
	adm := notice.AdminRotation(msg, res.MailStatus, res.MailedTo)
	id, err := publish(ctx, n.Topic, n.Config.AdminTopicARN, adm)
	if err != nil {
		return nil, err
	}
	res.AdminNotice = id
	if err := writeTag(ctx, n.IAM, it.User, tagNotified+it.OldKey.ID, markDone+" "+at.Format(time.RFC3339)); err != nil {
		return nil, err
	}
	return res, nil
}

// lock writes the notification lock of t's rotation if no execution has
// (S3 conditional write) and returns the execution that owns it.
func (n *Notifier) lock(ctx context.Context, t Task) (string, error) {
	if n.Locks == nil || n.Config.ReportBucket == "" {
		return t.Execution, nil
	}
	// The credential's creation time is part of the name: key ids are
	// unique, but "password" repeats for every password a user ever sets.
	key := fmt.Sprintf("ledger/%s/%s-%d/notify.json", SafeKey(t.Item.User), t.Item.OldKey.ID, t.Item.OldKey.Created.Unix())
	body, _ := json.Marshal(map[string]string{"execution": t.Execution, "user": t.Item.User, "oldKeyId": t.Item.OldKey.ID})
	_, err := n.Locks.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(n.Config.ReportBucket), Key: aws.String(key),
		Body: bytes.NewReader(body), IfNoneMatch: aws.String("*"), ContentType: aws.String("application/json")})
	if err == nil {
		return t.Execution, nil
	}
	if code := failures.APICode(err); code != "PreconditionFailed" && code != "ConditionalRequestConflict" {
		return "", fmt.Errorf("write notification lock s3://%s/%s: %w", n.Config.ReportBucket, key, err)
	}
	out, err := n.Locks.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(n.Config.ReportBucket), Key: aws.String(key)})
	if err != nil {
		return "", fmt.Errorf("read notification lock s3://%s/%s: %w", n.Config.ReportBucket, key, err)
	}
	defer out.Body.Close()
	var held struct{ Execution string }
	if err := json.NewDecoder(out.Body).Decode(&held); err != nil || held.Execution == "" {
		return "", &failures.StepError{Msg: fmt.Sprintf("notification lock s3://%s/%s is unreadable; delete it to let keyrotor notify", n.Config.ReportBucket, key)}
	}
	return held.Execution, nil
}

func (n *Notifier) ownerMessage(t Task, res *Notice) notice.Owner {
	it := t.Item
	o := notice.Owner{
		User: it.User, Action: string(it.Action), Reason: it.Reason, Region: n.Region,
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
