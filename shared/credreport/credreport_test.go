package credreport

import (
	"errors"
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

// FuzzParse: any input parses or fails with a ParseError; never panics;
// parsed rows have names and consistent key slots.
func FuzzParse(f *testing.F) {
	f.Add([]byte(header + "alice,arn:aws:iam::1:user/alice,2025-01-01T00:00:00+00:00,true,no_information,2025-02-01T00:00:00+00:00,N/A,false,true,2025-03-01T00:00:00+00:00,2026-11-20T10:00:00+00:00,us-east-1,s3,false,N/A,N/A,N/A,N/A,false,N/A,false,N/A\n"))
	f.Add([]byte(header))
	f.Add([]byte("user\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rows, err := Parse(strings.NewReader(string(b)))
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse error %T %v; want *ParseError", err, err)
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
	})
}
