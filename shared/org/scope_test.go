package org

import (
	"errors"
	"testing"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
)

// TestInScope: a step refuses, before any AWS call, an account the
// configuration keeps out of scope.
func TestInScope(t *testing.T) {
	const home, dev, prod, other = "111111111111", "222222222222", "333333333333", "444444444444"
	single := config.Config{}
	ous := config.Config{OrgScope: []string{"ou-ab12-cd34ef56"}, OrgExclude: []string{prod}, HomeAccount: home}
	listed := config.Config{OrgScope: []string{home, dev}, HomeAccount: home}
	homeExcluded := config.Config{OrgScope: []string{config.ScopeAll}, OrgExclude: []string{home}, HomeAccount: home}
	tests := []struct {
		name    string
		cfg     config.Config
		account string
		out     bool
	}{
		{"single account: its own", single, "", false},
		{"single account: a member account", single, dev, true},
		{"organization: the home account", ous, "", false},
		{"organization: the home account by id", ous, home, false},
		{"organization: an account under the OUs (not resolved here)", ous, dev, false},
		{"organization: an excluded account", ous, prod, true},
		{"listed accounts: one of them", listed, dev, false},
		{"listed accounts: another account", listed, other, true},
		{"listed accounts: the home account", listed, "", false},
		{"the home account excluded", homeExcluded, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := InScope(tt.cfg, tt.account)
			var oos *failures.OutOfScopeError
			if got := errors.As(err, &oos); got != tt.out {
				t.Fatalf("InScope(%q) = %v; want out of scope %v", tt.account, err, tt.out)
			}
		})
	}
}
