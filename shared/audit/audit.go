// Package audit builds keyrotor's credential audit report: one row per
// credential (access key or console password) with its age, status, last
// use, the user's MFA, and keyrotor's decision for it with the reason. The
// find function writes it to S3 on every run; `keyrotor audit` prints it.
// Both use the same policy code, so the report says what a run would do.
package audit

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/shared/credreport"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// Columns are the report's column names, in order. They are stable: tools
// may read the CSV by name.
var Columns = []string{
	"user", "arn", "credential", "status", "created", "age_days", "last_used",
	"last_used_service", "last_used_region", "mfa_active", "decision", "reason", "switch_over",
}

// OrgColumns are the columns of an organization-wide report: the account
// first, then Columns.
var OrgColumns = append([]string{"account", "account_alias"}, Columns...)

// Row is one credential.
type Row struct {
	// Account and AccountAlias name the row's account in an
	// organization-wide report (empty otherwise).
	Account         string        `json:"account,omitempty"`
	AccountAlias    string        `json:"account_alias,omitempty"`
	User            string        `json:"user"`
	ARN             string        `json:"arn"`
	Credential      string        `json:"credential"` // access key id, access_key_N when the id is unknown, or "password"
	Status          string        `json:"status"`     // Active, Inactive (keys); enabled (password)
	Created         string        `json:"created"`    // RFC 3339: key creation, or password last changed
	AgeDays         int           `json:"age_days"`
	LastUsed        string        `json:"last_used"` // RFC 3339, or "never"
	LastUsedService string        `json:"last_used_service"`
	LastUsedRegion  string        `json:"last_used_region"`
	MFAActive       bool          `json:"mfa_active"`
	Decision        policy.Action `json:"decision"`
	Reason          string        `json:"reason"`
	// SwitchOver describes the key's adoption window, when its rotation has
	// one: still adopting, or how it switched over (evidence, deadline,
	// person), with both keys' last use.
	SwitchOver string `json:"switch_over"`
}

// Report is the whole report.
type Report struct {
	// Organization: the rows come from several accounts (OrgColumns).
	Organization bool      `json:"organization,omitempty"`
	GeneratedAt  time.Time `json:"generatedAt"`
	AsOf         time.Time `json:"asOf"`
	ReportTime   time.Time `json:"credentialReportTime"`
	Rows         []Row     `json:"rows"`
}

// Build makes the report from an assessment. Candidates (users find
// checked live) carry their live key ids and decisions; for the other users
// the credential report has no key ids, so their keys are named by slot
// (access_key_1, access_key_2) and decided from the report's data.
func Build(a *rotation.Assessment, rules policy.Rules, retirePasswords bool) *Report {
	r := &Report{GeneratedAt: time.Now().UTC(), AsOf: a.AsOf.UTC(), ReportTime: a.ReportTime.UTC(), Rows: []Row{}}
	for _, row := range a.Rows {
		if c, ok := a.Candidates[row.User]; ok {
			r.Rows = append(r.Rows, liveRows(row, c, a.Records, a.AsOf)...)
		} else {
			r.Rows = append(r.Rows, reportRows(row, rules, a.AsOf)...)
		}
		if row.PasswordEnabled {
			r.Rows = append(r.Rows, passwordRow(row, a.Candidates[row.User], rules, a.AsOf, retirePasswords))
		}
	}
	sort.SliceStable(r.Rows, func(i, j int) bool {
		if r.Rows[i].User != r.Rows[j].User {
			return r.Rows[i].User < r.Rows[j].User
		}
		return r.Rows[i].Credential < r.Rows[j].Credential
	})
	return r
}

func liveRows(row credreport.Row, c *rotation.Candidate, records map[string]*ledger.Record, asOf time.Time) []Row {
	var out []Row
	for _, k := range c.User.Keys {
		d := decisionFor(c.Decisions, k.ID)
		if rec := records[k.ID]; rec != nil {
			switch {
			case !rec.State.InFlight() && asOf.Before(rec.HeldUntil):
				d.Action, d.Reason = policy.Held, fmt.Sprintf("held until %s: %s", rec.HeldUntil.UTC().Format(time.RFC3339), rec.Outcome)
			case rec.State.InFlight():
				d.Reason += fmt.Sprintf(" (rotation %d %s)", rec.Rotation, rec.State)
			}
			if rec.Attention != "" {
				d.Reason += "; needs attention: " + rec.Attention
			}
		}
		sw := switchOver(records[k.ID])
		out = append(out, Row{
			User: row.User, ARN: row.ARN, Credential: k.ID, Status: status(k.Active),
			Created: stamp(k.Created), AgeDays: policy.AgeDays(k.Created, asOf), LastUsed: lastUsed(k.LastUsed),
			LastUsedService: slotOf(row, k.Created).LastUsedService, LastUsedRegion: slotOf(row, k.Created).LastUsedRegion,
			MFAActive: row.MFAActive, Decision: d.Action, Reason: d.Reason, SwitchOver: sw,
		})
	}
	return out
}

// switchOver describes a rotation's adoption window ("" without one).
func switchOver(rec *ledger.Record) string {
	if rec == nil || rec.Adoption == nil {
		return ""
	}
	ad := rec.Adoption
	uses := fmt.Sprintf("old key last used %s, new key last used %s", ad.OldLastUsed, ad.NewLastUsed)
	if ad.SwitchOver == "" {
		return fmt.Sprintf("adopting until %s: %s", ad.Until.UTC().Format(time.RFC3339), uses)
	}
	return fmt.Sprintf("%s at %s: %s", ad.SwitchOver, ad.SwitchedAt.UTC().Format(time.RFC3339), uses)
}

func reportRows(row credreport.Row, rules policy.Rules, asOf time.Time) []Row {
	var out []Row
	for _, k := range row.Keys {
		if !k.Present() {
			continue
		}
		d := rules.KeyOnly(policy.Key{ID: "report", Active: k.Active, Created: k.LastRotated, LastUsed: k.LastUsed}, asOf)
		out = append(out, Row{
			User: row.User, ARN: row.ARN, Credential: "access_key_" + strconv.Itoa(k.Slot), Status: status(k.Active),
			Created: stamp(k.LastRotated), AgeDays: policy.AgeDays(k.LastRotated, asOf), LastUsed: lastUsed(k.LastUsed),
			LastUsedService: k.LastUsedService, LastUsedRegion: k.LastUsedRegion, MFAActive: row.MFAActive,
			Decision: d.Action, Reason: d.Reason,
		})
	}
	return out
}

// passwordRow reports a console password. A password unused for the unused
// threshold (never used: counted from its last change) is "retire"; its
// removal is reported only, unless retirePasswords is set. When find checked
// the user live (c != nil), its verdict wins: an exempt user's password is
// "exempt", and a password the live GetUser shows in use is "ok".
func passwordRow(row credreport.Row, c *rotation.Candidate, rules policy.Rules, asOf time.Time, retirePasswords bool) Row {
	d := rules.Password(true, row.PasswordLastUsed, row.PasswordLastChanged, asOf)
	if c != nil {
		d = livePassword(d, c, retirePasswords)
	}
	r := Row{User: row.User, ARN: row.ARN, Credential: "password", Status: "enabled", Created: stamp(row.PasswordLastChanged),
		AgeDays: policy.AgeDays(row.PasswordLastChanged, asOf), LastUsed: lastUsed(row.PasswordLastUsed), MFAActive: row.MFAActive,
		Decision: d.Action, Reason: d.Reason}
	if d.Action == policy.Retire {
		if retirePasswords {
			r.Reason += "; the login profile is removed after notice and the grace period"
		} else {
			r.Reason += "; reported only (retirePasswords is off)"
		}
	}
	if !row.MFAActive {
		r.Reason += "; no MFA device"
	}
	return r
}

// livePassword refines the report's verdict on a password with what find
// learned live about the user. The report's columns allow only the five
// decisions, so find's retire-password shows as retire.
func livePassword(d policy.Decision, c *rotation.Candidate, retirePasswords bool) policy.Decision {
	for _, cd := range c.Decisions {
		if cd.KeyID != "password" {
			continue
		}
		if cd.Action == policy.RetirePassword {
			cd.Action = policy.Retire
		}
		return cd
	}
	switch {
	case d.Action != policy.Retire:
		return d
	case c.User.Exempt:
		return policy.Decision{KeyID: "password", Action: policy.Exempt, Reason: c.User.ExemptReason}
	case retirePasswords:
		// find checked this password live (it was due by the report) and
		// found it used since the report was generated.
		return policy.Decision{KeyID: "password", Action: policy.OK, Reason: "in use (confirmed live)"}
	}
	return d
}

func decisionFor(ds []policy.Decision, id string) policy.Decision {
	for _, d := range ds {
		if d.KeyID == id {
			return d
		}
	}
	return policy.Decision{Action: policy.OK}
}

func slotOf(row credreport.Row, created time.Time) credreport.Key {
	for _, k := range row.Keys {
		if k.Present() && k.LastRotated.Unix() == created.Unix() {
			return k
		}
	}
	return credreport.Key{}
}

func status(active bool) string {
	if active {
		return "Active"
	}
	return "Inactive"
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func lastUsed(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return stamp(t)
}

// BuildAll makes one report of the assessments of several accounts (the
// organization mode; home names keyrotor's own account, whose assessment
// has no Account), ordered by account, user and credential. One
// assessment without an account is Build's single-account report.
func BuildAll(as []*rotation.Assessment, rules policy.Rules, retirePasswords bool, home string) *Report {
	if len(as) == 1 && as[0].Account == "" && home == "" {
		return Build(as[0], rules, retirePasswords)
	}
	r := &Report{Organization: true, GeneratedAt: time.Now().UTC(), Rows: []Row{}}
	for _, a := range as {
		one := Build(a, rules, retirePasswords)
		acct := a.Account
		if acct == "" {
			acct = home
		}
		for _, x := range one.Rows {
			x.Account, x.AccountAlias = acct, a.AccountAlias
			r.Rows = append(r.Rows, x)
		}
		r.AsOf = one.AsOf
		if one.ReportTime.Before(r.ReportTime) || r.ReportTime.IsZero() {
			r.ReportTime = one.ReportTime // the oldest credential report
		}
	}
	sort.SliceStable(r.Rows, func(i, j int) bool { return r.Rows[i].Account < r.Rows[j].Account })
	return r
}

// WriteCSV writes the rows with a header of Columns (OrgColumns for an
// organization-wide report).
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if r.Organization {
		cw.Write(OrgColumns)
	} else {
		cw.Write(Columns)
	}
	for _, x := range r.Rows {
		var lead []string
		if r.Organization {
			lead = []string{x.Account, x.AccountAlias}
		}
		cw.Write(append(lead, x.User, x.ARN, x.Credential, x.Status, x.Created, strconv.Itoa(x.AgeDays), x.LastUsed,
			x.LastUsedService, x.LastUsedRegion, strconv.FormatBool(x.MFAActive), string(x.Decision), x.Reason, x.SwitchOver))
	}
	cw.Flush()
	return cw.Error()
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if r.Rows == nil {
		c := *r
		c.Rows = []Row{}
		return enc.Encode(&c)
	}
	return enc.Encode(r)
}

// ANSI colours for the age bands of the IAM console.
const (
	green  = "\x1b[32m"
	yellow = "\x1b[33m"
	red    = "\x1b[31m"
	reset  = "\x1b[0m"
)

// Band names an age band: under 90 days, 90 to 365, over 365.
func Band(days int) string {
	switch {
	case days < 90:
		return "fresh"
	case days <= 365:
		return "aging"
	default:
		return "old"
	}
}

// dateOf shortens an RFC 3339 stamp to its date ("never" stays).
func dateOf(stamp string) string {
	if len(stamp) > 10 {
		return stamp[:10]
	}
	return stamp
}

// WriteTable writes an aligned table; with color, ages are coloured by
// band (green under 90 days, yellow 90 to 365, red over 365), as the IAM
// console colours them. Widths are measured without the colour codes, so
// the columns line up either way.
func (r *Report) WriteTable(w io.Writer, color bool) error {
	header := []string{"USER", "CREDENTIAL", "STATUS", "CREATED", "AGE", "LAST USED", "MFA", "DECISION", "REASON"}
	ageCol := 4
	if r.Organization {
		header = append([]string{"ACCOUNT"}, header...)
		ageCol++
	}
	cells := [][]string{header}
	for _, x := range r.Rows {
		lu, created := dateOf(x.LastUsed), dateOf(x.Created)
		if created == "" {
			created = "-"
		}
		if x.LastUsedService != "" {
			lu += " (" + x.LastUsedService + ")"
		}
		mfa := "no"
		if x.MFAActive {
			mfa = "yes"
		}
		reason := x.Reason
		if x.SwitchOver != "" {
			reason += "; switch-over: " + x.SwitchOver
		}
		var lead []string
		if r.Organization {
			lead = []string{x.Account}
			if x.AccountAlias != "" {
				lead[0] += " (" + x.AccountAlias + ")"
			}
		}
		cells = append(cells, append(lead, x.User, x.Credential, x.Status, created, fmt.Sprintf("%dd", x.AgeDays), lu, mfa, string(x.Decision), reason))
	}
	width := make([]int, len(header))
	for _, row := range cells {
		for i, c := range row {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	var buf bytes.Buffer
	for n, row := range cells {
		var line strings.Builder
		for i, c := range row {
			if i == len(row)-1 {
				line.WriteString(c)
				break
			}
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+2)
			if color && n > 0 && i == ageCol {
				c = bandColour[Band(r.Rows[n-1].AgeDays)] + c + reset
			}
			line.WriteString(c + pad)
		}
		buf.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	counts := map[policy.Action]int{}
	for _, x := range r.Rows {
		counts[x.Decision]++
	}
	fmt.Fprintf(&buf, "\n%d credentials: %d rotate, %d retire, %d exempt, %d blocked, %d ok (as of %s)\n", len(r.Rows),
		counts[policy.Rotate], counts[policy.Retire], counts[policy.Exempt], counts[policy.Blocked], counts[policy.OK], r.AsOf.Format(time.RFC3339))
	_, err := w.Write(buf.Bytes())
	return err
}

var bandColour = map[string]string{"fresh": green, "aging": yellow, "old": red}

// PutObjectAPI writes an S3 object.
type PutObjectAPI interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

// S3Writer writes a run's report to S3 as CSV and JSON.
type S3Writer struct {
	API             PutObjectAPI
	Bucket          string
	RetirePasswords bool
	// HomeAccount names keyrotor's own account in an organization-wide
	// report.
	HomeAccount string
	Now         func() time.Time
}

// NewS3Writer returns the find function's report writer, or nil (no
// report) when no bucket is configured.
func NewS3Writer(api PutObjectAPI, bucket string, retirePasswords bool, homeAccount string) rotation.ReportWriter {
	if bucket == "" {
		return nil
	}
	return &S3Writer{API: api, Bucket: bucket, RetirePasswords: retirePasswords, HomeAccount: homeAccount}
}

// Keys returns the object keys of a run's report: the run's date and the
// execution name.
func Keys(day time.Time, execution string) (csvKey, jsonKey string) {
	base := fmt.Sprintf("reports/%s/%s/credentials", day.UTC().Format("2006-01-02"), rotation.SafeKey(execution))
	return base + ".csv", base + ".json"
}

// WriteReport implements rotation.ReportWriter.
func (s *S3Writer) WriteReport(ctx context.Context, execution string, as []*rotation.Assessment, rules policy.Rules) (*rotation.ReportRef, error) {
	rep := BuildAll(as, rules, s.RetirePasswords, s.HomeAccount)
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	csvKey, jsonKey := Keys(now, execution)
	var c, j bytes.Buffer
	if err := rep.WriteCSV(&c); err != nil {
		return nil, err
	}
	if err := rep.WriteJSON(&j); err != nil {
		return nil, err
	}
	for _, o := range []struct {
		key, ctype string
		body       []byte
	}{{csvKey, "text/csv; charset=utf-8", c.Bytes()}, {jsonKey, "application/json", j.Bytes()}} {
		if _, err := s.API.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(s.Bucket), Key: aws.String(o.key),
			Body: bytes.NewReader(o.body), ContentType: aws.String(o.ctype)}); err != nil {
			return nil, fmt.Errorf("write s3://%s/%s: %w", s.Bucket, o.key, err)
		}
	}
	return &rotation.ReportRef{Bucket: s.Bucket, CSV: csvKey, JSON: jsonKey, Rows: len(rep.Rows)}, nil
}
