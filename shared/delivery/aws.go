package delivery

// AWSClients are the AWS clients of one account and region, for the ssm
// and secretsmanager destinations (see ssm.go and secretsmanager.go for
// the calls each makes).
type AWSClients struct {
	SSM     SSMAPI
	Secrets SecretsAPI
}
