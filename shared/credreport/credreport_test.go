package credreport

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

const header = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated\n"

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		wantErr string // column named by the error; "" for success
		check   func([]Row) bool
	}{
		{"root and a user with two keys",
			"<root_account>,arn:aws:iam::1:root,2020-01-01T00:00:00+00:00,not_supported,2026-11-01T00:00:00+00:00,not_supported,not_supported,true,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n" +
				"alice,arn:aws:iam::1:user/alice,2025-01-01T00:00:00+00:00,true,no_information,2025-02-01T00:00:00+00:00,N/A,false,true,2025-03-01T00:00:00+00:00,2026-11-20T10:00:00+00:00,us-east-1,s3,false,2025-04-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,false,N/A\n",
			"", func(rs []Row) bool {
				a := rs[1]
				return len(rs) == 2 && rs[0].IsRoot() && a.User == "alice" && a.PasswordEnabled && a.PasswordLastUsed.IsZero() &&
					a.Keys[0].Active && a.Keys[0].LastUsedService == "s3" && a.Keys[0].LastUsed.Equal(time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC)) &&
					!a.Keys[1].Active && a.Keys[1].Present() && a.Keys[1].LastUsed.IsZero()
			}},
		{"comma in a user name, unquoted", "a,b,arn:aws:iam::1:user/a,b,2025-01-01T00:00:00+00:00,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n",
			"", func(rs []Row) bool { return rs[0].User == "a,b" && rs[0].ARN == "arn:aws:iam::1:user/a,b" }},
		{"bad time", "bob,arn,2025-01-01,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n", "user_creation_time", nil},
		{"bad bool", "bob,arn,2025-01-01T00:00:00+00:00,maybe,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n", "password_enabled", nil},
		{"short row", "bob,arn\n", "-", nil},
		{"placeholders are empty values",
			"carol,arn:aws:iam::1:user/carol,2025-01-01T00:00:00Z,true,no_information,2025-01-02T00:00:00Z,not_supported,not_supported,true,2025-01-03T00:00:00Z,N/A,not_supported,no_information,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n",
			"", func(rs []Row) bool {
				c := rs[0]
				return c.PasswordEnabled && c.PasswordLastUsed.IsZero() && !c.PasswordLastChanged.IsZero() && !c.MFAActive &&
					c.Keys[0].Present() && c.Keys[0].LastUsed.IsZero() && c.Keys[0].LastUsedRegion == "" && c.Keys[0].LastUsedService == "" &&
					!c.Keys[1].Present() && c.Keys[1].Slot == 2
			}},
		{"quoted name with a comma", `"x,y","arn:aws:iam::1:user/x,y",2025-01-01T00:00:00Z,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A` + "\n",
			"", func(rs []Row) bool { return rs[0].User == "x,y" && rs[0].ARN == "arn:aws:iam::1:user/x,y" }},
		{"bad mfa value", "bob,arn,2025-01-01T00:00:00Z,false,N/A,N/A,N/A,yes,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n", "mfa_active", nil},
		{"bad last used", "bob,arn,2025-01-01T00:00:00Z,false,N/A,N/A,N/A,false,true,2025-01-01T00:00:00Z,yesterday,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n", "access_key_1_last_used_date", nil},
		{"empty user", ",arn,2025-01-01T00:00:00Z,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n", "user", nil},
		{"signing certificates (issue 20)",
			"erin,arn:aws:iam::1:user/erin,2025-01-01T00:00:00Z,false,N/A,N/A,N/A,false,false,N/A,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A,true,2025-06-01T00:00:00+00:00,false,2025-07-01T00:00:00+00:00\n",
			"", func(rs []Row) bool {
				c := rs[0].Certs
				return c[0].Slot == 1 && c[0].Active && c[0].LastRotated.Equal(time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)) &&
					c[1].Slot == 2 && !c[1].Active && c[1].Present()
			}},
		{"header only", "", "", func(rs []Row) bool { return len(rs) == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows, err := Parse(strings.NewReader(header + tt.body))
			if tt.wantErr == "" {
				if err != nil || !tt.check(rows) {
					t.Fatalf("Parse = %+v, %v", rows, err)
				}
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || (tt.wantErr != "-" && pe.Column != tt.wantErr) {
				t.Fatalf("Parse error = %v; want a ParseError naming %s", err, tt.wantErr)
			}
		})
	}
	if _, err := Parse(strings.NewReader("user,arn\n")); err == nil {
		t.Fatal("a header without the key columns parsed")
	}
}

// TestParseCorpus: the fuzz seeds that are real-shaped reports parse as
// intended, so the fuzzer's round trip starts from reports that parse.
func TestParseCorpus(t *testing.T) {
	tests := []struct {
		seed    string
		users   []string
		wantErr bool
	}{
		{"aws-account", []string{"<root_account>", "alice", "bob", "svc.deploy@ci"}, false},
		{"moto-unquoted-comma", []string{"a,b"}, false},
		{"quoted-crlf-extra-column", []string{"x,y"}, false},
		{"bad-time", nil, true},
		{"short-row", nil, true},
		{"empty-user", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.seed, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "fuzz", "FuzzParse", tt.seed))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitN(string(b), "\n", 3)
			body, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
			if err != nil {
				t.Fatalf("seed file: %v", err)
			}
			rows, err := Parse(strings.NewReader(body))
			if (err != nil) != tt.wantErr {
				t.Fatalf("Parse(%s) error = %v; want error %v", tt.seed, err, tt.wantErr)
			}
			var users []string
			for _, r := range rows {
				users = append(users, r.User)
			}
			if strings.Join(users, "|") != strings.Join(tt.users, "|") {
				t.Errorf("Parse(%s) users = %q; want %q", tt.seed, users, tt.users)
			}
		})
	}
}
