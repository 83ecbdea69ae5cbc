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
