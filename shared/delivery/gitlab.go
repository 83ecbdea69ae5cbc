package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// The gitlab destination: two CI/CD variables of a project or a group.
//
// API (GitLab REST API v4):
//   - "Project-level CI/CD variables API",
//     https://docs.gitlab.com/ee/api/project_level_variables.html:
//     GET and PUT /projects/:id/variables/:key, POST /projects/:id/variables;
//     :id is the numeric id or the URL-encoded full path; when several
//     variables share a key, filter[environment_scope] picks one ("The
//     filter parameter"), so every GET and PUT here sends it.
//   - "Group-level Variables API",
//     https://docs.gitlab.com/ee/api/group_level_variables.html: the same
//     under /groups/:id/variables, except that a group variable's
//     environment_scope, and the filter, are documented as Premium and
//     Ultimate only (the filter since GitLab 16.9): on Free, leave a group
//     destination's environmentScope empty (the default "*").
//   - A key "must have no more than 255 characters; only A-Z, a-z, 0-9, and
//     _ are allowed" (Create a variable).
//   - "Mask a CI/CD variable",
//     https://docs.gitlab.com/ee/ci/variables/#mask-a-cicd-variable: a
//     masked value is a single line with no spaces, 8 characters or longer.
//
// Write updates an existing variable's value only: the PUT repeats the
// attributes the GET showed (masked, protected, raw, variable_type,
// environment_scope, description), because the documentation gives some
// of them a default on update ("raw ... Default: false"), and a default
// must not undo what a person chose. A missing variable is created masked
// when its value meets the masking rules (it always does for an AWS key:
// 20 or 40 characters of letters, digits, + and /), so it stays out of job
// logs, and not protected, so that pipelines of unprotected branches,
// which used the variable before it rotated if it was a person's, are not
// cut off; a person who wants it protected sets that once and every later
// rotation keeps it. raw stays GitLab's default: an AWS value holds no $.
//
// Holds reads both variables (with the scope filter) and compares the
// values exactly. A "masked and hidden" variable's value is never shown
// by the API, so Holds cannot confirm it and says so.

func init() { Register("gitlab", checkGitLab, newGitLab) }

const gitlabDefaultURL = "https://gitlab.com"

var (
	// gitlabKey is GitLab's rule for a variable key.
	gitlabKey = regexp.MustCompile(`^[A-Za-z0-9_]{1,255}$`)
	// gitlabPath is a full path: namespace segments and the project or
	// (sub)group, each of letters, digits, _, - and ., not starting with -.
	gitlabPath   = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]*(/[A-Za-z0-9_.][A-Za-z0-9_.-]*)*$`)
	gitlabID     = regexp.MustCompile(`^[1-9][0-9]*$`)
	gitlabMasked = regexp.MustCompile(`^[A-Za-z0-9+/=@:.~_-]{8,}$`)
)

func checkGitLab(s Spec, field string) error {
	if err := s.Only(field, "project", "group", "environmentScope", "idName", "secretName", "credential", "url"); err != nil {
		return err
	}
	switch {
	case s.Project != "" && s.Group != "":
		return &FieldError{Field: join(field, "group"), Msg: "set project or group, not both: one destination writes one place; list the other as its own destination"}
	case s.Project == "" && s.Group == "":
		return &FieldError{Field: join(field, "project"), Msg: "missing: the project (numeric id or full path such as group/app) or, instead, group (id or full path)"}
	case s.Project != "":
		if err := checkGitLabRef(join(field, "project"), s.Project, "project", "group/app", 2); err != nil {
			return err
		}
	default:
		if err := checkGitLabRef(join(field, "group"), s.Group, "group", "acme or acme/team", 1); err != nil {
			return err
		}
	}
	if e := s.EnvironmentScope; e != "" && (strings.TrimSpace(e) != e || len(e) > 255 || strings.ContainsFunc(e, isControl)) {
		return &FieldError{Field: join(field, "environmentScope"), Msg: fmt.Sprintf("%q is not an environment scope; want * (the default), an environment name such as production, or a wildcard such as review/*", e)}
	}
	id, secret := s.Names()
	for _, n := range []struct{ name, value string }{{"idName", id}, {"secretName", secret}} {
		if !gitlabKey.MatchString(n.value) {
			return &FieldError{Field: join(field, n.name), Msg: fmt.Sprintf("%q is not a GitLab variable key; GitLab allows 1 to 255 of A-Z, a-z, 0-9 and _", n.value)}
		}
	}
	if id == secret {
		return &FieldError{Field: join(field, "secretName"), Msg: fmt.Sprintf("the same variable as idName (%s); name two variables", id)}
	}
	if err := Required(field, "credential", s.Credential, "the name of the hub secret that holds a GitLab access token with the api scope (Maintainer of the project or Owner of the group)"); err != nil {
		return err
	}
	if s.URL != "" {
		// Whether plain http on loopback is allowed is the Env's to say,
		// when the destination is built.
		return checkAPIBase(field, s.URL, true, "/api/v4")
	}
	return nil
}

func checkGitLabRef(field, ref, what, example string, minSegments int) error {
	switch {
	case strings.Contains(ref, "://"):
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q is a URL; want the %s's numeric id or full path such as %s (a self-managed instance goes in url)", ref, what, example)}
	case gitlabID.MatchString(ref):
		return nil
	case !gitlabPath.MatchString(ref) || strings.Count(ref, "/")+1 < minSegments:
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q is neither a numeric id nor a full path; want the %s's id or full path such as %s, without leading or trailing /", ref, what, example)}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

type gitlabDest struct {
	http          *http.Client
	token         string
	kind          string // "project" or "group"
	ref           string // id or full path
	scope         string // environment scope
	base          string // .../api/v4/projects/<escaped ref>/variables
	idKey, secKey string
	where         string
}

var _ Destination = (*gitlabDest)(nil)

func newGitLab(ctx context.Context, s Spec, env Env) (Destination, error) {
	raw := s.URL
	if raw == "" {
		raw = gitlabDefaultURL
	}
	if err := checkAPIBase("", raw, env.AllowHTTP, "/api/v4"); err != nil {
		return nil, err
	}
	if env.Credential == nil {
		return nil, errors.New("gitlab destination: no credential reader")
	}
	token, err := env.Credential(ctx, s.Credential)
	if err != nil {
		return nil, fmt.Errorf("read credential %s: %w", s.Credential, err)
	}
	if strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("read credential %s: empty; store a GitLab access token in it", s.Credential)
	}
	d := &gitlabDest{http: env.HTTP, token: strings.TrimSpace(token), kind: "project", ref: s.Project, scope: s.EnvironmentScope}
	if d.http == nil {
		d.http = Client(nil, 30*time.Second)
	}
	if s.Group != "" {
		d.kind, d.ref = "group", s.Group
	}
	if d.scope == "" {
		d.scope = "*"
	}
	d.idKey, d.secKey = s.Names()
	d.base = apiBase(raw, "/api/v4/"+d.kind+"s/"+url.PathEscape(d.ref)+"/variables")
	d.where = fmt.Sprintf("gitlab %s %s variables %s, %s (scope %s)", d.kind, d.ref, d.idKey, d.secKey, d.scope)
	if raw != gitlabDefaultURL {
		u, _ := url.Parse(raw)
		d.where += " on " + u.Host
	}
	return d, nil
}

func (d *gitlabDest) Where() string { return d.where }

// gitlabVariable is a variable as the API shows it. Value is nil for a
// hidden variable.
type gitlabVariable struct {
	Key              string  `json:"key"`
	Value            *string `json:"value"`
	VariableType     string  `json:"variable_type"`
	Protected        bool    `json:"protected"`
	Masked           bool    `json:"masked"`
	Hidden           bool    `json:"hidden"`
	Raw              bool    `json:"raw"`
	EnvironmentScope string  `json:"environment_scope"`
	Description      *string `json:"description"`
}

func (d *gitlabDest) call(op, method, u string, body any, k Key) restCall {
	return restCall{
		Client: d.http, Where: d.where, Op: op, Method: method, URL: u, Body: body,
		Header: map[string]string{"PRIVATE-TOKEN": d.token},
		Redact: []string{d.token, k.SecretAccessKey},
	}
}

// keyURL is the URL of one variable, filtered to the destination's scope.
func (d *gitlabDest) keyURL(key string) string {
	return d.base + "/" + url.PathEscape(key) + "?" + url.Values{"filter[environment_scope]": {d.scope}}.Encode()
}

// get returns the variable key, or nil when GitLab has none of it in the
// scope.
func (d *gitlabDest) get(ctx context.Context, key string, k Key) (*gitlabVariable, error) {
	op := "get variable " + key
	status, body, err := d.call(op, http.MethodGet, d.keyURL(key), nil, k).do(ctx, http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound {
		// GitLab answers 404 for a missing project or group too; only
		// "404 Variable Not Found" means the variable is to be created.
		if msg := restMessage(status, body); msg != "404 Variable Not Found" {
			return nil, &Error{Where: d.where, Op: op, Status: status, Msg: msg}
		}
		return nil, nil
	}
	var v gitlabVariable
	if err := json.Unmarshal(body, &v); err != nil {
		return nil, &Error{Where: d.where, Op: op, Status: status, Msg: "answer is not a variable"}
	}
	return &v, nil
}

func (d *gitlabDest) Write(ctx context.Context, k Key) error {
	for _, kv := range [][2]string{{d.idKey, k.AccessKeyID}, {d.secKey, k.SecretAccessKey}} {
		if err := d.put(ctx, kv[0], kv[1], k); err != nil {
			return err
		}
	}
	return nil
}

func (d *gitlabDest) put(ctx context.Context, key, value string, k Key) error {
	cur, err := d.get(ctx, key, k)
	if err != nil {
		return err
	}
	if cur == nil {
		body := map[string]any{
			"key": key, "value": value, "environment_scope": d.scope,
			"masked": gitlabMasked.MatchString(value), "protected": false, "variable_type": "env_var",
		}
		_, _, err := d.call("create variable "+key, http.MethodPost, d.base, body, k).do(ctx)
		return err
	}
	body := map[string]any{
		"value": value, "environment_scope": cur.EnvironmentScope,
		"masked": cur.Masked, "protected": cur.Protected, "raw": cur.Raw,
	}
	if cur.VariableType != "" {
		body["variable_type"] = cur.VariableType
	}
	if cur.Description != nil {
		body["description"] = *cur.Description
	}
	_, _, err = d.call("update variable "+key, http.MethodPut, d.keyURL(key), body, k).do(ctx)
	return err
}

func (d *gitlabDest) Holds(ctx context.Context, k Key, _ time.Time) (bool, error) {
	for _, kv := range [][2]string{{d.idKey, k.AccessKeyID}, {d.secKey, k.SecretAccessKey}} {
		v, err := d.get(ctx, kv[0], k)
		if err != nil {
			return false, err
		}
		if v == nil {
			return false, nil
		}
		if v.Value == nil {
			return false, fmt.Errorf("%s: variable %s is hidden: GitLab never shows its value, so keyrotor cannot confirm it; recreate it masked but not hidden", d.where, kv[0])
		}
		if *v.Value != kv[1] {
			return false, nil
		}
	}
	return true, nil
}
