// Command delete is the DeleteOldKey Lambda: it deletes the old key once its
// grace period has passed, if nobody re-activated it.
package main

import (
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("delete")
	d := &rotation.Deleter{IAM: iam.NewFromConfig(env.AWS), Records: env.Records(), Topic: sns.NewFromConfig(env.AWS),
		Config: env.Config, Now: env.Now, Log: env.Log}
	lambdastep.Start(env, d.Handle)
}
