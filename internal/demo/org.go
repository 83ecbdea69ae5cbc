package demo

// The demo's third act: an organization. The emulated account becomes the
// management account of an organization with three members; two get the
// member stack (KeyRotorMember), the sandbox does not. The organization
// hub rotates the members it can reach and reports the sandbox with its
// fix; Check verifies the outcome in each member with its own credentials.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/internal/memberstack"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// OrgMembers are the demo organization's member accounts, each in its OU.
var OrgMembers = []memberstack.MemberSpec{{Name: "dev", OU: "Development"}, {Name: "prod", OU: "Production"}, {Name: "sandbox", OU: "Sandbox"}}

// NoMemberStack is the member left without the member stack: the hub
// cannot reach it.
const NoMemberStack = "sandbox"

// OrgUsers are the users of every member account (the same names in each:
// each account's users are its own).
func OrgUsers() []User {
	return []User{
		{Name: "deploy-bot", Email: "platform-team@example.com", Expect: "rotate", KeyAge: 120, UsedAgo: 1},
		{Name: "old-batch", Email: "data-team@example.com", Expect: "retire", KeyAge: 200, UsedAgo: -1},
		{Name: "fresh-app", Email: "app-team@example.com", Expect: "ok", KeyAge: 10, UsedAgo: 0},
	}
}

// OrgAccount is a member account of the demo organization.
type OrgAccount struct {
	memberstack.Member
	// MemberStack holds the member stack's outputs (MemberRoleArn,
	// MemberKeyArn); nil in the account without it.
	MemberStack map[string]string
	// Keys are the users' original access key ids.
	Keys map[string]string
}

// Org is the demo organization, set up.
type Org struct {
	*memberstack.Org
	Accounts []OrgAccount // in the order of OrgMembers
}

// SetUpOrg makes the account mgmt acts in (keyrotor's own, the hub) the
// management account of an organization with OrgMembers, deploys the member
// stack (memberTemplate, the template's JSON) in every member but
// NoMemberStack, and seeds OrgUsers in each member, dating keys and uses
// with clock.
func SetUpOrg(ctx context.Context, mgmt aws.Config, memberTemplate []byte, clock Clock) (*Org, error) {
	mo, err := memberstack.NewOrg(ctx, mgmt, "keyrotor-demo", OrgMembers)
	if err != nil {
		return nil, err
	}
	o := &Org{Org: mo}
	for _, m := range mo.Members {
		a := OrgAccount{Member: m}
		if m.Name != NoMemberStack {
			if a.MemberStack, err = memberstack.Deploy(ctx, m.Config, m.ID, memberTemplate); err != nil {
				return nil, fmt.Errorf("deploy the member stack in %s (%s): %w", m.Name, m.ID, err)
			}
		}
		if a.Keys, err = seedUsers(ctx, iam.NewFromConfig(m.Config), m.Config, clock, OrgUsers()); err != nil {
			return nil, fmt.Errorf("seed %s (%s): %w", m.Name, m.ID, err)
		}
		o.Accounts = append(o.Accounts, a)
	}
	return o, nil
}

// seedUsers creates users in the account behind api, as Seed does, and
// returns their original key ids.
func seedUsers(ctx context.Context, api IAM, base aws.Config, clock Clock, users []User) (map[string]string, error) {
	defer clock(0)
	keys := map[string]string{}
	for _, u := range users {
		if err := clock(-time.Duration(u.KeyAge) * 24 * time.Hour); err != nil {
			return nil, err
		}
		in := &iam.CreateUserInput{UserName: aws.String(u.Name)}
		if u.Email != "" {
			in.Tags = append(in.Tags, types.Tag{Key: aws.String("email"), Value: aws.String(u.Email)})
		}
		if _, err := api.CreateUser(ctx, in); err != nil {
			return nil, fmt.Errorf("create user %s: %w", u.Name, err)
		}
		k, err := api.CreateAccessKey(ctx, &iam.CreateAccessKeyInput{UserName: aws.String(u.Name)})
		if err != nil {
			return nil, fmt.Errorf("create key for %s: %w", u.Name, err)
		}
		keys[u.Name] = aws.ToString(k.AccessKey.AccessKeyId)
		if u.UsedAgo >= 0 {
			if err := clock(-time.Duration(u.UsedAgo) * 24 * time.Hour); err != nil {
				return nil, err
			}
			if err := use(ctx, base, aws.ToString(k.AccessKey.AccessKeyId), aws.ToString(k.AccessKey.SecretAccessKey)); err != nil {
				return nil, err
			}
		}
	}
	return keys, clock(0)
}

// Account returns the member account with id, if it is one.
func (o *Org) Account(id string) (OrgAccount, bool) {
	for _, a := range o.Accounts {
		if a.ID == id {
			return a, true
		}
	}
	return OrgAccount{}, false
}

// UserCheck is what Check found of one user in one member account.
type UserCheck struct {
	Account, AccountName, User string
	Expect                     string // rotate, retire, ok; untouched in the unreachable member
	// Found describes the user's keys and secret after the run.
	Found string
	// Problem is "" when the user is as expected.
	Problem string
}

// Mail is an e-mail the emulator recorded as sent.
type Mail struct {
	To   []string
	Body string
}

// SentMails reads the mails the emulator at endpoint recorded as sent.
func SentMails(endpoint string) ([]Mail, error) {
	resp, err := http.Get(endpoint + "/moto-api/data.json")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var data struct {
		SES struct {
			Message []struct {
				Destinations struct{ ToAddresses []string }
				Body         string
			}
		} `json:"ses"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&data); err != nil {
		return nil, fmt.Errorf("read the emulator's mails: %w", err)
	}
	var out []Mail
	for _, m := range data.SES.Message {
		out = append(out, Mail{To: m.Destinations.ToAddresses, Body: m.Body})
	}
	return out, nil
}

// Check verifies the act's outcome, each member account read with its own
// credentials, and returns what it found per user and every problem (none
// when the act went as expected): in each member with the member stack,
// the due key rotated (the old key deleted, or Inactive while its grace
// period runs; the new key Active and stored in the secret prefix+user in
// that account, under the member's key, and not in the hub), the unused
// key retired, the fresh key untouched; the member without the stack
// untouched (its original keys Active, no secret) and reported unreachable
// with its fix in the summary; an owner mail per rotated or retired key,
// naming its account, and none about the unreachable member.
func (o *Org) Check(ctx context.Context, hub aws.Config, prefix string, sum *rotation.Summary, mails []Mail) ([]UserCheck, []string) {
	var problems []string
	byID := map[string]rotation.AccountTotals{}
	for _, a := range sum.Accounts {
		byID[a.Account] = a
	}
	if _, ok := byID[o.Management]; !ok {
		problems = append(problems, fmt.Sprintf("the summary does not list keyrotor's own account %s", o.Management))
	}
	users := OrgUsers()
	var checks []UserCheck
	hubSM := secretsmanager.NewFromConfig(hub)
	for _, a := range o.Accounts {
		at, ok := byID[a.ID]
		reachable := a.MemberStack != nil
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("the summary does not list %s (%s)", a.Name, a.ID))
		case !reachable:
			fix := "deploy the member stack (KeyRotorMember) in account " + a.ID
			if at.Status != rotation.AccountUnreachable || !strings.Contains(at.Reason, fix) {
				problems = append(problems, fmt.Sprintf("%s (%s) in the summary: %s %q; want %s with the fix %q", a.Name, a.ID, at.Status, at.Reason, rotation.AccountUnreachable, fix))
			}
		default:
			if at.Status != rotation.AccountPlanned || at.Rotated != 1 || at.Retired != 1 || at.Failed != 0 {
				problems = append(problems, fmt.Sprintf("%s (%s) in the summary: %s, %d rotated, %d retired, %d failed; want planned, 1 rotated, 1 retired, none failed",
					a.Name, a.ID, at.Status, at.Rotated, at.Retired, at.Failed))
			}
		}
		sm := secretsmanager.NewFromConfig(a.Config)
		api := iam.NewFromConfig(a.Config)
		for _, u := range users {
			c := UserCheck{Account: a.ID, AccountName: a.Name, User: u.Name, Expect: u.Expect}
			if !reachable {
				c.Expect = "untouched"
			}
			c.Found, c.Problem = checkUser(ctx, api, sm, hubSM, prefix, a, u, c.Expect)
			if c.Problem != "" {
				problems = append(problems, fmt.Sprintf("%s/%s: %s", a.Name, u.Name, c.Problem))
			}
			checks = append(checks, c)
			// The owner's mail names the account (none for the
			// unreachable one, nor for a key with nothing due).
			naming := 0
			for _, m := range mails {
				if slices.Contains(m.To, u.Email) && strings.Contains(m.Body, u.Name+" in account "+a.ID) {
					naming++
				}
			}
			want := 0
			if c.Expect == "rotate" || c.Expect == "retire" {
				want = 1
			}
			if naming != want {
				problems = append(problems, fmt.Sprintf("%s/%s: %d mails to %s naming account %s; want %d", a.Name, u.Name, naming, u.Email, a.ID, want))
			}
		}
	}
	return checks, problems
}

// checkUser reads one user's keys and secret in account a.
func checkUser(ctx context.Context, api *iam.Client, sm, hubSM *secretsmanager.Client, prefix string, a OrgAccount, u User, expect string) (found, problem string) {
	out, err := api.ListAccessKeys(ctx, &iam.ListAccessKeysInput{UserName: aws.String(u.Name)})
	if err != nil {
		return "", fmt.Sprintf("list keys: %v", err)
	}
	keys := map[string]string{}
	for _, k := range out.AccessKeyMetadata {
		keys[aws.ToString(k.AccessKeyId)] = string(k.Status)
	}
	old := a.Keys[u.Name]
	oldState := keys[old]
	if oldState == "" {
		oldState = "deleted"
	}
	name := prefix + u.Name
	sec, serr := sm.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(name)})
	var missing *smtypes.ResourceNotFoundException
	if serr != nil && !errors.As(serr, &missing) {
		return "", fmt.Sprintf("read secret %s: %v", name, serr)
	}
	switch expect {
	case "rotate":
		if serr != nil {
			return "old key " + oldState + ", no secret", "no secret " + name + " in the account"
		}
		var stored rotation.StoredKey
		if err := json.Unmarshal([]byte(aws.ToString(sec.SecretString)), &stored); err != nil || stored.AccessKeyID == "" {
			return "", fmt.Sprintf("secret %s holds no access key", name)
		}
		found = fmt.Sprintf("old key %s, new key %s %s, secret %s in this account", oldState, stored.AccessKeyID, keys[stored.AccessKeyID], name)
		d, err := sm.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)})
		switch {
		case oldState != "deleted" && oldState != "Inactive":
			problem = "the old key is still " + oldState
		case keys[stored.AccessKeyID] != "Active" || len(keys) > 2:
			problem = fmt.Sprintf("keys %v; want the stored new key %s Active", keys, stored.AccessKeyID)
		case err != nil:
			problem = fmt.Sprintf("describe secret %s: %v", name, err)
		case !strings.Contains(aws.ToString(d.KmsKeyId), "KeyRotorMember") && aws.ToString(d.KmsKeyId) != a.MemberStack["MemberKeyArn"]:
			problem = fmt.Sprintf("secret %s encrypted with %q; want the member's key (alias/KeyRotorMember)", name, aws.ToString(d.KmsKeyId))
		}
		if problem == "" {
			if _, err := hubSM.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(name)}); !errors.As(err, &missing) {
				problem = fmt.Sprintf("keyrotor's own account has a secret %s (%v); want it in the member account only", name, err)
			}
		}
		return found, problem
	case "retire":
		found = "old key " + oldState + ", no replacement"
		if len(keys) > 1 || oldState != "deleted" && oldState != "Inactive" {
			problem = fmt.Sprintf("keys %v; want the unused key retired", keys)
		}
	default: // ok, untouched
		found = "original key " + oldState
		if len(keys) != 1 || oldState != "Active" {
			problem = fmt.Sprintf("keys %v; want the original key %s untouched", keys, old)
		}
	}
	if serr == nil {
		problem = "a secret " + name + " was written in the account"
	}
	return found, problem
}
