// Package notice renders the messages keyrotor sends: the owner's e-mail
// (text and HTML) and the admins' SNS messages. Messages name keys, secrets
// and times; they never contain a secret access key (nothing here receives
// one).
package notice

import (
	"fmt"
	"html"
	"strings"
	"time"
)

// Key describes the replaced or retired key.
type Key struct {
	ID       string
	Created  time.Time
	AgeDays  int
	LastUsed *time.Time
}

// Owner is what the owner's mail says.
type Owner struct {
	User string
	// Account and AccountAlias name the user's AWS account in
	// organization mode ("": not named).
	Account      string
	AccountAlias string
	Action       string // rotate or retire
	Reason       string
	OldKey       Key
	NewKeyID     string // rotate only
	SecretName   string // rotate only
	Region       string
	StopsWorking time.Time
	DeleteAfter  time.Time
	// Window, when set, is the rotation's adoption window: the old key
	// stays Active until the new key is in use, StopsWorking at the latest.
	Window *Window
	// Delivered lists where keyrotor put the new key (and read it back);
	// Undelivered where it could not, with why: those are left to the
	// owner until the next run delivers them. Evidence: the old key goes
	// off only once the new key is seen in use.
	Delivered   []string
	Undelivered []string
	Evidence    bool
}

// Window describes an adoption window to the owner.
type Window struct {
	Every       time.Duration // between checks
	Grace       time.Duration // between deactivation and deletion
	OldLastUsed string        // where and when the old key was last used ("never")
	NewLastUsed string        // the new key's last use by something other than keyrotor ("not yet")
}

// UserIn names an IAM user for people: "alice", or with its account in
// organization mode "alice in account 111122223333 (dev-team)".
func UserIn(user, account, alias string) string {
	if account == "" {
		return user
	}
	s := user + " in account " + account
	if alias != "" {
		s += " (" + alias + ")"
	}
	return s
}

// greet starts a mail to the owner: the greeting, and in organization
// mode the account it is about.
func greet(o Owner, t, m *strings.Builder) {
	fmt.Fprintf(t, "Hello %s,\n\n", o.User)
	fmt.Fprintf(m, "<html><body>\n<p>Hello %s,</p>\n", html.EscapeString(o.User))
	if l := accountLine(o); l != "" {
		fmt.Fprintf(t, "%s\n\n", l)
		fmt.Fprintf(m, "<p>%s</p>\n", html.EscapeString(l))
	}
}

// accountLine says which account the mail is about, or "".
func accountLine(o Owner) string {
	if o.Account == "" {
		return ""
	}
	return fmt.Sprintf("This is about your IAM user %s.", UserIn(o.User, o.Account, o.AccountAlias))
}

// Mail is a rendered e-mail.
type Mail struct {
	Subject string
	Text    string
	HTML    string
}

// FetchCommand is the exact command that prints the new key's secret JSON.
func FetchCommand(secretName, region string) string {
	cmd := "aws secretsmanager get-secret-value --secret-id " + shellQuote(secretName) + " --query SecretString --output text"
	if region != "" {
		cmd += " --region " + region
	}
	return cmd
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// OwnerMail renders the owner's e-mail. It is built with fmt rather than
// text/template: templates call methods by reflection, which stops the
// linker from dropping unused SDK code and doubled the notify binary.
func OwnerMail(o Owner) (Mail, error) {
	day := func(t time.Time) string { return t.UTC().Format("2006-01-02") }
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
	h := html.EscapeString
	cmd := FetchCommand(o.SecretName, o.Region)
	var t, m strings.Builder
	greet(o, &t, &m)
	if o.Action == "retire-password" {
		fmt.Fprintf(&t, "keyrotor is removing your AWS console password: %s.\n", o.Reason)
		t.WriteString("If you still need to sign in to the console, sign in before the date below and the password is kept; otherwise ask your AWS administrators later.\n\n")
		fmt.Fprintf(&t, "The password is removed after %s.\n\n-- keyrotor\n", stamp(o.DeleteAfter))
		fmt.Fprintf(&m, "<p>keyrotor is removing your AWS console password: %s.</p>\n<p>If you still need to sign in to the console, sign in before the date below and the password is kept.</p>\n<p>The password is <strong>removed after %s</strong>.</p>\n<p>-- keyrotor</p>\n</body></html>\n", h(o.Reason), stamp(o.DeleteAfter))
		return Mail{Subject: "[keyrotor] Your unused AWS console password is being removed", Text: t.String(), HTML: m.String()}, nil
	}
	if o.Action == "retire" {
		fmt.Fprintf(&t, "keyrotor is retiring your AWS access key %s (created %s): %s.\n", o.OldKey.ID, day(o.OldKey.Created), o.Reason)
		t.WriteString("No replacement is created, since the key is not in use. If you still need an access key, ask your AWS administrators.\n\n")
		fmt.Fprintf(&m, "<p>keyrotor is retiring your AWS access key <code>%s</code> (created %s): %s. No replacement is created, since the key is not in use.</p>\n",
			h(o.OldKey.ID), day(o.OldKey.Created), h(o.Reason))
	} else {
		fmt.Fprintf(&t, "keyrotor has replaced your AWS access key %s (created %s, %d days old).\nReason: %s.\n\n", o.OldKey.ID, day(o.OldKey.Created), o.OldKey.AgeDays, o.Reason)
		fmt.Fprintf(&t, "Your new access key %s is stored in AWS Secrets Manager, in the secret\n  %s\nFetch it with your own AWS credentials:\n  %s\n\n", o.NewKeyID, o.SecretName, cmd)
		switchText := "Please switch your applications to the new key now."
		if len(o.Delivered)+len(o.Undelivered) > 0 {
			switchText = "keyrotor delivers the new key to where you registered it is used:"
		}
		t.WriteString(switchText + "\n")
		fmt.Fprintf(&m, "<p>keyrotor has replaced your AWS access key <code>%s</code> (created %s, %d days old). Reason: %s.</p>\n",
			h(o.OldKey.ID), day(o.OldKey.Created), o.OldKey.AgeDays, h(o.Reason))
		fmt.Fprintf(&m, "<p>Your new access key <code>%s</code> is stored in AWS Secrets Manager, in the secret <code>%s</code>. Fetch it with your own AWS credentials:</p>\n<pre>%s</pre>\n<p>%s</p>\n",
			h(o.NewKeyID), h(o.SecretName), h(cmd), h(switchText))
		deliveryText(o, &t, &m)
		t.WriteString("\n")
	}
	if w := o.Window; w != nil {
		txt := windowText(o, stamp)
		t.WriteString(txt + "\n\n")
		fmt.Fprintf(&m, "<p>%s</p>\n", h(txt))
	} else {
		fmt.Fprintf(&t, "The old key %s stops working at %s (it is deactivated),\nand it is deleted after %s.\n\n", o.OldKey.ID, stamp(o.StopsWorking), stamp(o.DeleteAfter))
		fmt.Fprintf(&m, "<p>The old key <code>%s</code> <strong>stops working at %s</strong> (it is deactivated), and it is <strong>deleted after %s</strong>.</p>\n",
			h(o.OldKey.ID), stamp(o.StopsWorking), stamp(o.DeleteAfter))
	}
	t.WriteString("If something breaks, your administrators can re-activate the old key until then.\n\n-- keyrotor\n")
	m.WriteString("<p>If something breaks, your administrators can re-activate the old key until then.</p>\n<p>-- keyrotor</p>\n</body></html>\n")
	subject := fmt.Sprintf("[keyrotor] Your AWS access key %s has been replaced", o.OldKey.ID)
	if o.Action == "retire" {
		subject = fmt.Sprintf("[keyrotor] Your unused AWS access key %s is being retired", o.OldKey.ID)
	}
	return Mail{Subject: subject, Text: t.String(), HTML: m.String()}, nil
}

// deliveryText lists where the new key was delivered and where it is left
// to the owner (the next run tries those again).
func deliveryText(o Owner, t, m *strings.Builder) {
	if len(o.Delivered)+len(o.Undelivered) == 0 {
		return
	}
	h := html.EscapeString
	m.WriteString("<ul>\n")
	for _, d := range o.Delivered {
		fmt.Fprintf(t, "  - delivered and read back: %s\n", d)
		fmt.Fprintf(m, "<li>delivered and read back: %s</li>\n", h(d))
	}
	for _, d := range o.Undelivered {
		fmt.Fprintf(t, "  - NOT delivered yet: %s\n", d)
		fmt.Fprintf(m, "<li><strong>not delivered yet</strong>: %s</li>\n", h(d))
	}
	m.WriteString("</ul>\n")
	if len(o.Undelivered) > 0 {
		const left = "keyrotor tries the destinations it could not write again on its next run; the old key stays Active until every destination holds the new key. Put it there yourself if you cannot wait."
		t.WriteString(left + "\n")
		fmt.Fprintf(m, "<p>%s</p>\n", left)
	}
}

// windowText tells the owner how the adoption window works.
func windowText(o Owner, stamp func(time.Time) string) string {
	w := o.Window
	if o.Evidence {
		return fmt.Sprintf("The old key %s keeps working while your applications pick up the new key. keyrotor checks every %s which key is in use: once the new key %s is in use "+
			"and the old key has not been used since the previous check, the old key is deactivated, and deleted %s later. It stays Active until then: "+
			"if nothing uses the new key by %s, your administrators are told. The old key was last used: %s. The new key was last used: %s.",
			o.OldKey.ID, human(w.Every), o.NewKeyID, human(w.Grace), stamp(o.StopsWorking), w.OldLastUsed, w.NewLastUsed)
	}
	return fmt.Sprintf("The old key %s keeps working while you switch. keyrotor checks every %s which key is in use: once the new key %s is in use "+
		"and the old key has not been used since the previous check, the old key is deactivated. It is deactivated at %s at the latest, "+
		"whatever is still using it, and deleted %s after it is deactivated. The old key was last used: %s. The new key was last used: %s.",
		o.OldKey.ID, human(w.Every), o.NewKeyID, stamp(o.StopsWorking), human(w.Grace), w.OldLastUsed, w.NewLastUsed)
}

// human writes a duration in days when it is whole days.
func human(d time.Duration) string {
	switch {
	case d == 24*time.Hour:
		return "day"
	case d > 0 && d%(24*time.Hour) == 0:
		return fmt.Sprintf("%d days", d/(24*time.Hour))
	}
	return d.String()
}

// OwnerReminder renders a reminder during the adoption window: the old key
// is still in use (or the new one is not yet), with the deadline.
func OwnerReminder(o Owner) (Mail, error) {
	if o.Window == nil {
		return Mail{}, fmt.Errorf("a reminder needs the adoption window")
	}
	stamp := func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") }
	h := html.EscapeString
	cmd := FetchCommand(o.SecretName, o.Region)
	var t, m strings.Builder
	greet(o, &t, &m)
	fmt.Fprintf(&t, "A reminder: keyrotor replaced your AWS access key %s with %s, stored in the secret\n  %s\nFetch it with your own AWS credentials:\n  %s\n\n",
		o.OldKey.ID, o.NewKeyID, o.SecretName, cmd)
	fmt.Fprintf(&m, "<p>A reminder: keyrotor replaced your AWS access key <code>%s</code> with <code>%s</code>, stored in the secret <code>%s</code>. Fetch it with your own AWS credentials:</p>\n<pre>%s</pre>\n",
		h(o.OldKey.ID), h(o.NewKeyID), h(o.SecretName), h(cmd))
	txt := windowText(o, stamp)
	t.WriteString(txt + "\n\n-- keyrotor\n")
	fmt.Fprintf(&m, "<p>%s</p>\n<p>-- keyrotor</p>\n</body></html>\n", h(txt))
	return Mail{Subject: fmt.Sprintf("[keyrotor] Reminder: switch to your new AWS access key by %s", o.StopsWorking.UTC().Format("2006-01-02")),
		Text: t.String(), HTML: m.String()}, nil
}

// AdminSwitchOver tells the admins how an adoption window ended: on
// evidence (the new key in use, the old one no longer), on the deadline
// (with the old key's last use: someone may still depend on it), or by a
// person who deactivated the old key.
func AdminSwitchOver(user, oldKey, newKey, how, oldLastUsed, newLastUsed string) Admin {
	var b strings.Builder
	switch how {
	case "evidence":
		fmt.Fprintf(&b, "keyrotor switched IAM user %s over on evidence: the new key %s is in use and the old key %s was not used since the previous check. The old key is deactivated now.\n", user, newKey, oldKey)
	case "deadline":
		fmt.Fprintf(&b, "keyrotor switched IAM user %s over on the deadline: the adoption window ended without evidence that the new key %s replaced the old key %s, which is deactivated now.\n"+
			"Check with the owner: whatever last used the old key may fail from now on.\n", user, newKey, oldKey)
	default:
		fmt.Fprintf(&b, "The old key %s of IAM user %s was deactivated by a person during its adoption window; its grace period starts now.\n", oldKey, user)
	}
	fmt.Fprintf(&b, "Old key last used: %s\nNew key last used: %s\n", oldLastUsed, newLastUsed)
	return Admin{Subject: clip(fmt.Sprintf("keyrotor: %s switched over (%s)", user, how), 100), Body: b.String()}
}

// Admin is an SNS message for the admin topic.
type Admin struct {
	Subject string // at most 100 characters (SNS limit)
	Body    string
}

// AdminRotation tells admins about one rotation or retirement.
func AdminRotation(o Owner, mailStatus, mailedTo string) Admin {
	var b strings.Builder
	verb, what := "rotated", "access key "+o.OldKey.ID
	switch o.Action {
	case "retire":
		verb = "retired"
	case "retire-password":
		verb, what = "is removing", "the unused console password"
	}
	fmt.Fprintf(&b, "keyrotor %s %s of IAM user %s.\n", verb, what, UserIn(o.User, o.Account, o.AccountAlias))
	fmt.Fprintf(&b, "Reason: %s\n", o.Reason)
	if o.NewKeyID != "" {
		fmt.Fprintf(&b, "New key: %s, stored in secret %s\n", o.NewKeyID, o.SecretName)
	}
	if o.Action == "retire-password" {
		fmt.Fprintf(&b, "The login profile is removed after %s unless the password is used before then.\n", o.DeleteAfter.UTC().Format(time.RFC3339))
	} else if o.Window != nil {
		fmt.Fprintf(&b, "Adoption window: the old key stays Active until the new key is in use (checked every %s), deactivated at %s at the latest; deleted %s after it is deactivated.\nOld key last used: %s\n",
			human(o.Window.Every), o.StopsWorking.UTC().Format(time.RFC3339), human(o.Window.Grace), o.Window.OldLastUsed)
	} else {
		fmt.Fprintf(&b, "Old key deactivated at about %s; deleted after %s.\n", o.StopsWorking.UTC().Format(time.RFC3339), o.DeleteAfter.UTC().Format(time.RFC3339))
	}
	switch mailStatus {
	case "sent", "already-sent":
		fmt.Fprintf(&b, "Owner notified by e-mail: %s\n", mailedTo)
	case "no-address":
		b.WriteString("The user has no owner e-mail tag: nobody was mailed. Please tell the owner.\n")
	case "unknown":
		b.WriteString("The owner's e-mail may not have been delivered (the send was interrupted and is not repeated, to avoid duplicates). Please tell the owner.\n")
	}
	return Admin{Subject: clip(fmt.Sprintf("keyrotor: %s %s of %s", verb, strings.Fields(what)[0]+" "+strings.Fields(what)[1], UserIn(o.User, o.Account, o.AccountAlias)), 100), Body: b.String()}
}

// AdminAttention tells admins that keyrotor left a key alone and why.
func AdminAttention(user, keyID, what string) Admin {
	return Admin{
		Subject: clip(fmt.Sprintf("keyrotor: attention needed for %s", user), 100),
		Body:    fmt.Sprintf("keyrotor needs a person for access key %s of IAM user %s: %s\n", keyID, user, what),
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
