package faultproxy

// The organization mode's checks: which account a call acts in, STS's
// answer to an AssumeRole of a role that does not exist, and service
// control policies denying actions in an account.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// DefaultAccount is moto's default account, the one a call signed with a
// key the proxy has not seen issued acts in (moto's static test
// credentials).
const DefaultAccount = "123456789012"

// defaultPrincipal is who moto says such a key is (GetCallerIdentity).
const defaultPrincipal = "arn:aws:sts::" + DefaultAccount + ":user/moto"

const stsXMLNS = "https://sts.amazonaws.com/doc/2011-06-15/"

// principal is who an access key is.
type principal struct{ account, arn string }

// AccountOf returns the account a call signed with keyID acts in: for
// temporary credentials the proxy relayed from AssumeRole, the assumed
// role's account; for an access key it relayed from CreateAccessKey, the
// account of the call that created it; for any other key, DefaultAccount
// (as moto does for its static test credentials; a key created in another
// account without going through the proxy is misattributed). "" for an
// unsigned call (keyID "").
func (p *Proxy) AccountOf(keyID string) string {
	return p.principalOf(keyID).account
}

// PrincipalOf returns the ARN of the principal that signs with keyID, as
// AccountOf learns it (an assumed role's session ARN, such as
// arn:aws:sts::111122223333:assumed-role/KeyRotorMember/keyrotor-find).
func (p *Proxy) PrincipalOf(keyID string) string {
	return p.principalOf(keyID).arn
}

func (p *Proxy) principalOf(keyID string) principal {
	if keyID == "" {
		return principal{}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pr, ok := p.principals[keyID]; ok {
		return pr
	}
	return principal{account: DefaultAccount, arn: defaultPrincipal}
}

func (p *Proxy) learn(keyID string, pr principal) {
	if keyID == "" || pr.account == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.principals[keyID] = pr
}

// arnAccount returns the account field of an ARN, or "".
func arnAccount(arn string) string {
	f := strings.SplitN(arn, ":", 6)
	if len(f) < 6 || f[0] != "arn" {
		return ""
	}
	return f[4]
}

// learnAccessKey remembers the key a successful CreateAccessKey answer
// (recorded in rec) holds as a key of its user, in the caller's account.
func (p *Proxy) learnAccessKey(req request, rec *recorder) {
	if rec.status != http.StatusOK {
		return
	}
	var out struct {
		KeyID    string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
		UserName string `xml:"CreateAccessKeyResult>AccessKey>UserName"`
	}
	if xml.Unmarshal(rec.body.Bytes(), &out) != nil || out.KeyID == "" {
		return
	}
	acct := p.AccountOf(req.accessKeyID)
	p.learn(out.KeyID, principal{account: acct, arn: "arn:aws:iam::" + acct + ":user/" + out.UserName})
}

// STS's answer to an AssumeRole the caller may not make, from the AWS STS
// API Reference, "AssumeRole"
// (https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html:
// the role's trust policy must allow the caller, and the caller's
// identity-based policy must allow sts:AssumeRole on it) and its "Common
// Errors" (https://docs.aws.amazon.com/STS/latest/APIReference/CommonErrors.html),
// and the IAM User Guide, "Troubleshoot IAM roles", "I can't assume a role"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_roles.html:
// the role must exist, with that exact name and path, and trust the
// caller). AWS answers HTTP 403, code AccessDenied, "User: <caller ARN> is
// not authorized to perform: sts:AssumeRole on resource: <role ARN>", the
// same whether the role is missing or does not trust the caller (so the
// answer does not tell who probes whether a role exists).
//
// moto grants any AssumeRole, of any role ARN. With RoleChecks the proxy
// forwards the call, and if moto grants it, reads the role with the
// credentials moto issued (IAM GetRole, straight to moto, outside the log
// and the faults): NoSuchEntity turns the answer into STS's AccessDenied.
// The trust policy is not evaluated. Whatever the proxy relays teaches it
// the new credentials' account (AccountOf).

type assumeRoleResponse struct {
	KeyID      string `xml:"AssumeRoleResult>Credentials>AccessKeyId"`
	Secret     string `xml:"AssumeRoleResult>Credentials>SecretAccessKey"`
	Token      string `xml:"AssumeRoleResult>Credentials>SessionToken"`
	AssumedArn string `xml:"AssumeRoleResult>AssumedRoleUser>Arn"`
}

// assumeRole relays an AssumeRole, unless RoleChecks refuses it, and learns
// the credentials it relays.
func (p *Proxy) assumeRole(w http.ResponseWriter, r *http.Request, req request) {
	rec := newRecorder()
	p.rp.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	var out assumeRoleResponse
	if rec.status != http.StatusOK || xml.Unmarshal(body, &out) != nil || out.KeyID == "" {
		rec.relay(w, body)
		return
	}
	roleArn := req.form.Get("RoleArn")
	if p.RoleChecks {
		exists, err := p.roleExists(r.Context(), out, roleArn)
		if err == nil && !exists {
			msg := fmt.Sprintf("User: %s is not authorized to perform: sts:AssumeRole on resource: %s", p.principalOf(req.accessKeyID).arn, roleArn)
			req.queryErrorNS(w, http.StatusForbidden, stsXMLNS, "AccessDenied", msg)
			return
		}
		// On an error reading the role, moto's answer stands.
	}
	acct := arnAccount(out.AssumedArn)
	if acct == "" {
		acct = arnAccount(roleArn)
	}
	p.learn(out.KeyID, principal{account: acct, arn: out.AssumedArn})
	rec.relay(w, body)
}

// roleExists reads the role named by roleArn (path and name) with the
// credentials moto issued for it, which act in the role's account.
func (p *Proxy) roleExists(ctx context.Context, creds assumeRoleResponse, roleArn string) (bool, error) {
	_, name, ok := strings.Cut(arnResource(roleArn), "role/")
	if !ok {
		return false, fmt.Errorf("RoleArn %q names no role", roleArn)
	}
	path := "/"
	if i := strings.LastIndex(name, "/"); i >= 0 {
		path, name = "/"+name[:i+1], name[i+1:] // role/a/b/Name: path /a/b/
	}
	p.iamOnce.Do(func() {
		p.iamClient = iam.New(iam.Options{
			Region:           "us-east-1",
			BaseEndpoint:     aws.String(p.target.String()),
			HTTPClient:       &http.Client{Transport: p.transport, Timeout: 30 * time.Second},
			RetryMaxAttempts: 1,
		})
	})
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	out, err := p.iamClient.GetRole(ctx, &iam.GetRoleInput{RoleName: aws.String(name)}, func(o *iam.Options) {
		o.Credentials = credentials.NewStaticCredentialsProvider(creds.KeyID, creds.Secret, creds.Token)
	})
	var missing *iamtypes.NoSuchEntityException
	switch {
	case err == nil:
		// The ARN must name the role's path too.
		return aws.ToString(out.Role.Path) == path || aws.ToString(out.Role.Path) == "" && path == "/", nil
	case errors.As(err, &missing):
		return false, nil
	}
	return false, err
}

// arnResource returns the resource part of an ARN (after the fifth colon).
func arnResource(arn string) string {
	f := strings.SplitN(arn, ":", 6)
	if len(f) < 6 {
		return ""
	}
	return f[5]
}

// Service control policies, from the AWS Organizations User Guide,
// "Service control policies (SCPs)"
// (https://docs.aws.amazon.com/organizations/latest/userguide/orgs_manage_policies_scps.html:
// an SCP limits what the IAM users and roles of the member accounts it is
// attached to may do, whatever their own policies allow; it does not
// restrict the management account) and the IAM User Guide, "Troubleshoot
// access denied error messages"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_access-denied.html:
// the message names the caller, the action, the resource when there is
// one, and "with an explicit deny in a service control policy").
//
// DenyActions plays an SCP's explicit deny: a call whose credentials act in
// the account (AccountOf) and whose IAM action (Action) matches is
// answered AccessDenied in its service's error format, and moto never sees
// it. The proxy does not stop anyone from denying in the management
// account, which AWS's SCPs cannot.

// DenyActions denies actions ("iam:ListAccessKeys"; IAM's * and ?
// wildcards match, case-insensitively, "iam:*") to every call acting in
// account, as a service control policy's explicit deny would. It adds to
// the account's denials; safe while requests are served.
func (p *Proxy) DenyActions(account string, actions ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range actions {
		if !slices.Contains(p.denials[account], a) {
			p.denials[account] = append(p.denials[account], a)
		}
	}
}

// AllowActions lifts denials of DenyActions in account: the patterns
// given (as given to DenyActions), or all of them when none is given.
func (p *Proxy) AllowActions(account string, actions ...string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(actions) == 0 {
		delete(p.denials, account)
		return
	}
	p.denials[account] = slices.DeleteFunc(p.denials[account], func(a string) bool { return slices.Contains(actions, a) })
	if len(p.denials[account]) == 0 {
		delete(p.denials, account)
	}
}

// actionMatches reports whether an IAM action matches a policy's action
// pattern: case-insensitive, * any run of characters, ? one character.
func actionMatches(pattern, action string) bool {
	if !strings.ContainsAny(pattern, "*?") {
		return strings.EqualFold(pattern, action)
	}
	re := "(?i)^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	ok, _ := regexp.MatchString(re, action)
	return ok
}

// deny answers a call an SCP of DenyActions denies, and reports whether it
// did.
func (p *Proxy) deny(w http.ResponseWriter, req request) bool {
	if req.accessKeyID == "" {
		return false
	}
	p.mu.Lock()
	empty := len(p.denials) == 0
	p.mu.Unlock()
	if empty {
		return false
	}
	action := Action(req.service, req.op)
	if action == "" {
		return false
	}
	who := p.principalOf(req.accessKeyID)
	p.mu.Lock()
	denied := slices.ContainsFunc(p.denials[who.account], func(pat string) bool { return actionMatches(pat, action) })
	p.mu.Unlock()
	if !denied {
		return false
	}
	on := ""
	if res := req.resource(who.account); res != "" {
		on = " on resource: " + res
	}
	req.accessDenied(w, fmt.Sprintf("User: %s is not authorized to perform: %s%s with an explicit deny in a service control policy", who.arn, action, on))
	return true
}

// resource names the resource of an IAM or STS query call, when its
// parameters name one, else "".
func (req request) resource(account string) string {
	if req.proto != awsQuery {
		return ""
	}
	switch req.service {
	case "iam":
		if u := req.form.Get("UserName"); u != "" {
			return "arn:aws:iam::" + account + ":user/" + u
		}
		if r := req.form.Get("RoleName"); r != "" {
			return "arn:aws:iam::" + account + ":role/" + r
		}
	case "sts":
		return req.form.Get("RoleArn")
	}
	return ""
}

// queryNamespaces are the XML namespaces of awsQuery services' answers.
var queryNamespaces = map[string]string{
	"iam": iamXMLNS,
	"sts": stsXMLNS,
	"sns": "http://sns.amazonaws.com/doc/2010-03-31/",
	"ses": "http://ses.amazonaws.com/doc/2010-12-01/",
}

// accessDenied writes the service's access denied error: awsQuery
// (IAM, STS, SES v1) AccessDenied, HTTP 403, except SNS's
// AuthorizationError (SNS API Reference, "Publish", errors: HTTP 403);
// awsJSON (Secrets Manager, KMS, DynamoDB...) AccessDeniedException, HTTP
// 400 (their API References' "Common Errors"); REST-JSON (SES v2, Lambda)
// AccessDeniedException, HTTP 403; S3 AccessDenied, HTTP 403.
func (req request) accessDenied(w http.ResponseWriter, msg string) {
	switch req.proto {
	case awsQuery:
		code := "AccessDenied"
		if req.service == "sns" {
			code = "AuthorizationError"
		}
		req.queryErrorNS(w, http.StatusForbidden, queryNamespaces[req.service], code, msg)
	case awsJSON:
		req.jsonError(w, http.StatusBadRequest, "AccessDeniedException", msg)
	case restXML:
		req.xmlError(w, http.StatusForbidden, "AccessDenied", msg)
	default:
		req.jsonError(w, http.StatusForbidden, "AccessDeniedException", msg)
	}
}

// queryErrorNS writes an awsQuery "Sender" error in the service's
// namespace.
func (req request) queryErrorNS(w http.ResponseWriter, status int, ns, code, msg string) {
	writeQueryError(w, status, ns, "Sender", code, msg)
}
