// Package org is the organization mode's view of AWS Organizations: which
// accounts keyrotor rotates, in which stage, and how the hub reaches each
// one (the member role, assumed with sts:AssumeRole). See
// docs/organizations.md.
package org

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
)

// Account is an account keyrotor rotates in organization mode.
type Account struct {
	ID   string `json:"id"`
	Name string `json:"name,omitempty"` // the organization's name for it
	// Stage is the account's rollout stage, from 1: a later stage runs
	// only once the earlier ones finished cleanly.
	Stage int `json:"stage"`
}

// API is the part of Organizations the find step calls (read-only).
type API interface {
	organizations.ListAccountsAPIClient
	organizations.ListAccountsForParentAPIClient
	organizations.ListOrganizationalUnitsForParentAPIClient
}

var _ API = (*organizations.Client)(nil)

// Accounts lists the ACTIVE accounts of the organization in cfg's scope,
// minus the excluded ones, with their stage, ordered by stage then id. An
// account id in the scope or a stage that is not an active member is an
// error naming it: a typo must not silently shrink the rollout.
func Accounts(ctx context.Context, api API, cfg config.Config) ([]Account, error) {
	all := map[string]orgtypes.Account{}
	p := organizations.NewListAccountsPaginator(api, &organizations.ListAccountsInput{})
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			return nil, orgError("list the organization's accounts", err)
		}
		for _, a := range out.Accounts {
			if active(a) {
				all[aws.ToString(a.Id)] = a
			}
		}
	}
	r := &resolver{api: api, all: all, memo: map[string][]string{}}
	var scope []string
	if len(cfg.OrgScope) == 1 && cfg.OrgScope[0] == config.ScopeAll {
		for id := range all {
			scope = append(scope, id)
		}
	} else {
		for _, t := range cfg.OrgScope {
			ids, err := r.resolve(ctx, t, config.EnvOrgScope)
			if err != nil {
				return nil, err
			}
			scope = append(scope, ids...)
		}
	}
	stageOf := map[string]int{}
	for i, st := range cfg.OrgStages {
		for _, t := range st {
			ids, err := r.resolve(ctx, t, config.EnvOrgStages)
			if err != nil {
				return nil, err
			}
			for _, id := range ids {
				if _, ok := stageOf[id]; !ok {
					stageOf[id] = i + 1
				}
			}
		}
	}
	var out []Account
	seen := map[string]bool{}
	for _, id := range scope {
		if seen[id] || slices.Contains(cfg.OrgExclude, id) {
			continue
		}
		seen[id] = true
		st, ok := stageOf[id]
		if !ok {
			st = len(cfg.OrgStages) + 1 // in no stage: after all of them
			if len(cfg.OrgStages) == 0 {
				st = 1
			}
		}
		out = append(out, Account{ID: id, Name: aws.ToString(all[id].Name), Stage: st})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Stage != out[j].Stage {
			return out[i].Stage < out[j].Stage
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// active reports whether an account is an active member (State, or the
// older Status field).
func active(a orgtypes.Account) bool {
	if a.State != "" {
		return a.State == orgtypes.AccountStateActive
	}
	return a.Status == orgtypes.AccountStatusActive
}

type resolver struct {
	api  API
	all  map[string]orgtypes.Account
	memo map[string][]string
}

// resolve returns the active accounts a target names: itself (an account
// id), or every account under an OU or root, at any depth.
func (r *resolver) resolve(ctx context.Context, target, setting string) ([]string, error) {
	if ids, ok := r.memo[target]; ok {
		return ids, nil
	}
	var ids []string
	if config.IsAccountID(target) {
		if _, ok := r.all[target]; !ok {
			return nil, &failures.InvalidInputError{Field: setting, Msg: fmt.Sprintf("account %s is not an active account of this organization: "+
				"check the id, or remove it from the setting", target)}
		}
		ids = []string{target}
	} else {
		ap := organizations.NewListAccountsForParentPaginator(r.api, &organizations.ListAccountsForParentInput{ParentId: aws.String(target)})
		for ap.HasMorePages() {
			out, err := ap.NextPage(ctx)
			if err != nil {
				return nil, parentError(target, setting, err)
			}
			for _, a := range out.Accounts {
				if _, ok := r.all[aws.ToString(a.Id)]; ok {
					ids = append(ids, aws.ToString(a.Id))
				}
			}
		}
		op := organizations.NewListOrganizationalUnitsForParentPaginator(r.api, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(target)})
		for op.HasMorePages() {
			out, err := op.NextPage(ctx)
			if err != nil {
				return nil, parentError(target, setting, err)
			}
			for _, ou := range out.OrganizationalUnits {
				sub, err := r.resolve(ctx, aws.ToString(ou.Id), setting)
				if err != nil {
					return nil, err
				}
				ids = append(ids, sub...)
			}
		}
	}
	r.memo[target] = ids
	return ids, nil
}

func parentError(target, setting string, err error) error {
	switch failures.APICode(err) {
	case "ParentNotFoundException", "InvalidInputException":
		return &failures.InvalidInputError{Field: setting, Msg: fmt.Sprintf("%s is not an OU or root of this organization: check the id, or remove it from the setting", target)}
	}
	return orgError("list the accounts under "+target, err)
}

func orgError(what string, err error) error {
	switch failures.APICode(err) {
	case "AccessDeniedException", "AWSOrganizationsNotInUseException":
		return &failures.StepError{Msg: fmt.Sprintf("cannot %s (%s): deploy keyrotor in the organization's management account "+
			"or a delegated administrator account, with the organization mode's permissions (docs/organizations.md)", what, failures.APICode(err))}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// RoleARN is the member role's ARN in account, in the hub's partition.
func RoleARN(partition, account string) string {
	if partition == "" {
		partition = "aws"
	}
	return fmt.Sprintf("arn:%s:iam::%s:role/%s", partition, account, config.MemberRoleName)
}

// Sessions hands out the AWS configuration of an account: the hub's own for
// its home account, the member role's otherwise (assumed once, cached and
// refreshed before expiry by the SDK's credentials cache).
type Sessions struct {
	Home        aws.Config
	HomeAccount string
	Partition   string
	// STS assumes the member roles (the hub's STS client).
	STS stscreds.AssumeRoleAPIClient
	// SessionName names the role session in the member's CloudTrail (the
	// function's name).
	SessionName string
	// Role is the role assumed in member accounts (default
	// config.MemberRoleName; `keyrotor audit` may name another).
	Role string

	mu    sync.Mutex
	cache map[string]aws.Config
}

// Home reports whether account is the hub's own (reached without a role).
func (s *Sessions) IsHome(account string) bool { return account == "" || account == s.HomeAccount }

// Config returns the configuration that acts in account. Role assumption
// happens at the first call made with it; Reach checks it at once.
func (s *Sessions) Config(account string) aws.Config {
	if s.IsHome(account) {
		return s.Home
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[account]; ok {
		return c
	}
	if s.cache == nil {
		s.cache = map[string]aws.Config{}
	}
	c := s.Home.Copy()
	name := s.SessionName
	if name == "" {
		name = "keyrotor"
	}
	arn := RoleARN(s.Partition, account)
	if s.Role != "" {
		arn = strings.TrimSuffix(arn, config.MemberRoleName) + s.Role
	}
	c.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(s.STS, arn, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = name
	}))
	s.cache[account] = c
	return c
}

// Reach assumes the member role of account now (a no-op for the home
// account) and returns an *failures.AccountUnreachableError with the fix
// when it is refused.
func (s *Sessions) Reach(ctx context.Context, account string) (aws.Config, error) {
	c := s.Config(account)
	if s.IsHome(account) {
		return c, nil
	}
	if _, err := c.Credentials.Retrieve(ctx); err != nil {
		return c, Unreachable(account, "sts:AssumeRole", err)
	}
	return c, nil
}

// Unreachable names what keeps keyrotor out of account and the fix, when
// err is a denial (AccessDenied from STS, an SCP or the member role); other
// errors (throttling, 5xx) are returned as they are, to be retried.
func Unreachable(account, action string, err error) error {
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return err
	}
	code := ae.ErrorCode()
	switch {
	case action == "sts:AssumeRole" && (strings.Contains(code, "AccessDenied") || code == "InvalidClientTokenId" || code == "RegionDisabledException"):
		return &failures.AccountUnreachableError{Account: account, Msg: fmt.Sprintf("the hub may not assume %s (%s): deploy the member stack "+
			"(KeyRotorMember) in account %s, through the StackSet or with cdk deploy KeyRotorMember, with hubAccount set to this hub; "+
			"if it is deployed, check that no SCP denies sts:AssumeRole to this hub (docs/organizations.md)", config.MemberRoleName, code, account)}
	case strings.Contains(code, "AccessDenied") || code == "UnauthorizedOperation":
		also := ""
		if slices.Contains(credentialWrites, strings.ToLower(action)) {
			// The member role's own Denies (docs/security.md).
			also = "; or the member account protects this user (tagged exempt, or under the member stack's ExcludedUserPaths): " +
				"then tag the user exempt so find no longer plans it"
		}
		return &failures.AccountUnreachableError{Account: account, Msg: fmt.Sprintf("%s was denied in account %s (%s): an SCP or an out-of-date member stack "+
			"denies it; allow it to the %s role (redeploy the member stack from this version) (docs/organizations.md)%s", action, account, code, config.MemberRoleName, also)}
	}
	return err
}

// credentialWrites are the actions the member role denies on the users a
// member protects (infra: CredentialWriteActions), lowercased as Denied
// names them.
var credentialWrites = []string{"iam:createaccesskey", "iam:updateaccesskey", "iam:deleteaccesskey",
	"iam:createloginprofile", "iam:updateloginprofile", "iam:deleteloginprofile"}

// Denied turns an AWS access denial of a call made in account into an
// *failures.AccountUnreachableError naming the action and the fix (the
// action from the SDK's operation error, such as iam:ListAccessKeys);
// anything else is returned unchanged.
func Denied(account string, err error) error {
	var ue *failures.AccountUnreachableError
	if err == nil || errors.As(err, &ue) {
		return err
	}
	action := "a call"
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		action = strings.ToLower(strings.ReplaceAll(oe.ServiceID, " ", "")) + ":" + oe.OperationName
		if oe.ServiceID == "STS" && oe.OperationName == "AssumeRole" {
			action = "sts:AssumeRole"
		}
	}
	if strings.Contains(err.Error(), "AssumeRole") && strings.Contains(err.Error(), "failed to refresh cached credentials") {
		action = "sts:AssumeRole"
	}
	return Unreachable(account, action, err)
}
