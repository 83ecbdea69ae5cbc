package org

import (
	"fmt"
	"slices"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
)

// InScope checks, without calling AWS, that a step of a deployment
// configured by cfg may act in account ("" or cfg.HomeAccount: the
// account the functions run in). find plans only accounts in scope; every
// step checks again, so an item that names another account (a forged or
// stale input, a Redrive after the scope changed) changes nothing. It
// returns an *failures.OutOfScopeError for:
//   - a member account in a single-account deployment;
//   - an account of organizationExclude (KEYROTOR_ORG_EXCLUDE);
//   - an account missing from a scope that lists accounts only.
//
// A scope that names OUs or the root is not resolved here: that takes
// Organizations calls the steps are not granted. Such an account is kept
// out by the member role, which the StackSet deploys only to the
// organizationalUnits, minus the hub and the excluded accounts
// (docs/organizations.md).
func InScope(cfg config.Config, account string) error {
	home := account == "" || account == cfg.HomeAccount
	if !cfg.Organization() {
		if home {
			return nil
		}
		return &failures.OutOfScopeError{Account: account, Msg: "this deployment rotates one account (organizationScope is not set): " +
			"start the execution from this deployment's own plan"}
	}
	id := account
	if home {
		id = cfg.HomeAccount
	}
	if id == "" {
		return nil // the home account of a deployment that does not name it
	}
	if slices.Contains(cfg.OrgExclude, id) {
		return &failures.OutOfScopeError{Account: id, Msg: fmt.Sprintf("the account is excluded (organizationExclude, %s): keyrotor never acts there", config.EnvOrgExclude)}
	}
	if AccountsOnly(cfg.OrgScope) && !slices.Contains(cfg.OrgScope, id) {
		return &failures.OutOfScopeError{Account: id, Msg: fmt.Sprintf("the account is not in the organization scope (organizationScope, %s)", config.EnvOrgScope)}
	}
	return nil
}

// AccountsOnly reports whether a scope lists account ids only (no OU, root
// or "all"), so membership is a lookup.
func AccountsOnly(scope []string) bool {
	if len(scope) == 0 {
		return false
	}
	for _, t := range scope {
		if !config.IsAccountID(t) {
			return false
		}
	}
	return true
}

// IsHome reports whether account is the account keyrotor runs in ("" or
// the configured home account).
func IsHome(cfg config.Config, account string) bool {
	return account == "" || account == cfg.HomeAccount
}
