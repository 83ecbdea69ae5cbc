package credreport

import (
	"bytes"
	"encoding/csv"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParse: any input parses or fails with a *ParseError, never panics; a
// parsed report keeps its invariants (every row named, key slots 1 and 2, a
// present key's times in UTC-comparable form), and written back as a
// well-formed report it parses to the same rows. The seed corpus in
// testdata/fuzz/FuzzParse holds real-shaped reports (AWS's N/A,
// no_information and not_supported values, the root row, moto's unquoted
// commas).
func FuzzParse(f *testing.F) {
	f.Add([]byte(header + "alice,arn:aws:iam::1:user/alice,2025-01-01T00:00:00+00:00,true,no_information,2025-02-01T00:00:00+00:00,N/A,false,true,2025-03-01T00:00:00+00:00,2026-11-20T10:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"))
	f.Add([]byte(header))
	f.Add([]byte("user\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := Parse(bytes.NewReader(b))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %T %v; want *ParseError", err, err)
			}
			if pe.Line < 1 {
				t.Fatalf("ParseError line %d", pe.Line)
			}
			return
		}
		for _, r := range rows {
			if r.User == "" {
				t.Fatal("a row without a user name parsed")
			}
			for i, k := range r.Keys {
				if k.Slot != i+1 {
					t.Fatalf("key slot %d at index %d", k.Slot, i)
				}
			}
		}
		back, err := Parse(bytes.NewReader(format(rows)))
		if err != nil {
			t.Fatalf("Parse(format(rows)) = %v\n%s", err, format(rows))
		}
		if len(rows) == 0 && len(back) == 0 {
			return
		}
		if !reflect.DeepEqual(normal(back), normal(rows)) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", back, rows)
		}
	})
}

// format writes rows as a credential report with the standard header.
func format(rows []Row) []byte {
	var b bytes.Buffer
	b.WriteString(header)
	w := csv.NewWriter(&b)
	ts := func(t time.Time) string {
		if t.IsZero() {
			return "N/A"
		}
		return t.Format(time.RFC3339Nano)
	}
	opt := func(s string) string {
		if s == "" {
			return "N/A"
		}
		return s
	}
	for _, r := range rows {
		rec := []string{r.User, r.ARN, ts(r.Created), strconv.FormatBool(r.PasswordEnabled), ts(r.PasswordLastUsed),
			ts(r.PasswordLastChanged), "N/A", strconv.FormatBool(r.MFAActive)}
		for _, k := range r.Keys {
			rec = append(rec, strconv.FormatBool(k.Active), ts(k.LastRotated), ts(k.LastUsed), opt(k.LastUsedRegion), opt(k.LastUsedService))
		}
		for _, c := range r.Certs {
			rec = append(rec, strconv.FormatBool(c.Active), ts(c.LastRotated))
		}
		w.Write(rec)
	}
	w.Flush()
	return b.Bytes()
}

// normal makes rows comparable after a round trip: times by instant, and
// the carriage returns that encoding/csv folds inside quoted fields.
func normal(rows []Row) []Row {
	out := make([]Row, len(rows))
	fix := func(t time.Time) time.Time {
		if t.IsZero() {
			return t
		}
		return t.UTC()
	}
	cr := strings.NewReplacer("\r\n", "\n", "\r", "\n")
	for i, r := range rows {
		r.User, r.ARN = cr.Replace(r.User), cr.Replace(r.ARN)
		r.Created, r.PasswordLastUsed, r.PasswordLastChanged = fix(r.Created), fix(r.PasswordLastUsed), fix(r.PasswordLastChanged)
		for j := range r.Keys {
			k := &r.Keys[j]
			k.LastRotated, k.LastUsed = fix(k.LastRotated), fix(k.LastUsed)
			k.LastUsedRegion, k.LastUsedService = cr.Replace(k.LastUsedRegion), cr.Replace(k.LastUsedService)
		}
		for j := range r.Certs {
			r.Certs[j].LastRotated = fix(r.Certs[j].LastRotated)
		}
		out[i] = r
	}
	return out
}
