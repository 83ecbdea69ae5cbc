// Command deactivate is the DeactivateOldKey Lambda: it deactivates the old
// key once its owner was told, and names the key's grace-and-delete execution.
package main

import (
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("deactivate")
	d := &rotation.Deactivator{IAM: iam.NewFromConfig(env.AWS), Records: env.Records(), Topic: sns.NewFromConfig(env.AWS),
		Config: env.Config, Now: env.Now, Log: env.Log}
	lambdastep.Start(env, d.Handle)
}
