// Command keyrotor is the command-line entry for people: run the rotation
// workflow locally against an emulated (or any AWS-compatible) endpoint,
// show a demo, or print the credential audit report.
//
//	keyrotor demo
//	keyrotor run --endpoint URL [--input FILE|-|JSON] [--wait DURATION]
//	keyrotor run --endpoint URL --redrive WORK-DIR
//	keyrotor audit [--endpoint URL] [--format table|csv|json] [--as-of TIME] [--users a,b]
//	keyrotor release --key ID [--reason TEXT]
//	keyrotor status [--json]
//	keyrotor plan [--json]
//	keyrotor hold --key ID --days N [--json]
//	keyrotor destinations set|show|remove --user NAME [--account ID] [--file FILE|-]
//	keyrotor version
//
// Help (-h) goes to standard output with exit status 0; a usage error is
// one "keyrotor COMMAND:" line on standard error and exit status 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

const usage = `keyrotor: hands-off rotation of AWS IAM user access keys

Usage:
  keyrotor demo                 run a full rotation on an emulated account (starts moto_server)
  keyrotor run --endpoint URL   run the synthesized state machine once against an endpoint
                                (--redrive WORK-DIR: redrive a failed run, as Step Functions does)
  keyrotor audit                print the credential audit report of the caller's account
  keyrotor release --key ID     end the hold on a rotation a person acted on
  keyrotor status               what the deployed stack is doing: in flight, adopting, in grace, held, attention
  keyrotor plan                 a dry run of the deployed state machine, as a table
  keyrotor hold --key ID --days N   leave a key alone for N days (a person's hold)
  keyrotor destinations set|show|remove --user NAME
                                where a user's rotated keys are delivered (SSM, Secrets Manager)
  keyrotor version              print the version of this build

Run "keyrotor COMMAND -h" for a command's flags.
`

type command func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int

var commands = map[string]command{}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(dispatch(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func dispatch(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "-help" || args[0] == "help" {
		fmt.Fprint(stdout, usage)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "keyrotor: unknown command %q: run \"keyrotor -h\" for the commands\n", args[0])
		return 2
	}
	return cmd(ctx, args[1:], stdin, stdout, stderr)
}

func init() { commands["version"] = runVersion }

// version is set at build time (-ldflags "-X main.version=v1.2.3");
// otherwise the module's version or the VCS revision the build records.
var version = ""

func runVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	if code, ok := parseFlags(fs, args, "usage: keyrotor version\n\nPrints the version of this build.", stdout, stderr); !ok {
		return code
	}
	fmt.Fprintln(stdout, "keyrotor", buildVersion())
	return 0
}

func buildVersion() string {
	if version != "" {
		return version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " " + s.Value[:12]
		}
	}
	return v + " " + bi.GoVersion
}

// parseFlags parses a command's flags the same way for every command:
// -h prints the usage text and the flags to stdout and returns 0; a bad
// flag or a stray argument is one line on stderr naming it, and 2. ok is
// false when the command must return code.
func parseFlags(fs *flag.FlagSet, args []string, usageText string, stdout, stderr io.Writer) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(stdout, usageText)
		if hasFlags(fs) {
			fmt.Fprintln(stdout, "\nFlags:")
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return 0, false
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor %s: %v (keyrotor %s -h lists the flags)\n", fs.Name(), err, fs.Name())
		return 2, false
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyrotor %s: unexpected argument %q: every value goes with a flag (keyrotor %s -h lists them)\n", fs.Name(), fs.Arg(0), fs.Name())
		return 2, false
	}
	return 0, true
}

func hasFlags(fs *flag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	return n > 0
}
