// Package notice renders the messages keyrotor sends: the owner's e-mail
// (text and HTML) and the admins' SNS messages. Messages name keys, secrets
// and times; they never contain a secret access key (nothing here receives
// one).
package notice

import (
	"bytes"
	"fmt"
	"html/template"
	"strings"
	ttemplate "text/template"
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
	User         string
	Action       string // rotate or retire
	Reason       string
	OldKey       Key
	NewKeyID     string // rotate only
	SecretName   string // rotate only
	Region       string
	StopsWorking time.Time
	DeleteAfter  time.Time
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

const ownerText = `Hello {{.User}},
{{if eq .Action "rotate"}}
keyrotor has replaced your AWS access key {{.OldKey.ID}} (created {{day .OldKey.Created}}, {{.OldKey.AgeDays}} days old).
Reason: {{.Reason}}.

Your new access key {{.NewKeyID}} is stored in AWS Secrets Manager, in the secret
  {{.SecretName}}
Fetch it with your own AWS credentials:
  {{.Command}}

Please switch your applications to the new key now.
{{else}}
keyrotor is retiring your AWS access key {{.OldKey.ID}} (created {{day .OldKey.Created}}): {{.Reason}}.
No replacement is created, since the key is not in use. If you still need an access key, ask your AWS administrators.
{{end}}
The old key {{.OldKey.ID}} stops working at {{stamp .StopsWorking}} (it is deactivated),
and it is deleted after {{stamp .DeleteAfter}}.

If something breaks, your administrators can re-activate the old key until then.

-- keyrotor
`

const ownerHTML = `<html><body>
<p>Hello {{.User}},</p>
{{if eq .Action "rotate"}}
<p>keyrotor has replaced your AWS access key <code>{{.OldKey.ID}}</code> (created {{day .OldKey.Created}}, {{.OldKey.AgeDays}} days old). Reason: {{.Reason}}.</p>
<p>Your new access key <code>{{.NewKeyID}}</code> is stored in AWS Secrets Manager, in the secret <code>{{.SecretName}}</code>. Fetch it with your own AWS credentials:</p>
<pre>{{.Command}}</pre>
<p>Please switch your applications to the new key now.</p>
{{else}}
<p>keyrotor is retiring your AWS access key <code>{{.OldKey.ID}}</code> (created {{day .OldKey.Created}}): {{.Reason}}. No replacement is created, since the key is not in use.</p>
{{end}}
<p>The old key <code>{{.OldKey.ID}}</code> <strong>stops working at {{stamp .StopsWorking}}</strong> (it is deactivated), and it is <strong>deleted after {{stamp .DeleteAfter}}</strong>.</p>
<p>If something breaks, your administrators can re-activate the old key until then.</p>
<p>-- keyrotor</p>
</body></html>
`

var funcs = map[string]any{
	"day":   func(t time.Time) string { return t.UTC().Format("2006-01-02") },
	"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 MST") },
}

var (
	textTmpl = ttemplate.Must(ttemplate.New("text").Funcs(funcs).Parse(ownerText))
	htmlTmpl = template.Must(template.New("html").Funcs(funcs).Parse(ownerHTML))
)

// OwnerMail renders the owner's e-mail.
func OwnerMail(o Owner) (Mail, error) {
	data := struct {
		Owner
		Command string
	}{o, FetchCommand(o.SecretName, o.Region)}
	var t, h bytes.Buffer
	if err := textTmpl.Execute(&t, data); err != nil {
		return Mail{}, err
	}
	if err := htmlTmpl.Execute(&h, data); err != nil {
		return Mail{}, err
	}
	subject := fmt.Sprintf("[keyrotor] Your AWS access key %s has been replaced", o.OldKey.ID)
	if o.Action == "retire" {
		subject = fmt.Sprintf("[keyrotor] Your unused AWS access key %s is being retired", o.OldKey.ID)
	}
	return Mail{Subject: subject, Text: t.String(), HTML: h.String()}, nil
}

// Admin is an SNS message for the admin topic.
type Admin struct {
	Subject string // at most 100 characters (SNS limit)
	Body    string
}

// AdminRotation tells admins about one rotation or retirement.
func AdminRotation(o Owner, mailStatus, mailedTo string) Admin {
	var b strings.Builder
	verb := "rotated"
	if o.Action == "retire" {
		verb = "retired"
	}
	fmt.Fprintf(&b, "keyrotor %s access key %s of IAM user %s.\n", verb, o.OldKey.ID, o.User)
	fmt.Fprintf(&b, "Reason: %s\n", o.Reason)
	if o.NewKeyID != "" {
		fmt.Fprintf(&b, "New key: %s, stored in secret %s\n", o.NewKeyID, o.SecretName)
	}
	fmt.Fprintf(&b, "Old key deactivated at about %s; deleted after %s.\n", o.StopsWorking.UTC().Format(time.RFC3339), o.DeleteAfter.UTC().Format(time.RFC3339))
	switch mailStatus {
	case "sent", "already-sent":
		fmt.Fprintf(&b, "Owner notified by e-mail: %s\n", mailedTo)
	case "no-address":
		b.WriteString("The user has no owner e-mail tag: nobody was mailed. Please tell the owner.\n")
	case "unknown":
		b.WriteString("The owner's e-mail may not have been delivered (the send was interrupted and is not repeated, to avoid duplicates). Please tell the owner.\n")
	}
	return Admin{Subject: clip(fmt.Sprintf("keyrotor: %s key of %s", verb, o.User), 100), Body: b.String()}
}

// AdminAttention tells admins that keyrotor left a key alone and why.
func AdminAttention(user, keyID, what string) Admin {
	return Admin{
		Subject: clip(fmt.Sprintf("keyrotor: attention needed for %s", user), 100),
		Body:    fmt.Sprintf("keyrotor did not delete access key %s of IAM user %s: %s\n", keyID, user, what),
	}
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
