package rotation

import (
	"errors"
	"testing"

	"github.com/keyrotor/keyrotor/shared/failures"
)

// FuzzParseRequest: any input either parses into a request whose fields
// obey the rules, or fails with an InvalidInputError; it never panics.
func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{``, `{}`, `{"dryRun":true}`, `{"users":["alice","b+c=d,e.f@g_h-i"]}`, `{"asOf":"2027-01-01T00:00:00Z"}`, `{"dryRun":true,"asOf":"2027-01-01T00:00:00Z"}`, `{"dryRun":1}`, `[]`, `{"users":null}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		r, err := ParseRequest(raw)
		if err != nil {
			var ie *failures.InvalidInputError
			if !errors.As(err, &ie) {
				t.Fatalf("ParseRequest(%q) error %T %v; want InvalidInputError", raw, err, err)
			}
			return
		}
		for _, u := range r.Users {
			if !userNameRE.MatchString(u) {
				t.Fatalf("ParseRequest(%q) accepted user %q", raw, u)
			}
		}
		if r.Users != nil && len(r.Users) == 0 {
			t.Fatalf("ParseRequest(%q) accepted an empty user list", raw)
		}
		if r.AsOf != "" && !r.DryRun {
			t.Fatalf("ParseRequest(%q) accepted asOf without dryRun", raw)
		}
	})
}
