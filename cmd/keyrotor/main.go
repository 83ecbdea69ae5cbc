// Command keyrotor is the command-line entry for people: run the rotation
// workflow locally against an emulated (or any AWS-compatible) endpoint,
// show a demo, or print the credential audit report.
//
//	keyrotor demo
//	keyrotor run --endpoint URL [--input FILE|-] [--wait DURATION]
//	keyrotor run --endpoint URL --redrive WORK-DIR
//	keyrotor audit [--endpoint URL] [--format table|csv|json] [--as-of TIME] [--users a,b]
//	keyrotor release --key ID --table NAME [--reason TEXT]
//	keyrotor status [--json]
//	keyrotor plan [--json]
//	keyrotor hold --key ID --days N [--json]
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "keyrotor: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	return cmd(ctx, args[1:], stdin, stdout, stderr)
}
