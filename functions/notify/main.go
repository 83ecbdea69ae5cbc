// Command notify is the NotifyOwner Lambda: it mails the owner where the new
// key is (never the key itself) and tells the admins.
package main

import (
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("notify")
	n := &rotation.Notifier{
		IAM: iam.NewFromConfig(env.AWS),
		Locks: s3.NewFromConfig(env.AWS, func(o *s3.Options) {
			o.UsePathStyle = env.AWS.BaseEndpoint != nil
			o.DisableLogOutputChecksumValidationSkipped = true
		}),
		Mail:   sesv2.NewFromConfig(env.AWS),
		Topic:  sns.NewFromConfig(env.AWS),
		Config: env.Config,
		Region: env.AWS.Region,
		Log:    env.Log,
	}
	lambdastep.Start(env, n.Handle)
}
