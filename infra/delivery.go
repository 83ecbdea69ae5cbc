package main

import (
	"strings"

	"github.com/keyrotor/keyrotor/shared/config"
)

// deliveryResources are the deliver role's resources (docs/delivery.md):
// the stored keys and the hub's destination tokens (read), and exactly
// the SSM parameters and Secrets Manager secrets the settings name
// (deliveryParameters, deliverySecrets), in any region of the account.
// An action whose list is empty is not granted at all.
//
// ARN forms (Service Authorization Reference): an SSM parameter is
// arn:...:ssm:<region>:<account>:parameter/<name without its leading />
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_awssystemsmanager.html);
// a secret is arn:...:secretsmanager:<region>:<account>:secret:<name>-<6
// random characters>, so a whole name is matched as name-??????
// (https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access_iam-policies.html).
func (g grants) deliveryResources(arn func(service, resource string) string) map[string][]string {
	params, secrets := deliveryTargets(g.cfg, arn)
	read := []string{
		arn("secretsmanager", "secret:"+g.cfg.SecretPrefix+"*"),
		arn("secretsmanager", "secret:"+config.DeliveryCredentialPrefix+"*"),
	}
	return map[string][]string{
		"secretsmanager:GetSecretValue": append(read, secrets...),
		"secretsmanager:PutSecretValue": secrets,
		"secretsmanager:DescribeSecret": secrets,
		"ssm:PutParameter":              params,
		"ssm:GetParameter":              params,
		// DescribeParameters supports no resource-level permission
		// (Service Authorization Reference, Systems Manager): "*", and
		// only when ssm destinations are allowed at all.
		"ssm:DescribeParameters": anyIf(len(params) > 0),
	}
}

func anyIf(ok bool) []string {
	if ok {
		return []string{"*"}
	}
	return nil
}

// deliveryTargets are the ARNs of the SSM parameters and Secrets Manager
// secrets the settings let delivery write (deliveryParameters,
// deliverySecrets), in the account arn builds ARNs in, in any region: the
// hub's deliver role's (deliveryResources) and, in organization mode, the
// member role's in each member (memberDeliveryStatements).
func deliveryTargets(cfg config.Config, arn func(service, resource string) string) (params, secrets []string) {
	anyRegion := func(service, resource string) string {
		a := arn(service, resource)
		parts := strings.SplitN(a, ":", 6)
		parts[3] = "*"
		return strings.Join(parts, ":")
	}
	for _, p := range cfg.DeliveryParameters {
		params = append(params, anyRegion("ssm", "parameter/"+strings.TrimPrefix(p, "/")))
	}
	for _, p := range cfg.DeliverySecrets {
		if !strings.HasSuffix(p, "*") {
			p += "-??????"
		}
		secrets = append(secrets, anyRegion("secretsmanager", "secret:"+p))
	}
	return params, secrets
}
