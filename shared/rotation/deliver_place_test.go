package rotation_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// TestCheckDestinationAccounts: an AWS destination is written in its
// account, else its secret ARN's, else its user's; it is refused, naming
// the field and the fix, when the deployment may not act there.
func TestCheckDestinationAccounts(t *testing.T) {
	const hub, dev, prod, outside = "123456789012", "111122223333", "444455556666", "210987654321"
	single := config.Default()
	single.HomeAccount = hub
	orgCfg := config.Default()
	orgCfg.HomeAccount, orgCfg.OrgScope, orgCfg.OrgExclude = hub, []string{hub, dev, prod}, []string{prod}
	ssmIn := func(account string) delivery.Spec {
		return delivery.Spec{Type: "ssm", IDName: "/ci/a", SecretName: "/ci/b", Account: account}
	}
	tests := []struct {
		name        string
		cfg         config.Config
		userAccount string
		spec        delivery.Spec
		field, msg  string // "" : accepted
	}{
		{"one account: the user's own (keyrotor's)", single, "", ssmIn(""), "", ""},
		{"one account: keyrotor's, by id", single, "", ssmIn(hub), "", ""},
		{"one account: another account", single, "", ssmIn(dev), "destinations[0].account", "organizationScope is not set"},
		{"one account: another account's secret ARN", single, "", delivery.Spec{Type: "secretsmanager", SecretID: "arn:aws:secretsmanager:eu-west-1:" + dev + ":secret:ci/aws-AbCdEf"},
			"destinations[0].secretId", "organizationScope is not set"},
		{"one account: a CI destination has no account", single, "", delivery.Spec{Type: "github", Repository: "o/r", Credential: "keyrotor-delivery/gh"}, "", ""},
		{"organization: a member user's own account", orgCfg, dev, ssmIn(""), "", ""},
		{"organization: a member user writing in the hub", orgCfg, dev, ssmIn(hub), "", ""},
		{"organization: a hub user writing in a member", orgCfg, "", ssmIn(dev), "", ""},
		{"organization: an excluded account", orgCfg, dev, ssmIn(prod), "destinations[0].account", "excluded"},
		{"organization: an account out of scope", orgCfg, "", ssmIn(outside), "destinations[0].account", "not in the organization scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := &delivery.Document{Version: 1, Destinations: []delivery.Spec{tt.spec}}
			err := rotation.CheckDestinationAccounts(tt.cfg, tt.userAccount, doc)
			if tt.field == "" {
				if err != nil {
					t.Fatalf("CheckDestinationAccounts(%+v) = %v; want nil", tt.spec, err)
				}
				return
			}
			var fe *delivery.FieldError
			if !errors.As(err, &fe) || fe.Field != tt.field || !strings.Contains(fe.Msg, tt.msg) {
				t.Fatalf("CheckDestinationAccounts(%+v) = %v; want a FieldError on %s containing %q", tt.spec, err, tt.field, tt.msg)
			}
		})
	}
}
