// Command deactivate is the DeactivateOldKey Lambda: it deactivates the old
// key once its owner was told, and names the key's grace-and-delete execution.
package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("deactivate")
	records, topic := env.Records(), sns.NewFromConfig(env.AWS)
	// The key is in the user's account (a member account, in organization
	// mode, through its member role); records and the admins' topic stay
	// in the hub.
	lambdastep.Start(env, lambdastep.PerAccount(env, "deactivate", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Deactivation, error) {
		d := &rotation.Deactivator{IAM: iam.NewFromConfig(a.AWS), Records: records, Topic: topic, Config: a.Config, Now: env.Now, Log: env.Log}
		return d.Handle
	}))
}
