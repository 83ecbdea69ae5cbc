package rotation

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/org"
)

// Organization is how find reaches the accounts of the organization mode.
type Organization interface {
	// Accounts lists the accounts in scope, ordered by stage.
	Accounts(ctx context.Context) ([]org.Account, error)
	// IAM returns the IAM client acting in account (its member role
	// assumed; keyrotor's own account directly), or an
	// *failures.AccountUnreachableError with the fix.
	IAM(ctx context.Context, account string) (FindIAM, error)
	// Home is the account keyrotor runs in.
	Home() string
}

// AliasAPI reads an account's alias.
type AliasAPI interface {
	ListAccountAliases(ctx context.Context, in *iam.ListAccountAliasesInput, optFns ...func(*iam.Options)) (*iam.ListAccountAliasesOutput, error)
}

// OrgAccess is the Organization of a deployment: Organizations for the
// accounts, the member roles for IAM.
type OrgAccess struct {
	Organizations org.API
	Sessions      *org.Sessions
	Config        config.Config
}

// NewOrgAccess returns the organization mode of a function whose AWS
// configuration is home (the hub), or nil when cfg is single-account.
func NewOrgAccess(home aws.Config, cfg config.Config, function string) Organization {
	if !cfg.Organization() {
		return nil
	}
	return &OrgAccess{
		Organizations: organizations.NewFromConfig(home),
		Sessions:      &org.Sessions{Home: home, HomeAccount: cfg.HomeAccount, STS: sts.NewFromConfig(home), SessionName: "keyrotor-" + function},
		Config:        cfg,
	}
}

// Accounts implements Organization.
func (o *OrgAccess) Accounts(ctx context.Context) ([]org.Account, error) {
	return org.Accounts(ctx, o.Organizations, o.Config)
}

// IAM implements Organization.
func (o *OrgAccess) IAM(ctx context.Context, account string) (FindIAM, error) {
	c, err := o.Sessions.Reach(ctx, account)
	if err != nil {
		return nil, err
	}
	return iam.NewFromConfig(c), nil
}

// Home implements Organization.
func (o *OrgAccess) Home() string { return o.Config.HomeAccount }

// planOrganization plans every account in scope, stage by stage: a stage
// is planned only when every earlier stage is finished (see stageBusy).
// One account's failure never stops another's plan: it is reported in
// plan.Accounts with its fix, and holds the later stages.
func (f *Finder) planOrganization(ctx context.Context, plan *Plan, req Request, in FindInput, now, asOf time.Time) ([]*Assessment, error) {
	accounts, err := f.Org.Accounts(ctx)
	if err != nil {
		return nil, err
	}
	if len(req.Accounts) > 0 {
		var keep []org.Account
		for i, id := range req.Accounts {
			j := slices.IndexFunc(accounts, func(a org.Account) bool { return a.ID == id })
			if j < 0 {
				return nil, &failures.InvalidInputError{Field: fmt.Sprintf("accounts[%d]", i), Msg: fmt.Sprintf("account %s is not in this deployment's organization scope (organizationScope, organizationExclude)", id)}
			}
			keep = append(keep, accounts[j])
		}
		accounts = keep
	}
	all := map[string]*ledger.Record{}
	if f.Records != nil {
		if all, err = f.Records.All(ctx); err != nil {
			return nil, err
		}
	}
	if !req.DryRun {
		if err := f.releaseDead(ctx, all, in, now); err != nil {
			return nil, err
		}
	}
	home := f.Org.Home()
	key := func(account string) string { // Item.Account: "" for keyrotor's own
		if account == home {
			return ""
		}
		return account
	}
	byAccount := map[string]map[string]*ledger.Record{}
	for id, rec := range all {
		if byAccount[rec.Account] == nil {
			byAccount[rec.Account] = map[string]*ledger.Record{}
		}
		byAccount[rec.Account][id] = rec
	}
	plan.Accounts = []AccountPlan{}
	plan.Counts.Accounts = len(accounts)
	var out []*Assessment
	var notReady error
	found := map[string]bool{}
	hold := "" // why the later stages wait
	for i := 0; i < len(accounts); {
		stage := accounts[i].Stage
		j := i
		for j < len(accounts) && accounts[j].Stage == stage {
			j++
		}
		var busy []string
		var assessed []accountAssessment
		if hold == "" {
			assessed = f.assessStage(ctx, accounts[i:j], byAccount, key, asOf, req.Users, req.DryRun)
		}
		for n, acct := range accounts[i:j] {
			ap := AccountPlan{Account: acct.ID, Alias: acct.Name, Stage: stage}
			if hold != "" {
				ap.Status, ap.Reason = AccountWaiting, hold
				plan.Accounts = append(plan.Accounts, ap)
				plan.Counts.Waiting++
				continue
			}
			k := key(acct.ID)
			recs := byAccount[k]
			sub, a, err := assessed[n].sub, assessed[n].a, assessed[n].err
			client := sub.IAM
			items, attention := len(plan.Items), len(plan.Attention)
			if err == nil {
				a.Account = k
				err = sub.planAccount(ctx, plan, a, req, in, now)
			}
			if err != nil {
				var nr *failures.ReportNotReadyError
				if errors.As(err, &nr) {
					// Tried again with every account's report on its way.
					notReady = err
				}
				plan.Items, plan.Attention = plan.Items[:items], plan.Attention[:attention]
				ap.Status, ap.Reason = accountFailure(acct.ID, err)
				if ap.Status == AccountUnreachable {
					plan.Counts.Unreachable++
				}
				plan.Accounts = append(plan.Accounts, ap)
				busy = append(busy, fmt.Sprintf("account %s %s", acct.ID, ap.Status))
				continue
			}
			for _, r := range a.Rows {
				found[strings.ToLower(r.User)] = true
			}
			ap.Status, ap.Users, ap.Items = AccountPlanned, len(a.Rows), len(plan.Items)-items
			if ap.Items > 0 || len(plan.Attention) > attention {
				// Named in the owners' mails: the alias people know.
				if alias := accountAlias(ctx, client); alias != "" {
					ap.Alias = alias
				}
				for n := items; n < len(plan.Items); n++ {
					plan.Items[n].AccountAlias = ap.Alias
				}
			}
			a.AccountAlias = ap.Alias
			out = append(out, a)
			plan.Accounts = append(plan.Accounts, ap)
			if why := stageBusy(ap, len(plan.Attention)-attention, recs); why != "" {
				busy = append(busy, fmt.Sprintf("account %s: %s", acct.ID, why))
			}
		}
		if len(busy) > 0 && hold == "" && j < len(accounts) {
			if len(busy) > 3 {
				busy = append(busy[:3], fmt.Sprintf("and %d more", len(busy)-3))
			}
			hold = fmt.Sprintf("stage %d waits for stage %d to finish (%s)", accounts[j].Stage, stage, strings.Join(busy, "; "))
		}
		i = j
	}
	if notReady != nil {
		return nil, notReady
	}
	for i, u := range req.Users {
		if !found[strings.ToLower(u)] {
			return nil, &failures.InvalidInputError{Field: fmt.Sprintf("users[%d]", i), Msg: fmt.Sprintf("no IAM user named %q in the credential report of any planned account (a user created in the last 4 hours may not be in it yet)", u)}
		}
	}
	return out, nil
}

// accountAssessment is one account's assessment (or why it failed), and
// the finder acting in that account.
type accountAssessment struct {
	sub Finder
	a   *Assessment
	err error
}

// AccountWorkers is how many accounts find assesses at once by default:
// each account's IAM calls are throttled by its own quotas, and the
// assessments are independent (the plan is then put together in order).
const AccountWorkers = 4

// assessStage assesses a stage's accounts, a few at once. An account that
// failed for a transient reason (throttling beyond the SDK's retries, a
// 5xx, a timeout) is assessed once more after the stage's others: one
// flaky answer does not cost the account its day. allTags: a dry run
// reads every user's tags (through the member role, as every other call).
func (f *Finder) assessStage(ctx context.Context, accounts []org.Account, byAccount map[string]map[string]*ledger.Record,
	key func(string) string, asOf time.Time, users []string, allTags bool) []accountAssessment {
	out := make([]accountAssessment, len(accounts))
	one := func(n int) {
		acct := accounts[n]
		sub := *f
		sub.Org, sub.Records = nil, staticRecords(byAccount[key(acct.ID)])
		client, err := f.Org.IAM(ctx, acct.ID)
		var a *Assessment
		if err == nil {
			sub.IAM = client
			a, err = sub.assess(ctx, asOf, users, false, allTags)
		}
		out[n] = accountAssessment{sub: sub, a: a, err: err}
	}
	workers := f.AccountWorkers
	if workers <= 0 {
		workers = AccountWorkers
	}
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(workers, len(accounts)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range next {
				one(n)
			}
		}()
	}
	for n := range accounts {
		next <- n
	}
	close(next)
	wg.Wait()
	for n := range out {
		switch failures.Boundary(org.Denied(accounts[n].ID, out[n].err)).(type) {
		case *failures.ThrottlingError, *failures.TransientError:
			one(n)
		}
	}
	return out
}

// stageBusy says why an account keeps its stage from being finished, or
// "": a stage is finished when none of its accounts has a key due (an
// item), a rotation needing attention, or a rotation in progress before its
// deactivation (the owner not yet switched: in grace is finished).
func stageBusy(ap AccountPlan, attention int, recs map[string]*ledger.Record) string {
	var why []string
	if ap.Items > 0 {
		why = append(why, fmt.Sprintf("%d rotations planned", ap.Items))
	}
	if attention > 0 {
		why = append(why, fmt.Sprintf("%d need attention", attention))
	}
	open := 0
	for _, r := range recs {
		if r.State.InFlight() && r.State != ledger.Deactivated {
			open++
		}
	}
	if open > 0 && ap.Items == 0 {
		why = append(why, fmt.Sprintf("%d rotations in progress", open))
	}
	return strings.Join(why, ", ")
}

// accountFailure is how an account that could not be planned is reported.
func accountFailure(account string, err error) (status, reason string) {
	err = org.Denied(account, err)
	var ue *failures.AccountUnreachableError
	if errors.As(err, &ue) {
		return AccountUnreachable, ue.Msg
	}
	var nr *failures.ReportNotReadyError
	if errors.As(err, &nr) {
		return AccountFailed, "its credential report is being generated: planned when find is retried"
	}
	return AccountFailed, fmt.Sprintf("%s (%s): planned again by the next run", failures.Name(failures.Boundary(err)), failures.APICodeOr(err, "error"))
}

// accountAlias is the account's IAM alias, or "" (none, or not allowed).
func accountAlias(ctx context.Context, client FindIAM) string {
	al, ok := client.(AliasAPI)
	if !ok {
		return ""
	}
	out, err := al.ListAccountAliases(ctx, &iam.ListAccountAliasesInput{})
	if err != nil || len(out.AccountAliases) == 0 {
		return ""
	}
	return out.AccountAliases[0]
}

// staticRecords lists a fixed set of records (one account's).
type staticRecords map[string]*ledger.Record

func (s staticRecords) All(context.Context) (map[string]*ledger.Record, error) {
	if s == nil {
		return map[string]*ledger.Record{}, nil
	}
	return s, nil
}
