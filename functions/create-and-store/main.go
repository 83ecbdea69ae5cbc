// Command create-and-store is the CreateAndStoreNewKey Lambda: it creates
// the replacement key and stores it at once in Secrets Manager.
package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("create-and-store")
	records, topic, verify := env.Records(), sns.NewFromConfig(env.AWS), rotation.STSVerifier(env.AWS)
	// The key and its secret are created in the user's account (in
	// organization mode a member account, through its member role).
	lambdastep.Start(env, lambdastep.PerAccount(env, "create-and-store", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.NewKey, error) {
		c := &rotation.Creator{
			IAM:     iam.NewFromConfig(a.AWS),
			Secrets: secretsmanager.NewFromConfig(a.AWS),
			Records: records,
			Topic:   topic,
			Verify:  verify,
			Config:  a.Config,
			Now:     env.Now,
			Log:     env.Log,
		}
		return c.Handle
	}))
}
