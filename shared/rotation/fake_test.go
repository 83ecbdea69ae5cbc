package rotation_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// fakeIAM is a small in-memory IAM for one user: keys and tags.
type fakeIAM struct {
	keys           map[string]types.StatusType
	tags           map[string]string
	updates        int
	deletes        int
	passwordUsed   *time.Time
	profileDeleted bool
}

func (f *fakeIAM) ListAccessKeys(_ context.Context, in *iam.ListAccessKeysInput, _ ...func(*iam.Options)) (*iam.ListAccessKeysOutput, error) {
	out := &iam.ListAccessKeysOutput{}
	for id, st := range f.keys {
		out.AccessKeyMetadata = append(out.AccessKeyMetadata, types.AccessKeyMetadata{AccessKeyId: aws.String(id), Status: st, UserName: in.UserName})
	}
	return out, nil
}

func (f *fakeIAM) ListUserTags(context.Context, *iam.ListUserTagsInput, ...func(*iam.Options)) (*iam.ListUserTagsOutput, error) {
	out := &iam.ListUserTagsOutput{}
	for k, v := range f.tags {
		out.Tags = append(out.Tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	return out, nil
}

func (f *fakeIAM) TagUser(_ context.Context, in *iam.TagUserInput, _ ...func(*iam.Options)) (*iam.TagUserOutput, error) {
	for _, t := range in.Tags {
		f.tags[*t.Key] = *t.Value
	}
	return &iam.TagUserOutput{}, nil
}

func (f *fakeIAM) UntagUser(_ context.Context, in *iam.UntagUserInput, _ ...func(*iam.Options)) (*iam.UntagUserOutput, error) {
	for _, k := range in.TagKeys {
		delete(f.tags, k)
	}
	return &iam.UntagUserOutput{}, nil
}

func (f *fakeIAM) UpdateAccessKey(_ context.Context, in *iam.UpdateAccessKeyInput, _ ...func(*iam.Options)) (*iam.UpdateAccessKeyOutput, error) {
	f.updates++
	f.keys[*in.AccessKeyId] = in.Status
	return &iam.UpdateAccessKeyOutput{}, nil
}

func (f *fakeIAM) DeleteAccessKey(_ context.Context, in *iam.DeleteAccessKeyInput, _ ...func(*iam.Options)) (*iam.DeleteAccessKeyOutput, error) {
	f.deletes++
	delete(f.keys, *in.AccessKeyId)
	return &iam.DeleteAccessKeyOutput{}, nil
}

func (f *fakeIAM) GetUser(_ context.Context, in *iam.GetUserInput, _ ...func(*iam.Options)) (*iam.GetUserOutput, error) {
	return &iam.GetUserOutput{User: &types.User{UserName: in.UserName, PasswordLastUsed: f.passwordUsed}}, nil
}

func (f *fakeIAM) DeleteLoginProfile(context.Context, *iam.DeleteLoginProfileInput, ...func(*iam.Options)) (*iam.DeleteLoginProfileOutput, error) {
	f.profileDeleted = true
	return &iam.DeleteLoginProfileOutput{}, nil
}

var (
	_ rotation.DeactivateIAM = (*fakeIAM)(nil)
	_ rotation.DeleteIAM     = (*fakeIAM)(nil)
)

type fakeTopic struct{ messages []string }

func (f *fakeTopic) Publish(_ context.Context, in *sns.PublishInput, _ ...func(*sns.Options)) (*sns.PublishOutput, error) {
	f.messages = append(f.messages, *in.Message)
	return &sns.PublishOutput{MessageId: aws.String("m")}, nil
}

var t0 = time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)

func rotateTask() rotation.Task {
	return rotation.Task{Execution: "e", Item: rotation.Item{User: "alice", Action: "rotate", OldKey: rotation.KeyRef{ID: "OLD"}},
		NewKey: &rotation.NewKey{KeyID: "NEW"}}
}

func TestDeactivateUnit(t *testing.T) {
	tests := []struct {
		name        string
		keys        map[string]types.StatusType
		tags        map[string]string
		wantErr     string
		wantUpdates int
		wantAfter   time.Time
	}{
		{"deactivates and records", map[string]types.StatusType{"OLD": "Active", "NEW": "Active"}, map[string]string{}, "", 1, t0.Add(7 * 24 * time.Hour)},
		{"already inactive, recorded earlier: the recorded time wins", map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"},
			map[string]string{"keyrotor:deactivated:OLD": t0.Add(-time.Hour).Format(time.RFC3339)}, "", 0, t0.Add(7*24*time.Hour - time.Hour)},
		{"new key missing: old key stays Active", map[string]types.StatusType{"OLD": "Active"}, map[string]string{}, "stays Active", 0, time.Time{}},
		{"new key inactive: old key stays Active", map[string]types.StatusType{"OLD": "Active", "NEW": "Inactive"}, map[string]string{}, "stays Active", 0, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeIAM{keys: tt.keys, tags: tt.tags}
			d := &rotation.Deactivator{IAM: f, Config: config.Default(), Now: func() time.Time { return t0 }}
			got, err := d.Handle(context.Background(), rotateTask())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || f.keys["OLD"] != "Active" {
					t.Fatalf("Handle = %+v, %v; want error %q and OLD Active", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !got.DeleteAfter.Equal(tt.wantAfter) || f.updates != tt.wantUpdates || f.keys["OLD"] != "Inactive" {
				t.Fatalf("Handle = %+v, %v (updates %d); want deleteAfter %v", got, err, f.updates, tt.wantAfter)
			}
		})
	}
}

func TestDeleteUnit(t *testing.T) {
	recorded := map[string]string{"keyrotor:deactivated:OLD": t0.Add(-8 * 24 * time.Hour).Format(time.RFC3339), "keyrotor:replaced-by:OLD": "NEW"}
	tests := []struct {
		name     string
		keys     map[string]types.StatusType
		tags     map[string]string
		deleted  bool
		reason   string
		adminMsg bool
	}{
		{"past grace: deleted, ledger cleaned", map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"}, recorded, true, "deleted after", false},
		{"already gone: success", map[string]types.StatusType{"NEW": "Active"}, recorded, true, "already deleted", false},
		{"re-activated: kept", map[string]types.StatusType{"OLD": "Active", "NEW": "Active"}, recorded, false, "re-activated", true},
		{"new key gone: kept", map[string]types.StatusType{"OLD": "Inactive"}, recorded, false, "new key", true},
		{"not keyrotor's: kept", map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"}, map[string]string{}, false, "no record", true},
		{"too early: kept", map[string]types.StatusType{"OLD": "Inactive", "NEW": "Active"},
			map[string]string{"keyrotor:deactivated:OLD": t0.Add(-time.Hour).Format(time.RFC3339)}, false, "grace period runs until", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags := map[string]string{}
			for k, v := range tt.tags {
				tags[k] = v
			}
			f := &fakeIAM{keys: tt.keys, tags: tags}
			topic := &fakeTopic{}
			cfg := config.Default()
			cfg.AdminTopicARN = "arn:aws:sns:us-east-1:1:t"
			d := &rotation.Deleter{IAM: f, Topic: topic, Config: cfg, Now: func() time.Time { return t0 }}
			got, err := d.Handle(context.Background(), rotateTask())
			if err != nil || got.Deleted != tt.deleted || !strings.Contains(got.Reason, tt.reason) {
				t.Fatalf("Handle = %+v, %v; want deleted=%v, reason containing %q", got, err, tt.deleted, tt.reason)
			}
			if _, still := f.keys["OLD"]; still == tt.deleted {
				t.Fatalf("OLD present = %v after deleted=%v", still, tt.deleted)
			}
			if (len(topic.messages) > 0) != tt.adminMsg {
				t.Fatalf("admin messages %v; want %v", topic.messages, tt.adminMsg)
			}
			if tt.deleted && len(f.tags) != 0 {
				t.Fatalf("ledger left: %v", f.tags)
			}
		})
	}
}

// TestDeletePasswordUnit: a console password is removed after its grace,
// unless it was used after the notice.
func TestDeletePasswordUnit(t *testing.T) {
	notice := t0.Add(-8 * 24 * time.Hour)
	usedAfter := notice.Add(time.Hour)
	usedBefore := notice.Add(-time.Hour)
	tests := []struct {
		name    string
		used    *time.Time
		deleted bool
	}{
		{"never used", nil, true},
		{"used before the notice", &usedBefore, true},
		{"used after the notice: kept", &usedAfter, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeIAM{keys: map[string]types.StatusType{}, tags: map[string]string{"keyrotor:deactivated:password": notice.Format(time.RFC3339)}, passwordUsed: tt.used}
			d := &rotation.Deleter{IAM: f, Topic: &fakeTopic{}, Config: config.Default(), Now: func() time.Time { return t0 }}
			task := rotation.Task{Execution: "e", Item: rotation.Item{User: "carol", Action: "retire-password", OldKey: rotation.KeyRef{ID: "password"}}}
			got, err := d.Handle(context.Background(), task)
			if err != nil || got.Deleted != tt.deleted || f.profileDeleted != tt.deleted || len(f.tags) != 0 {
				t.Fatalf("Handle = %+v, %v; profile deleted %v, tags %v; want deleted=%v", got, err, f.profileDeleted, f.tags, tt.deleted)
			}
		})
	}
}

// fakeMail records sends and can fail them.
type fakeMail struct {
	sent int
	err  error
}

func (f *fakeMail) SendEmail(context.Context, *sesv2.SendEmailInput, ...func(*sesv2.Options)) (*sesv2.SendEmailOutput, error) {
	if f.err != nil {
		return nil, f.err
	}
	f.sent++
	return &sesv2.SendEmailOutput{MessageId: aws.String("mail-1")}, nil
}

// TestNotifyMarkerUnit: the notify marker makes the owner's mail at most
// once: each marker state, and a clearly refused versus an unknown send.
func TestNotifyMarkerUnit(t *testing.T) {
	tests := []struct {
		name       string
		marker     string
		sendErr    error
		wantStatus string
		wantSent   int
		wantErr    string
		wantMarker string // marker state afterwards ("" = none)
	}{
		{"first time", "", nil, "sent", 1, "", "done"},
		{"already done", "done", nil, "already-sent", 0, "", "done"},
		{"mailed, admins not yet told", "mailed", nil, "already-sent", 0, "", "done"},
		{"earlier send interrupted", "sending", nil, "unknown", 0, "", "done"},
		{"refused by SES: marker cleared", "", &smithy.GenericAPIError{Code: "MessageRejected", Message: "Email address not verified", Fault: smithy.FaultClient}, "", 0, "SendRejectedError", ""},
		{"throttled: marker cleared", "", &smithy.GenericAPIError{Code: "TooManyRequestsException"}, "", 0, "TooManyRequests", ""},
		{"timed out: marker kept", "", context.DeadlineExceeded, "", 0, "deadline", "sending"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tags := map[string]string{}
			if tt.marker != "" {
				tags["keyrotor:notified:OLD"] = tt.marker + " " + t0.Format(time.RFC3339)
			}
			f := &fakeIAM{keys: map[string]types.StatusType{}, tags: tags}
			mail := &fakeMail{err: tt.sendErr}
			cfg := config.Default()
			cfg.Sender, cfg.AdminTopicARN = "keyrotor@example.com", "arn:aws:sns:us-east-1:1:t"
			n := &rotation.Notifier{IAM: f, Mail: mail, Topic: &fakeTopic{}, Config: cfg, Now: func() time.Time { return t0 }}
			task := rotateTask()
			task.Item.Email = "alice@example.com"
			got, err := n.Handle(context.Background(), task)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(fmt.Sprintf("%T %v", err, err), tt.wantErr) {
					t.Fatalf("Handle error = %v; want %s", err, tt.wantErr)
				}
			} else if err != nil || got.MailStatus != tt.wantStatus {
				t.Fatalf("Handle = %+v, %v; want status %s", got, err, tt.wantStatus)
			}
			if mail.sent != tt.wantSent {
				t.Fatalf("sent %d mails; want %d", mail.sent, tt.wantSent)
			}
			state, _, _ := strings.Cut(f.tags["keyrotor:notified:OLD"], " ")
			if state != tt.wantMarker {
				t.Fatalf("marker = %q; want %q", state, tt.wantMarker)
			}
		})
	}
}
