package faultproxy

// Explicit denies of the caller's role, from the IAM User Guide, "Policy
// evaluation logic"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html:
// an explicit Deny in any applicable policy overrides every Allow), and
// "Controlling access to and for IAM users and roles using tags"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/access_iam-tags.html:
// aws:ResourceTag/<key> on a call that acts on an IAM user is that user's
// tag).
//
// moto evaluates no policy. With RoleDenies, an IAM call that names a user
// (UserName), made with an assumed role's credentials, is checked against
// the Deny statements of that role's inline policies, read from moto in the
// role's account: a statement applies when one of its actions matches the
// call's, one of its resources matches the user's ARN (with its path), and
// each of its conditions holds. The conditions understood are
// StringEquals, StringEqualsIgnoreCase and StringLike on aws:ResourceTag/<key>
// and iam:ResourceTag/<key> (the user's tags); a statement with any other
// condition is taken not to apply (the proxy denies no more than it can
// prove). A denied call is answered AccessDenied, as IAM does, and moto
// never sees it. Allow statements are not evaluated: the call logs compare
// what a role did with what it is allowed (Call.Action).

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// policyStatement is one statement of an IAM policy document.
type policyStatement struct {
	Effect    string                    `json:"Effect"`
	Action    stringOrList              `json:"Action"`
	Resource  stringOrList              `json:"Resource"`
	Condition map[string]map[string]any `json:"Condition"`
}

type policyDocument struct {
	Statement statementList `json:"Statement"`
}

// stringOrList reads a policy field that is a string or a list of them.
type stringOrList []string

func (s *stringOrList) UnmarshalJSON(b []byte) error {
	var one string
	if json.Unmarshal(b, &one) == nil {
		*s = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// statementList reads Statement: one statement or a list of them.
type statementList []policyStatement

func (s *statementList) UnmarshalJSON(b []byte) error {
	var one policyStatement
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = []policyStatement{one}
		return nil
	}
	var many []policyStatement
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*s = many
	return nil
}

// roleOf returns the role name of an assumed role's session ARN
// (arn:aws:sts::111122223333:assumed-role/Name/session), or "".
func roleOf(arn string) string {
	rest, ok := strings.CutPrefix(arnResource(arn), "assumed-role/")
	if !ok || !strings.HasPrefix(arn, "arn:") {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// roleDenies answers a call an explicit Deny of the caller's role denies
// (see above), and reports whether it did.
func (p *Proxy) roleDenies(w http.ResponseWriter, r *http.Request, req request) bool {
	if req.service != "iam" || req.proto != awsQuery || req.accessKeyID == "" {
		return false
	}
	user := req.form.Get("UserName")
	who := p.principalOf(req.accessKeyID)
	role := roleOf(who.arn)
	action := Action(req.service, req.op)
	if user == "" || role == "" || action == "" {
		return false
	}
	var denies []policyStatement
	for _, st := range p.rolePolicies(r, role) {
		if strings.EqualFold(st.Effect, "Deny") && matchesAny(st.Action, action, actionMatches) {
			denies = append(denies, st)
		}
	}
	if len(denies) == 0 {
		return false
	}
	userARN, tags, ok := p.userOf(r, user)
	if !ok {
		return false // no such user: moto answers NoSuchEntity
	}
	for _, st := range denies {
		if matchesAny(st.Resource, userARN, resourceMatches) && conditionsHold(st.Condition, tags) {
			req.accessDenied(w, fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s with an explicit deny in an identity-based policy", who.arn, action, userARN))
			return true
		}
	}
	return false
}

// rolePolicies reads the statements of role's inline policies from moto,
// in the account of r's credentials; none when they cannot be read.
func (p *Proxy) rolePolicies(r *http.Request, role string) []policyStatement {
	status, body, err := p.query(r, url.Values{"Action": {"ListRolePolicies"}, "RoleName": {role}})
	var names struct {
		Names []string `xml:"ListRolePoliciesResult>PolicyNames>member"`
	}
	if err != nil || status != http.StatusOK || xml.Unmarshal(body, &names) != nil {
		return nil
	}
	var out []policyStatement
	for _, n := range names.Names {
		status, body, err := p.query(r, url.Values{"Action": {"GetRolePolicy"}, "RoleName": {role}, "PolicyName": {n}})
		var pol struct {
			Document string `xml:"GetRolePolicyResult>PolicyDocument"`
		}
		if err != nil || status != http.StatusOK || xml.Unmarshal(body, &pol) != nil {
			continue
		}
		doc := pol.Document
		if u, err := url.QueryUnescape(doc); err == nil && !strings.HasPrefix(strings.TrimSpace(doc), "{") {
			doc = u // IAM answers the document URL-encoded
		}
		var d policyDocument
		if json.Unmarshal([]byte(doc), &d) == nil {
			out = append(out, d.Statement...)
		}
	}
	return out
}

// userOf reads a user's ARN and tags from moto.
func (p *Proxy) userOf(r *http.Request, user string) (string, map[string]string, bool) {
	status, body, err := p.query(r, url.Values{"Action": {"GetUser"}, "UserName": {user}})
	var u struct {
		ARN string `xml:"GetUserResult>User>Arn"`
	}
	if err != nil || status != http.StatusOK || xml.Unmarshal(body, &u) != nil || u.ARN == "" {
		return "", nil, false
	}
	tags := map[string]string{}
	status, body, err = p.query(r, url.Values{"Action": {"ListUserTags"}, "UserName": {user}, "MaxItems": {"1000"}})
	var t struct {
		Tags []struct {
			Key   string `xml:"Key"`
			Value string `xml:"Value"`
		} `xml:"ListUserTagsResult>Tags>member"`
	}
	if err == nil && status == http.StatusOK && xml.Unmarshal(body, &t) == nil {
		for _, tg := range t.Tags {
			tags[strings.ToLower(tg.Key)] = tg.Value // tag keys are case-insensitive in conditions
		}
	}
	return u.ARN, tags, true
}

func matchesAny(patterns []string, v string, match func(pattern, v string) bool) bool {
	for _, p := range patterns {
		if match(p, v) {
			return true
		}
	}
	return false
}

// resourceMatches reports whether an ARN matches a policy's resource
// pattern: case-sensitive, * any run of characters, ? one character.
func resourceMatches(pattern, arn string) bool {
	re := "^" + strings.NewReplacer(`\*`, ".*", `\?`, ".").Replace(regexp.QuoteMeta(pattern)) + "$"
	ok, _ := regexp.MatchString(re, arn)
	return ok
}

// conditionsHold evaluates a statement's conditions on the user's tags
// (keys lowercased); false for a condition it does not understand.
func conditionsHold(cond map[string]map[string]any, tags map[string]string) bool {
	for op, kv := range cond {
		for key, want := range kv {
			lk := strings.ToLower(key)
			tagKey, ok := strings.CutPrefix(lk, "aws:resourcetag/")
			if !ok {
				if tagKey, ok = strings.CutPrefix(lk, "iam:resourcetag/"); !ok {
					return false
				}
			}
			got, present := tags[tagKey]
			var values []string
			switch x := want.(type) {
			case string:
				values = []string{x}
			case []any:
				for _, e := range x {
					s, _ := e.(string)
					values = append(values, s)
				}
			}
			held := false
			for _, v := range values {
				switch op {
				case "StringEquals":
					held = held || present && got == v
				case "StringEqualsIgnoreCase":
					held = held || present && strings.EqualFold(got, v)
				case "StringLike":
					held = held || present && resourceMatches(v, got)
				default:
					return false
				}
			}
			if !held {
				return false
			}
		}
	}
	return true
}
