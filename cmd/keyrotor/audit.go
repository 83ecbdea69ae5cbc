package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"encoding/json"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/shared/audit"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
	"github.com/keyrotor/keyrotor/shared/settings"
)

func init() { commands["audit"] = runAudit }

func runAudit(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	endpoint := fs.String("endpoint", "", "AWS-compatible endpoint (default: AWS itself)")
	format := fs.String("format", "table", "output format: table, csv or json")
	asOf := fs.String("as-of", "", "evaluate ages as of this RFC 3339 time (default now)")
	users := fs.String("users", "", "comma-separated IAM user names to report on (default all)")
	color := fs.String("color", "auto", "colour ages in the table: auto, always or never")
	cdkJSON := fs.String("cdk-json", "cdk.json", "read thresholds from this cdk.json's context, if it exists")
	orgScope := fs.String("organization", "", `report on the organization's accounts: "all", or comma-separated OU, root and account ids (run with the management or delegated administrator account's credentials)`)
	table := fs.String("table", "", "the rotation table (stack output RotationTableName): holds, adoption windows and grace periods are reported as the run sees them; without it the report says it could not")
	memberRole := fs.String("member-role", "OrganizationAccountAccessRole", "with --organization: the role assumed in each member account (it must trust your credentials; KeyRotorMember trusts only keyrotor's functions)")
	if code, ok := parseFlags(fs, args, "usage: keyrotor audit [--endpoint URL] [--format table|csv|json] [--as-of TIME] [--users a,b] [--table NAME]\n\nPrints the credential audit report for the account of your own AWS credentials (the\nstandard SDK chain: environment, profiles, SSO). It changes nothing.", stdout, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "keyrotor audit: unexpected argument %q: name users with --users a,b\n", fs.Arg(0))
		return 2
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if *format != "table" && *format != "csv" && *format != "json" {
		fmt.Fprintf(stderr, "keyrotor audit: --format %q: want table, csv or json\n", *format)
		return 2
	}
	if *color != "auto" && *color != "always" && *color != "never" {
		fmt.Fprintf(stderr, "keyrotor audit: --color %q: want auto, always or never\n", *color)
		return 2
	}
	when := time.Now()
	if set["as-of"] {
		t, err := time.Parse(time.RFC3339, *asOf)
		if err != nil {
			fmt.Fprintf(stderr, "keyrotor audit: --as-of %q: not an RFC 3339 time; write it like 2027-01-01T00:00:00Z\n", *asOf)
			return 2
		}
		when = t
	}
	var names []string
	if set["users"] {
		for _, u := range strings.Split(*users, ",") {
			if u = strings.TrimSpace(u); u != "" {
				names = append(names, u)
			}
		}
		if len(names) == 0 {
			fmt.Fprintln(stderr, "keyrotor audit: --users is empty: name at least one user, or leave the flag out for all users")
			return 2
		}
		if _, err := rotation.ParseRequest(usersJSON(names)); err != nil {
			fmt.Fprintf(stderr, "keyrotor audit: --users: %v\n", err)
			return 2
		}
	}
	st := settings.Default()
	if _, err := os.Stat(*cdkJSON); err != nil && set["cdk-json"] {
		fmt.Fprintf(stderr, "keyrotor audit: --cdk-json %q: %v; name an existing cdk.json, or leave the flag out for the defaults\n", *cdkJSON, err)
		return 2
	} else if err == nil {
		if st, err = settings.FromCDKJSON(*cdkJSON); err != nil {
			fmt.Fprintf(stderr, "keyrotor audit: %s: %v\n", *cdkJSON, err)
			return 2
		}
	}
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: *endpoint})
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor audit: AWS configuration: %v\n", err)
		return 1
	}
	f := &rotation.Finder{IAM: iam.NewFromConfig(cfg), Config: st.Config}
	if *table != "" {
		f.Records = &ledger.Store{API: dynamodb.NewFromConfig(cfg), Table: *table}
	}
	var as []*rotation.Assessment
	var accounts []rotation.AccountPlan
	if *orgScope != "" {
		if f.Org, err = auditOrganization(ctx, cfg, &f.Config, *orgScope, *memberRole); err != nil {
			fmt.Fprintf(stderr, "keyrotor audit: --organization: %v\n", err)
			return 2
		}
	}
	for attempt := 0; ; attempt++ {
		as, accounts, err = assessAll(ctx, f, when, names)
		var nr *failures.ReportNotReadyError
		if !errors.As(err, &nr) || attempt >= 20 {
			break
		}
		if attempt == 0 {
			fmt.Fprintln(stderr, "waiting for the credential report (IAM is generating it)...")
		}
		select {
		case <-ctx.Done():
			return 1
		case <-time.After(time.Duration(min(attempt+1, 5)) * 500 * time.Millisecond):
		}
	}
	if err != nil {
		var ie *failures.InvalidInputError
		if errors.As(err, &ie) {
			// Only --users reaches Assess as input: name the flag.
			fmt.Fprintf(stderr, "keyrotor audit: --users: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "keyrotor audit: %v\n", err)
		return 1
	}
	rules := policy.Rules{MaxKeyAgeDays: st.Config.MaxKeyAgeDays, UnusedDays: st.Config.UnusedDays, Grace: st.Config.GracePeriod}
	rep := audit.BuildAll(as, rules, st.Config.RetirePasswords, f.Config.HomeAccount)
	if *table == "" {
		rep.Notes = append(rep.Notes, "no --table: the rotation records were not read, so holds, adoption windows and grace periods are not shown")
	}
	switch *format {
	case "csv":
		err = rep.WriteCSV(stdout)
	case "json":
		err = rep.WriteJSON(stdout)
	default:
		useColor := *color == "always" || (*color == "auto" && isTerminal(stdout) && os.Getenv("NO_COLOR") == "")
		err = rep.WriteTable(stdout, useColor)
	}
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor audit: %v\n", err)
		return 1
	}
	missing := 0
	for _, a := range accounts {
		if a.Status != rotation.AccountPlanned {
			missing++
			fmt.Fprintf(stderr, "keyrotor audit: account %s not reported (%s): %s\n", a.Account, a.Status, a.Reason)
		}
	}
	if missing > 0 {
		fmt.Fprintf(stderr, "keyrotor audit: %d of %d accounts not reported\n", missing, len(accounts))
		return 1
	}
	return 0
}

// auditOrganization is the organization the audit reports on: its
// accounts in scope, each reached with role (the caller's account
// directly).
func auditOrganization(ctx context.Context, cfg aws.Config, c *config.Config, scope, role string) (rotation.Organization, error) {
	c.OrgScope, c.OrgStages, c.OrgExclude = nil, nil, nil
	for _, s := range strings.Split(scope, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.OrgScope = append(c.OrgScope, s)
		}
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	id, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("who am I (sts:GetCallerIdentity): %w", err)
	}
	c.HomeAccount = aws.ToString(id.Account)
	return &rotation.OrgAccess{
		Organizations: organizations.NewFromConfig(cfg),
		Sessions:      &org.Sessions{Home: cfg, HomeAccount: c.HomeAccount, STS: sts.NewFromConfig(cfg), SessionName: "keyrotor-audit", Role: role},
		Config:        *c,
	}, nil
}

// assessAll assesses the account of f (or, in organization mode, every
// account in scope) through find's own planning as a dry run, so that each
// row's decision is the plan's verdict, without changing anything.
func assessAll(ctx context.Context, f *rotation.Finder, when time.Time, users []string) ([]*rotation.Assessment, []rotation.AccountPlan, error) {
	var got capture
	g := *f
	g.Report, g.S3 = &got, nil
	if f.Org != nil {
		g.Records = nil
	}
	req := map[string]any{"dryRun": true, "asOf": when.UTC().Format(time.RFC3339)}
	if len(users) > 0 {
		req["users"] = users
	}
	raw, _ := json.Marshal(req)
	plan, err := g.Handle(ctx, rotation.FindInput{Request: raw, ExecutionName: "audit"})
	if err != nil {
		return nil, nil, err
	}
	return got.as, plan.Accounts, nil
}

// capture keeps the assessments find reports.
type capture struct{ as []*rotation.Assessment }

func (c *capture) WriteReport(_ context.Context, _ string, as []*rotation.Assessment, _ policy.Rules) (*rotation.ReportRef, error) {
	c.as = as
	return &rotation.ReportRef{}, nil
}

func usersJSON(names []string) []byte {
	var b strings.Builder
	b.WriteString(`{"users":[`)
	for i, n := range names {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q", n)
	}
	b.WriteString("]}")
	return []byte(b.String())
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
