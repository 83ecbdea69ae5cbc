package lambdastep

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
)

type input struct{ account string }

func (i input) AccountID() string { return i.account }

// TestPerAccountRefusesOutOfScope: every step re-checks the scope; an item
// naming an account out of scope fails with OutOfScopeError before the
// step is built or any role assumed.
func TestPerAccountRefusesOutOfScope(t *testing.T) {
	const home, member, excluded = "111111111111", "222222222222", "333333333333"
	org := config.Config{OrgScope: []string{config.ScopeAll}, OrgExclude: []string{excluded}, HomeAccount: home}
	tests := []struct {
		name    string
		cfg     config.Config
		account string
		ran     bool
	}{
		{"single account: its own", config.Config{}, "", true},
		{"single account: a member account", config.Config{}, member, false},
		{"organization: the home account", org, home, true},
		{"organization: an excluded account", org, excluded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := Env{Config: tt.cfg, AWS: aws.Config{Region: "us-east-1"}, Log: slog.Default()}
			ran := false
			h := PerAccount(env, "deactivate", func(Account) func(context.Context, input) (string, error) {
				return func(context.Context, input) (string, error) { ran = true; return "done", nil }
			})
			_, err := h(context.Background(), input{tt.account})
			var oos *failures.OutOfScopeError
			if ran != tt.ran || (!tt.ran && !errors.As(err, &oos)) {
				t.Fatalf("step ran %v, error %v; want ran %v (else OutOfScopeError)", ran, err, tt.ran)
			}
		})
	}
}
