package rotation

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/org"
)

// CheckDestinationAccounts refuses a document of a user in userAccount (""
// for keyrotor's own) with an AWS destination (ssm, secretsmanager) in an
// account this deployment may not act in (org.InScope): any account but
// keyrotor's own when the organization mode is off; an excluded account,
// or one missing from a scope that lists accounts, when it is on. The
// error is a *delivery.FieldError naming destinations[i].account (or
// .secretId, when the account comes from its ARN) and the fix. find
// blocks such a rotation before any key is created; deliver refuses the
// document before any write.
func CheckDestinationAccounts(cfg config.Config, userAccount string, doc *delivery.Document) error {
	if doc == nil {
		return nil
	}
	for i, s := range doc.Destinations {
		account, from := s.AccountFor(userAccount)
		if !s.IsAWS() {
			continue
		}
		err := org.InScope(cfg, account)
		if err == nil {
			continue
		}
		if from == "" {
			from = "account"
		}
		field := fmt.Sprintf("destinations[%d].%s", i, from)
		var oe *failures.OutOfScopeError
		if !errors.As(err, &oe) {
			return &delivery.FieldError{Field: field, Msg: err.Error()}
		}
		if !cfg.Organization() {
			return &delivery.FieldError{Field: field, Msg: fmt.Sprintf("account %s is not keyrotor's own, and this deployment rotates one account "+
				"(organizationScope is not set), so it writes AWS destinations in its own account only: leave account out (or name "+
				"keyrotor's account), or deploy keyrotor in organization mode with that account in scope (docs/organizations.md)", account)}
		}
		return &delivery.FieldError{Field: field, Msg: fmt.Sprintf("account %s is out of keyrotor's organization scope (%s): keyrotor writes "+
			"AWS destinations only in accounts it may act in; name an account in scope, or leave account out for the user's own account "+
			"(docs/delivery.md)", account, oe.Msg)}
	}
	return nil
}

// DestinationClients is the deliver step's delivery.Env.AWS: the SSM and
// Secrets Manager clients of an account and region. keyrotor's own account
// ("" or its id) is reached with the function's own configuration; a
// member account, in organization mode, through its member role
// (sessions: assumed at once, so a refusal is an
// *failures.AccountUnreachableError naming the fix, as in every other
// step). An account out of scope (org.InScope) is refused before any call.
// region "" keeps the configuration's region.
func DestinationClients(cfg config.Config, sessions *org.Sessions) func(ctx context.Context, account, region string) (delivery.AWSClients, error) {
	return func(ctx context.Context, account, region string) (delivery.AWSClients, error) {
		if err := org.InScope(cfg, account); err != nil {
			return delivery.AWSClients{}, err
		}
		c, err := sessions.Reach(ctx, account)
		if err != nil {
			return delivery.AWSClients{}, err
		}
		c = c.Copy()
		if region != "" {
			c.Region = region
		}
		return delivery.AWSClients{SSM: ssm.NewFromConfig(c), Secrets: secretsmanager.NewFromConfig(c)}, nil
	}
}
