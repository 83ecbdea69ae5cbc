// Command infra is the CDK app that deploys keyrotor: one stack, KeyRotor
// (and KeyRotorMember with hubAccount set: see docs/organizations.md).
// Tune it with CDK context (cdk.json or -c key=value); see README.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/shared/settings"
)

func main() {
	defer jsii.Close()
	app := awscdk.NewApp(nil)
	// The CDK CLI passes cdk.json's context; `go run ./infra` (make synth)
	// reads it here, so both synthesize the same stack.
	fileCtx := cdkJSONContext("cdk.json")
	s, err := settings.FromContext(func(k string) (any, bool) {
		if v := app.Node().TryGetContext(jsii.String(k)); v != nil {
			return v, true
		}
		v, ok := fileCtx[k]
		return v, ok
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyrotor:", err)
		os.Exit(1)
	}
	hub := NewKeyRotorStack(app, "KeyRotor", &KeyRotorStackProps{
		StackProps: awscdk.StackProps{
			Env:         env(),
			Description: jsii.String("keyrotor: hands-off rotation of IAM user access keys"),
		},
		Settings: s,
		AssetDir: "build",
	})
	if err := addOrganization(app, hub, s, fileCtx); err != nil {
		fmt.Fprintln(os.Stderr, "keyrotor:", err)
		os.Exit(1)
	}
	app.Synth(nil)
}

func cdkJSONContext(path string) map[string]any {
	var f struct {
		Context map[string]any `json:"context"`
	}
	// Context the CLI passes (CDK_CONTEXT_JSON: cdk.json merged with -c)
	// is read first, through the app; cdk.json fills the keys it lacks, so
	// CDK_CONTEXT_JSON alone can override a few keys (make synth's
	// organization-mode template for local runs).
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &f)
	}
	return f.Context
}

// env deploys to the account and region of the CLI's credentials.
func env() *awscdk.Environment {
	account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION")
	if account == "" && region == "" {
		return nil
	}
	return &awscdk.Environment{Account: jsii.String(account), Region: jsii.String(region)}
}
