// Command delete is the DeleteOldKey Lambda: it deletes the old key once its
// grace period has passed, if nobody re-activated it.
package main

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("delete")
	records, topic := env.Records(), sns.NewFromConfig(env.AWS)
	// The key is in the user's account (a member account, in organization
	// mode, through its member role); records and the admins' topic stay
	// in the hub.
	lambdastep.Start(env, lambdastep.PerAccount(env, "delete", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Cleanup, error) {
		d := &rotation.Deleter{IAM: iam.NewFromConfig(a.AWS), Records: records, Topic: topic, Config: a.Config, Now: env.Now, Log: env.Log}
		return d.Handle
	}))
}
