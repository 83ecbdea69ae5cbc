// Package audit builds keyrotor's credential audit report: one row per
// credential (access key or console password) with its age, status, last
// use, the user's MFA, and keyrotor's decision for it with the reason. The
// find function writes it to S3 on every run; `keyrotor audit` prints it.
// Both use the same policy code, so the report says what a run would do.
package audit

import (
	"bufio"
	"bytes"
	"context"
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
// may read the CSV by name; new columns are added at the end.
var Columns = []string{
	"user", "arn", "credential", "status", "created", "age_days", "last_used",
	"last_used_service", "last_used_region", "mfa_active", "decision", "reason", "switch_over",
	"key_id", "age_band", "iam3", "iam22", "iam4", "flags", "source", "read_at",
	"credential_report_time", "generated_at", "count", "destinations",
}

// OrgColumns are the columns of an organization-wide report: the account
// first, then Columns.
var OrgColumns = append([]string{"account", "account_alias"}, Columns...)

// RootUser is the credential report's name of the account's root user.
const RootUser = "<root_account>"

// The verdicts of AWS's own controls on a row (Security Hub; "" where the
// control does not apply to the credential).
const (
	Passed = "PASSED"
	Failed = "FAILED"
)

// Row is one credential.
type Row struct {
	// Account and AccountAlias name the row's account in an
	// organization-wide report (empty otherwise).
	Account      string `json:"account,omitempty"`
	AccountAlias string `json:"account_alias,omitempty"`
	User         string `json:"user"`
	ARN          string `json:"arn"`
	// Credential names the credential by its place in the credential
	// report: access_key_1, access_key_2, password, cert_1, cert_2; a key
	// created after the report is access_key. The key id is KeyID.
	Credential      string        `json:"credential"`
	Status          string        `json:"status"`  // Active, Inactive (keys, certificates); enabled (password)
	Created         string        `json:"created"` // RFC 3339: key creation, or password last changed
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
	// KeyID is the access key id where it is known (the user was checked
	// live, or a rotation record names it); "" otherwise.
	KeyID string `json:"key_id"`
	// AgeBand is 0-30, 31-60, 61-90 or over 90 (days, as durations).
	AgeBand string `json:"age_band"`
	// IAM3, IAM22 and IAM4 are what Security Hub's controls say of the
	// credential as of AsOf: IAM.3 (an Active access key older than 90
	// days), IAM.22 (a password or Active key unused for 45 days), IAM.4
	// (a root access key exists).
	IAM3  string `json:"iam3"`
	IAM22 string `json:"iam22"`
	IAM4  string `json:"iam4"`
	// Flags are the user's findings an auditor looks for: two Active keys
	// (CIS 1.13), console access without MFA (CIS 1.10), root use.
	Flags string `json:"flags"`
	// Source is where the row's data comes from ("live" or
	// "credential report"), read at ReadAt (RFC 3339).
	Source string `json:"source"`
	ReadAt string `json:"read_at"`
	// Destinations are where the key's rotation delivered its new key
	// (docs/delivery.md), each with its state: verified at a time,
	// failed with the reason, or pending; "" without delivery.
	Destinations string `json:"destinations"`
}

// Summary counts the rows.
type Summary struct {
	Credentials int            `json:"credentials"`
	Decisions   map[string]int `json:"decisions"`
	// AgeBands counts the access keys (Active or not) by age.
	AgeBands map[string]int `json:"ageBands"`
	// TwoActiveKeys and ConsoleWithoutMFA name the users (CIS 1.13, 1.10).
	TwoActiveKeys     []string `json:"twoActiveKeys"`
	ConsoleWithoutMFA []string `json:"consoleWithoutMfa"`
}

// Report is the whole report.
type Report struct {
	// Organization: the rows come from several accounts (OrgColumns).
	Organization bool      `json:"organization,omitempty"`
	GeneratedAt  time.Time `json:"generatedAt"`
	AsOf         time.Time `json:"asOf"`
	ReportTime   time.Time `json:"credentialReportTime"`
	Rows         []Row     `json:"rows"`
	Summary      Summary   `json:"summary"`
	// Notes say what the report cannot show (users created after the
	// credential report, a run without the rotation records).
	Notes []string `json:"notes"`
}

// Bands are the age bands, in order.
var Bands = []string{"0-30", "31-60", "61-90", "over 90"}

// AgeBand places the age of t at asOf in Bands, on durations (30 days and
// one second is 31-60).
func AgeBand(t, asOf time.Time) string {
	switch {
	case !policy.Older(t, asOf, 30):
		return Bands[0]
	case !policy.Older(t, asOf, 60):
		return Bands[1]
	case !policy.Older(t, asOf, 90):
		return Bands[2]
	}
	return Bands[3]
}

// Decisions are the report's decisions, in the order the summary counts
// them.
var Decisions = []policy.Action{policy.Rotate, policy.Retire, policy.RetirePassword, policy.Held, policy.Adopting, policy.InFlight,
	policy.InGrace, policy.Exempt, policy.Blocked, policy.Manual, policy.Gone, policy.OK}

// builder holds what every row of one assessment needs.
type builder struct {
	a               *rotation.Assessment
	rules           policy.Rules
	retirePasswords bool
	reportAt        string
}

// Build makes the report from an assessment. When find planned it
// (a.Verdicts), each credential's decision is the plan's verdict: what the
// run did or would do. Users find checked live carry their key ids; the
// others come from the credential report, which has no key ids, and are
// decided from its data with the same policy.
func Build(a *rotation.Assessment, rules policy.Rules, retirePasswords bool) *Report {
	b := &builder{a: a, rules: rules, retirePasswords: retirePasswords, reportAt: stamp(a.ReportTime)}
	r := &Report{GeneratedAt: time.Now().UTC(), AsOf: a.AsOf.UTC(), ReportTime: a.ReportTime.UTC(), Rows: []Row{}}
	if a.Root != nil {
		r.Rows = append(r.Rows, flagUsers(b.rootRows(*a.Root), *a.Root)...)
	}
	for _, row := range a.Rows {
		var rows []Row
		switch c := a.Candidates[row.User]; {
		case a.Gone[row.User]:
			rows = b.goneRows(row)
		case c != nil:
			rows = b.liveRows(row, c)
		default:
			rows = b.reportRows(row)
		}
		if row.PasswordEnabled && !a.Gone[row.User] {
			rows = append(rows, b.passwordRow(row, a.Candidates[row.User]))
		}
		if !a.Gone[row.User] {
			rows = append(rows, b.certRows(row)...)
		}
		r.Rows = append(r.Rows, flagUsers(rows, row)...)
	}
	for _, nu := range a.Newer {
		r.Rows = append(r.Rows, b.newRows(nu)...)
	}
	sortRows(r.Rows)
	r.Notes = notes(a)
	r.summarize()
	return r
}

// notes are what the report of a cannot show.
func notes(a *rotation.Assessment) []string {
	n := []string{fmt.Sprintf("the credential report is from %s: users deleted since are gone, users created since are listed live with their keys (their passwords and MFA are in the next report)",
		stamp(a.ReportTime))}
	if a.Restricted {
		n[0] = fmt.Sprintf("the credential report is from %s; only the named users are reported", stamp(a.ReportTime))
	}
	if a.Root == nil && !a.Restricted {
		n = append(n, "the credential report has no root row (<root_account>): the root user's keys, MFA and use are not shown")
	}
	if !a.TagsRead {
		n = append(n, "tags were read only for the users checked live (a credential due): a user tagged exempt whose credentials are not due shows the policy's decision, not exempt; `keyrotor audit` and dry runs read every user's tags")
	}
	if a.Verdicts == nil {
		n = append(n, "not planned: decisions come from the policy alone, without the rotation records' holds, adoption windows and grace periods")
	}
	return n
}

// sortRows orders rows by account, the root user first, then user names
// as IAM compares them (case-insensitively), then credential.
func sortRows(rows []Row) {
	sort.SliceStable(rows, func(i, j int) bool {
		x, y := rows[i], rows[j]
		if x.Account != y.Account {
			return x.Account < y.Account
		}
		if (x.User == RootUser) != (y.User == RootUser) {
			return x.User == RootUser
		}
		if xu, yu := strings.ToLower(x.User), strings.ToLower(y.User); xu != yu {
			return xu < yu
		}
		if x.Credential != y.Credential {
			return x.Credential < y.Credential
		}
		return x.KeyID < y.KeyID
	})
}

// keyRow is the row of an access key with its controls.
func (b *builder) keyRow(row credreport.Row, cred, id string, active bool, created, used time.Time) Row {
	asOf := b.a.AsOf
	r := Row{User: row.User, ARN: row.ARN, Credential: cred, KeyID: id, Status: status(active), Created: stamp(created),
		AgeDays: policy.AgeDays(created, asOf), AgeBand: AgeBand(created, asOf), LastUsed: lastUsed(used), MFAActive: row.MFAActive,
		Source: "credential report", ReadAt: b.reportAt}
	if active && !row.IsRoot() {
		r.IAM3, r.IAM22 = verdict(!policy.Older(created, asOf, 90)), verdict(!idle(used, created, asOf))
	}
	if row.IsRoot() {
		r.IAM4 = Failed
	}
	return r
}

// idle reports whether a credential last used at used (zero: never, counted
// from since) is unused for IAM.22's 45 days.
func idle(used, since, asOf time.Time) bool {
	if used.IsZero() {
		used = since
	}
	return policy.Idle(used, asOf, 45)
}

func verdict(pass bool) string {
	if pass {
		return Passed
	}
	return Failed
}

// liveRows are the keys of a user find checked live: the live listing's
// keys, placed in their report slots, with the plan's verdicts.
func (b *builder) liveRows(row credreport.Row, c *rotation.Candidate) []Row {
	var out []Row
	readAt := c.ReadAt
	if readAt.IsZero() {
		readAt = b.a.AsOf
	}
	for _, k := range c.User.Keys {
		f, ok := c.Facts[k.ID]
		if !ok {
			f = factsOf(row, k)
		}
		cred := "access_key"
		if f.Slot > 0 {
			cred = "access_key_" + strconv.Itoa(f.Slot)
		}
		r := b.keyRow(row, cred, k.ID, k.Active, k.Created, k.LastUsed)
		r.LastUsedService, r.LastUsedRegion = f.LastUsedService, f.LastUsedRegion
		r.Source, r.ReadAt = "live", stamp(readAt)
		d := decisionFor(c.Decisions, k.ID)
		r.Decision, r.Reason = d.Action, d.Reason
		b.apply(&r, c.User)
		if f.Match != "" {
			r.Reason += "; " + f.Match
		}
		r.SwitchOver, r.Destinations = switchOver(b.a.Records[k.ID]), destinations(b.a.Records[k.ID])
		out = append(out, r)
	}
	return out
}

// factsOf places k in row's slots by creation second (an assessment made
// without find's KeyFacts).
func factsOf(row credreport.Row, k policy.Key) rotation.KeyFacts {
	for _, rk := range row.Keys {
		if rk.Present() && rk.LastRotated.Unix() == k.Created.Unix() {
			return rotation.KeyFacts{Slot: rk.Slot, LastUsedService: rk.LastUsedService, LastUsedRegion: rk.LastUsedRegion}
		}
	}
	return rotation.KeyFacts{}
}

// apply sets the plan's verdict on r, or, without one, the user's
// exemption and the rotation record's state.
func (b *builder) apply(r *Row, u policy.User) {
	id := r.KeyID
	if r.Credential == "password" {
		id = "password"
	}
	if v, ok := b.a.Verdicts[rotation.VerdictKey(r.User, id)]; ok {
		r.Decision, r.Reason = v.Action, v.Reason
		if v.Attention != "" {
			r.Reason += "; needs attention: " + v.Attention
		}
		return
	}
	if u.Exempt && r.Decision != policy.Exempt {
		r.Decision, r.Reason = policy.Exempt, u.ExemptReason+" (otherwise: "+r.Reason+")"
	}
	if b.a.Verdicts != nil {
		return
	}
	// Not planned (Assess alone): the record says what the plan would.
	if rec := b.a.Records[id]; rec != nil && !rec.State.InFlight() && b.a.AsOf.Before(rec.HeldUntil) {
		r.Decision, r.Reason = policy.Held, fmt.Sprintf("held until %s: %s", rec.HeldUntil.UTC().Format(time.RFC3339), rec.Outcome)
	}
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

// destinations describes where a rotation delivered its new key ("" for
// none): each destination with its state.
func destinations(rec *ledger.Record) string {
	if rec == nil || len(rec.Deliveries) == 0 {
		return ""
	}
	parts := make([]string, 0, len(rec.Deliveries))
	for _, d := range rec.Deliveries {
		switch d.State {
		case ledger.DeliveryVerified:
			parts = append(parts, fmt.Sprintf("%s: delivered and verified at %s", d.Where, d.VerifiedAt.UTC().Format(time.RFC3339)))
		case ledger.DeliveryFailed:
			parts = append(parts, fmt.Sprintf("%s: failed (%s)", d.Where, d.Reason))
		default:
			parts = append(parts, d.Where+": pending")
		}
	}
	return strings.Join(parts, "; ")
}

// reportRows are the keys of a user find did not check live, from the
// credential report (no key ids). A verdict of the plan on one of the
// user's keys (a key keyrotor deactivated, waiting out its grace period)
// names its key id and goes to the Inactive slot.
func (b *builder) reportRows(row credreport.Row) []Row {
	var out []Row
	pending := b.verdictsOf(row.User)
	for _, k := range row.Keys {
		if !k.Present() {
			continue
		}
		r := b.keyRow(row, "access_key_"+strconv.Itoa(k.Slot), "", k.Active, k.LastRotated, k.LastUsed)
		r.LastUsedService, r.LastUsedRegion = k.LastUsedService, k.LastUsedRegion
		d := b.rules.KeyOnly(policy.Key{ID: "report", Active: k.Active, Created: k.LastRotated, LastUsed: k.LastUsed}, b.a.AsOf)
		r.Decision, r.Reason = d.Action, d.Reason
		if !k.Active && len(pending) > 0 {
			r.KeyID, pending = pending[0].KeyID, pending[1:]
		}
		b.apply(&r, b.exemption(row.User))
		r.SwitchOver, r.Destinations = switchOver(b.a.Records[r.KeyID]), destinations(b.a.Records[r.KeyID])
		out = append(out, r)
	}
	for _, v := range pending {
		r := Row{User: row.User, ARN: row.ARN, Credential: "access_key", KeyID: v.KeyID, MFAActive: row.MFAActive,
			Source: "rotation record", ReadAt: stamp(b.a.AsOf)}
		b.apply(&r, policy.User{})
		r.Reason += "; not in the credential report"
		out = append(out, r)
	}
	return out
}

// verdictsOf are the plan's verdicts on keys of user (not its password),
// by key id.
func (b *builder) verdictsOf(user string) []rotation.Verdict {
	var vs []rotation.Verdict
	for _, v := range b.a.Verdicts {
		if strings.EqualFold(v.User, user) && v.KeyID != "password" {
			vs = append(vs, v)
		}
	}
	sort.Slice(vs, func(i, j int) bool { return vs[i].KeyID < vs[j].KeyID })
	return vs
}

// exemption is what is known of user's exemption without a live check
// (the exempt group's members).
func (b *builder) exemption(user string) policy.User {
	if reason, ok := b.a.Exempt[user]; ok {
		return policy.User{Name: user, Exempt: true, ExemptReason: reason}
	}
	return policy.User{Name: user}
}

// newRows are the credentials of a user created after the credential
// report, from the live listing: its keys (with their ids) and whether it
// has signed in; the next credential report has the rest.
func (b *builder) newRows(nu rotation.NewUser) []Row {
	row := credreport.Row{User: nu.Name, ARN: nu.ARN}
	var out []Row
	note := fmt.Sprintf("; user created %s, after the credential report (%s): listed live, its password and MFA are in the next report", stamp(nu.Created), b.reportAt)
	for _, k := range nu.Keys {
		r := b.keyRow(row, "access_key", k.ID, k.Active, k.Created, k.LastUsed)
		d := b.rules.KeyOnly(k, b.a.AsOf)
		r.Decision, r.Reason = d.Action, d.Reason+note
		r.Source, r.ReadAt = "live", stamp(nu.ReadAt)
		b.apply(&r, b.exemption(nu.Name))
		out = append(out, r)
	}
	if len(out) == 0 {
		out = append(out, Row{User: nu.Name, ARN: nu.ARN, Credential: "user", Created: stamp(nu.Created), LastUsed: lastUsed(nu.PasswordLastUsed),
			Decision: policy.OK, Reason: "no access keys" + note, Source: "live", ReadAt: stamp(nu.ReadAt)})
	}
	return flagUsers(out, row)
}

// goneRows are the credentials of a user deleted after the report.
func (b *builder) goneRows(row credreport.Row) []Row {
	var out []Row
	gone := func(r Row) Row {
		r.Decision = policy.Gone
		r.Reason = fmt.Sprintf("the user was deleted after the credential report (%s): the credential no longer exists", b.reportAt)
		r.IAM3, r.IAM22, r.IAM4 = "", "", ""
		return r
	}
	for _, k := range row.Keys {
		if k.Present() {
			out = append(out, gone(b.keyRow(row, "access_key_"+strconv.Itoa(k.Slot), "", k.Active, k.LastRotated, k.LastUsed)))
		}
	}
	if row.PasswordEnabled {
		out = append(out, gone(Row{User: row.User, ARN: row.ARN, Credential: "password", Status: "enabled", Created: stamp(row.PasswordLastChanged),
			LastUsed: lastUsed(row.PasswordLastUsed), Source: "credential report", ReadAt: b.reportAt}))
	}
	for _, c := range row.Certs {
		if c.Present() {
			out = append(out, gone(Row{User: row.User, ARN: row.ARN, Credential: "cert_" + strconv.Itoa(c.Slot), Status: status(c.Active),
				Created: stamp(c.LastRotated), LastUsed: "never", Source: "credential report", ReadAt: b.reportAt}))
		}
	}
	if len(out) == 0 {
		out = append(out, gone(Row{User: row.User, ARN: row.ARN, Credential: "user", Source: "live", ReadAt: stamp(b.a.AsOf)}))
	}
	return out
}

// passwordRow reports a console password. A password unused for the
// unused threshold (never used: counted from its last change) is retired
// by the plan when retirePasswords is on (retire-password, or the plan's
// other verdict); with it off keyrotor only reports it: manual, a person
// removes it. An exempt user's password is exempt.
func (b *builder) passwordRow(row credreport.Row, c *rotation.Candidate) Row {
	asOf := b.a.AsOf
	d := b.rules.Password(true, row.PasswordLastUsed, row.PasswordLastChanged, asOf)
	r := Row{User: row.User, ARN: row.ARN, Credential: "password", Status: "enabled", Created: stamp(row.PasswordLastChanged),
		AgeDays: policy.AgeDays(row.PasswordLastChanged, asOf), AgeBand: AgeBand(row.PasswordLastChanged, asOf), LastUsed: lastUsed(row.PasswordLastUsed),
		MFAActive: row.MFAActive, Decision: d.Action, Reason: d.Reason, Source: "credential report", ReadAt: b.reportAt,
		IAM22: verdict(!idle(row.PasswordLastUsed, row.PasswordLastChanged, asOf))}
	u := b.exemption(row.User)
	if c != nil {
		u = c.User
	}
	switch {
	case d.Action != policy.Retire:
	case u.Exempt:
	case b.retirePasswords && c != nil && !hasVerdict(c, "password"):
		// find checked this password live (it was due by the report)
		// and found it used since the report was generated.
		r.Decision, r.Reason, r.Source, r.ReadAt = policy.OK, "in use (confirmed live)", "live", stamp(c.ReadAt)
	case b.retirePasswords:
		r.Decision = policy.RetirePassword
		r.Reason += "; the login profile is removed after notice and the grace period"
	default:
		r.Decision = policy.Manual
		r.Reason += "; keyrotor reports it only (retirePasswords is off): remove the login profile, or turn retirePasswords on"
	}
	if c != nil {
		for _, cd := range c.Decisions {
			if cd.KeyID == "password" {
				r.Decision, r.Reason = cd.Action, cd.Reason
			}
		}
	}
	b.apply(&r, u)
	if !row.MFAActive {
		r.Reason += "; no MFA device"
	}
	return r
}

func hasVerdict(c *rotation.Candidate, id string) bool {
	for _, d := range c.Decisions {
		if d.KeyID == id {
			return true
		}
	}
	return false
}

// certRows report the signing certificates: keyrotor does not manage them.
func (b *builder) certRows(row credreport.Row) []Row {
	var out []Row
	asOf := b.a.AsOf
	for _, c := range row.Certs {
		if !c.Present() {
			continue
		}
		r := Row{User: row.User, ARN: row.ARN, Credential: "cert_" + strconv.Itoa(c.Slot), Status: status(c.Active), Created: stamp(c.LastRotated),
			AgeDays: policy.AgeDays(c.LastRotated, asOf), AgeBand: AgeBand(c.LastRotated, asOf), LastUsed: "never", MFAActive: row.MFAActive,
			Decision: policy.OK, Reason: fmt.Sprintf("signing certificate, %s old: keyrotor does not manage certificates", policy.Age(c.LastRotated, asOf)),
			Source: "credential report", ReadAt: b.reportAt}
		if row.IsRoot() {
			r.Decision, r.Reason = policy.Manual, "root signing certificate: keyrotor never acts on the root user; sign in as root and delete it unless it is needed"
		} else if c.Active && policy.Older(c.LastRotated, asOf, b.rules.MaxKeyAgeDays) {
			r.Decision = policy.Manual
			r.Reason = fmt.Sprintf("signing certificate %s old, past the max age of %d days: keyrotor does not manage certificates; upload a new one and delete this one (or delete it if unused)",
				policy.Age(c.LastRotated, asOf), b.rules.MaxKeyAgeDays)
		}
		r.LastUsed = ""
		out = append(out, r)
	}
	return out
}

// rootRows report the root user: its access keys (IAM.4: none should
// exist), its console sign-in with MFA, its certificates. keyrotor never
// acts on root; each row says what a person must do.
func (b *builder) rootRows(row credreport.Row) []Row {
	asOf := b.a.AsOf
	var out []Row
	for _, k := range row.Keys {
		if !k.Present() {
			continue
		}
		r := b.keyRow(row, "access_key_"+strconv.Itoa(k.Slot), "", k.Active, k.LastRotated, k.LastUsed)
		r.LastUsedService, r.LastUsedRegion = k.LastUsedService, k.LastUsedRegion
		r.Decision = policy.Manual
		r.Reason = fmt.Sprintf("root access key, %s old: keyrotor never acts on the root user; a person signs in as root, finds what uses the key (last used %s), moves it to an IAM role or user, and deletes the key (Security Hub IAM.4, CIS 1.4)",
			policy.Age(k.LastRotated, asOf), lastUsed(k.LastUsed))
		out = append(out, r)
	}
	r := Row{User: row.User, ARN: row.ARN, Credential: "password", Status: "root", Created: stamp(row.Created), AgeDays: policy.AgeDays(row.Created, asOf),
		AgeBand: AgeBand(row.Created, asOf), LastUsed: lastUsed(row.PasswordLastUsed), MFAActive: row.MFAActive, IAM4: Passed,
		Source: "credential report", ReadAt: b.reportAt, Decision: policy.OK}
	if out != nil {
		r.IAM4 = Failed
	}
	switch {
	case !row.MFAActive:
		r.Decision = policy.Manual
		r.Reason = "the root user has no MFA: a person signs in as root and enables MFA, a hardware device preferred (Security Hub IAM.9, CIS 1.5); keyrotor never acts on the root user"
	default:
		r.Reason = "root sign-in has MFA; keyrotor never acts on the root user"
	}
	if !row.PasswordLastUsed.IsZero() {
		r.Reason += fmt.Sprintf("; root signed in %s (CIS 1.7: keep root for the tasks only root can do)", stamp(row.PasswordLastUsed))
	}
	out = append(out, r)
	return append(out, b.certRows(row)...)
}

// flagUsers marks the rows of one user with the user's findings: two Active
// keys (CIS 1.13), console access without MFA (CIS 1.10), root used in
// the last 90 days.
func flagUsers(rows []Row, row credreport.Row) []Row {
	var fs []string
	active := 0
	for _, r := range rows {
		if strings.HasPrefix(r.Credential, "access_key") && r.Status == "Active" && r.Decision != policy.Gone {
			active++
		}
	}
	if active > 1 && !row.IsRoot() {
		fs = append(fs, "two active access keys (CIS 1.13)")
	}
	for _, r := range rows {
		if r.Credential == "password" && !r.MFAActive && r.Decision != policy.Gone && !row.IsRoot() {
			fs = append(fs, "console access without MFA (CIS 1.10)")
			break
		}
	}
	if row.IsRoot() {
		fs = append(fs, "root user")
		if !row.MFAActive {
			fs = append(fs, "root without MFA (CIS 1.5, IAM.9)")
		}
		if active > 0 {
			fs = append(fs, "root access key (CIS 1.4, IAM.4)")
		}
	}
	for i := range rows {
		rows[i].Flags = strings.Join(fs, "; ")
	}
	return rows
}

// summarize counts the rows by decision and the keys by age band, and
// names the flagged users.
func (r *Report) summarize() {
	s := Summary{Credentials: len(r.Rows), Decisions: map[string]int{}, AgeBands: map[string]int{}, TwoActiveKeys: []string{}, ConsoleWithoutMFA: []string{}}
	for _, d := range Decisions {
		s.Decisions[string(d)] = 0
	}
	for _, band := range Bands {
		s.AgeBands[band] = 0
	}
	seen := map[string]bool{}
	for _, x := range r.Rows {
		s.Decisions[string(x.Decision)]++
		if strings.HasPrefix(x.Credential, "access_key") && x.AgeBand != "" {
			s.AgeBands[x.AgeBand]++
		}
		who := x.User
		if x.Account != "" {
			who = x.Account + "/" + x.User
		}
		if strings.Contains(x.Flags, "CIS 1.13") && !seen["2:"+who] {
			seen["2:"+who] = true
			s.TwoActiveKeys = append(s.TwoActiveKeys, who)
		}
		if strings.Contains(x.Flags, "CIS 1.10") && !seen["m:"+who] {
			seen["m:"+who] = true
			s.ConsoleWithoutMFA = append(s.ConsoleWithoutMFA, who)
		}
	}
	r.Summary = s
}

func decisionFor(ds []policy.Decision, id string) policy.Decision {
	for _, d := range ds {
		if d.KeyID == id {
			return d
		}
	}
	return policy.Decision{Action: policy.OK}
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
	notes := map[string]bool{}
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
		for _, n := range one.Notes {
			if !notes[n] {
				notes[n] = true
				r.Notes = append(r.Notes, acct+": "+n)
			}
		}
	}
	sortRows(r.Rows)
	r.summarize()
	return r
}

// Cell makes a CSV cell safe to open in a spreadsheet, as OWASP's CSV
// Injection page advises: a cell that starts with =, +, -, @, a tab or a
// carriage return is prefixed with a single quote, so it is read as text
// and never evaluated as a formula. (WriteCSV also quotes every cell, which
// keeps account ids like 012345678901 as text in importers that honour
// quotes.)
func Cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// WriteCSV writes the rows with a header of Columns (OrgColumns for an
// organization-wide report), then the summary: rows whose credential is
// "summary", counting a decision or an age band (count column). Every cell
// is quoted and neutralised (Cell).
func (r *Report) WriteCSV(w io.Writer) error {
	bw := bufio.NewWriter(w)
	write := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				bw.WriteByte(',')
			}
			bw.WriteString(`"` + strings.ReplaceAll(Cell(c), `"`, `""`) + `"`)
		}
		bw.WriteString("\r\n")
	}
	if r.Organization {
		write(OrgColumns)
	} else {
		write(Columns)
	}
	gen, rep := stamp(r.GeneratedAt), stamp(r.ReportTime)
	line := func(x Row, count string) {
		var lead []string
		if r.Organization {
			lead = []string{x.Account, x.AccountAlias}
		}
		age, mfa := strconv.Itoa(x.AgeDays), strconv.FormatBool(x.MFAActive)
		if x.Credential == "summary" {
			age, mfa = "", ""
		}
		write(append(lead, x.User, x.ARN, x.Credential, x.Status, x.Created, age, x.LastUsed,
			x.LastUsedService, x.LastUsedRegion, mfa, string(x.Decision), x.Reason, x.SwitchOver,
			x.KeyID, x.AgeBand, x.IAM3, x.IAM22, x.IAM4, x.Flags, x.Source, x.ReadAt, rep, gen, count, x.Destinations))
	}
	for _, x := range r.Rows {
		line(x, "")
	}
	for _, d := range Decisions {
		line(Row{Credential: "summary", Decision: d, Reason: "credentials with this decision"}, strconv.Itoa(r.Summary.Decisions[string(d)]))
	}
	for _, band := range Bands {
		line(Row{Credential: "summary", AgeBand: band, Reason: "access keys of this age (days)"}, strconv.Itoa(r.Summary.AgeBands[band]))
	}
	return bw.Flush()
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	c := *r
	if c.Rows == nil {
		c.Rows = []Row{}
	}
	if c.Notes == nil {
		c.Notes = []string{}
	}
	if c.Summary.Decisions == nil {
		c.summarize()
	}
	return enc.Encode(&c)
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
// the columns line up either way. Below it: the counts by decision and by
// age band, the flagged users, the report's and the credential report's
// times, and the notes.
func (r *Report) WriteTable(w io.Writer, color bool) error {
	header := []string{"USER", "CREDENTIAL", "KEY ID", "STATUS", "CREATED", "AGE", "LAST USED", "MFA", "IAM.3", "IAM.22", "DECISION", "REASON"}
	ageCol := 5
	if r.Organization {
		header = append([]string{"ACCOUNT"}, header...)
		ageCol++
	}
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	cells := [][]string{header}
	for _, x := range r.Rows {
		lu := dateOf(x.LastUsed)
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
		if x.Destinations != "" {
			reason += "; destinations: " + x.Destinations
		}
		iam3 := x.IAM3
		if x.IAM4 != "" {
			iam3 = "IAM.4 " + x.IAM4
		}
		var lead []string
		if r.Organization {
			lead = []string{x.Account}
			if x.AccountAlias != "" {
				lead[0] += " (" + x.AccountAlias + ")"
			}
		}
		cells = append(cells, append(lead, x.User, x.Credential, dash(x.KeyID), dash(x.Status), dash(dateOf(x.Created)), fmt.Sprintf("%dd", x.AgeDays),
			dash(lu), mfa, dash(iam3), dash(x.IAM22), string(x.Decision), reason))
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
	s := r.Summary
	if s.Decisions == nil {
		r.summarize()
		s = r.Summary
	}
	var ds []string
	for _, d := range Decisions {
		ds = append(ds, fmt.Sprintf("%d %s", s.Decisions[string(d)], d))
	}
	var bs []string
	for _, band := range Bands {
		bs = append(bs, fmt.Sprintf("%d %s", s.AgeBands[band], band))
	}
	fmt.Fprintf(&buf, "\n%d credentials: %s\n", s.Credentials, strings.Join(ds, ", "))
	fmt.Fprintf(&buf, "access keys by age (days): %s\n", strings.Join(bs, ", "))
	fmt.Fprintf(&buf, "users with two active keys (CIS 1.13): %s\n", list(s.TwoActiveKeys))
	fmt.Fprintf(&buf, "console users without MFA (CIS 1.10): %s\n", list(s.ConsoleWithoutMFA))
	age := ""
	if !r.ReportTime.IsZero() && !r.AsOf.IsZero() {
		age = fmt.Sprintf(", %s before as of", r.AsOf.Sub(r.ReportTime).Round(time.Minute))
	}
	fmt.Fprintf(&buf, "as of %s; credential report generated %s%s; this report generated %s\n", stamp(r.AsOf), stamp(r.ReportTime), age, stamp(r.GeneratedAt))
	for _, n := range r.Notes {
		fmt.Fprintf(&buf, "note: %s\n", n)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

func list(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
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
