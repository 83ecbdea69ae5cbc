// Command check-adoption is the CheckAdoption Lambda: during a rotation's
// adoption window it reads the old and new keys' last use and decides
// whether to switch over now, remind the owner, or wait for the next check.
package main

import (
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("check-adoption")
	w := &rotation.Watcher{
		IAM:     iam.NewFromConfig(env.AWS),
		Records: env.Records(),
		Mail:    sesv2.NewFromConfig(env.AWS),
		Topic:   sns.NewFromConfig(env.AWS),
		Config:  env.Config,
		Region:  env.AWS.Region,
		Now:     env.Now,
		Log:     env.Log,
	}
	lambdastep.Start(env, w.Handle)
}
