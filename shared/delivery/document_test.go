package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/shared/delivery"
)

// fieldOf returns err's field, failing unless it is a *delivery.FieldError.
func fieldOf(t *testing.T, err error) *delivery.FieldError {
	t.Helper()
	var fe *delivery.FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *delivery.FieldError", err, err)
	}
	return fe
}

const (
	ssmSpec     = `{"type":"ssm","idName":"/app/id","secretName":"/app/secret"}`
	secretsSpec = `{"type":"secretsmanager","secretId":"app/creds"}`
)

// TestParseDocument: the document's own rules, each refusal naming the
// field (a JSON path) and the fix.
func TestParseDocument(t *testing.T) {
	many := strings.TrimSuffix(strings.Repeat(`{"type":"ssm","idName":"/a/id","secretName":"/a/s"},`, delivery.MaxDestinations+1), ",")
	tests := []struct {
		name      string
		doc       string
		wantField string // "" when the document is valid
		wantMsg   string
	}{
		{"ssm", `{"version":1,"destinations":[` + ssmSpec + `]}`, "", ""},
		{"both types, adoption off", `{"version":1,"adoption":"off","destinations":[` + ssmSpec + `,` + secretsSpec + `]}`, "", ""},
		{"adoption evidence", `{"version":1,"adoption":"evidence","destinations":[` + secretsSpec + `]}`, "", ""},
		{"unknown field", `{"version":1,"destinations":[` + ssmSpec + `],"owner":"x"}`, "owner", "unknown field"},
		{"unknown field of a spec", `{"version":1,"destinations":[{"type":"ssm","idName":"/a","secretName":"/b","kmsKey":"k"}]}`, "kmsKey", "unknown field"},
		{"no version", `{"destinations":[` + ssmSpec + `]}`, "version", "want 1"},
		{"version 2", `{"version":2,"destinations":[` + ssmSpec + `]}`, "version", "got 2; want 1"},
		{"adoption value", `{"version":1,"adoption":"never","destinations":[` + ssmSpec + `]}`, "adoption", `"evidence"`},
		{"no destinations", `{"version":1,"destinations":[]}`, "destinations", "remove the document"},
		{"destinations missing", `{"version":1}`, "destinations", "empty"},
		{"too many", `{"version":1,"destinations":[` + many + `]}`, "destinations", fmt.Sprintf("at most %d", delivery.MaxDestinations)},
		{"twice", `{"version":1,"destinations":[` + ssmSpec + `,` + secretsSpec + `,` + ssmSpec + `]}`, "destinations[2]", "the same destination as destinations[0]"},
		{"unknown type", `{"version":1,"destinations":[` + ssmSpec + `,{"type":"gitea","repository":"o/r"}]}`, "destinations[1].type", `unknown destination type "gitea"; want one of circleci, github, gitlab, secretsmanager, ssm`},
		{"no type", `{"version":1,"destinations":[{"idName":"/a"}]}`, "destinations[0].type", "unknown destination type"},
		{"a type's rule", `{"version":1,"destinations":[{"type":"ssm","idName":"/a/id"}]}`, "destinations[0].secretName", "missing"},
		{"empty", ``, "document", "empty; want a JSON object"},
		{"not an object", `[]`, "", "want a"},
		{"two values", `{"version":1,"destinations":[` + ssmSpec + `]} {}`, "document", "more than one JSON value"},
		{"wrong type of value", `{"version":"1","destinations":[` + ssmSpec + `]}`, "version", "want a int"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc, err := delivery.ParseDocument([]byte(tt.doc))
			if tt.wantField == "" && tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("ParseDocument(%s) = %v; want no error", tt.doc, err)
				}
				if doc.Version != 1 || len(doc.Destinations) == 0 {
					t.Fatalf("ParseDocument(%s) = %+v", tt.doc, doc)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseDocument(%s) = nil error; want %s: %s", tt.doc, tt.wantField, tt.wantMsg)
			}
			fe := fieldOf(t, err)
			if tt.wantField != "" && fe.Field != tt.wantField || !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Fatalf("ParseDocument(%s) = %q %q; want field %q and %q", tt.doc, fe.Field, fe.Msg, tt.wantField, tt.wantMsg)
			}
		})
	}
}

// TestCheckRejections: each type's Checker refuses a spec that cannot
// work, naming the field (within the document) and the fix.
func TestCheckRejections(t *testing.T) {
	long := "/" + strings.Repeat("a", 1000)
	deep := strings.Repeat("/l", 16)
	tests := []struct {
		name      string
		spec      string
		wantField string // under destinations[0]
		wantMsg   string
	}{
		// ssm
		{"ssm without idName", `{"type":"ssm","secretName":"/app/secret"}`, "idName", "missing: the name of the SSM parameter"},
		{"ssm without secretName", `{"type":"ssm","idName":"/app/id"}`, "secretName", "missing"},
		{"ssm blank idName", `{"type":"ssm","idName":"  ","secretName":"/app/secret"}`, "idName", "missing"},
		{"ssm space in a name", `{"type":"ssm","idName":"/app/my id","secretName":"/app/secret"}`, "idName", "no spaces"},
		{"ssm other symbol", `{"type":"ssm","idName":"/app/id","secretName":"/app/secret:1"}`, "secretName", "letters, digits and _ . -"},
		{"ssm aws prefix", `{"type":"ssm","idName":"/aws/app/id","secretName":"/app/secret"}`, "idName", `begin with "aws" or "ssm"`},
		{"ssm SSM prefix any case", `{"type":"ssm","idName":"/app/id","secretName":"SSMsecret"}`, "secretName", `"aws" or "ssm"`},
		{"ssm levels without a leading slash", `{"type":"ssm","idName":"app/id","secretName":"/app/secret"}`, "idName", "begins with /, such as /app/id"},
		{"ssm empty level", `{"type":"ssm","idName":"/app//id","secretName":"/app/secret"}`, "idName", "every level needs a name"},
		{"ssm trailing slash", `{"type":"ssm","idName":"/app/id/","secretName":"/app/secret"}`, "idName", "every level needs a name"},
		{"ssm sixteen levels", `{"type":"ssm","idName":"` + deep + `","secretName":"/app/secret"}`, "idName", "16 levels; at most 15"},
		{"ssm too long", `{"type":"ssm","idName":"` + long + `","secretName":"/app/secret"}`, "idName", "characters; at most"},
		{"ssm one parameter twice", `{"type":"ssm","idName":"/app/k","secretName":"/app/k"}`, "secretName", "the same parameter as idName"},
		{"ssm field of another type", `{"type":"ssm","idName":"/app/id","secretName":"/app/secret","secretId":"x"}`, "secretId", "not a field of a ssm destination"},
		{"ssm bad account", `{"type":"ssm","idName":"/app/id","secretName":"/app/secret","account":"1234"}`, "account", "12 digits"},
		{"ssm bad region", `{"type":"ssm","idName":"/app/id","secretName":"/app/secret","region":"Virginia"}`, "region", "such as us-east-1"},
		// secretsmanager
		{"secretsmanager without secretId", `{"type":"secretsmanager"}`, "secretId", "keyrotor does not create it"},
		{"secretsmanager bad name", `{"type":"secretsmanager","secretId":"app creds"}`, "secretId", "is not a secret name"},
		{"secretsmanager not a secret ARN", `{"type":"secretsmanager","secretId":"arn:aws:ssm:us-east-1:111122223333:parameter/x"}`, "secretId", "not a Secrets Manager secret ARN"},
		{"secretsmanager ARN of another account", `{"type":"secretsmanager","secretId":"arn:aws:secretsmanager:us-east-1:111122223333:secret:app-AbCdEf","account":"444455556666"}`, "account", "secret of account 111122223333"},
		{"secretsmanager ARN in another region", `{"type":"secretsmanager","secretId":"arn:aws:secretsmanager:us-east-1:111122223333:secret:app-AbCdEf","region":"eu-west-1"}`, "region", "secret in us-east-1"},
		{"secretsmanager one key twice", `{"type":"secretsmanager","secretId":"app","idName":"AWS_SECRET_ACCESS_KEY"}`, "secretName", "the same JSON key as idName"},
		{"secretsmanager blank key", `{"type":"secretsmanager","secretId":"app","secretName":" "}`, "secretName", "blank"},
		{"secretsmanager field of another type", `{"type":"secretsmanager","secretId":"app","repository":"o/r"}`, "repository", "not a field of a secretsmanager destination"},
		{"secretsmanager bad account", `{"type":"secretsmanager","secretId":"app","account":"x"}`, "account", "12 digits"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := delivery.ParseDocument([]byte(`{"version":1,"destinations":[` + tt.spec + `]}`))
			if err == nil {
				t.Fatalf("ParseDocument(%s) = nil error; want %s", tt.spec, tt.wantField)
			}
			fe := fieldOf(t, err)
			if want := "destinations[0]." + tt.wantField; fe.Field != want || !strings.Contains(fe.Msg, tt.wantMsg) {
				t.Fatalf("ParseDocument(%s) = %q: %q; want %q and %q", tt.spec, fe.Field, fe.Msg, want, tt.wantMsg)
			}
			// Build checks a spec alone: the field without the path.
			_, err = delivery.Build(context.Background(), spec(t, tt.spec), delivery.Env{})
			if fe := fieldOf(t, err); fe.Field != tt.wantField {
				t.Fatalf("Build(%s): field %q; want %q", tt.spec, fe.Field, tt.wantField)
			}
		})
	}
}

// TestCheckAccepts: what the rules allow.
func TestCheckAccepts(t *testing.T) {
	for _, s := range []string{
		`{"type":"ssm","idName":"AppKeyId","secretName":"App.Secret_1-x"}`,
		`{"type":"ssm","idName":"/a/b/c/d/e/f/g/h/i/j/k/l/m/n/id","secretName":"/app/secret","account":"111122223333","region":"eu-west-1"}`,
		`{"type":"ssm","idName":"/my-aws/id","secretName":"/app/ssmx/secret"}`,
		`{"type":"secretsmanager","secretId":"team/app+ci=1@x.y-z"}`,
		`{"type":"secretsmanager","secretId":"arn:aws:secretsmanager:eu-west-1:111122223333:secret:app-AbCdEf","account":"111122223333","region":"eu-west-1"}`,
		`{"type":"secretsmanager","secretId":"app","idName":"id","secretName":"secret","region":"us-gov-west-1"}`,
	} {
		if _, err := delivery.ParseDocument([]byte(`{"version":1,"destinations":[` + s + `]}`)); err != nil {
			t.Errorf("ParseDocument(%s) = %v; want no error", s, err)
		}
	}
}
