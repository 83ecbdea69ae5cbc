// Command notify is the NotifyOwner Lambda: it mails the owner where to
// fetch the new key (never the key) and tells the admins.
package main

import (
	"os"

	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("notify")
	n := &rotation.Notifier{
		Records: env.Records(),
		Mail:    sesv2.NewFromConfig(env.AWS),
		Topic:   sns.NewFromConfig(env.AWS),
		Config:  env.Config,
		Region:  env.AWS.Region,
		Now:     env.Now,
		Log:     env.Log,
		Metrics: metrics.New(os.Stdout, "notify"),
	}
	lambdastep.Start(env, n.Handle)
}
