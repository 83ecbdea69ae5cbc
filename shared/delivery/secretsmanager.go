package delivery

// SecretsAPI is the Secrets Manager calls the secretsmanager destination
// makes.
type SecretsAPI interface{}
