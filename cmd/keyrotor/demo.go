package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/sesv2"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/keyrotor/keyrotor/internal/demo"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/local"
	"github.com/keyrotor/keyrotor/internal/motoserver"
	"github.com/keyrotor/keyrotor/internal/operator"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
	"github.com/keyrotor/keyrotor/shared/settings"
)

func init() { commands["demo"] = runDemo }

func runDemo(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	wait := fs.Duration("wait", 3*time.Second, "the grace period, shortened for the demo")
	deliveryDir := fs.String("delivery", "", "the template with deliveryParameters [\"/ci/*\"] (make synth writes build/cdk.delivery): adds the delivery act, keys delivered to an emulated GitHub repository, SSM parameters and a GitLab project that is down (default: no delivery act)")
	orgDir := fs.String("organization", "", "the organization mode's templates (make synth writes build/cdk.org): adds the organization act, over three emulated member accounts (default: no organization act)")
	var rf runFlags
	rf.register(fs)
	if code, ok := parseFlags(fs, args, "usage: keyrotor demo [--wait DURATION] [--delivery DIR] [--organization DIR]\n\nStarts moto_server, seeds an account of 40 users, and runs the synthesized state machine\nwith the grace period shortened; with --adoption-window, a second act with an adoption window;\nwith --organization, an act over an emulated organization; with --delivery, a last act\ndelivering new keys where pipelines read them. Stops everything it started, also on Ctrl-C.", stdout, stderr); !ok {
		return code
	}
	if rf.name == "" {
		rf.name = "demo-" + time.Now().UTC().Format("20060102T150405Z")
	}
	if rf.workDir == "" {
		rf.workDir = filepath.Join("build", "demo", rf.name)
	}
	if err := rf.check(); err != nil {
		fmt.Fprintf(stderr, "keyrotor demo: %v\n", err)
		return 2
	}
	if *deliveryDir != "" {
		if err := checkTemplates(*deliveryDir, orgHubTemplate); err != nil {
			fmt.Fprintf(stderr, "keyrotor demo: --delivery %s: %v\n", *deliveryDir, err)
			return 2
		}
	}
	if *orgDir != "" {
		if err := checkOrgTemplates(*orgDir); err != nil {
			fmt.Fprintf(stderr, "keyrotor demo: --organization %s: %v\n", *orgDir, err)
			return 2
		}
	}
	st, err := settings.FromCDKJSON("cdk.json")
	if err != nil {
		fmt.Fprintf(stderr, "keyrotor demo: cdk.json: %v\n", err)
		return 2
	}
	if err := os.MkdirAll(rf.workDir, 0o755); err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	fmt.Fprintln(stderr, "Starting moto_server (the emulated AWS account)...")
	srv, err := motoserver.Start(filepath.Join(rf.workDir, "moto.log"))
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	defer srv.Stop()
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: srv.Endpoint, Region: "us-east-1", StaticTestCredentials: true})
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	if st.Config.Sender != "" {
		if _, err := sesv2.NewFromConfig(cfg).CreateEmailIdentity(ctx, &sesv2.CreateEmailIdentityInput{EmailIdentity: aws.String(st.Config.Sender)}); err != nil {
			fmt.Fprintln(stderr, "keyrotor demo: verify sender:", err)
			return 1
		}
	}
	if !demoOrganizationOnly && !demoDeliveryOnly {
		if code := demoAccount(ctx, rf, srv, cfg, st.Config.Sender, st.Config.SecretPrefix, *wait, stdout, stderr); code != 0 {
			return code
		}
	}
	// The organization act before the delivery act: the delivery act
	// leaves one user's rotation waiting for its destination (down all
	// along), which the organization hub's run would otherwise pick up.
	if *orgDir != "" && !demoDeliveryOnly {
		if code := demoOrganization(ctx, rf, *orgDir, srv, cfg, st.Config.SecretPrefix, *wait, stdout, stderr); code != 0 {
			return code
		}
	}
	if *deliveryDir != "" && !demoOrganizationOnly {
		return demoDelivery(ctx, rf, *deliveryDir, srv.Endpoint, cfg, srv.SetClock, *wait, stdout, stderr)
	}
	return 0
}

// Test hooks: demoOrganizationOnly skips the first three acts (the
// organization act runs alone), demoDeliveryOnly every act but the
// delivery act; demoOrganizationDone, when set, receives the emulator's
// endpoint and the organization after the organization act, before the
// emulator stops.
var (
	demoOrganizationOnly bool
	demoDeliveryOnly     bool
	demoOrganizationDone func(endpoint string, o *demo.Org)
)

// demoAccount is the demo's first act, a full rotation of one account of
// 40 users, and its second with --adoption-window.
func demoAccount(ctx context.Context, rf runFlags, srv *motoserver.Server, cfg aws.Config, sender, prefix string, wait time.Duration, stdout, stderr io.Writer) int {
	users, err := demo.Seed(ctx, iam.NewFromConfig(cfg), cfg, srv.SetClock)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo: seed:", err)
		return 1
	}
	fmt.Fprintf(stderr, "Seeded %d IAM users at %s (keys from 5 to 500 days old); sender %s verified.\n", len(users), srv.Endpoint, sender)
	fmt.Fprintf(stderr, "Running the synthesized state machine (%s), grace period shortened to %s:\n\n", rf.template, wait)

	main := rf
	main.adoptionWindow, main.adoptionCheck = 0, 0 // the window is the second act
	res, sum, ok := runAct(ctx, stderr, main, srv.Endpoint, wait)
	if !ok {
		return 1
	}
	mails, notes := sentCounts(srv.Endpoint)
	leak, clean := scanForSecrets(ctx, func(string) aws.Config { return cfg }, srv.Endpoint, sum, res)
	printSummary(stdout, sum, users, res, mails, notes, leak)
	if !clean {
		return 1
	}
	if rf.adoptionWindow > 0 {
		return demoAdoption(ctx, rf, srv.Endpoint, cfg, srv.SetClock, prefix, wait, stdout, stderr)
	}
	return 0
}

// demoAdoption is the demo's second act: two more users due, each with a
// pipeline using its key while a run with an adoption window goes on.
// One pipeline switches to the new key as soon as it is stored (switched
// over on evidence), one keeps the old key (on the deadline).
func demoAdoption(ctx context.Context, rf runFlags, endpoint string, cfg aws.Config, clock demo.Clock, prefix string, wait time.Duration, stdout, stderr io.Writer) int {
	keys, err := demo.SeedAdoption(ctx, iam.NewFromConfig(cfg), cfg, clock)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo: seed:", err)
		return 1
	}
	check := rf.adoptionCheck
	if check == 0 {
		check = rf.adoptionWindow / 5
		rf.adoptionCheck = check
	}
	fmt.Fprintf(stderr, "\nAdoption window: %s and %s are due and their pipelines keep working while keyrotor runs\n"+
		"with a %s window, checked every %s (adoptionDays in a deployment). The first pipeline picks\n"+
		"the new key up from Secrets Manager; the second keeps the old one.\n\n", demo.AdoptionUsers[0], demo.AdoptionUsers[1], rf.adoptionWindow, check)
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	sm := secretsmanager.NewFromConfig(cfg)
	for i, u := range demo.AdoptionUsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			demo.Pipeline(pctx, cfg, sm, prefix+u, keys[u], i == 0)
		}()
	}
	rf.name += "-adoption"
	rf.workDir = filepath.Join(filepath.Dir(rf.workDir), rf.name)
	users, _ := json.Marshal(map[string]any{"users": demo.AdoptionUsers})
	res, err := runLocal(ctx, rf, endpoint, users, wait, newProgress(stderr), false)
	stop()
	wg.Wait()
	if !succeeded(stderr, res, err) {
		return 1
	}
	recs, err := accountRecords(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	fmt.Fprintln(stdout, "\nAdoption window (old key Active until the new key is in use):")
	ok := true
	for i, u := range demo.AdoptionUsers {
		want := []string{ledger.SwitchEvidence, ledger.SwitchDeadline}[i]
		r := recs[keys[u].ID]
		if r == nil || r.Adoption == nil {
			fmt.Fprintf(stdout, "  %-18s no adoption window recorded\n", u)
			ok = false
			continue
		}
		ad := r.Adoption
		fmt.Fprintf(stdout, "  %-18s switched over on %s after %d checks; old key last used %s, new key last used %s; old key %s\n",
			u, ad.SwitchOver, ad.Checks, ad.OldLastUsed, ad.NewLastUsed, r.State)
		ok = ok && ad.SwitchOver == want
	}
	if !ok {
		fmt.Fprintln(stderr, "keyrotor demo: the adoption window did not end as expected (evidence for the first, deadline for the second)")
		return 1
	}
	return 0
}

// runAct runs one act's execution against endpoint and decodes its run
// summary; false (said on stderr) when it, or a key execution it started,
// did not succeed.
func runAct(ctx context.Context, stderr io.Writer, rf runFlags, endpoint string, wait time.Duration) (*local.Result, *rotation.Summary, bool) {
	res, err := execute(ctx, rf, endpoint, json.RawMessage(`{}`), wait, newProgress(stderr))
	if !succeeded(stderr, res, err) {
		return nil, nil, false
	}
	var sum rotation.Summary
	if err := json.Unmarshal(res.Output, &sum); err != nil {
		fmt.Fprintf(stderr, "keyrotor demo: the output is not a run summary: %v\n", err)
		return nil, nil, false
	}
	return res, &sum, true
}

// succeeded reports whether a demo run and every key execution it started
// succeeded, telling what failed otherwise.
func succeeded(stderr io.Writer, res *local.Result, err error) bool {
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "keyrotor demo: %v\n", err)
		return false
	case res.Status != "SUCCEEDED":
		reportFailure(stderr, res)
		return false
	}
	return reportGrace(stderr, res) == 0
}

// accountRecords reads every rotation record of the account (every table).
func accountRecords(ctx context.Context, cfg aws.Config) (map[string]*ledger.Record, error) {
	db := dynamodb.NewFromConfig(cfg)
	tables, err := db.ListTables(ctx, &dynamodb.ListTablesInput{})
	if err != nil {
		return nil, err
	}
	out := map[string]*ledger.Record{}
	for _, name := range tables.TableNames {
		recs, err := (&ledger.Store{API: db, Table: name}).All(ctx)
		if err != nil {
			return nil, err
		}
		for id, r := range recs {
			out[id] = r
		}
	}
	return out, nil
}

// printSummary writes the readable result of the demo.
func printSummary(w io.Writer, sum *rotation.Summary, users []demo.User, res *local.Result, mails, notes int, leak string) {
	cleanups := keyCleanups(res)
	fmt.Fprintf(w, "\nkeyrotor run %s\n\n", sum.ExecutionName)
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tACTION\tOUTCOME\tNEW KEY\tSECRET\tOWNER MAIL")
	type line struct{ user, text string }
	var lines []line
	for _, o := range sum.Users {
		mail := o.Mail
		if mail == "" {
			mail = "-"
		}
		lines = append(lines, line{o.User, fmt.Sprintf("%s\t%s\t%s\t%s\t%s\t%s", o.User, o.Action, outcome(o, cleanups), dash(o.NewKeyID), dash(o.SecretName), mail)})
	}
	for _, b := range append(append([]rotation.Skipped{}, sum.Blocked...), sum.Exempt...) {
		text := "left alone (see below)"
		if b.Action == "exempt" {
			text = b.Reason
		}
		lines = append(lines, line{b.User, fmt.Sprintf("%s\t%s\t%s\t-\t-\t-", b.User, b.Action, text)})
	}
	sort.Slice(lines, func(i, j int) bool { return lines[i].user < lines[j].user })
	for _, l := range lines {
		fmt.Fprintln(tw, l.text)
	}
	tw.Flush()
	for _, b := range sum.Blocked {
		fmt.Fprintf(w, "\nBlocked %s (admins were told): %s\n", b.User, b.Reason)
	}
	t := sum.Totals
	fine := len(users) - len(sum.Users) - t.Blocked - t.Exempt
	fmt.Fprintf(w, "\nTotals: %d rotated, %d retired, %d old keys kept, %d failed, %d blocked, %d exempt, %d users with nothing due.\n",
		t.Rotated, t.Retired, t.Kept, t.Failed, t.Blocked, t.Exempt, fine)
	fmt.Fprintf(w, "Mail: %d owner e-mails sent (SES), %d admin messages published (SNS).\n", mails, notes)
	fmt.Fprintln(w, leak)
	if sum.Report != nil {
		fmt.Fprintf(w, "Credential report: s3://%s/%s (and .json); run summary: s3://%s/%s\n", sum.Report.Bucket, sum.Report.CSV, sum.Bucket, sum.SummaryKey)
	}
	fmt.Fprintf(w, "Execution: %s; history and function logs under %s\n", res.String(), "build/demo/")
}

// outcome is a user's line in the demo's table: the run's outcome and,
// for a rotation, what its grace-and-delete execution did (cleanups, by
// old key id), not what it was meant to do.
func outcome(o rotation.Outcome, cleanups map[string]rotation.Cleanup) string {
	if o.Result == "rotated" || o.Result == "retired" {
		c, ok := cleanups[o.OldKeyID]
		switch {
		case !ok:
			return o.Result + "; old key Inactive, its grace-and-delete execution did not end"
		case c.Deleted:
			return o.Result + "; old key deleted after grace"
		}
		return o.Result + "; old key kept: " + strings.TrimPrefix(c.Reason, "not deleted: ")
	}
	if o.Error != "" {
		return o.Result + ": " + o.Error
	}
	return o.Result + ": " + o.Reason
}

// keyCleanups reads what each key execution of the run did with its old
// key, by key id: its output's cleanup.
func keyCleanups(res *local.Result) map[string]rotation.Cleanup {
	out := map[string]rotation.Cleanup{}
	for _, g := range graceResults(res) {
		var t rotation.Task
		if g.Status == "SUCCEEDED" && json.Unmarshal(g.Output, &t) == nil && t.Cleanup != nil {
			out[t.Item.OldKey.ID] = *t.Cleanup
		}
	}
	return out
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// sentCounts reads how many mails and SNS messages the emulator recorded.
func sentCounts(endpoint string) (mails, notes int) {
	resp, err := http.Get(endpoint + "/moto-api/data.json")
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	var data struct {
		SES struct{ Message []json.RawMessage } `json:"ses"`
		SNS struct {
			Topic []struct {
				Sent []json.RawMessage `json:"sent_notifications"`
			}
		} `json:"sns"`
	}
	json.NewDecoder(resp.Body).Decode(&data)
	for _, t := range data.SNS.Topic {
		notes += len(t.Sent)
	}
	return len(data.SES.Message), notes
}

// scanForSecrets reads every new key's secret from Secrets Manager, in
// the user's account (cfgFor gives the configuration acting in an
// Outcome's Account: "" for keyrotor's own), and looks for it in the
// execution history, the function logs, and what the emulator recorded as
// sent (mails, SNS messages).
func scanForSecrets(ctx context.Context, cfgFor func(account string) aws.Config, endpoint string, sum *rotation.Summary, res *local.Result) (string, bool) {
	var secrets []string
	for _, o := range sum.Users {
		if o.SecretName == "" {
			continue
		}
		sm := secretsmanager.NewFromConfig(cfgFor(o.Account))
		out, err := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(o.SecretName)})
		if err != nil {
			return "Secret check: could not read " + o.SecretName + ": " + err.Error(), false
		}
		var k rotation.StoredKey
		if json.Unmarshal([]byte(aws.ToString(out.SecretString)), &k) == nil && k.SecretAccessKey != "" {
			secrets = append(secrets, k.SecretAccessKey)
		}
	}
	var corpus []byte
	for _, h := range append([]*local.Result{res}, graceResults(res)...) {
		if b, err := os.ReadFile(h.HistoryFile); err == nil {
			corpus = append(corpus, b...)
		}
	}
	logs, _ := filepath.Glob(filepath.Join(res.LogDir, "*.log"))
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			corpus = append(corpus, b...)
		}
	}
	if resp, err := http.Get(endpoint + "/moto-api/data.json"); err == nil {
		var data struct {
			SES json.RawMessage `json:"ses"`
			SNS json.RawMessage `json:"sns"`
		}
		json.NewDecoder(resp.Body).Decode(&data)
		resp.Body.Close()
		corpus = append(append(corpus, data.SES...), data.SNS...)
	}
	for _, s := range secrets {
		if bytes.Contains(corpus, []byte(s)) {
			return "Secret check: FAILED, a secret access key appears in the history, logs or messages", false
		}
	}
	return fmt.Sprintf("Secret check: none of the %d new secret access keys appears in the execution history, the function logs, the mails or the SNS messages.", len(secrets)), true
}

// graceResults are the results of the run's grace-and-delete executions.
func graceResults(res *local.Result) []*local.Result {
	var out []*local.Result
	for _, g := range res.Grace {
		if g.Result != nil {
			out = append(out, g.Result)
		}
	}
	return out
}

// The organization mode's templates in --organization's directory.
const (
	orgHubTemplate    = "KeyRotor.template.json"
	orgMemberTemplate = "KeyRotorMember.template.json"
)

// checkOrgTemplates fails early when an organization template is missing or
// older than cdk.json.
func checkOrgTemplates(dir string) error {
	return checkTemplates(dir, orgHubTemplate, orgMemberTemplate)
}

// checkTemplates fails early when a template of dir is missing or older
// than cdk.json.
func checkTemplates(dir string, names ...string) error {
	ci, cerr := os.Stat("cdk.json")
	for _, name := range names {
		ti, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return fmt.Errorf("%s not found: run `make synth`", name)
		}
		if cerr == nil && ci.ModTime().After(ti.ModTime()) {
			return fmt.Errorf("%s is older than cdk.json: run `make synth` so the run uses the current context", name)
		}
	}
	return nil
}

// demoOrganization is the demo's organization act: the emulated account
// becomes the management account of an organization with three members
// (demo.OrgMembers), dev and prod with the member stack, the sandbox
// without; the organization hub (organizationScope=all) runs through a
// proxy that refuses, as STS does, to assume a role the account does not
// have. The outcome is checked in each member with its own credentials.
func demoOrganization(ctx context.Context, rf runFlags, dir string, srv *motoserver.Server, cfg aws.Config, prefix string, wait time.Duration, stdout, stderr io.Writer) int {
	start := time.Now()
	body, err := os.ReadFile(filepath.Join(dir, orgMemberTemplate))
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	o, err := demo.SetUpOrg(ctx, cfg, body, srv.SetClock)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo: organization:", err)
		return 1
	}
	var seeded []string
	for _, u := range demo.OrgUsers() {
		used := "never used"
		if u.UsedAgo >= 0 {
			used = "in use"
		}
		seeded = append(seeded, fmt.Sprintf("%s (key %d days old, %s)", u.Name, u.KeyAge, used))
	}
	fmt.Fprintf(stderr, "\nOrganization: the emulated account %s is now the management account of %s, where keyrotor\n"+
		"runs as the hub (organizationScope=all). Three member accounts, each with the users\n%s:\n", o.Management, o.ID, strings.Join(seeded, ", "))
	for _, a := range o.Accounts {
		stack := "member stack deployed (role KeyRotorMember, key alias/KeyRotorMember)"
		if a.MemberStack == nil {
			stack = "no member stack: keyrotor cannot reach it"
		}
		fmt.Fprintf(stderr, "  %-8s %s  OU %-12s %s\n", a.Name, a.ID, a.OU, stack)
	}
	// The functions' every call goes through the proxy: an AssumeRole of
	// a role the account lacks is refused as STS refuses it (moto would
	// grant it), and IAM's tag quotas hold.
	p, err := faultproxy.New(srv.Endpoint)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	defer p.Close()
	p.RoleChecks, p.TagLimits = true, true
	rf.template = filepath.Join(dir, orgHubTemplate)
	rf.name += "-organization"
	rf.workDir = filepath.Join(filepath.Dir(rf.workDir), rf.name)
	rf.adoptionWindow, rf.adoptionCheck = 0, 0
	fmt.Fprintf(stderr, "Running the organization hub's state machine (%s):\n\n", rf.template)
	res, sum, ok := runAct(ctx, stderr, rf, p.URL(), wait)
	if !ok {
		return 1
	}
	mails, err := demo.SentMails(srv.Endpoint)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	checks, problems := o.Check(ctx, cfg, prefix, sum, mails)
	cfgFor := func(account string) aws.Config {
		if a, ok := o.Account(account); ok {
			return a.Config
		}
		return cfg
	}
	leak, clean := scanForSecrets(ctx, cfgFor, srv.Endpoint, sum, res)
	printOrganization(stdout, o, sum, checks, mails, leak, res, rf.workDir, time.Since(start))
	if demoOrganizationDone != nil {
		demoOrganizationDone(srv.Endpoint, o)
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, "keyrotor demo: the organization act did not end as expected:")
		for _, pr := range problems {
			fmt.Fprintln(stderr, "  "+pr)
		}
		return 1
	}
	if !clean {
		return 1
	}
	return 0
}

var aboutRE = regexp.MustCompile(`This is about your IAM user [^<\n]*?\.(\s|<|$)`)

// printOrganization writes the readable result of the organization act.
func printOrganization(w io.Writer, o *demo.Org, sum *rotation.Summary, checks []demo.UserCheck, mails []demo.Mail, leak string, res *local.Result, workDir string, took time.Duration) {
	fmt.Fprintf(w, "\nkeyrotor run %s over organization %s\n\n", sum.ExecutionName, o.ID)
	// keyrotor's own account first, then the members in the act's order.
	rank := func(id string) int {
		for i, a := range o.Accounts {
			if a.ID == id {
				return i + 1
			}
		}
		if id == o.Management {
			return 0
		}
		return len(o.Accounts) + 1
	}
	accounts := slices.Clone(sum.Accounts)
	sort.SliceStable(accounts, func(i, j int) bool { return rank(accounts[i].Account) < rank(accounts[j].Account) })
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ACCOUNT\tNAME\tRESULT\tROTATED\tRETIRED\tFAILED")
	for _, a := range accounts {
		name := a.Alias
		if m, ok := o.Account(a.Account); ok {
			name = m.Name
		}
		if a.Account == o.Management {
			name = "keyrotor's own (management)"
		}
		if a.Status != rotation.AccountPlanned {
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t-\n", a.Account, name, a.Result)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", a.Account, name, a.Result, a.Rotated, a.Retired, a.Failed)
	}
	tw.Flush()
	for _, a := range accounts {
		if a.Reason != "" {
			fmt.Fprintf(w, "\n%s %s: %s\n", a.Status, a.Account, a.Reason)
		}
	}
	fmt.Fprintln(w, "\nIn each member account, read with that account's own credentials:")
	tw = tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, c := range checks {
		state := "as expected"
		if c.Problem != "" {
			state = "NOT AS EXPECTED: " + c.Problem
		}
		fmt.Fprintf(tw, "  %s/%s\t%s\t%s\t%s\n", c.AccountName, c.User, c.Expect, c.Found, state)
	}
	tw.Flush()
	naming := 0
	example := ""
	for _, m := range mails {
		for _, a := range o.Accounts {
			if strings.Contains(m.Body, " in account "+a.ID) {
				naming++
				if example == "" {
					example = strings.TrimSpace(strings.TrimSuffix(aboutRE.FindString(m.Body), "<"))
				}
				break
			}
		}
	}
	fmt.Fprintf(w, "\nMail: %d owner e-mails about member accounts, each naming its account", naming)
	if example != "" {
		fmt.Fprintf(w, ` ("%s")`, example)
	}
	fmt.Fprintln(w, ".")
	fmt.Fprintln(w, leak)
	fmt.Fprintf(w, "Execution: %s; history and function logs under %s\n", res.String(), workDir)
	fmt.Fprintf(w, "Organization act: %s.\n", took.Round(100*time.Millisecond))
}

// demoDelivery is the demo's delivery act: three more users due, each
// with a destination its pipeline reads its key from (a GitHub repository
// secret, two SSM parameters, a GitLab project variable whose API is
// down), run with the template whose deliveryParameters allow /ci/*. The
// new keys go where the pipelines read them and are read back; the old
// keys go off on evidence that the pipelines use the new ones, with no
// person involved, and no pipeline ever fails. GitLab's user keeps its old
// key Active.
func demoDelivery(ctx context.Context, rf runFlags, dir string, endpoint string, cfg aws.Config, clock demo.Clock, wait time.Duration, stdout, stderr io.Writer) int {
	start := time.Now()
	rf.template = filepath.Join(dir, "KeyRotor.template.json")
	tmpl, err := local.ReadTemplate(rf.template)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	tables := tmpl.OfType("AWS::DynamoDB::Table")
	if len(tables) != 1 {
		fmt.Fprintf(stderr, "keyrotor demo: %s has tables %v; want the rotation table\n", rf.template, tables)
		return 1
	}
	// The local run's stand-in of the table, made now: the destinations
	// are registered before the run.
	db := dynamodb.NewFromConfig(cfg)
	table := "keyrotor-" + tables[0]
	if err := ledger.CreateTable(ctx, db, table); err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	params := ssm.NewFromConfig(cfg)
	d, err := demo.SeedDelivery(ctx, iam.NewFromConfig(cfg), secretsmanager.NewFromConfig(cfg), params, &delivery.Store{API: db, Table: table}, clock)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo: seed:", err)
		return 1
	}
	defer d.Close()
	// A delivered key switches over on evidence only: without a short
	// window the act would wait the deployed one out.
	if rf.adoptionWindow == 0 {
		rf.adoptionWindow = 10 * time.Second
	}
	if rf.adoptionCheck == 0 {
		rf.adoptionCheck = 2 * time.Second
	}
	fmt.Fprintf(stderr, "\nDelivery: %s, %s and %s are due, each with a destination (keyrotor destinations set)\n"+
		"its pipeline reads its key from every second: a GitHub repository secret (emulator on %s), two SSM parameters\n"+
		"under /ci/, a GitLab project variable whose API answers 500 all along. Template %s, adoption checked every %s.\n\n",
		demo.DeliveryUsers[0], demo.DeliveryUsers[1], demo.DeliveryUsers[2], d.GitHub.URL(), rf.template, rf.adoptionCheck)
	pctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range d.Pipelines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.Run(pctx, cfg)
		}()
	}
	rf.name += "-delivery"
	rf.workDir = filepath.Join(filepath.Dir(rf.workDir), rf.name)
	users, _ := json.Marshal(map[string]any{"users": demo.DeliveryUsers})
	res, err := runLocal(ctx, rf, endpoint, users, wait, newProgress(stderr), false)
	stop()
	wg.Wait()
	if !succeeded(stderr, res, err) {
		return 1
	}
	var sum rotation.Summary
	if err := json.Unmarshal(res.Output, &sum); err != nil {
		fmt.Fprintf(stderr, "keyrotor demo: the output is not a run summary: %v\n", err)
		return 1
	}
	recs, err := accountRecords(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "keyrotor demo:", err)
		return 1
	}
	leak, clean := scanForSecrets(ctx, func(string) aws.Config { return cfg }, endpoint, &sum, res)
	problems := printDelivery(stdout, d, recs, leak)
	fmt.Fprintf(stdout, "Execution: %s; history and function logs under %s\nDelivery act: %s.\n", res.String(), rf.workDir, time.Since(start).Round(100*time.Millisecond))
	if len(problems) > 0 {
		fmt.Fprintln(stderr, "keyrotor demo: the delivery act did not end as expected:")
		for _, p := range problems {
			fmt.Fprintln(stderr, "  "+p)
		}
		return 1
	}
	if !clean {
		return 1
	}
	return 0
}

// printDelivery writes the delivery act's result: per key its
// destinations and each one's state, what its pipeline saw and what
// became of the old key. It returns what was not as expected: a pipeline
// that failed, a delivered key not switched over on evidence, GitLab's
// user's old key not left Active.
func printDelivery(w io.Writer, d *demo.Delivery, recs map[string]*ledger.Record, leak string) []string {
	var problems []string
	fmt.Fprintln(w, "\nDelivery: each new key written where its pipeline reads it and read back; the old key off on evidence")
	for _, u := range demo.DeliveryUsers {
		r := recs[d.Keys[u].ID]
		calls, failures, _, switched := d.Pipelines[u].Result()
		for _, f := range failures {
			problems = append(problems, u+"'s pipeline: "+f)
		}
		if r == nil || len(r.Deliveries) == 0 {
			fmt.Fprintf(w, "\n  %s (old key %s): no delivery recorded\n", u, d.Keys[u].ID)
			problems = append(problems, u+": no delivery recorded")
			continue
		}
		delivered := len(r.Undelivered()) == 0
		fmt.Fprintf(w, "\n  %s, old key %s, new key %s\n", u, r.ID, dash(r.NewKeyID))
		for _, dl := range r.Deliveries {
			fmt.Fprintf(w, "    destination  %s\n                 %s\n", dl.Where, operator.DeliveryText(dl))
		}
		took := "kept the old key: its destination never got the new one"
		if !switched.IsZero() {
			took = "took the new key from its destination at " + switched.UTC().Format("15:04:05Z")
		}
		fmt.Fprintf(w, "    pipeline     %d jobs, %d failed; %s\n", calls, len(failures), took)
		old := "old key " + string(r.State)
		switch {
		case !delivered:
			old = "stays Active: the owner was told what is left, the admins which destination failed; the next run delivers"
		case r.Adoption != nil && r.Adoption.SwitchOver != "":
			old = fmt.Sprintf("off on %s after %d checks (new key last used %s), then %s", r.Adoption.SwitchOver, r.Adoption.Checks, r.Adoption.NewLastUsed, r.State)
		}
		fmt.Fprintf(w, "    old key      %s\n", old)
		switch {
		case u == "mobile-release" && (delivered || !switched.IsZero()):
			problems = append(problems, u+": want the old key kept Active while GitLab is down")
		case u != "mobile-release" && (!delivered || r.Adoption == nil || r.Adoption.SwitchOver != ledger.SwitchEvidence || switched.IsZero()):
			problems = append(problems, u+": want the key delivered, taken up by the pipeline and switched over on evidence")
		}
	}
	fmt.Fprintln(w, "\n"+leak)
	return problems
}
