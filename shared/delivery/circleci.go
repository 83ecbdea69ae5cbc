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

// The circleci destination: two environment variables of a project or a
// context.
//
// API: CircleCI API v2 reference, https://circleci.com/docs/api/v2/index.html
//   - Project, "Create an environment variable": POST
//     /project/{project-slug}/envvar {name, value}, answered 201; it
//     creates or replaces. "Get a masked environment variable": GET
//     /project/{project-slug}/envvar/{name}, whose value is four 'x' and
//     the last four characters of the value: all CircleCI lets a client
//     read of it, so Holds compares those last four characters. (The
//     chance that a new key's id and secret both end as another key's do
//     is about 1 in 36^4 * 64^4.)
//   - Context, "Add or update an environment variable": PUT
//     /context/{context-id}/environment-variable/{env-var-name} {value},
//     answered 200 with the variable's name, created_at and updated_at but
//     never its value. "List environment variables": GET
//     /context/{context-id}/environment-variable, paginated with
//     next_page_token and page-token, names and times only. So Holds for a
//     context means both variables exist and were updated at or after
//     since (to the second): it cannot tell one key from another written
//     in the same window.
//   - A project slug is vcs-slug/org-name/repo-name (gh or bb; for GitLab
//     and GitHub App projects, circleci/<organization id>/<project id>).
//
// Variable names: "Using Environment Variables",
// https://circleci.com/docs/2.0/env-vars/: "Valid characters include
// letters (uppercase and lowercase), digits, and the underscore. The first
// character of each environment variable must be a letter."

func init() { Register("circleci", checkCircleCI, newCircleCI) }

const circleDefaultURL = "https://circleci.com"

var (
	circleName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	circleUUID = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	circleVCS  = regexp.MustCompile(`^(gh|github|bb|bitbucket)/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
)

func checkCircleCI(s Spec, field string) error {
	if err := s.Only(field, "project", "context", "idName", "secretName", "credential", "url"); err != nil {
		return err
	}
	switch {
	case s.Project != "" && s.Context != "":
		return &FieldError{Field: join(field, "context"), Msg: "set project or context, not both: one destination writes one place; list the other as its own destination"}
	case s.Project == "" && s.Context == "":
		return &FieldError{Field: join(field, "project"), Msg: "missing: the project slug (such as gh/org/repo, or circleci/<organization id>/<project id>) or, instead, context (the context's id)"}
	case s.Project != "":
		if !circleSlug(s.Project) {
			return &FieldError{Field: join(field, "project"), Msg: fmt.Sprintf("%q is not a project slug; want gh/org/repo or bb/org/repo, or for GitLab and GitHub App projects circleci/<organization id>/<project id> (Project Settings shows it)", s.Project)}
		}
	default:
		if !circleUUID.MatchString(s.Context) {
			return &FieldError{Field: join(field, "context"), Msg: fmt.Sprintf("%q is not a context id; want the context's id, a UUID (Organization Settings > Contexts), not its name", s.Context)}
		}
	}
	id, secret := s.Names()
	for _, n := range []struct{ name, value string }{{"idName", id}, {"secretName", secret}} {
		if !circleName.MatchString(n.value) {
			return &FieldError{Field: join(field, n.name), Msg: fmt.Sprintf("%q is not a CircleCI variable name; CircleCI wants letters, digits and _, starting with a letter", n.value)}
		}
	}
	if id == secret {
		return &FieldError{Field: join(field, "secretName"), Msg: fmt.Sprintf("the same variable as idName (%s); name two variables", id)}
	}
	if err := Required(field, "credential", s.Credential, "the name of the hub secret that holds a CircleCI personal API token"); err != nil {
		return err
	}
	if s.URL != "" {
		return checkAPIBase(field, s.URL, true, "/api/v2")
	}
	return nil
}

func circleSlug(s string) bool {
	if circleVCS.MatchString(s) {
		return true
	}
	parts := strings.Split(s, "/")
	return len(parts) == 3 && parts[0] == "circleci" && circleUUID.MatchString(parts[1]) && circleUUID.MatchString(parts[2])
}

type circleDest struct {
	http          *http.Client
	token         string
	project       string // slug, or "" for a context
	context       string // id
	api           string // .../api/v2
	idName, secNm string
	where         string
}

var _ Destination = (*circleDest)(nil)

func newCircleCI(ctx context.Context, s Spec, env Env) (Destination, error) {
	raw := s.URL
	if raw == "" {
		raw = circleDefaultURL
	}
	if err := checkAPIBase("", raw, env.AllowHTTP, "/api/v2"); err != nil {
		return nil, err
	}
	if env.Credential == nil {
		return nil, errors.New("circleci destination: no credential reader")
	}
	token, err := env.Credential(ctx, s.Credential)
	if err != nil {
		return nil, fmt.Errorf("read credential %s: %w", s.Credential, err)
	}
	if strings.TrimSpace(token) == "" {
		return nil, fmt.Errorf("read credential %s: empty; store a CircleCI API token in it", s.Credential)
	}
	d := &circleDest{http: env.HTTP, token: strings.TrimSpace(token), project: s.Project, context: s.Context, api: apiBase(raw, "/api/v2")}
	if d.http == nil {
		d.http = Client(nil, 30*time.Second)
	}
	d.idName, d.secNm = s.Names()
	if d.project != "" {
		d.where = fmt.Sprintf("circleci project %s variables %s, %s", d.project, d.idName, d.secNm)
	} else {
		d.where = fmt.Sprintf("circleci context %s variables %s, %s", d.context, d.idName, d.secNm)
	}
	if raw != circleDefaultURL {
		u, _ := url.Parse(raw)
		d.where += " on " + u.Host
	}
	return d, nil
}

func (d *circleDest) Where() string { return d.where }

func (d *circleDest) call(op, method, u string, body any, k Key) restCall {
	return restCall{
		Client: d.http, Where: d.where, Op: op, Method: method, URL: u, Body: body,
		Header: map[string]string{"Circle-Token": d.token},
		Redact: []string{d.token, k.SecretAccessKey},
	}
}

// projectURL is the project's envvar collection; the slug's segments are
// escaped one by one, its slashes kept.
func (d *circleDest) projectURL() string {
	parts := strings.Split(d.project, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return d.api + "/project/" + strings.Join(parts, "/") + "/envvar"
}

func (d *circleDest) contextURL() string {
	return d.api + "/context/" + url.PathEscape(d.context) + "/environment-variable"
}

func (d *circleDest) Write(ctx context.Context, k Key) error {
	for _, nv := range [][2]string{{d.idName, k.AccessKeyID}, {d.secNm, k.SecretAccessKey}} {
		var c restCall
		if d.project != "" {
			c = d.call("create variable "+nv[0], http.MethodPost, d.projectURL(), map[string]string{"name": nv[0], "value": nv[1]}, k)
		} else {
			c = d.call("put variable "+nv[0], http.MethodPut, d.contextURL()+"/"+url.PathEscape(nv[0]), map[string]string{"value": nv[1]}, k)
		}
		if _, _, err := c.do(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (d *circleDest) Holds(ctx context.Context, k Key, since time.Time) (bool, error) {
	if d.project != "" {
		return d.holdsProject(ctx, k)
	}
	return d.holdsContext(ctx, k, since)
}

func (d *circleDest) holdsProject(ctx context.Context, k Key) (bool, error) {
	for _, nv := range [][2]string{{d.idName, k.AccessKeyID}, {d.secNm, k.SecretAccessKey}} {
		op := "get variable " + nv[0]
		status, body, err := d.call(op, http.MethodGet, d.projectURL()+"/"+url.PathEscape(nv[0]), nil, k).do(ctx, http.StatusNotFound)
		if err != nil {
			return false, err
		}
		if status == http.StatusNotFound {
			return false, nil
		}
		var v struct {
			Value string `json:"value"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			return false, &Error{Where: d.where, Op: op, Status: status, Msg: "answer is not a variable"}
		}
		// The value comes back as "xxxx" and its last four characters.
		if lastFour(v.Value) != lastFour(nv[1]) {
			return false, nil
		}
	}
	return true, nil
}

func (d *circleDest) holdsContext(ctx context.Context, k Key, since time.Time) (bool, error) {
	want := map[string]bool{d.idName: false, d.secNm: false}
	since = since.Truncate(time.Second)
	token := ""
	for page := 0; ; page++ {
		if page == 100 {
			return false, &Error{Where: d.where, Op: "list variables", Msg: "more than 100 pages of variables"}
		}
		u := d.contextURL()
		if token != "" {
			u += "?" + url.Values{"page-token": {token}}.Encode()
		}
		status, body, err := d.call("list variables", http.MethodGet, u, nil, k).do(ctx)
		if err != nil {
			return false, err
		}
		var list struct {
			Items []struct {
				Variable  string    `json:"variable"`
				UpdatedAt time.Time `json:"updated_at"`
			} `json:"items"`
			NextPageToken *string `json:"next_page_token"`
		}
		if err := json.Unmarshal(body, &list); err != nil {
			return false, &Error{Where: d.where, Op: "list variables", Status: status, Msg: "answer is not a list of variables"}
		}
		for _, it := range list.Items {
			if _, ok := want[it.Variable]; ok && !it.UpdatedAt.Before(since) {
				want[it.Variable] = true
			}
		}
		if list.NextPageToken == nil || *list.NextPageToken == "" {
			break
		}
		token = *list.NextPageToken
	}
	return want[d.idName] && want[d.secNm], nil
}

// lastFour is the end of a value that CircleCI shows.
func lastFour(s string) string {
	if len(s) <= 4 {
		return s
	}
	return s[len(s)-4:]
}
