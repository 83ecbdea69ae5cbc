// Command delete is the DeleteOldKey Lambda, run after the grace period.
package main

import (
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("delete")
	d := &rotation.Deleter{IAM: iam.NewFromConfig(env.AWS), Topic: sns.NewFromConfig(env.AWS), Config: env.Config, Log: env.Log}
	lambdastep.Start(env, d.Handle)
}
