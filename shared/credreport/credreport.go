// Package credreport fetches and parses the IAM credential report: one CSV
// row per IAM user with the age, status and last use of its password and
// access keys. keyrotor uses it to find candidates in one call, then acts on
// live data for those candidates only.
package credreport

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"

	"github.com/keyrotor/keyrotor/shared/failures"
)

// Key is one access key column group of a report row. The report carries no
// key IDs: keys are matched to live ListAccessKeys results by creation time.
type Key struct {
	Slot            int // 1 or 2
	Active          bool
	LastRotated     time.Time // creation time of the key; zero when there is no key
	LastUsed        time.Time // zero: never used (N/A)
	LastUsedRegion  string
	LastUsedService string
}

// Present reports whether the slot holds a key.
func (k Key) Present() bool { return !k.LastRotated.IsZero() }

// Cert is one signing certificate column group of a report row
// (cert_1_*, cert_2_*); empty when the report has no such columns.
type Cert struct {
	Slot        int // 1 or 2
	Active      bool
	LastRotated time.Time // zero when there is no certificate
}

// Present reports whether the slot holds a certificate.
func (c Cert) Present() bool { return !c.LastRotated.IsZero() }

// Row is one user of the report.
type Row struct {
	User                string
	ARN                 string
	Created             time.Time
	PasswordEnabled     bool
	PasswordLastUsed    time.Time // zero: never or not recorded
	PasswordLastChanged time.Time
	MFAActive           bool
	Keys                [2]Key
	Certs               [2]Cert
}

// IsRoot reports whether the row is the account root user.
func (r Row) IsRoot() bool { return r.User == "<root_account>" }

// columns that Parse needs, by name (the report's order may grow).
var required = []string{
	"user", "arn", "user_creation_time", "password_enabled", "password_last_used",
	"password_last_changed", "mfa_active",
	"access_key_1_active", "access_key_1_last_rotated", "access_key_1_last_used_date",
	"access_key_1_last_used_region", "access_key_1_last_used_service",
	"access_key_2_active", "access_key_2_last_rotated", "access_key_2_last_used_date",
	"access_key_2_last_used_region", "access_key_2_last_used_service",
}

// ParseError names the line and column of a malformed report.
type ParseError struct {
	Line   int
	Column string
	Msg    string
}

func (e *ParseError) Error() string {
	if e.Column == "" {
		return fmt.Sprintf("credential report line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("credential report line %d, column %s: %s", e.Line, e.Column, e.Msg)
}

// Parse reads a credential report CSV.
func Parse(r io.Reader) ([]Row, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	header, err := cr.Read()
	if err != nil {
		return nil, &ParseError{Line: 1, Msg: "missing header: " + err.Error()}
	}
	idx := make(map[string]int, len(header))
	for i, h := range header {
		idx[strings.TrimSpace(h)] = i
	}
	for _, c := range required {
		if _, ok := idx[c]; !ok {
			return nil, &ParseError{Line: 1, Column: c, Msg: "column missing from header"}
		}
	}
	var rows []Row
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, &ParseError{Line: line, Msg: err.Error()}
		}
		if len(rec) > len(header) {
			rec = rejoinNames(rec, len(header))
		}
		if len(rec) != len(header) {
			return nil, &ParseError{Line: line, Msg: fmt.Sprintf("%d fields, header has %d", len(rec), len(header))}
		}
		p := rowParser{rec: rec, idx: idx, line: line}
		row := Row{
			User:                p.str("user"),
			ARN:                 p.str("arn"),
			Created:             p.time("user_creation_time"),
			PasswordEnabled:     p.bool("password_enabled"),
			PasswordLastUsed:    p.time("password_last_used"),
			PasswordLastChanged: p.time("password_last_changed"),
			MFAActive:           p.bool("mfa_active"),
		}
		for s := 1; s <= 2; s++ {
			pre := "access_key_" + strconv.Itoa(s) + "_"
			row.Keys[s-1] = Key{
				Slot:            s,
				Active:          p.bool(pre + "active"),
				LastRotated:     p.time(pre + "last_rotated"),
				LastUsed:        p.time(pre + "last_used_date"),
				LastUsedRegion:  p.optional(pre + "last_used_region"),
				LastUsedService: p.optional(pre + "last_used_service"),
			}
			pre = "cert_" + strconv.Itoa(s) + "_"
			row.Certs[s-1] = Cert{Slot: s} // a report without the columns: no certificate
			if _, ok := idx[pre+"last_rotated"]; ok {
				row.Certs[s-1] = Cert{Slot: s, Active: p.bool(pre + "active"), LastRotated: p.time(pre + "last_rotated")}
			}
		}
		if p.err != nil {
			return nil, p.err
		}
		if row.User == "" {
			return nil, &ParseError{Line: line, Column: "user", Msg: "empty user name"}
		}
		rows = append(rows, row)
	}
}

// rejoinNames repairs a row whose user name holds commas that were not
// quoted (moto writes them so; IAM user names may contain ','): the name
// and the ARN, which ends with the name, are the first two columns and take
// the same number of extra fields each.
func rejoinNames(rec []string, want int) []string {
	extra := len(rec) - want
	if extra%2 != 0 {
		return rec
	}
	n := extra / 2
	user := strings.Join(rec[:n+1], ",")
	arn := strings.Join(rec[n+1:2*n+2], ",")
	if !strings.HasSuffix(arn, "/"+user) && !strings.HasSuffix(arn, ":"+user) {
		return rec
	}
	return append([]string{user, arn}, rec[2*n+2:]...)
}

type rowParser struct {
	rec  []string
	idx  map[string]int
	line int
	err  error
}

func (p *rowParser) str(col string) string { return strings.TrimSpace(p.rec[p.idx[col]]) }

// optional maps the report's placeholders to "".
func (p *rowParser) optional(col string) string {
	switch v := p.str(col); v {
	case "N/A", "no_information", "not_supported", "":
		return ""
	default:
		return v
	}
}

func (p *rowParser) bool(col string) bool {
	switch v := p.str(col); v {
	case "true":
		return true
	case "false", "N/A", "not_supported", "":
		return false
	default:
		p.fail(col, fmt.Sprintf("want true or false, got %q", v))
		return false
	}
}

func (p *rowParser) time(col string) time.Time {
	v := p.optional(col)
	if v == "" {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		p.fail(col, fmt.Sprintf("want an RFC 3339 time, got %q", v))
	}
	return t
}

func (p *rowParser) fail(col, msg string) {
	if p.err == nil {
		p.err = &ParseError{Line: p.line, Column: col, Msg: msg}
	}
}

// API is the part of the IAM client Fetch uses.
type API interface {
	GenerateCredentialReport(ctx context.Context, in *iam.GenerateCredentialReportInput, optFns ...func(*iam.Options)) (*iam.GenerateCredentialReportOutput, error)
	GetCredentialReport(ctx context.Context, in *iam.GetCredentialReportInput, optFns ...func(*iam.Options)) (*iam.GetCredentialReportOutput, error)
}

var _ API = (*iam.Client)(nil)

// Fetch asks IAM for a fresh-enough report and parses it. IAM regenerates a
// report at most every 4 hours; while one is being generated Fetch returns
// *failures.ReportNotReadyError, which the orchestrator retries (Fetch never
// sleeps).
func Fetch(ctx context.Context, api API) ([]Row, time.Time, error) {
	gen, err := api.GenerateCredentialReport(ctx, &iam.GenerateCredentialReportInput{})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("generate credential report: %w", err)
	}
	if gen.State != types.ReportStateTypeComplete {
		return nil, time.Time{}, &failures.ReportNotReadyError{State: string(gen.State)}
	}
	return get(ctx, api)
}

func get(ctx context.Context, api API) ([]Row, time.Time, error) {
	out, err := api.GetCredentialReport(ctx, &iam.GetCredentialReportInput{})
	if err != nil {
		switch failures.APICode(err) {
		case "ReportNotPresent", "ReportInProgress", "ReportExpired", "ReportNotPresentException", "CredentialReportNotPresentException", "CredentialReportNotReadyException", "CredentialReportExpiredException":
			return nil, time.Time{}, &failures.ReportNotReadyError{State: failures.APICode(err)}
		}
		return nil, time.Time{}, fmt.Errorf("get credential report: %w", err)
	}
	rows, err := Parse(bytes.NewReader(out.Content))
	if err != nil {
		return nil, time.Time{}, err
	}
	var at time.Time
	if out.GeneratedTime != nil {
		at = *out.GeneratedTime
	}
	return rows, at, nil
}
