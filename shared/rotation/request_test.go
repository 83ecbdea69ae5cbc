package rotation

import (
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/shared/failures"
)

func TestParseRequest(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		wantField string // "" for success; "-" for an error without a field
		want      Request
	}{
		{"empty", ``, "", Request{}},
		{"empty object", `{}`, "", Request{}},
		{"all fields", `{"dryRun":true,"users":["alice","bob+ci@x.io"],"asOf":"2027-01-01T00:00:00Z"}`, "", Request{DryRun: true, Users: []string{"alice", "bob+ci@x.io"}, AsOf: "2027-01-01T00:00:00Z"}},
		{"unknown field", `{"dryrun":true}`, "dryrun", Request{}},
		{"dryRun wrong type", `{"dryRun":"yes"}`, "dryRun", Request{}},
		{"users wrong type", `{"users":"alice"}`, "users", Request{}},
		{"users element wrong type", `{"users":[1]}`, "users", Request{}},
		{"empty users", `{"users":[]}`, "users", Request{}},
		{"bad user name", `{"users":["al ice"]}`, "users[0]", Request{}},
		{"user name too long", `{"users":["` + strings.Repeat("a", 65) + `"]}`, "users[0]", Request{}},
		{"duplicate user", `{"users":["alice","Alice"]}`, "users[1]", Request{}},
		{"asOf without dryRun: refused", `{"asOf":"2027-01-01T00:00:00Z"}`, "asOf", Request{}},
		{"asOf with dryRun false: refused", `{"dryRun":false,"asOf":"2027-01-01T00:00:00Z"}`, "asOf", Request{}},
		{"asOf before dryRun true", `{"asOf":"2027-01-01T00:00:00Z","dryRun":true}`, "", Request{DryRun: true, AsOf: "2027-01-01T00:00:00Z"}},
		{"dryRun false, no asOf", `{"dryRun":false,"users":["alice"]}`, "", Request{Users: []string{"alice"}}},
		{"asOf malformed", `{"asOf":"2027-01-01","dryRun":true}`, "asOf", Request{}},
		{"asOf wrong type", `{"asOf":20270101,"dryRun":true}`, "asOf", Request{}},
		{"not an object", `[1,2]`, "-", Request{}},
		{"not JSON", `{"dryRun":`, "-", Request{}},
		{"trailing data", `{} {}`, "-", Request{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest([]byte(tt.in))
			if tt.wantField == "" {
				if err != nil || got.DryRun != tt.want.DryRun || got.AsOf != tt.want.AsOf || strings.Join(got.Users, ",") != strings.Join(tt.want.Users, ",") {
					t.Fatalf("ParseRequest(%s) = %+v, %v; want %+v", tt.in, got, err, tt.want)
				}
				return
			}
			var ie *failures.InvalidInputError
			if !errors.As(err, &ie) {
				t.Fatalf("ParseRequest(%s) error = %v; want InvalidInputError", tt.in, err)
			}
			if tt.wantField != "-" && ie.Field != tt.wantField {
				t.Fatalf("ParseRequest(%s) names field %q (%v); want %q", tt.in, ie.Field, err, tt.wantField)
			}
		})
	}
}

func TestSecretName(t *testing.T) {
	tests := []struct{ user, want string }{
		{"alice", "iam-access-keys/alice"},
		{"a+b=c,d.e@f_g-h", "iam-access-keys/a+b=3Dc=2Cd.e@f_g-h"},
		{"a=2Cb", "iam-access-keys/a=3D2Cb"},
	}
	for _, tt := range tests {
		if got := SecretName("iam-access-keys/", tt.user); got != tt.want {
			t.Errorf("SecretName(%q) = %q; want %q", tt.user, got, tt.want)
		}
	}
	if SecretName("p/", "a,b") == SecretName("p/", "a=2Cb") {
		t.Error("SecretName is not one-to-one")
	}
}

// TestDocsRunningInputs keeps docs/running.md's table of execution inputs
// complete: every field of Request has an example there.
func TestDocsRunningInputs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/running.md")
	if err != nil {
		t.Fatal(err)
	}
	rt := reflect.TypeOf(Request{})
	for i := range rt.NumField() {
		name := strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]
		if !strings.Contains(string(doc), "`{\""+name+"\"") && !strings.Contains(string(doc), ", \""+name+"\"") {
			t.Errorf("docs/running.md has no input example with %q", name)
		}
	}
}
