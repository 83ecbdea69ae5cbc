package delivery

// SSMAPI is the SSM calls the ssm destination makes.
type SSMAPI interface{}
