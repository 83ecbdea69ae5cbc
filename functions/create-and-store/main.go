// Command create-and-store is the CreateAndStoreNewKey Lambda: it creates
// the replacement key and stores it at once in Secrets Manager.
package main

import (
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("create-and-store")
	c := &rotation.Creator{
		IAM:     iam.NewFromConfig(env.AWS),
		Secrets: secretsmanager.NewFromConfig(env.AWS),
		Records: env.Records(),
		Topic:   sns.NewFromConfig(env.AWS),
		Verify:  rotation.STSVerifier(env.AWS),
		Config:  env.Config,
		Now:     env.Now,
		Log:     env.Log,
	}
	lambdastep.Start(env, c.Handle)
}
