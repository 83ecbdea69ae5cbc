// Command check-adoption is the CheckAdoption Lambda: during a rotation's
// adoption window it reads the old and new keys' last use and decides
// whether to switch over now, remind the owner, or wait for the next check.
package main

import (
	"context"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("check-adoption")
	records, mail, topic := env.Records(), sesv2.NewFromConfig(env.AWS), sns.NewFromConfig(env.AWS)
	emf := metrics.New(os.Stdout, "check-adoption")
	// The keys' last use is read in the user's account; mail and records
	// stay in the hub.
	lambdastep.Start(env, lambdastep.PerAccount(env, "check-adoption", func(a lambdastep.Account) func(context.Context, rotation.Task) (*rotation.Adoption, error) {
		w := &rotation.Watcher{
			IAM:     iam.NewFromConfig(a.AWS),
			Records: records,
			Mail:    mail,
			Topic:   topic,
			Config:  a.Config,
			Region:  env.AWS.Region,
			Now:     env.Now,
			Log:     env.Log,
			Metrics: emf,
		}
		return w.Handle
	}))
}
