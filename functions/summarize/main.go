// Command summarize is the SummarizeRun Lambda: it totals the per-user
// results, writes the run summary and tells the admins.
package main

import (
	"os"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/sns"

	"github.com/keyrotor/keyrotor/shared/lambdastep"
	"github.com/keyrotor/keyrotor/shared/metrics"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

func main() {
	env := lambdastep.Setup("summarize")
	s := &rotation.Summarizer{
		S3: s3.NewFromConfig(env.AWS, func(o *s3.Options) {
			o.UsePathStyle = env.AWS.BaseEndpoint != nil
			o.DisableLogOutputChecksumValidationSkipped = true
		}),
		Topic:   sns.NewFromConfig(env.AWS),
		Config:  env.Config,
		Now:     env.Now,
		Log:     env.Log,
		Metrics: metrics.New(os.Stdout, "summarize"),
	}
	lambdastep.Start(env, s.Handle)
}
