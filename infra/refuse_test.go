package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/aws/jsii-runtime-go"
)

// TestSynthesisRefuses: every setup that cannot work is refused at
// synthesis, naming the key and the fix; a deliberate choice passes when
// acknowledged, and make synth's template for local runs passes with
// cdk.json as shipped.
func TestSynthesisRefuses(t *testing.T) {
	shipped := cdkJSONContext("../cdk.json")
	if len(shipped) == 0 {
		t.Fatal("../cdk.json has no context")
	}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range shipped {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	ready := []any{"senderAddress", "keyrotor@corp.io", "adminEmails", []any{"sec@corp.io"}}
	account := func(k string) string {
		return map[string]string{"CDK_DEFAULT_ACCOUNT": "111122223333", "CDK_DEFAULT_REGION": "eu-west-1"}[k]
	}
	noCredentials := func(k string) string { return map[string]string{"CDK_DEFAULT_REGION": "us-east-1"}[k] }
	tests := []struct {
		name   string
		ctx    map[string]any
		getenv func(string) string
		want   string // the whole error, or a fragment of it; "" for accepted
	}{
		{"cdk.json as shipped", shipped, account, `context senderAddress="keyrotor@example.com": a placeholder: SES sends nothing from it and every rotation would wait; set it to an address of your domain verified in SES`},
		{"make synth (localRun)", with("localRun", true), noCredentials, ""},
		{"set up", with(ready...), account, ""},
		{"misspelled key", with(append(ready, "gracedays", float64(3))...), account, `context gracedays="3": keyrotor reads no such setting and would use the default; did you mean "graceDays"?`},
		{"empty sender", with(append(ready, "senderAddress", "")...), account, `context senderAddress="": no sender`},
		{"no admins", with("senderAddress", "keyrotor@corp.io"), account, `context adminEmails="[]": no admin address`},
		{"no admins, acknowledged", with("senderAddress", "keyrotor@corp.io", "allowNoAdmins", true), account, ""},
		{"malformed KMS key ARN", with(append(ready, "kmsKeyArn", "arn:bad")...), account, `context kmsKeyArn="arn:bad": want a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)`},
		{"grace longer than the key age", with(append(ready, "maxKeyAgeDays", float64(5))...), account, `context graceDays="7": the grace period must not be longer than the max key age (5 days)`},
		{"deploy without credentials", with(append(ready, deployKey, "true")...), noCredentials, "no AWS account: the CDK CLI found no credentials"},
		{"deploy a local-run template", with(append(ready, deployKey, "true", "localRun", true)...), account, "localRun=true synthesizes a template for local runs"},
		{"deploy", with(append(ready, deployKey, "true")...), account, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkContext(tt.ctx, tt.getenv)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("checkContext = %v; want accepted", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("checkContext = %v; want %q", err, tt.want)
			}
		})
	}
}

var (
	appOnce sync.Once
	appBin  string
	appErr  error
)

// TestSynthesisFailsInOneLine: what reaches the person running make synth,
// make diff or cdk synth is one "keyrotor:" line and exit status 1: no Go
// panic (env() with a region and no account), no jsii stack trace (a
// malformed ARN).
func TestSynthesisFailsInOneLine(t *testing.T) {
	appOnce.Do(func() {
		appBin = filepath.Join(os.TempDir(), "keyrotor-infra-test-app")
		out, err := exec.Command("go", "build", "-o", appBin, ".").CombinedOutput()
		if err != nil {
			appErr = err
			t.Logf("%s", out)
		}
	})
	if appErr != nil {
		t.Fatal(appErr)
	}
	tests := []struct {
		name string
		ctx  string
		env  []string
		want string
	}{
		{"malformed ARN", `{"senderAddress":"k@corp.io","adminEmails":"s@corp.io","kmsKeyArn":"arn:bad"}`, nil, `keyrotor: context kmsKeyArn="arn:bad"`},
		{"make diff without credentials", `{"senderAddress":"k@corp.io","adminEmails":"s@corp.io","keyrotor:deploy":"true"}`, []string{"CDK_DEFAULT_REGION=us-east-1", "CDK_DEFAULT_ACCOUNT="}, "keyrotor: no AWS account"},
		{"shipped placeholder sender", `{}`, nil, `keyrotor: context senderAddress="keyrotor@example.com": a placeholder`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(appBin)
			cmd.Dir = ".." // cdk.json
			cmd.Env = append(append(os.Environ(), "CDK_OUTDIR="+t.TempDir(), "CDK_CONTEXT_JSON="+tt.ctx), tt.env...)
			// As the Makefile does: jsii on Node 22 (no end-of-life banner).
			if nodes, _ := filepath.Glob("../node_modules/node-*/bin/node"); len(nodes) > 0 && os.Getenv("JSII_NODE") == "" {
				abs, _ := filepath.Abs(nodes[0])
				cmd.Env = append(cmd.Env, "JSII_NODE="+abs)
			}
			out, err := cmd.CombinedOutput()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 1 {
				t.Fatalf("exit = %v; want status 1\n%s", err, out)
			}
			if got := strings.TrimSpace(string(out)); strings.Count(got, "\n") != 0 || !strings.HasPrefix(got, tt.want) {
				t.Fatalf("output:\n%s\nwant one line starting %q", got, tt.want)
			}
		})
	}
}

// TestDocsTrue keeps README and docs/ true to the code: every relative
// link resolves from the file that holds it, deploying.md counts the
// stack's Lambdas right and lists every stack output, and README opens by
// saying what keyrotor is before any command.
func TestDocsTrue(t *testing.T) {
	files, _ := filepath.Glob("../docs/*.md")
	files = append(files, "../README.md")
	link := regexp.MustCompile(`\]\(([^)#\s]+)(#[^)]*)?\)`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range link.FindAllStringSubmatch(string(b), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links to %s, which does not exist from there", f, target)
			}
		}
	}
	dep, _ := os.ReadFile("../docs/deploying.md")
	words := []string{"", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine", "Ten"}
	if n := len(functions); n >= len(words) || !strings.Contains(string(dep), words[n]+" Lambdas") {
		t.Errorf("docs/deploying.md does not say %q (the stack has %d functions)", words[min(n, len(words)-1)]+" Lambdas", n)
	}
	outputs := get(t).template.FindOutputs(jsii.String("*"), nil)
	for name := range *outputs {
		if !strings.Contains(string(dep), "`"+name+"`") {
			t.Errorf("docs/deploying.md does not list the stack output %s", name)
		}
	}
	readme, _ := os.ReadFile("../README.md")
	r := string(readme)
	if i, j := strings.Index(r, "keyrotor is "), strings.Index(r, "make demo"); i < 0 || j < i {
		t.Errorf("README says `make demo` (at %d) before what keyrotor is (at %d)", j, i)
	}
}
