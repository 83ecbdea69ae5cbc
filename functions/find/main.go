// Command find is the FindDueKeys Lambda: it reads the credential report,
// checks the candidates live and returns the plan (see shared/rotation).
package main

import (
	"os"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/keyrotor/keyrotor/shared/audit"
	"github.com/keyrotor/keyrotor/shared/awsconf/lambdaenv"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("find")
	store := s3.NewFromConfig(env.AWS, func(o *s3.Options) {
		o.UsePathStyle = env.AWS.BaseEndpoint != nil
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	f := &rotation.Finder{
		IAM:     iam.NewFromConfig(env.AWS),
		Records: env.Records(),
		// Releases the leases of rotations whose execution failed.
		Executions: sfn.NewFromConfig(env.AWS, lambdaenv.ServiceEndpoint(os.Getenv, "SFN", func(o *sfn.Options, ep *string) { o.BaseEndpoint = ep })),
		Leases:     env.Records(),
		S3:         store,
		Report:     audit.NewS3Writer(store, env.Config.ReportBucket, env.Config.RetirePasswords, env.Config.HomeAccount),
		// The dashboard's figures, as EMF lines on standard output.
		Figures: &audit.FigureEmitter{Metrics: metrics.New(os.Stdout, "find"), RetirePasswords: env.Config.RetirePasswords, HomeAccount: env.Config.HomeAccount},
		// Users' destination documents: a rotation whose document does
		// not validate is not started.
		Destinations: &delivery.Store{API: dynamodb.NewFromConfig(env.AWS), Table: env.Config.RotationTable},
		// The organization mode (nil: the one account of IAM).
		Org:    rotation.NewOrgAccess(env.AWS, env.Config, "find"),
		Config: env.Config,
		Now:    env.Now,
		Log:    env.Log,
	}
	lambdastep.Start(env, f.Handle)
}
