package rotation

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

// getScoped reads the rotation record id of item it, refusing (see
// checkRecord) a record of another account or user.
func (c rotationCtx) getScoped(ctx context.Context, id string, it Item) (*ledger.Record, error) {
	rec, err := c.recs.Get(ctx, id)
	if err == nil {
		err = c.checkRecord(rec, it)
	}
	if err != nil {
		return nil, err
	}
	return rec, nil
}

// checkRecord refuses a rotation record that belongs to another account or
// user than the item names: a record is found by the old key's id (or a
// password's user and date), so an item naming one user with another's
// key id would otherwise act on that other rotation. The home account is
// "" or its id, either way. Nothing is changed; the step fails with an
// *failures.OutOfScopeError.
func (c rotationCtx) checkRecord(rec *ledger.Record, it Item) error {
	if rec == nil {
		return nil
	}
	account := func(a string) string {
		if a == c.cfg.HomeAccount {
			return ""
		}
		return a
	}
	// IAM user names are unique case-insensitively (IAM User Guide, "IAM
	// identifiers": friendly names).
	if account(rec.Account) == account(it.Account) && strings.EqualFold(rec.User, it.User) {
		return nil
	}
	return &failures.OutOfScopeError{Account: it.Account, User: it.User, Msg: fmt.Sprintf("rotation record %s belongs to user %s in account %s, "+
		"not to this item: nothing changed (start the execution from this deployment's own plan)", rec.ID, rec.User, orHome(rec.Account))}
}

func orHome(account string) string {
	if account == "" {
		return "(keyrotor's own)"
	}
	return account
}
