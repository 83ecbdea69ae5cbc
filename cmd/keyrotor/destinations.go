package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/org"
)

func init() { commands["destinations"] = runDestinations }

const destinationsUsage = `usage: keyrotor destinations set|show|remove --user NAME [--account ID] [flags]

  set --user NAME --file doc.json|-   store where the user's rotated keys are delivered
  show --user NAME                    print the user's document, when and by whom it was set
  remove --user NAME                  remove it: the user's rotations deliver nowhere again

The document (JSON) lists the user's destinations: SSM parameters, Secrets Manager
secrets. set checks it first (each field, every credential secret it names in
keyrotor's account, the IAM user, and that keyrotor reaches every other account an
AWS destination is written in) and writes nothing when a check fails.
It is kept in keyrotor's rotation record table (the stack's output RotationTableName,
or --table). Run "keyrotor destinations set -h" for a subcommand's flags.`

func runDestinations(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "keyrotor destinations: want a subcommand: set, show or remove (keyrotor destinations -h)")
		return 2
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprintln(stdout, destinationsUsage)
		return 0
	case "set", "show", "remove":
	default:
		fmt.Fprintf(stderr, "keyrotor destinations: unknown subcommand %q: want set, show or remove\n", args[0])
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("destinations "+sub, flag.ContinueOnError)
	var df destinationsFlags
	df.register(fs, sub == "show")
	file := ""
	if sub == "set" {
		fs.StringVar(&file, "file", "", "the document: a JSON file, or - for standard input")
	}
	text := map[string]string{
		"set": "usage: keyrotor destinations set --user NAME [--account ID] --file doc.json|- [--member-role NAME] [--table NAME | --stack NAME] [--endpoint URL] [--region R]\n\n" +
			"Stores where the user's rotated keys are delivered, replacing the user's document. The document is\n" +
			"checked first: its fields (an error names the field and the fix), every credential secret it names\n" +
			"(in keyrotor's account), the IAM user, and that keyrotor's member role is in any other account an AWS\n" +
			"destination is written in (member accounts are looked at as --member-role). An ssm or secretsmanager destination without account is\n" +
			"written in the user's own account. Nothing is written when a check fails.",
		"show": "usage: keyrotor destinations show --user NAME [--account ID] [--json] [--table NAME | --stack NAME] [--endpoint URL] [--region R]\n\n" +
			"Prints the user's document, when it was set and by whom. Exit status 1 when the user has none.",
		"remove": "usage: keyrotor destinations remove --user NAME [--account ID] [--table NAME | --stack NAME] [--endpoint URL] [--region R]\n\n" +
			"Removes the user's document: later rotations of the user's key deliver it nowhere (the owner is\n" +
			"told, as for any user). What the destinations hold stays as it is.",
	}[sub]
	name := "keyrotor destinations " + sub
	if code, ok := parseFlags(fs, args[1:], text, stdout, stderr); !ok {
		return code
	}
	if strings.TrimSpace(df.user) == "" {
		fmt.Fprintf(stderr, "%s: --user is required: the IAM user whose keys the document delivers\n", name)
		return 2
	}
	var raw []byte
	if sub == "set" {
		var err error
		if raw, err = readDocument(file, stdin); err != nil {
			fmt.Fprintf(stderr, "%s: --file: %v; nothing written\n", name, err)
			return 2
		}
	}
	if sub == "set" {
		// The document's own rules first, before any AWS call.
		if _, err := delivery.ParseDocument(raw); err != nil {
			fmt.Fprintf(stderr, "%s: %v; nothing written\n", name, err)
			return 2
		}
	}
	cfg, store, err := df.open(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	switch sub {
	case "set":
		return destinationsSet(ctx, cfg, store, df, raw, stdout, stderr)
	case "show":
		e, err := store.Entry(ctx, df.account, df.user)
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		if e == nil {
			fmt.Fprintf(stderr, "%s: user %s has no destinations document\n", name, df.user)
			return 1
		}
		if df.json {
			err = writeJSON(stdout, e)
		} else {
			err = operator.WriteDestinations(stdout, e)
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: %v\n", name, err)
			return 1
		}
		if e.Err != nil {
			fmt.Fprintf(stderr, "%s: the stored document no longer validates: %v; set it again\n", name, e.Err)
			return 1
		}
		return 0
	}
	removed, err := store.Delete(ctx, df.account, df.user)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
	if !removed {
		fmt.Fprintf(stderr, "%s: user %s has no destinations document; nothing removed\n", name, df.user)
		return 2
	}
	fmt.Fprintf(stdout, "removed: the destinations of user %s; later rotations of its key deliver it nowhere\n", df.user)
	return 0
}

func destinationsSet(ctx context.Context, cfg aws.Config, store *delivery.Store, df destinationsFlags, raw []byte, stdout, stderr io.Writer) int {
	name := "keyrotor destinations set"
	stsc := sts.NewFromConfig(cfg)
	id, err := stsc.GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		fmt.Fprintf(stderr, "%s: who is calling (sts:GetCallerIdentity): %v\n", name, err)
		return 1
	}
	by := aws.ToString(id.Arn)
	// Other accounts are reached with the operator's own role there
	// (KeyRotorMember trusts only keyrotor's functions), as the audit does.
	sessions := &org.Sessions{Home: cfg, HomeAccount: aws.ToString(id.Account), STS: stsc, SessionName: "keyrotor-destinations", Role: df.memberRole}
	users := func(account string) (operator.UserGetter, error) {
		c, err := sessions.Reach(ctx, account)
		if err != nil {
			return nil, err
		}
		return iam.NewFromConfig(c), nil
	}
	doc, err := operator.SetDestinations(ctx, store, secretsmanager.NewFromConfig(cfg), users,
		operator.SetDestinationsRequest{Account: df.account, User: df.user, Document: raw, By: by, Home: aws.ToString(id.Account), Reach: "as role " + df.memberRole + " (--member-role)"})
	if operator.IsRefusal(err) {
		fmt.Fprintf(stderr, "%s: %v; nothing written\n", name, err)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v; nothing written\n", name, err)
		return 1
	}
	types := make([]string, len(doc.Destinations))
	for i, s := range doc.Destinations {
		types[i] = s.Type
	}
	fmt.Fprintf(stdout, "set: %d destinations of user %s (%s); its next rotation delivers the new key there\n", len(doc.Destinations), df.user, strings.Join(types, ", "))
	return 0
}

// destinationsFlags are the flags of every destinations subcommand.
type destinationsFlags struct {
	stackFlags
	user, account, table string
	memberRole           string
}

func (f *destinationsFlags) register(fs *flag.FlagSet, withJSON bool) {
	fs.StringVar(&f.endpoint, "endpoint", "", "AWS-compatible endpoint, e.g. an emulator a local run used (default: AWS itself, with your credentials)")
	fs.StringVar(&f.stack, "stack", local.StackName, "the stack's name, whose output RotationTableName names the table")
	fs.StringVar(&f.region, "region", "", "the stack's region (default: your AWS configuration's)")
	if withJSON {
		fs.BoolVar(&f.json, "json", false, "print the stored document, its user, updatedAt and by as JSON")
	}
	fs.StringVar(&f.user, "user", "", "the IAM user")
	fs.StringVar(&f.account, "account", "", "the user's account in organization mode (default: keyrotor's own)")
	fs.StringVar(&f.table, "table", "", "the rotation record table (default: the stack's output RotationTableName)")
	fs.StringVar(&f.memberRole, "member-role", "OrganizationAccountAccessRole", "for a user or destination in a member account: the role assumed there to check it (it must trust your credentials; KeyRotorMember trusts only keyrotor's functions)")
}

// open loads the caller's configuration and the document store: --table,
// or the stack's table output.
func (f *destinationsFlags) open(ctx context.Context) (aws.Config, *delivery.Store, error) {
	if f.table != "" {
		cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: f.endpoint, Region: f.region})
		if err != nil {
			return aws.Config{}, nil, err
		}
		return cfg, &delivery.Store{API: dynamodb.NewFromConfig(cfg), Table: f.table}, nil
	}
	cfg, stack, err := f.stackFlags.open(ctx)
	if err != nil {
		return aws.Config{}, nil, err
	}
	table, err := stack.Output(operator.OutputTable)
	if err != nil {
		return aws.Config{}, nil, err
	}
	return cfg, &delivery.Store{API: dynamodb.NewFromConfig(cfg), Table: table}, nil
}

// readDocument reads a document from a file or, for -, standard input.
func readDocument(path string, stdin io.Reader) ([]byte, error) {
	switch strings.TrimSpace(path) {
	case "":
		return nil, fmt.Errorf("required: the document's JSON file, or - for standard input")
	case "-":
		b, err := io.ReadAll(io.LimitReader(stdin, maxDocument+1))
		if err != nil {
			return nil, err
		}
		return checkSize(b, "standard input")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return checkSize(b, path)
}

// maxDocument bounds a document: it is one DynamoDB item (400 KB) with
// at most delivery.MaxDestinations destinations.
const maxDocument = 64 << 10

func checkSize(b []byte, from string) ([]byte, error) {
	switch {
	case len(strings.TrimSpace(string(b))) == 0:
		return nil, fmt.Errorf("%s is empty: want the document's JSON", from)
	case len(b) > maxDocument:
		return nil, fmt.Errorf("%s is larger than %d KB: not a destinations document", from, maxDocument>>10)
	}
	return b, nil
}
