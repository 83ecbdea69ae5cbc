package org

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/smithy-go"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/failures"
)

// fakeOrg is an organization: parents (root or OU) with accounts and OUs.
// It pages one entry at a time, so the paginators are exercised.
type fakeOrg struct {
	accounts map[string]orgtypes.AccountState // id -> state
	children map[string][]string              // parent -> account ids and OU ids
}

func page[T any](items []T, token *string) ([]T, *string) {
	i := 0
	if token != nil {
		fmt.Sscan(*token, &i)
	}
	if i >= len(items) {
		return nil, nil
	}
	if i+1 < len(items) {
		return items[i : i+1], aws.String(fmt.Sprint(i + 1))
	}
	return items[i : i+1], nil
}

func (f *fakeOrg) ListAccounts(_ context.Context, in *organizations.ListAccountsInput, _ ...func(*organizations.Options)) (*organizations.ListAccountsOutput, error) {
	var all []orgtypes.Account
	for _, id := range sortedIDs(f.accounts) {
		all = append(all, orgtypes.Account{Id: aws.String(id), Name: aws.String("name-" + id), State: f.accounts[id]})
	}
	p, next := page(all, in.NextToken)
	return &organizations.ListAccountsOutput{Accounts: p, NextToken: next}, nil
}

func (f *fakeOrg) ListAccountsForParent(_ context.Context, in *organizations.ListAccountsForParentInput, _ ...func(*organizations.Options)) (*organizations.ListAccountsForParentOutput, error) {
	kids, ok := f.children[aws.ToString(in.ParentId)]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ParentNotFoundException", Message: "no such parent"}
	}
	var accts []orgtypes.Account
	for _, k := range kids {
		if config.IsAccountID(k) {
			accts = append(accts, orgtypes.Account{Id: aws.String(k)})
		}
	}
	p, next := page(accts, in.NextToken)
	return &organizations.ListAccountsForParentOutput{Accounts: p, NextToken: next}, nil
}

func (f *fakeOrg) ListOrganizationalUnitsForParent(_ context.Context, in *organizations.ListOrganizationalUnitsForParentInput, _ ...func(*organizations.Options)) (*organizations.ListOrganizationalUnitsForParentOutput, error) {
	kids, ok := f.children[aws.ToString(in.ParentId)]
	if !ok {
		return nil, &smithy.GenericAPIError{Code: "ParentNotFoundException", Message: "no such parent"}
	}
	var ous []orgtypes.OrganizationalUnit
	for _, k := range kids {
		if strings.HasPrefix(k, "ou-") {
			ous = append(ous, orgtypes.OrganizationalUnit{Id: aws.String(k)})
		}
	}
	p, next := page(ous, in.NextToken)
	return &organizations.ListOrganizationalUnitsForParentOutput{OrganizationalUnits: p, NextToken: next}, nil
}

func sortedIDs(m map[string]orgtypes.AccountState) []string {
	var ids []string
	for id := range m {
		ids = append(ids, id)
	}
	for i := range ids {
		for j := i + 1; j < len(ids); j++ {
			if ids[j] < ids[i] {
				ids[i], ids[j] = ids[j], ids[i]
			}
		}
	}
	return ids
}

const (
	hub, dev1, dev2, stg, prod, gone = "100000000000", "200000000001", "200000000002", "300000000000", "400000000000", "500000000000"
	root, ouDev, ouDevTeam, ouStg    = "r-ab12", "ou-ab12-dev00000", "ou-ab12-devteam0", "ou-ab12-stg00000"
	ouProd                           = "ou-ab12-prod0000"
)

func testOrg() *fakeOrg {
	active := orgtypes.AccountStateActive
	return &fakeOrg{
		accounts: map[string]orgtypes.AccountState{hub: active, dev1: active, dev2: active, stg: active, prod: active, gone: orgtypes.AccountStateSuspended},
		children: map[string][]string{
			root:      {hub, ouDev, ouStg, ouProd},
			ouDev:     {dev1, ouDevTeam},
			ouDevTeam: {dev2},
			ouStg:     {stg},
			ouProd:    {prod, gone},
		},
	}
}

func TestAccounts(t *testing.T) {
	type acct = Account
	tests := []struct {
		name     string
		scope    []string
		exclude  []string
		stages   [][]string
		want     []acct
		wantErr  string // the setting the error names
		errHints string
	}{
		{name: "all active accounts, one stage", scope: []string{"all"},
			want: []acct{{hub, "name-" + hub, 1}, {dev1, "name-" + dev1, 1}, {dev2, "name-" + dev2, 1}, {stg, "name-" + stg, 1}, {prod, "name-" + prod, 1}}},
		{name: "an OU includes its nested OUs", scope: []string{ouDev},
			want: []acct{{dev1, "name-" + dev1, 1}, {dev2, "name-" + dev2, 1}}},
		{name: "the root minus excluded", scope: []string{root}, exclude: []string{hub, prod},
			want: []acct{{dev1, "name-" + dev1, 1}, {dev2, "name-" + dev2, 1}, {stg, "name-" + stg, 1}}},
		{name: "stages in order; accounts in no stage last", scope: []string{"all"}, exclude: []string{hub},
			stages: [][]string{{ouDev}, {ouStg}},
			want:   []acct{{dev1, "name-" + dev1, 1}, {dev2, "name-" + dev2, 1}, {stg, "name-" + stg, 2}, {prod, "name-" + prod, 3}}},
		{name: "a stage naming an account outside the scope adds nothing", scope: []string{ouProd}, stages: [][]string{{dev1}, {ouProd}},
			want: []acct{{prod, "name-" + prod, 2}}},
		{name: "a suspended account is never rotated", scope: []string{gone}, wantErr: config.EnvOrgScope, errHints: "not an active account"},
		{name: "an unknown OU", scope: []string{"ou-ab12-nothere0"}, wantErr: config.EnvOrgScope, errHints: "not an OU or root"},
		{name: "an unknown account in a stage", scope: []string{"all"}, stages: [][]string{{"999999999999"}}, wantErr: config.EnvOrgStages, errHints: "not an active account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.Config{OrgScope: tt.scope, OrgExclude: tt.exclude, OrgStages: tt.stages}
			got, err := Accounts(context.Background(), testOrg(), cfg)
			if tt.wantErr != "" {
				var ie *failures.InvalidInputError
				if !errors.As(err, &ie) || ie.Field != tt.wantErr || !strings.Contains(ie.Msg, tt.errHints) {
					t.Fatalf("Accounts error = %v; want an input error naming %s, saying %q", err, tt.wantErr, tt.errHints)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Accounts = %+v, %v;\nwant %+v", got, err, tt.want)
			}
		})
	}
}

func TestDenied(t *testing.T) {
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized"}
	tests := []struct {
		name       string
		err        error
		wantFix    string // "" : not an AccountUnreachableError
		wantAction string
	}{
		{"role missing", &smithy.OperationError{ServiceID: "STS", OperationName: "AssumeRole", Err: denied}, "deploy the member stack", "KeyRotorMember"},
		{"role missing, found at the first IAM call", &smithy.OperationError{ServiceID: "IAM", OperationName: "ListAccessKeys",
			Err: fmt.Errorf("failed to refresh cached credentials, operation error STS: AssumeRole, %w", denied)}, "deploy the member stack", "sts:AssumeRole"},
		{"an SCP denies an IAM action", &smithy.OperationError{ServiceID: "IAM", OperationName: "ListAccessKeys", Err: denied}, "SCP", "iam:ListAccessKeys"},
		{"Secrets Manager denied", &smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "CreateSecret",
			Err: &smithy.GenericAPIError{Code: "AccessDeniedException"}}, "SCP", "secretsmanager:CreateSecret"},
		{"throttling is retried, not a denial", &smithy.OperationError{ServiceID: "IAM", OperationName: "ListAccessKeys", Err: &smithy.GenericAPIError{Code: "Throttling"}}, "", ""},
		{"not an AWS error", errors.New("boom"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Denied(dev1, tt.err)
			var ue *failures.AccountUnreachableError
			if tt.wantFix == "" {
				if errors.As(err, &ue) || err != tt.err {
					t.Fatalf("Denied = %v; want the error unchanged", err)
				}
				return
			}
			if !errors.As(err, &ue) || ue.Account != dev1 || !strings.Contains(ue.Msg, tt.wantFix) || !strings.Contains(ue.Msg, tt.wantAction) {
				t.Fatalf("Denied = %v; want AccountUnreachableError for %s naming %q and %q", err, dev1, tt.wantAction, tt.wantFix)
			}
		})
	}
}

func TestRoleARN(t *testing.T) {
	if got := RoleARN("aws-us-gov", dev1); got != "arn:aws-us-gov:iam::"+dev1+":role/KeyRotorMember" {
		t.Fatalf("RoleARN = %s", got)
	}
	if got := RoleARN("", dev1); !strings.HasPrefix(got, "arn:aws:iam::") {
		t.Fatalf("RoleARN without partition = %s", got)
	}
}
