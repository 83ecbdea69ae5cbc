package bench

// The organization bench: find's discovery in organization mode over an
// emulated organization of member accounts, through the fault proxy with
// RoleChecks on, next to the single-account discovery over as many users.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/internal/memberstack"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// OrgOptions shapes the organization bench.
type OrgOptions struct {
	Accounts int     // member accounts
	Users    int     // users in each member account
	DuePct   float64 // percent of each account's users due
	Workers  int     // seeding goroutines over all accounts (moto is one process)
	// Groups > 1 also runs that many finds at once, each on a share of
	// the accounts: an estimate of assessing accounts concurrently.
	Groups int
}

// OrgResult is the organization bench's measurement.
type OrgResult struct {
	Members        int            `json:"memberAccounts"`
	UsersPerMember int            `json:"usersPerMember"`
	DuePerMember   int            `json:"duePerMember"`
	Users          int            `json:"users"`
	Due            int            `json:"due"`
	Seed           time.Duration  `json:"seedNs"` // not in Wall
	Wall           time.Duration  `json:"wallNs"` // Finder.Handle, as the daily run
	CPU            time.Duration  `json:"cpuNs"`  // this process: keyrotor and the in-process proxy
	Attempts       int            `json:"handleAttempts"`
	Planned        int            `json:"plannedItems"`
	AccountsPlan   int            `json:"accountsPlanned"`
	Calls          map[string]int `json:"callsByOperation"` // service:operation
	Total          int            `json:"totalCalls"`
	AssumeRole     int            `json:"assumeRoleCalls"`
	OrgCalls       int            `json:"organizationsCalls"`
	// IAMPerMember: IAM calls in each member account, min/median/max.
	IAMPerMember Dist `json:"iamCallsPerMember"`
	HubIAM       int  `json:"hubIamCalls"` // the hub's own account (no users)
	// Deviations lists the accounts whose IAM calls exceed 3 + 2 x due
	// (+1 ListAccountAliases with items), differ from the exact
	// composition (GenerateCredentialReport 1, GetCredentialReport 1,
	// ListAccessKeys and ListUserTags one per due user, the alias call),
	// or that were reached by other than one assumed session.
	Deviations []string `json:"deviations"`
	// Timing: listing the accounts, then each account one after another
	// (role assumption, assessment, alias), min/median/max and sum.
	ListAccounts time.Duration `json:"listAccountsNs"`
	AssumeTime   DurDist       `json:"assumeRole"`
	// Single is the single-account discovery over as many users in one
	// account (this run's discovery figure, or measured here).
	// GroupsWall: Groups finds at once, each on every Groups-th account.
	Groups       int           `json:"concurrentFinds,omitempty"`
	GroupsWall   time.Duration `json:"concurrentFindsWallNs,omitempty"`
	GroupsCalls  int           `json:"concurrentFindsCalls,omitempty"`
	Single       *Discovery    `json:"singleAccount,omitempty"`
	SingleSource string        `json:"singleAccountSource,omitempty"`
	Problems     []string      `json:"problems,omitempty"`
}

// Dist is min/median/max of counts.
type Dist struct {
	N                int `json:"n"`
	Min, Median, Max int
}

// DurDist is min/median/max and the sum of durations.
type DurDist struct {
	N                int `json:"n"`
	Min, Median, Max time.Duration
	Sum              time.Duration
}

func distOf(xs []int) Dist {
	if len(xs) == 0 {
		return Dist{}
	}
	s := append([]int(nil), xs...)
	sort.Ints(s)
	return Dist{N: len(s), Min: s[0], Median: s[len(s)/2], Max: s[len(s)-1]}
}

func durDistOf(xs []time.Duration) DurDist {
	if len(xs) == 0 {
		return DurDist{}
	}
	s := append([]time.Duration(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	d := DurDist{N: len(s), Min: s[0], Median: s[len(s)/2], Max: s[len(s)-1]}
	for _, x := range s {
		d.Sum += x
	}
	return d
}

func (d Dist) String() string { return fmt.Sprintf("%d / %d / %d", d.Min, d.Median, d.Max) }

func (d DurDist) String() string {
	r := func(x time.Duration) time.Duration { return x.Round(time.Millisecond) }
	return fmt.Sprintf("%v / %v / %v (sum %v)", r(d.Min), r(d.Median), r(d.Max), r(d.Sum))
}

// timedOrg wraps find's Organization to time the listing and each
// account's turn: find asks for an account's IAM client when it starts
// that account, so the time between two IAM calls is one account's work.
type timedOrg struct {
	rotation.Organization
	mu     sync.Mutex
	starts []time.Time
	assume []time.Duration
	list   time.Duration
}

func (t *timedOrg) Accounts(ctx context.Context) ([]org.Account, error) {
	t0 := time.Now()
	a, err := t.Organization.Accounts(ctx)
	t.list = time.Since(t0)
	return a, err
}

func (t *timedOrg) IAM(ctx context.Context, account string) (rotation.FindIAM, error) {
	t0 := time.Now()
	c, err := t.Organization.IAM(ctx, account)
	t.mu.Lock()
	t.starts = append(t.starts, t0)
	t.assume = append(t.assume, time.Since(t0))
	t.mu.Unlock()
	return c, err
}

// SeedOrg creates, in each member account (cfgs, acting there), users of
// whom duePct percent hold a key 120 days old and the rest one 10 days
// old, every key last used a day ago, as SeedScale does in one account;
// the work of every account goes through one pool of workers. It returns
// the due count per account.
func SeedOrg(ctx context.Context, cfgs []aws.Config, clock Clock, users int, duePct float64, workers int) (int, error) {
	nDue := int(float64(users) * duePct / 100)
	type key struct{ id, secret string }
	keys := make([][]key, len(cfgs))
	apis := make([]*iam.Client, len(cfgs))
	for a, cfg := range cfgs {
		keys[a] = make([]key, users)
		apis[a] = iam.NewFromConfig(cfg)
		// Assume each account's role once, before the pool starts.
		if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
			return 0, err
		}
	}
	type job struct{ a, i int }
	parallel := func(from, to int, work func(a, i int) error) error {
		var wg sync.WaitGroup
		var once sync.Once
		var first error
		next := make(chan job)
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range next {
					if err := work(j.a, j.i); err != nil {
						once.Do(func() { first = err })
					}
				}
			}()
		}
		// Interleave the accounts: every account seeds at once.
		for i := from; i < to; i++ {
			for a := range cfgs {
				next <- job{a, i}
			}
		}
		close(next)
		wg.Wait()
		return first
	}
	create := func(a, i int) error {
		name := userName(i)
		if _, err := apis[a].CreateUser(ctx, &iam.CreateUserInput{UserName: aws.String(name),
			Tags: []types.Tag{{Key: aws.String("email"), Value: aws.String(name + "@example.com")}}}); err != nil {
			return err
		}
		k, err := apis[a].CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(name)})
		if err != nil {
			return err
		}
		keys[a][i] = key{aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)}
		return nil
	}
	use := func(a, i int) error {
		cfg := cfgs[a].Copy()
		cfg.Credentials = credentials.NewStaticCredentialsProvider(keys[a][i].id, keys[a][i].secret, "")
		_, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		return err
	}
	defer clock(0)
	for _, step := range []struct {
		at       time.Duration
		from, to int
		work     func(a, i int) error
	}{
		{-120 * 24 * time.Hour, 0, nDue, create},
		{-10 * 24 * time.Hour, nDue, users, create},
		{-24 * time.Hour, 0, users, use},
	} {
		if err := clock(step.at); err != nil {
			return 0, err
		}
		if err := parallel(step.from, step.to, step.work); err != nil {
			return 0, fmt.Errorf("seed %d accounts x %d users: %w", len(cfgs), users, err)
		}
	}
	return nDue, clock(0)
}

// readyReport generates an account's credential report until IAM has it
// (before the measurement, like a prior run's).
func readyReport(ctx context.Context, cfg aws.Config) error {
	api := iam.NewFromConfig(cfg)
	for i := 0; ; i++ {
		if _, err := api.GenerateCredentialReport(ctx, &iam.GenerateCredentialReportInput{}); err != nil {
			return err
		}
		if _, err := api.GetCredentialReport(ctx, &iam.GetCredentialReportInput{}); err == nil {
			return nil
		} else if i > 100 {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// OrgDiscovery builds an organization of o.Accounts member accounts with
// o.Users users each in moto at endpoint (its default account, base's, the
// management account and hub), gives each member the role KeyRotorMember,
// and measures one run of find in organization mode as the daily run (scope: every
// account) through a fault proxy with RoleChecks on.
func OrgDiscovery(ctx context.Context, base aws.Config, endpoint string, clock Clock, o OrgOptions) (*OrgResult, error) {
	t0 := time.Now()
	spec := make([]memberstack.MemberSpec, o.Accounts)
	for i := range spec {
		spec[i] = memberstack.MemberSpec{Name: fmt.Sprintf("member-%02d", i+1)}
	}
	mo, err := memberstack.NewOrg(ctx, base, "keyrotor-bench-seed", spec)
	if err != nil {
		return nil, fmt.Errorf("emulated organization: %w", err)
	}
	cfgs := make([]aws.Config, len(mo.Members))
	member := map[string]bool{}
	for i, m := range mo.Members {
		cfgs[i] = m.Config
		member[m.ID] = true
		// The member role find assumes (the proxy checks only that it
		// exists; moto checks no trust policy).
		trust := fmt.Sprintf(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::%s:root"},"Action":"sts:AssumeRole"}]}`, mo.Management)
		if _, err := iam.NewFromConfig(m.Config).CreateRole(ctx, &iam.CreateRoleInput{RoleName: aws.String(config.MemberRoleName), AssumeRolePolicyDocument: aws.String(trust)}); err != nil {
			return nil, fmt.Errorf("create %s in %s: %w", config.MemberRoleName, m.ID, err)
		}
	}
	nDue, err := SeedOrg(ctx, cfgs, clock, o.Users, o.DuePct, o.Workers)
	if err != nil {
		return nil, err
	}
	// Every account's report ready, the hub's too.
	var wg sync.WaitGroup
	errs := make([]error, len(cfgs)+1)
	sem := make(chan struct{}, 8)
	for i, cfg := range append(append([]aws.Config(nil), cfgs...), base) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = readyReport(ctx, cfg)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("credential reports: %w", err)
	}
	r := &OrgResult{Members: len(mo.Members), UsersPerMember: o.Users, DuePerMember: nDue, Users: o.Users * len(mo.Members), Due: nDue * len(mo.Members), Seed: time.Since(t0)}

	p, err := faultproxy.New(endpoint)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	p.RoleChecks = true
	cfg, err := awsconf.Load(ctx, awsconf.Options{Endpoint: p.URL(), Region: "us-east-1", StaticTestCredentials: true})
	if err != nil {
		return nil, err
	}
	c := config.Default()
	c.OrgScope, c.HomeAccount = []string{config.ScopeAll}, mo.Management
	var tOrg *timedOrg
	var plan *rotation.Plan
	var cpu0 time.Duration
	var start time.Time
	for {
		// Only the last attempt counts (the others found a report not ready).
		p.ResetLog()
		cpu0, start = cpuTime(), time.Now()
		tOrg = &timedOrg{Organization: rotation.NewOrgAccess(cfg, c, "find")}
		f := &rotation.Finder{IAM: iam.NewFromConfig(cfg), Config: c, Now: time.Now, Org: tOrg}
		r.Attempts++
		// The daily run's discovery: find itself changes nothing (the
		// state machine acts on its plan), and a dry run would also read
		// every user's tags (the audit's cost: the discovery bench).
		plan, err = f.Handle(ctx, rotation.FindInput{Request: []byte(`{}`), ExecutionName: "bench-org"})
		var nr *failures.ReportNotReadyError
		if errors.As(err, &nr) && r.Attempts < 50 { // the orchestrator's retry
			time.Sleep(200 * time.Millisecond)
			continue
		}
		break
	}
	end := time.Now()
	r.Wall, r.CPU = end.Sub(start), cpuTime()-cpu0
	if err != nil {
		return nil, fmt.Errorf("find in organization mode: %w", err)
	}
	r.Planned = len(plan.Items) // the inline copy, cut past 16 KiB: the counts below
	if plan.Counts.Rotate+plan.Counts.Retire > r.Planned {
		r.Planned = plan.Counts.Rotate + plan.Counts.Retire
	}
	items := map[string]int{} // account -> items ("" : the hub)
	for _, ap := range plan.Accounts {
		if ap.Status == rotation.AccountPlanned {
			r.AccountsPlan++
		} else {
			r.Problems = append(r.Problems, fmt.Sprintf("account %s %s: %s", ap.Account, ap.Status, ap.Reason))
		}
		items[ap.Account] = ap.Items
	}

	// The calls, by operation and by the account they acted in.
	r.Calls = map[string]int{}
	iamBy := map[string]int{}
	keysBy := map[string]map[string]bool{}
	opsBy := map[string]map[string]int{}
	for _, call := range p.Log() {
		r.Calls[call.Service+":"+call.Operation]++
		r.Total++
		switch call.Service {
		case "sts":
			if call.Operation == "AssumeRole" {
				r.AssumeRole++
			}
		case "organizations":
			r.OrgCalls++
		case "iam":
			acct := p.AccountOf(call.AccessKeyID)
			iamBy[acct]++
			if opsBy[acct] == nil {
				opsBy[acct] = map[string]int{}
			}
			opsBy[acct][call.Operation]++
			if keysBy[acct] == nil {
				keysBy[acct] = map[string]bool{}
			}
			keysBy[acct][call.AccessKeyID] = true
		}
	}
	var perMember []int
	for _, m := range mo.Members {
		n := iamBy[m.ID]
		perMember = append(perMember, n)
		alias := 0
		if items[m.ID] > 0 {
			alias = 1 // iam:ListAccountAliases, for the owners' mails
		}
		budget := 3 + 2*nDue + alias
		if n > budget {
			r.Deviations = append(r.Deviations, fmt.Sprintf("account %s: %d IAM calls %v; budget 3 + 2 x %d due + %d alias = %d", m.ID, n, opsBy[m.ID], nDue, alias, budget))
		}
		// What each account should cost exactly: one report, one page
		// of the user listing, two live checks per due user, the alias
		// where there are items.
		want := map[string]int{"GenerateCredentialReport": 1, "GetCredentialReport": 1, "ListUsers": 1, "ListAccessKeys": nDue, "ListUserTags": nDue, "ListAccountAliases": alias}
		for op, k := range opsBy[m.ID] {
			if k != want[op] {
				r.Deviations = append(r.Deviations, fmt.Sprintf("account %s: %d iam:%s calls; want %d", m.ID, k, op, want[op]))
			}
		}
		for op, k := range want {
			if k > 0 && opsBy[m.ID][op] == 0 {
				r.Deviations = append(r.Deviations, fmt.Sprintf("account %s: no iam:%s call; want %d", m.ID, op, k))
			}
		}
		if k := len(keysBy[m.ID]); k != 1 {
			r.Deviations = append(r.Deviations, fmt.Sprintf("account %s: reached with %d sessions; want 1 (one AssumeRole)", m.ID, k))
		}
		if items[m.ID] != nDue {
			r.Problems = append(r.Problems, fmt.Sprintf("account %s: %d items planned; want %d", m.ID, items[m.ID], nDue))
		}
	}
	r.IAMPerMember = distOf(perMember)
	r.HubIAM = iamBy[mo.Management]
	if r.HubIAM > 3 {
		r.Deviations = append(r.Deviations, fmt.Sprintf("hub account %s (no users): %d IAM calls; want at most 3", mo.Management, r.HubIAM))
	}
	for acct := range iamBy {
		if acct != mo.Management && !member[acct] {
			r.Deviations = append(r.Deviations, fmt.Sprintf("%d IAM calls in account %s, outside the organization", iamBy[acct], acct))
		}
	}
	if r.AssumeRole != len(mo.Members) {
		r.Problems = append(r.Problems, fmt.Sprintf("%d sts:AssumeRole calls; want 1 per member account, %d", r.AssumeRole, len(mo.Members)))
	}
	if r.Planned != r.Due {
		r.Problems = append(r.Problems, fmt.Sprintf("%d items planned; want the %d due users", r.Planned, r.Due))
	}
	if r.Attempts > 1 {
		r.Problems = append(r.Problems, fmt.Sprintf("find ran %d times (a credential report not ready): the figures are the last run's", r.Attempts))
	}

	// find assesses a stage's accounts a few at a time
	// (rotation.AccountWorkers), so accounts' turns overlap: only the
	// listing and the role assumptions are timed one by one.
	r.ListAccounts = tOrg.list
	r.AssumeTime = durDistOf(tOrg.assume)

	// What assessing accounts concurrently could gain, without changing
	// find: Groups finds at once, each restricted (request "accounts") to
	// every Groups-th account, the hub among them. Each lists the
	// organization once more.
	if o.Groups > 1 {
		groups := make([][]string, o.Groups)
		ids := []string{mo.Management}
		for _, m := range mo.Members {
			ids = append(ids, m.ID)
		}
		for i, id := range ids {
			groups[i%o.Groups] = append(groups[i%o.Groups], id)
		}
		p.ResetLog()
		t0 := time.Now()
		errs := make([]error, o.Groups)
		var wg sync.WaitGroup
		for g, accts := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				f := &rotation.Finder{IAM: iam.NewFromConfig(cfg), Config: c, Now: time.Now, Org: rotation.NewOrgAccess(cfg, c, "find")}
				in := fmt.Sprintf(`{"accounts":["%s"]}`, joinWith(accts, `","`))
				_, errs[g] = f.Handle(ctx, rotation.FindInput{Request: []byte(in), ExecutionName: "bench-org-groups"})
			}()
		}
		wg.Wait()
		r.GroupsWall, r.Groups, r.GroupsCalls = time.Since(t0), o.Groups, len(p.Log())
		if err := errors.Join(errs...); err != nil {
			r.Problems = append(r.Problems, fmt.Sprintf("%d concurrent finds: %v", o.Groups, err))
		}
	}
	return r, nil
}

// print writes the organization rows of the report.
func (r *OrgResult) print(w io.Writer) {
	p := fmt.Sprintf("organization %d accounts x %d users (%d due each)", r.Members, r.UsersPerMember, r.DuePerMember)
	fmt.Fprintf(w, "%s: find (daily run) status\t%d of %d accounts planned (the members and the hub), %d items\tall planned, %d items\t%s\n", p, r.AccountsPlan, r.Members+1, r.Planned, r.Due,
		check(len(r.Problems) == 0))
	fmt.Fprintf(w, "%s: wall time\t%v (seeding %v not in it)\t(measure)\t\n", p, r.Wall.Round(time.Millisecond), r.Seed.Round(100*time.Millisecond))
	fmt.Fprintf(w, "%s: CPU (keyrotor + in-process proxy)\t%v\t(measure)\t\n", p, r.CPU.Round(time.Millisecond))
	var ops []string
	for _, op := range SortedOps(r.Calls) {
		ops = append(ops, fmt.Sprintf("%s=%d", op, r.Calls[op]))
	}
	fmt.Fprintf(w, "%s: AWS calls\t%d (%s)\t(measure)\t\n", p, r.Total, joinSpace(ops))
	fmt.Fprintf(w, "%s: IAM calls per member min/median/max\t%s (hub %d)\t<= 3 + 2 x %d + 1 alias = %d (exactly 3 + 2 x due + 1: the report 2, ListUsers 1)\t%s\n", p, r.IAMPerMember, r.HubIAM, r.DuePerMember, 4+2*r.DuePerMember, check(len(r.Deviations) == 0))
	fmt.Fprintf(w, "%s: sts:AssumeRole / Organizations calls\t%d / %d\t1 per member (%d)\t%s\n", p, r.AssumeRole, r.OrgCalls, r.Members, check(r.AssumeRole == r.Members))
	fmt.Fprintf(w, "%s: list accounts / AssumeRole min/median/max\t%v / %s\t(measure: accounts assessed %d at a time)\t\n", p, r.ListAccounts.Round(time.Millisecond), r.AssumeTime, rotation.AccountWorkers)
	if r.Groups > 1 {
		fmt.Fprintf(w, "%s: %d finds at once, each on 1/%d of the accounts (estimate of concurrent accounts)\t%v, %d calls (%.1fx the speed of one after another)\t(measure)\t\n", p, r.Groups, r.Groups, r.GroupsWall.Round(time.Millisecond), r.GroupsCalls,
			float64(r.Wall)/float64(max(r.GroupsWall, 1)))
	}
	if s := r.Single; s != nil {
		fmt.Fprintf(w, "%s: vs one account of %d users (%s)\t%v vs %v (%.1fx), %d vs %d calls\t(comparison)\t\n", p, s.Users, r.SingleSource, r.Wall.Round(time.Millisecond), s.Wall.Round(time.Millisecond),
			float64(r.Wall)/float64(max(s.Wall, 1)), r.Total, s.Total)
	}
	for _, d := range r.Deviations {
		fmt.Fprintf(w, "%s: deviation\t%s\t\tMISSED\n", p, d)
	}
	for _, d := range r.Problems {
		fmt.Fprintf(w, "%s: problem\t%s\t\tMISSED\n", p, d)
	}
}

func joinSpace(xs []string) string { return joinWith(xs, " ") }

func joinWith(xs []string, sep string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += sep
		}
		out += x
	}
	return out
}
