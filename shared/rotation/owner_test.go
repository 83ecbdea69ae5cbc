package rotation_test

import (
	"context"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestMotoOwnerAddressChecked: the owner address is a user tag anyone with
// iam:TagUser may write. A list, a display name, an address outside
// ownerEmailDomains or a value with control characters is not mailed: the
// admins are told with the value quoted (control characters removed, cut),
// the notice is not accepted and the old key stays Active. A good address
// in an allowed domain is mailed.
func TestMotoOwnerAddressChecked(t *testing.T) {
	tests := []struct {
		name, user, tag string
		domains         []string
		ok              bool
		wantNote        string // in the admins' message
	}{
		{"a list", "mallory", "evil@attacker.example, alice@corp.example", nil, false, `"evil@attacker.example, alice@corp.example"`},
		{"a display name", "dave", `"Dave" <dave@corp.example>`, nil, false, "is not a bare e-mail address"},
		{"angle brackets", "ivan", "<ivan@corp.example>", nil, false, "is not a bare e-mail address"},
		{"a domain not allowed", "erin", "erin@attacker.example", []string{"corp.example"}, false, "in domain attacker.example, which ownerEmailDomains does not allow"},
		{"control characters", "frank", "frank@corp.example\nApproved by security, ignore this", nil, false, `"frank@corp.exampleApproved by security, ignore this"`},
		{"an allowed address", "gina", "gina@corp.example", []string{"corp.example"}, true, ""},
	}
	a := awstest.New(t)
	s := newSteps(t, a)
	oldKeys := map[string]string{}
	for _, tt := range tests {
		oldKeys[tt.user], _ = seedUser(t, a, tt.user, 100, 1, "email", tt.tag)
	}
	plan := s.plan(t, `{}`)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.cfg.OwnerEmailDomains = tt.domains
			s.rewire()
			oldID := oldKeys[tt.user]
			before, beforeNotes := a.Sent(t)
			task := rotation.Task{Execution: "e", Item: itemFor(t, plan, tt.user)}
			var err error
			if task.NewKey, err = s.create.Handle(ctx, task); err != nil {
				t.Fatal(err)
			}
			n, err := s.notify.Handle(ctx, task)
			if err != nil {
				t.Fatal(err)
			}
			mails, notes := a.Sent(t)
			mails, notes = mails[len(before):], notes[len(beforeNotes):]
			if tt.ok {
				if !n.Accepted || len(mails) != 1 || mails[0].To[0] != tt.tag {
					t.Fatalf("notify = %+v, mails %+v; want one mail to %s", n, mails, tt.tag)
				}
				return
			}
			if n.Accepted || n.MailStatus != ledger.NoticeRefused || n.MailedTo != "" {
				t.Fatalf("notify = %+v; want refused, not accepted, no address", n)
			}
			if len(mails) != 0 {
				t.Fatalf("mails = %+v; want none", mails)
			}
			if len(notes) != 1 || !strings.Contains(notes[0].Message, tt.wantNote) || !strings.Contains(notes[0].Message, "(tag email)") {
				t.Fatalf("admin notes = %+v; want one naming the tag and %s", notes, tt.wantNote)
			}
			if strings.Contains(notes[0].Message, "\n"+"Approved") || strings.Contains(notes[0].Message, tt.tag) && strings.ContainsAny(tt.tag, "\n") {
				t.Fatalf("admin note echoes the raw tag: %q", notes[0].Message)
			}
			if r := s.record(t, oldID); r.Notice != ledger.NoticeRefused || r.OwnerMails != 0 || r.State != ledger.Stored {
				t.Fatalf("record = %+v; want notice refused, no owner mail, still stored", r)
			}
			// Nothing is deactivated while the notice has not gone out.
			if d, err := s.deact.Handle(ctx, task); err != nil || d.Next != rotation.NextStop {
				t.Fatalf("deactivate = %+v, %v; want stop", d, err)
			}
			if keys := a.Keys(t, tt.user); keys[oldID] != "Active" {
				t.Fatalf("keys = %v; want the old key Active", keys)
			}
		})
	}
}
