// Package memberstack builds the member side of an emulated AWS
// Organization, for local runs of the organization mode (keyrotor demo)
// and its tests: an organization whose management account is the caller's
// (moto's default account), OUs and member accounts, an AWS configuration
// acting in each member, and a deployment of the member stack
// (infra/member.go) the way CloudFormation would make it (Deploy).
//
// moto 5.2.1 emulates several accounts in one server: credentials from
// AssumeRole into arn:aws:iam::<member>:role/... act in that member. It
// neither checks that the role exists nor that it trusts the caller: the
// fault proxy's RoleChecks (internal/faultproxy) does the first.
package memberstack

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/organizations"
	orgtypes "github.com/aws/aws-sdk-go-v2/service/organizations/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"
)

// OrganizationAccessRole is the role Organizations creates in every account
// it creates (CreateAccount's RoleName default), trusting the management
// account; moto creates it too.
const OrganizationAccessRole = "OrganizationAccountAccessRole"

// MemberSpec names a member account to create and the OU (by name, directly
// under the root) to put it in; an empty OU leaves it under the root.
type MemberSpec struct{ Name, OU string }

// Org is an emulated organization.
type Org struct {
	ID         string            // o-...
	Root       string            // r-...
	Management string            // the management account's id
	OUs        map[string]string // OU name -> OU id (ou-...)
	Members    []Member          // in the order of the spec
}

// Member is a member account of an Org.
type Member struct {
	ID, Name string
	OU       string // the OU's name ("": under the root)
	OUID     string // the OU's id, or the root's id
	// Config acts in the member account: its credentials come from
	// sts:AssumeRole, with the management account's credentials, into the
	// member's OrganizationAccountAccessRole.
	Config aws.Config
}

// Member returns the member named name.
func (o *Org) Member(name string) (Member, bool) {
	for _, m := range o.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// NewOrg makes the account mgmt acts in the management account of an
// organization (created with all features if there is none; an existing
// one must be managed by that account), creates the OUs the spec names
// under the root, creates each member account (reusing an account of that
// name) and moves it into its OU. Each Member's Config acts in the member
// account (MemberConfig, with the role session name session); a
// GetCallerIdentity checks it.
func NewOrg(ctx context.Context, mgmt aws.Config, session string, spec []MemberSpec) (*Org, error) {
	who, err := sts.NewFromConfig(mgmt).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
	if err != nil {
		return nil, fmt.Errorf("who is the management account: %w", err)
	}
	o := &Org{Management: aws.ToString(who.Account), OUs: map[string]string{}}
	orgs := organizations.NewFromConfig(mgmt)

	desc, err := orgs.DescribeOrganization(ctx, &organizations.DescribeOrganizationInput{})
	switch {
	case apiCode(err) == "AWSOrganizationsNotInUseException":
		out, err := orgs.CreateOrganization(ctx, &organizations.CreateOrganizationInput{FeatureSet: orgtypes.OrganizationFeatureSetAll})
		if err != nil {
			return nil, fmt.Errorf("create organization: %w", err)
		}
		o.ID = aws.ToString(out.Organization.Id)
	case err != nil:
		return nil, fmt.Errorf("describe organization: %w", err)
	default:
		o.ID = aws.ToString(desc.Organization.Id)
		if m := aws.ToString(desc.Organization.MasterAccountId); m != o.Management {
			return nil, fmt.Errorf("organization %s is managed by %s, not by %s", o.ID, m, o.Management)
		}
	}
	roots, err := orgs.ListRoots(ctx, &organizations.ListRootsInput{})
	if err != nil {
		return nil, fmt.Errorf("list roots: %w", err)
	}
	if len(roots.Roots) != 1 {
		return nil, fmt.Errorf("list roots: %d roots; want 1", len(roots.Roots))
	}
	o.Root = aws.ToString(roots.Roots[0].Id)

	ous := organizations.NewListOrganizationalUnitsForParentPaginator(orgs, &organizations.ListOrganizationalUnitsForParentInput{ParentId: aws.String(o.Root)})
	for ous.HasMorePages() {
		page, err := ous.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list OUs: %w", err)
		}
		for _, ou := range page.OrganizationalUnits {
			o.OUs[aws.ToString(ou.Name)] = aws.ToString(ou.Id)
		}
	}
	existing := map[string]string{} // account name -> id
	accts := organizations.NewListAccountsPaginator(orgs, &organizations.ListAccountsInput{})
	for accts.HasMorePages() {
		page, err := accts.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list accounts: %w", err)
		}
		for _, a := range page.Accounts {
			if _, dup := existing[aws.ToString(a.Name)]; !dup {
				existing[aws.ToString(a.Name)] = aws.ToString(a.Id)
			}
		}
	}

	seen := map[string]bool{}
	for _, s := range spec {
		if s.Name == "" || seen[s.Name] {
			return nil, fmt.Errorf("member spec %+v: want a distinct, non-empty name", s)
		}
		seen[s.Name] = true
		parent := o.Root
		if s.OU != "" {
			id, ok := o.OUs[s.OU]
			if !ok {
				out, err := orgs.CreateOrganizationalUnit(ctx, &organizations.CreateOrganizationalUnitInput{ParentId: aws.String(o.Root), Name: aws.String(s.OU)})
				if err != nil {
					return nil, fmt.Errorf("create OU %s: %w", s.OU, err)
				}
				id = aws.ToString(out.OrganizationalUnit.Id)
				o.OUs[s.OU] = id
			}
			parent = id
		}
		id, ok := existing[s.Name]
		if !ok {
			if id, err = createAccount(ctx, orgs, s.Name); err != nil {
				return nil, err
			}
		}
		if id == o.Management {
			return nil, fmt.Errorf("member %s is the management account %s", s.Name, id)
		}
		ps, err := orgs.ListParents(ctx, &organizations.ListParentsInput{ChildId: aws.String(id)})
		if err != nil {
			return nil, fmt.Errorf("list parents of %s (%s): %w", s.Name, id, err)
		}
		if len(ps.Parents) != 1 {
			return nil, fmt.Errorf("list parents of %s (%s): %d parents; want 1", s.Name, id, len(ps.Parents))
		}
		if from := aws.ToString(ps.Parents[0].Id); from != parent {
			if _, err := orgs.MoveAccount(ctx, &organizations.MoveAccountInput{AccountId: aws.String(id), SourceParentId: aws.String(from), DestinationParentId: aws.String(parent)}); err != nil {
				return nil, fmt.Errorf("move %s (%s) to %s: %w", s.Name, id, parent, err)
			}
		}
		cfg := MemberConfig(mgmt, id, session)
		who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return nil, fmt.Errorf("act in member %s (%s): %w", s.Name, id, err)
		}
		if got := aws.ToString(who.Account); got != id {
			return nil, fmt.Errorf("the configuration of member %s acts in account %s; want %s", s.Name, got, id)
		}
		o.Members = append(o.Members, Member{ID: id, Name: s.Name, OU: s.OU, OUID: parent, Config: cfg})
	}
	return o, nil
}

// MemberConfig returns a copy of mgmt (the management account's
// configuration) that acts in account: its credentials are assumed, with
// mgmt's, into the account's OrganizationAccountAccessRole (role session
// session, "keyrotor-emulated-org" if empty: the member's principal is
// arn:aws:sts::<account>:assumed-role/OrganizationAccountAccessRole/<session>),
// cached and refreshed before they expire.
func MemberConfig(mgmt aws.Config, account, session string) aws.Config {
	if session == "" {
		session = "keyrotor-emulated-org"
	}
	cfg := mgmt.Copy()
	cfg.Credentials = aws.NewCredentialsCache(stscreds.NewAssumeRoleProvider(sts.NewFromConfig(mgmt),
		"arn:aws:iam::"+account+":role/"+OrganizationAccessRole, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = session
		}))
	return cfg
}

var notEmailRE = regexp.MustCompile(`[^a-z0-9.+-]+`)

// createAccount creates a member account and waits for it.
func createAccount(ctx context.Context, orgs *organizations.Client, name string) (string, error) {
	email := strings.Trim(notEmailRE.ReplaceAllString(strings.ToLower(name), "-"), "-")
	if email == "" {
		email = "member"
	}
	out, err := orgs.CreateAccount(ctx, &organizations.CreateAccountInput{AccountName: aws.String(name), Email: aws.String(email + "@example.com")})
	if err != nil {
		return "", fmt.Errorf("create account %s: %w", name, err)
	}
	st := out.CreateAccountStatus
	for deadline := time.Now().Add(30 * time.Second); st.State == orgtypes.CreateAccountStateInProgress; {
		if time.Now().After(deadline) {
			return "", fmt.Errorf("create account %s: still in progress", name)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		d, err := orgs.DescribeCreateAccountStatus(ctx, &organizations.DescribeCreateAccountStatusInput{CreateAccountRequestId: st.Id})
		if err != nil {
			return "", fmt.Errorf("create account %s: %w", name, err)
		}
		st = d.CreateAccountStatus
	}
	if st.State != orgtypes.CreateAccountStateSucceeded || aws.ToString(st.AccountId) == "" {
		return "", fmt.Errorf("create account %s: %s (%s)", name, st.State, st.FailureReason)
	}
	return aws.ToString(st.AccountId), nil
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}
