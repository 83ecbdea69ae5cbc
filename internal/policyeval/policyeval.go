// Package policyeval decides, for tests, whether AWS would allow one request
// under a set of policies: identity-based policies, a resource-based policy
// (a secret's) and a KMS key policy, with explicit Deny first. It follows
// the IAM User Guide's "Policy evaluation logic"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html)
// for the parts keyrotor's templates use:
//
//   - An explicit Deny in any applicable policy decides: denied.
//   - Within one account, an Allow in the identity-based policies or in the
//     resource-based policy (naming the principal) allows ("Policy evaluation
//     for requests within a single account").
//   - Across accounts, both must allow: the caller's identity policies and
//     the resource policy naming it or its account ("Cross-account policy
//     evaluation logic",
//     https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic-cross-account.html).
//   - A KMS key is used only as its key policy allows: directly, or, where a
//     statement names the account (root), through the identity policies
//     too, under that statement's conditions (KMS Developer Guide, "Key
//     policies in AWS KMS",
//     https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html).
//     KMS is the one service where identity policies alone never suffice.
//
// Conditions: the String, Arn and Bool operators, their Not forms and
// IfExists; a key the request lacks fails a positive operator and passes a
// negated one (IAM User Guide, "Condition operators"). Policy variables
// ${key} are replaced with the request's values. Permissions boundaries,
// SCPs and session policies are not modelled (keyrotor's templates have
// none).
package policyeval

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Decision is the outcome of an evaluation.
type Decision int

// Decisions, in the order AWS settles them.
const (
	ImplicitDeny Decision = iota // nothing allows
	Allow
	ExplicitDeny
)

func (d Decision) String() string {
	return [...]string{"implicit deny", "allow", "explicit deny"}[d]
}

// Statement is one policy statement as IAM reads it: strings or lists of
// strings where the grammar allows either.
type Statement struct {
	Sid          string
	Effect       string
	Principal    any `json:",omitempty"`
	NotPrincipal any `json:",omitempty"`
	Action       any `json:",omitempty"`
	NotAction    any `json:",omitempty"`
	Resource     any `json:",omitempty"`
	NotResource  any `json:",omitempty"`
	Condition    map[string]map[string]any
}

// Policy is a policy document.
type Policy struct {
	Statement []Statement
}

// UnmarshalJSON accepts a single statement object as well as a list.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var raw struct{ Statement json.RawMessage }
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw.Statement) > 0 && raw.Statement[0] == '{' {
		var s Statement
		if err := json.Unmarshal(raw.Statement, &s); err != nil {
			return err
		}
		p.Statement = []Statement{s}
		return nil
	}
	return json.Unmarshal(raw.Statement, &p.Statement)
}

// Parse reads a policy document.
func Parse(doc string) (Policy, error) {
	var p Policy
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		return Policy{}, fmt.Errorf("parse policy: %w", err)
	}
	return p, nil
}

// Principal is who makes a request.
type Principal struct {
	ARN     string // the user's ARN, or the role's (not its session's)
	Account string
	UserID  string // aws:userid: AIDA... for a user, AROA...:session for a role
}

// Request is one API call.
type Request struct {
	Principal Principal
	Action    string // service:Action
	Resource  string // ARN
	// Context holds the request's other condition keys (their values), such
	// as secretsmanager:ResourceTag/<key> or kms:ViaService. aws:PrincipalArn,
	// aws:userid and aws:PrincipalAccount come from Principal.
	Context map[string][]string
}

// value returns the request's values of a condition key (case-insensitive).
func (r Request) value(key string) ([]string, bool) {
	switch strings.ToLower(key) {
	case "aws:principalarn":
		return []string{r.Principal.ARN}, r.Principal.ARN != ""
	case "aws:userid":
		return []string{r.Principal.UserID}, r.Principal.UserID != ""
	case "aws:principalaccount", "kms:calleraccount":
		return []string{r.Principal.Account}, r.Principal.Account != ""
	case "aws:username":
		if i := strings.Index(r.Principal.ARN, ":user/"); i >= 0 {
			n := r.Principal.ARN[i+len(":user/"):]
			return []string{n[strings.LastIndex(n, "/")+1:]}, true
		}
		return nil, false
	}
	for k, v := range r.Context {
		if strings.EqualFold(k, key) {
			return v, true
		}
	}
	return nil, false
}

// substitute replaces policy variables ${key} with the request's value.
func (r Request) substitute(s string) string {
	for {
		i := strings.Index(s, "${")
		if i < 0 {
			return s
		}
		j := strings.Index(s[i:], "}")
		if j < 0 {
			return s
		}
		key := s[i+2 : i+j]
		v, ok := r.value(key)
		repl := "\x00unset"
		if ok && len(v) > 0 {
			repl = v[0]
		}
		s = s[:i] + repl + s[i+j+1:]
	}
}

// Evaluate decides a request to a resource of resourceAccount under the
// caller's identity policies and the resource's policy (nil: none).
func Evaluate(req Request, identity []Policy, resource *Policy, resourceAccount string) Decision {
	var res []Policy
	if resource != nil {
		res = []Policy{*resource}
	}
	if denies(identity, req, false) || denies(res, req, true) {
		return ExplicitDeny
	}
	idAllow := allows(identity, req, false)
	direct, viaAccount := resourceAllows(res, req)
	switch {
	case req.Principal.Account == resourceAccount && (idAllow || direct):
		// One account: either policy's Allow suffices; a resource policy
		// naming only the account leaves it to the identity policies.
		return Allow
	case req.Principal.Account != resourceAccount && idAllow && (direct || viaAccount):
		return Allow
	}
	return ImplicitDeny
}

// EvaluateKMS decides a request to use or manage a KMS key of keyAccount
// under its key policy and the caller's identity policies.
func EvaluateKMS(req Request, identity []Policy, key Policy, keyAccount string) Decision {
	if denies(identity, req, false) || denies([]Policy{key}, req, true) {
		return ExplicitDeny
	}
	direct, viaAccount := resourceAllows([]Policy{key}, req)
	switch {
	case direct && req.Principal.Account == keyAccount:
		return Allow // the key policy names the caller
	case (direct || viaAccount) && allows(identity, req, false):
		// A statement naming the caller's account: its IAM policies may
		// grant what the statement allows, under its conditions (from
		// another account, the caller's own policies must allow too).
		return Allow
	}
	return ImplicitDeny
}

func denies(ps []Policy, req Request, resourceBased bool) bool {
	for _, p := range ps {
		for _, s := range p.Statement {
			if strings.EqualFold(s.Effect, "Deny") && applies(s, req, resourceBased) {
				return true
			}
		}
	}
	return false
}

// resourceAllows reports whether an Allow statement of a resource-based
// policy applies, naming the caller itself ("*" or its ARN: direct) or only
// its account (viaAccount).
func resourceAllows(ps []Policy, req Request) (direct, viaAccount bool) {
	for _, p := range ps {
		for _, s := range p.Statement {
			if !strings.EqualFold(s.Effect, "Allow") || !applies(s, req, true) {
				continue
			}
			if d, _ := names(s.Principal, req.Principal); d {
				direct = true
			} else {
				viaAccount = true
			}
		}
	}
	return direct, viaAccount
}

// allows reports whether some Allow statement of ps applies.
func allows(ps []Policy, req Request, resourceBased bool) bool {
	for _, p := range ps {
		for _, s := range p.Statement {
			if strings.EqualFold(s.Effect, "Allow") && applies(s, req, resourceBased) {
				return true
			}
		}
	}
	return false
}

// applies reports whether statement s matches req: principal (in a
// resource-based policy), action, resource and every condition.
func applies(s Statement, req Request, resourceBased bool) bool {
	if resourceBased {
		switch {
		case s.Principal != nil && !namesPrincipal(s.Principal, req.Principal):
			return false
		case s.NotPrincipal != nil && namesPrincipal(s.NotPrincipal, req.Principal):
			return false
		}
	}
	if s.Action != nil && !matchAny(list(s.Action), req.Action, true, nil) {
		return false
	}
	if s.NotAction != nil && matchAny(list(s.NotAction), req.Action, true, nil) {
		return false
	}
	if s.Resource != nil && !matchAny(list(s.Resource), req.Resource, false, req.substitute) {
		return false
	}
	if s.NotResource != nil && matchAny(list(s.NotResource), req.Resource, false, req.substitute) {
		return false
	}
	for op, conds := range s.Condition {
		for key, want := range conds {
			if !condition(op, key, list(want), req) {
				return false
			}
		}
	}
	return true
}

// namesPrincipal reports whether a Principal element names p, itself or
// its account.
func namesPrincipal(v any, p Principal) bool {
	d, a := names(v, p)
	return d || a
}

// names tells whether a Principal element names p itself ("*", or p's
// ARN: direct) or p's account ("arn:...:root" or its id).
func names(v any, p Principal) (direct, account bool) {
	if s, ok := v.(string); ok && s == "*" {
		return true, false
	}
	m, ok := v.(map[string]any)
	if !ok {
		return false, false
	}
	for _, e := range list(m["AWS"]) {
		switch {
		case e == "*" || e == p.ARN:
			direct = true
		case e == p.Account || strings.HasSuffix(e, ":"+p.Account+":root"):
			account = true
		}
	}
	return direct, account
}

// condition evaluates one condition operator on one key.
func condition(op, key string, want []string, req Request) bool {
	op, ifExists := strings.CutSuffix(op, "IfExists")
	have, present := req.value(key)
	negated := strings.Contains(op, "Not")
	if !present {
		return ifExists || negated
	}
	var match func(pattern, v string) bool
	switch strings.Replace(op, "Not", "", 1) {
	case "StringEquals", "ArnEquals":
		match = func(p, v string) bool { return p == v }
	case "StringEqualsIgnoreCase":
		match = strings.EqualFold
	case "StringLike", "ArnLike":
		match = func(p, v string) bool { return Wildcard(p, v) }
	case "Bool":
		match = func(p, v string) bool { return strings.EqualFold(p, v) }
	default:
		return false // an operator not modelled never holds
	}
	matched := false
	for _, h := range have {
		for _, w := range want {
			if match(req.substitute(w), h) {
				matched = true
			}
		}
	}
	return matched != negated
}

func matchAny(patterns []string, s string, fold bool, sub func(string) string) bool {
	for _, p := range patterns {
		if sub != nil {
			p = sub(p)
		}
		if fold && Wildcard(strings.ToLower(p), strings.ToLower(s)) || !fold && Wildcard(p, s) {
			return true
		}
	}
	return false
}

// list reads a string or a list of strings.
func list(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []string:
		return x
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// Wildcard matches IAM's * (any run of characters, "/" and ":" included)
// and ? (one character).
func Wildcard(p, s string) bool {
	if p == "" {
		return s == ""
	}
	switch p[0] {
	case '*':
		for i := 0; i <= len(s); i++ {
			if Wildcard(p[1:], s[i:]) {
				return true
			}
		}
		return false
	case '?':
		return s != "" && Wildcard(p[1:], s[1:])
	}
	return s != "" && p[0] == s[0] && Wildcard(p[1:], s[1:])
}
