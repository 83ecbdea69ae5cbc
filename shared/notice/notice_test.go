package notice

import (
	"strings"
	"testing"
	"time"
)

func TestOwnerMail(t *testing.T) {
	when := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	base := Owner{User: "a+b=c,d", Reason: "key is 120 days old, max age 90 days", Region: "eu-west-1",
		OldKey: Key{ID: "AKIAOLD", Created: when.AddDate(0, 0, -120), AgeDays: 120}, StopsWorking: when, DeleteAfter: when.AddDate(0, 0, 7)}
	tests := []struct {
		action, subject string
		want            []string
	}{
		{"rotate", "has been replaced", []string{"AKIAOLD", "AKIANEW", "iam-access-keys/a+b=3Dc=2Cd",
			"aws secretsmanager get-secret-value --secret-id 'iam-access-keys/a+b=3Dc=2Cd' --query SecretString --output text --region eu-west-1",
			"stops working at 2026-11-23 06:00 UTC", "deleted after 2026-11-30 06:00 UTC"}},
		{"retire", "is being retired", []string{"AKIAOLD", "No replacement", "deleted after 2026-11-30 06:00 UTC"}},
		{"retire-password", "console password", []string{"removed after 2026-11-30 06:00 UTC"}},
	}
	for _, tt := range tests {
		t.Run(tt.action, func(t *testing.T) {
			o := base
			o.Action = tt.action
			if tt.action == "rotate" {
				o.NewKeyID, o.SecretName = "AKIANEW", "iam-access-keys/a+b=3Dc=2Cd"
			}
			m, err := OwnerMail(o)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(m.Subject, tt.subject) {
				t.Errorf("subject %q lacks %q", m.Subject, tt.subject)
			}
			for _, w := range tt.want {
				if !strings.Contains(m.Text, w) {
					t.Errorf("text lacks %q:\n%s", w, m.Text)
				}
			}
			if strings.Contains(m.HTML, "<script") || !strings.Contains(m.HTML, "a&#43;b=c,d") && !strings.Contains(m.HTML, "a+b=c,d") {
				t.Errorf("HTML does not name the user safely:\n%s", m.HTML)
			}
		})
	}
}

func TestAdminMessages(t *testing.T) {
	o := Owner{User: "alice", Action: "rotate", Reason: "old", OldKey: Key{ID: "AKIAOLD"}, NewKeyID: "AKIANEW", SecretName: "s"}
	for status, want := range map[string]string{"sent": "Owner notified by e-mail: a@x", "no-address": "no owner e-mail tag", "unknown": "may not have been delivered"} {
		a := AdminRotation(o, status, "a@x")
		if !strings.Contains(a.Body, want) || len(a.Subject) > 100 {
			t.Errorf("AdminRotation(%s) = %+v; want %q", status, a, want)
		}
	}
	long := AdminAttention(strings.Repeat("u", 64), "AKIA", "re-activated")
	if len(long.Subject) > 100 || !strings.Contains(long.Body, "re-activated") {
		t.Errorf("AdminAttention = %+v", long)
	}
}

// TestWindowMails: with an adoption window the owner is told the old key
// keeps working until the new one is in use, at the latest when; the
// reminder repeats where to fetch the new key and both keys' last use.
func TestWindowMails(t *testing.T) {
	until := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	o := Owner{User: "dev", Action: "rotate", Reason: "key is 120 days old", Region: "eu-west-1",
		OldKey: Key{ID: "AKIAOLD", AgeDays: 120}, NewKeyID: "AKIANEW", SecretName: "iam-access-keys/dev",
		StopsWorking: until, DeleteAfter: until.AddDate(0, 0, 7),
		Window: &Window{Every: 24 * time.Hour, Grace: 7 * 24 * time.Hour, OldLastUsed: "2026-12-05T10:00:00Z (s3, eu-west-1)", NewLastUsed: "not yet"}}
	first, err := OwnerMail(o)
	if err != nil {
		t.Fatal(err)
	}
	reminder, err := OwnerReminder(o)
	if err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]Mail{"first": first, "reminder": reminder} {
		for _, w := range []string{"keeps working while you switch", "checks every day", "deactivated at 2026-12-07 06:00 UTC at the latest",
			"deleted 7 days after", "last used: 2026-12-05T10:00:00Z (s3, eu-west-1)", "The new key was last used: not yet", "AKIANEW",
			"get-secret-value --secret-id 'iam-access-keys/dev'"} {
			if !strings.Contains(m.Text, w) {
				t.Errorf("%s mail lacks %q:\n%s", name, w, m.Text)
			}
		}
		if strings.Contains(m.Text, "stops working at") {
			t.Errorf("%s mail says the old key stops working at a fixed time; with a window it stops once the new key is in use:\n%s", name, m.Text)
		}
	}
	if !strings.Contains(reminder.Subject, "Reminder") || !strings.Contains(reminder.Subject, "2026-12-07") {
		t.Errorf("reminder subject %q", reminder.Subject)
	}
	if _, err := OwnerReminder(Owner{User: "dev"}); err == nil {
		t.Error("a reminder without a window rendered")
	}
	a := AdminSwitchOver("dev", "AKIAOLD", "AKIANEW", "deadline", "2026-12-06T23:00:00Z (s3, eu-west-1)", "not yet")
	if !strings.Contains(a.Body, "on the deadline") || !strings.Contains(a.Body, "may fail from now on") || !strings.Contains(a.Body, "Old key last used: 2026-12-06T23:00:00Z") {
		t.Errorf("deadline message:\n%s", a.Body)
	}
}

// TestAccountNamed: in organization mode every message names the user's
// account (id and alias); in single-account mode none does.
func TestAccountNamed(t *testing.T) {
	when := time.Date(2026, 11, 23, 6, 0, 0, 0, time.UTC)
	base := Owner{User: "alice", Action: "rotate", Reason: "old", Region: "eu-west-1", OldKey: Key{ID: "AKIAOLD", Created: when.AddDate(0, 0, -100)},
		NewKeyID: "AKIANEW", SecretName: "iam-access-keys/alice", StopsWorking: when, DeleteAfter: when.AddDate(0, 0, 7)}
	win := base
	win.Window = &Window{Every: 24 * time.Hour, Grace: 7 * 24 * time.Hour, OldLastUsed: "never", NewLastUsed: "not yet"}
	tests := []struct {
		name, account, alias string
		want                 string // "" : no account named
	}{
		{"single account", "", "", ""},
		{"member with alias", "111122223333", "dev-team", "alice in account 111122223333 (dev-team)"},
		{"member without alias", "111122223333", "", "alice in account 111122223333"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, w := base, win
			o.Account, o.AccountAlias, w.Account, w.AccountAlias = tt.account, tt.alias, tt.account, tt.alias
			mail, _ := OwnerMail(o)
			rem, err := OwnerReminder(w)
			if err != nil {
				t.Fatal(err)
			}
			admin := AdminRotation(o, "sent", "alice@example.com")
			texts := map[string]string{"mail": mail.Text, "mail HTML": mail.HTML, "reminder": rem.Text, "admin": admin.Body, "admin subject": admin.Subject}
			for what, s := range texts {
				switch {
				case tt.want == "" && strings.Contains(s, "account 1"):
					t.Errorf("%s names an account in single-account mode:\n%s", what, s)
				case tt.want != "" && !strings.Contains(s, tt.want):
					t.Errorf("%s lacks %q:\n%s", what, tt.want, s)
				}
			}
			if !strings.HasPrefix(rem.Text, "Hello alice,") || !strings.HasPrefix(mail.HTML, "<html>") {
				t.Errorf("the account line must follow the greeting:\n%s\n%s", rem.Text, mail.HTML)
			}
		})
	}
}
