// Command deliver is the DeliverNewKey Lambda: it writes the new key to
// the destinations its user registered (a CI system's secrets, an SSM
// parameter, a Secrets Manager secret) and reads each back, before the
// owner is told.
package main

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("deliver")
	hub := secretsmanager.NewFromConfig(env.AWS)
	records, topic := env.Records(), sns.NewFromConfig(env.AWS)
	docs := &delivery.Store{API: dynamodb.NewFromConfig(env.AWS), Table: env.Config.RotationTable}
	denv := delivery.Env{
		HTTP:       delivery.Client(env.Log, 20*time.Second),
		Credential: rotation.HubCredentials(hub),
		AllowHTTP:  env.Config.DeliveryAllowHTTP,
		// AWS destinations in the account they name, else their user's:
		// keyrotor's own directly, a member's through its member role.
		AWS: rotation.DestinationClients(env.Config, &org.Sessions{
			Home: env.AWS, HomeAccount: env.Config.HomeAccount, STS: sts.NewFromConfig(env.AWS), SessionName: "keyrotor-deliver",
		}),
	}
	// The stored key is read in the user's account (in organization mode
	// a member's, through its member role, as create-and-store wrote it);
	// documents, tokens and records are the hub's.
	lambdastep.Start(env, lambdastep.PerAccount(env, "deliver", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Delivery, error) {
		d := &rotation.Deliverer{
			Records: records, Documents: docs, Secrets: secretsmanager.NewFromConfig(a.AWS), Topic: topic, Env: denv,
			Config: a.Config, Now: env.Now, Log: env.Log,
		}
		return d.Handle
	}))
}
