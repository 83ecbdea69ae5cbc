// Command deactivate is the DeactivateOldKey Lambda.
package main

import (
	"github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("deactivate")
	d := &rotation.Deactivator{IAM: iam.NewFromConfig(env.AWS), Config: env.Config, Log: env.Log}
	lambdastep.Start(env, d.Handle)
}
