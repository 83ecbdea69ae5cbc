// Command infra is the CDK app that deploys keyrotor: one stack, KeyRotor
// (and KeyRotorMember with hubAccount set: see docs/organizations.md).
// Tune it with CDK context (cdk.json or -c key=value); see README.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/shared/settings"
)

func main() {
	os.Exit(synthesize())
}

// synthesize builds the app and writes the templates; every refusal and
// failure is one "keyrotor:" line on stderr and exit status 1, never a
// panic or a jsii stack trace.
func synthesize() (code int) {
	defer jsii.Close()
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(os.Stderr, "keyrotor: synthesis failed: %s\n", firstLine(fmt.Sprint(r)))
			code = 1
		}
	}()
	// The CDK CLI passes cdk.json's context merged with -c (in
	// CDK_CONTEXT_JSON, or a file when large); `go run ./infra` (make
	// synth) reads cdk.json here, so both synthesize the same stack.
	// cdk.json fills the keys the CLI's context lacks, so CDK_CONTEXT_JSON
	// alone can override a few keys (make synth's templates for local
	// runs). The context is checked before the jsii runtime starts: a
	// refusal is one line, quickly.
	all := cdkJSONContext("cdk.json")
	cli, err := cliContext(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyrotor:", err)
		return 1
	}
	for k, v := range cli {
		all[k] = v
	}
	s, err := checkContext(all, os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyrotor:", err)
		return 1
	}
	app := awscdk.NewApp(&awscdk.AppProps{Context: &all})
	hub := NewKeyRotorStack(app, "KeyRotor", &KeyRotorStackProps{
		StackProps: awscdk.StackProps{
			Env:         env(),
			Description: jsii.String("keyrotor: hands-off rotation of IAM user access keys"),
		},
		Settings: s,
		AssetDir: "build",
	})
	if err := addOrganization(app, hub, s, all); err != nil {
		fmt.Fprintln(os.Stderr, "keyrotor:", err)
		return 1
	}
	app.Synth(nil)
	return 0
}

// checkContext is synthesis's decision on the context (all of it: the
// CLI's, -c and cdk.json's): an unknown key (a typo would leave its
// default in place), a value out of range, and a setup that cannot do its
// work (settings.Deployable: no real sender, no admin address) are
// refused, each naming the key and the fix. The deploy and diff make
// targets set deployKey: then no account (no credentials) is refused too.
func checkContext(all map[string]any, getenv func(string) string) (settings.Settings, error) {
	if err := settings.CheckUnknown(all); err != nil {
		return settings.Settings{}, err
	}
	s, err := settings.FromContext(func(k string) (any, bool) { v, ok := all[k]; return v, ok })
	if err != nil {
		return settings.Settings{}, err
	}
	if err := s.Deployable(); err != nil {
		return settings.Settings{}, err
	}
	if v, _ := settings.ContextString(func(k string) (any, bool) { v, ok := all[k]; return v, ok }, deployKey); v == "true" {
		if s.LocalRun {
			return settings.Settings{}, errors.New("localRun=true synthesizes a template for local runs on the emulator only: remove it to deploy")
		}
		if getenv("CDK_DEFAULT_ACCOUNT") == "" {
			return settings.Settings{}, errors.New("no AWS account: the CDK CLI found no credentials (CDK_DEFAULT_ACCOUNT is empty); " +
				"sign in (aws sso login, or AWS_PROFILE=...) and run it again")
		}
	}
	return s, nil
}

// deployKey is the context key make deploy and make diff set: the
// template is meant for an AWS account, which must be known.
const deployKey = "keyrotor:deploy"

// cliContext is the context the CDK CLI passes the app: CDK_CONTEXT_JSON,
// or the file CONTEXT_OVERFLOW_LOCATION_ENV names when it is too large
// for the environment.
func cliContext(getenv func(string) string) (map[string]any, error) {
	raw := []byte(getenv("CDK_CONTEXT_JSON"))
	if f := getenv("CONTEXT_OVERFLOW_LOCATION_ENV"); f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read the CDK CLI's context: %w", err)
		}
		raw = b
	}
	ctx := map[string]any{}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return ctx, nil
	}
	if err := json.Unmarshal(raw, &ctx); err != nil {
		return nil, fmt.Errorf("the context (CDK_CONTEXT_JSON) is not a JSON object: %v", err)
	}
	return ctx, nil
}

func cdkJSONContext(path string) map[string]any {
	var f struct {
		Context map[string]any `json:"context"`
	}
	if b, err := os.ReadFile(path); err == nil {
		json.Unmarshal(b, &f)
	}
	if f.Context == nil {
		f.Context = map[string]any{}
	}
	return f.Context
}

// env deploys to the account and region of the CLI's credentials; without
// an account (no credentials), the stack is environment-agnostic.
func env() *awscdk.Environment {
	account, region := os.Getenv("CDK_DEFAULT_ACCOUNT"), os.Getenv("CDK_DEFAULT_REGION")
	if account == "" {
		return nil
	}
	e := &awscdk.Environment{Account: jsii.String(account)}
	if region != "" {
		e.Region = jsii.String(region)
	}
	return e
}

// firstLine is the message of a jsii error without its JavaScript stack.
func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
