package delivery

// The github destination: GitHub Actions secrets of a repository, of a
// repository's environment or of an organization, through the REST API
// (version 2022-11-28), "REST API endpoints for GitHub Actions Secrets":
// https://docs.github.com/en/rest/actions/secrets?apiVersion=2022-11-28
//
// A value is sealed (libsodium's sealed box, here
// golang.org/x/crypto/nacl/box.SealAnonymous) with the public key of the
// repository, environment or organization and sent with that key's id
// ("Encrypting secrets for the REST API":
// https://docs.github.com/en/rest/guides/encrypting-secrets-for-the-rest-api).
// GitHub never shows a secret's value again, only its name and when it
// was created and last updated, so Holds can only tell that both secrets
// were written since a time.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/nacl/box"
)

// GitHubAPI is the public GitHub REST API's base URL, the default of a
// github spec's url (GitHub Enterprise Server: https://HOST/api/v3).
const GitHubAPI = "https://api.github.com"

func init() { Register("github", checkGitHub, newGitHub) }

var (
	// An owner (user or organization) is alphanumerics and single
	// hyphens, at most 39 characters; a repository name alphanumerics,
	// '-', '_' and '.', at most 100.
	githubOwnerRE = regexp.MustCompile(`^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$`)
	githubRepoRE  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,100}$`)
	// Secret names: "Can only contain alphanumeric characters ([a-z],
	// [A-Z], [0-9]) or underscores (_)", "Must not start with a number",
	// "Must not start with the GITHUB_ prefix"
	// (https://docs.github.com/en/actions/reference/security/secrets#naming-your-secrets).
	githubNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// checkGitHub is the github Checker.
func checkGitHub(s Spec, field string) error {
	if err := s.Only(field, "idName", "secretName", "credential", "url", "repository", "environment", "organization"); err != nil {
		return err
	}
	switch {
	case s.Repository == "" && s.Organization == "":
		return &FieldError{Field: join(field, "repository"), Msg: `missing: set repository ("owner/repo") for a repository secret, with environment for an environment secret, or organization alone for an organization secret`}
	case s.Repository != "" && s.Organization != "":
		return &FieldError{Field: join(field, "organization"), Msg: "set either repository (a repository or environment secret) or organization (an organization secret), not both; list two destinations for both"}
	case s.Environment != "" && s.Repository == "":
		return &FieldError{Field: join(field, "environment"), Msg: `an environment belongs to a repository: set repository ("owner/repo") too, or remove environment for an organization secret`}
	}
	if s.Repository != "" {
		owner, name, ok := strings.Cut(s.Repository, "/")
		if !ok || !githubOwnerRE.MatchString(owner) || !githubRepoRE.MatchString(name) || name == "." || name == ".." {
			return &FieldError{Field: join(field, "repository"), Msg: fmt.Sprintf(`%q is not a repository; want "owner/repo", such as "octo/app"`, s.Repository)}
		}
	}
	if s.Organization != "" && !githubOwnerRE.MatchString(s.Organization) {
		return &FieldError{Field: join(field, "organization"), Msg: fmt.Sprintf("%q is not an organization name; want its login, such as \"octo\" (letters, digits and hyphens)", s.Organization)}
	}
	// "An environment name may not exceed 255 characters" (Managing
	// environments for deployment,
	// https://docs.github.com/en/actions/managing-workflow-runs-and-deployments/managing-deployments/managing-environments-for-deployment).
	if s.Environment != "" && (strings.TrimSpace(s.Environment) != s.Environment || len(s.Environment) > 255 || strings.ContainsFunc(s.Environment, unicode.IsControl)) {
		return &FieldError{Field: join(field, "environment"), Msg: fmt.Sprintf("%q is not an environment name; want the name as the repository's settings show it (at most 255 characters, no surrounding spaces or control characters)", s.Environment)}
	}
	id, secret := s.Names()
	for _, n := range []struct{ field, name string }{{"idName", id}, {"secretName", secret}} {
		if msg := githubNameProblem(n.name); msg != "" {
			return &FieldError{Field: join(field, n.field), Msg: fmt.Sprintf("%q: %s", n.name, msg)}
		}
	}
	// GitHub stores secret names in upper case, so these are one secret.
	if strings.EqualFold(id, secret) {
		return &FieldError{Field: join(field, "secretName"), Msg: fmt.Sprintf("%q names the same GitHub secret as idName (names are case-insensitive); choose another name", secret)}
	}
	if err := Required(field, "credential", s.Credential, "the name of the hub secret (Secrets Manager) holding the GitHub token that may write these secrets"); err != nil {
		return err
	}
	if s.URL != "" {
		// Plain http on loopback passes here; the destination is built
		// only when its Env allows it (newGitHub checks again).
		if err := CheckURL(field, s.URL, true); err != nil {
			return err
		}
		if u, _ := url.Parse(s.URL); u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return &FieldError{Field: join(field, "url"), Msg: fmt.Sprintf("%q: want the API's base URL only, without user, query or fragment, such as https://ghe.example.com/api/v3", s.URL)}
		}
	}
	return nil
}

func githubNameProblem(name string) string {
	switch {
	case !githubNameRE.MatchString(name):
		return "GitHub secret names are letters, digits and underscores only, not starting with a digit"
	case strings.HasPrefix(strings.ToUpper(name), "GITHUB_"):
		return "GitHub secret names must not start with GITHUB_"
	}
	return ""
}

type gitHub struct {
	http        *http.Client
	base        string // no trailing slash
	token       string
	org         string // an organization secret's organization, else ""
	idName      string
	secretName  string
	where       string
	secretsPath string // "/repos/o/r/actions/secrets" and so on, escaped
}

// newGitHub is the github Factory: it reads the token from the hub secret
// named by credential.
func newGitHub(ctx context.Context, s Spec, env Env) (Destination, error) {
	base := s.URL
	if base == "" {
		base = GitHubAPI
	}
	if err := CheckURL("", base, env.AllowHTTP); err != nil {
		return nil, err
	}
	if env.Credential == nil {
		return nil, fmt.Errorf("github destination: no credential reader for hub secret %s", s.Credential)
	}
	token, err := env.Credential(ctx, s.Credential)
	if err != nil {
		return nil, fmt.Errorf("read github token from hub secret %s: %w", s.Credential, err)
	}
	token = strings.TrimSpace(token)
	if token == "" {
		return nil, fmt.Errorf("read github token from hub secret %s: the secret is empty", s.Credential)
	}
	hc := env.HTTP
	if hc == nil {
		hc = Client(nil, 30*time.Second)
	}
	g := &gitHub{http: hc, base: strings.TrimRight(base, "/"), token: token, org: s.Organization}
	g.idName, g.secretName = s.Names()
	names := g.idName + ", " + g.secretName
	switch {
	case s.Organization != "":
		g.secretsPath = "/orgs/" + url.PathEscape(s.Organization) + "/actions/secrets"
		g.where = "github organization secret " + s.Organization + ": " + names
	case s.Environment != "":
		g.secretsPath = "/repos/" + s.Repository + "/environments/" + url.PathEscape(s.Environment) + "/secrets"
		g.where = "github environment secret " + s.Repository + " (environment " + s.Environment + "): " + names
	default:
		g.secretsPath = "/repos/" + s.Repository + "/actions/secrets"
		g.where = "github repository secret " + s.Repository + ": " + names
	}
	if u, err := url.Parse(g.base); err == nil && u.Host != "api.github.com" {
		g.where += " at " + u.Host
	}
	return g, nil
}

// Where names the secrets, never a value or the token.
func (g *gitHub) Where() string { return g.where }

// String and GoString keep the token out of %v, %+v and %#v.
func (g *gitHub) String() string   { return g.where }
func (g *gitHub) GoString() string { return "delivery.gitHub{" + g.where + "}" }

// sealKey is a scope's public key and its id.
type sealKey struct {
	id  string
	key [32]byte
}

// Write seals both values with the scope's public key, fetched once per
// Write, and puts them ("Create or update a repository secret", "... an
// environment secret", "... an organization secret"; 201 when created,
// 204 when updated). A 422 on a PUT, GitHub's answer to a key id that is
// no longer the current key's, makes Write fetch the key again and retry
// that value once.
//
// An organization secret's PUT must carry its visibility. Write keeps an
// existing secret's ("Get an organization secret") and gives a new one
// "private", the narrowest that needs no repository list (gh secret set
// defaults to it too: github.com/cli/cli/issues/8110). For "selected",
// GitHub's docs do not say what an update without
// selected_repository_ids does, and GitHub was observed to clear the
// selection then (github.com/external-secrets/external-secrets/issues/6514,
// fixed in pull 6519 by re-sending the ids), which would cut every
// selected repository off its key: Write lists the selected repositories
// ("List selected repositories for an organization secret") and sends
// their ids.
func (g *gitHub) Write(ctx context.Context, k Key) error {
	return g.write(ctx, []namedValue{{g.idName, k.AccessKeyID}, {g.secretName, k.SecretAccessKey}})
}

// namedValue is one of the two values and its secret's name.
type namedValue struct{ name, value string }

// Resume writes the values whose secret was not updated at or after since
// (GitHub shows no value: an update since the earlier attempt began is
// taken for its write, as Holds takes it).
func (g *gitHub) Resume(ctx context.Context, k Key, since time.Time) error {
	var left []namedValue
	for _, v := range []namedValue{{g.idName, k.AccessKeyID}, {g.secretName, k.SecretAccessKey}} {
		ok, err := g.updatedSince(ctx, v.name, since)
		if err != nil {
			return err
		}
		if !ok {
			left = append(left, v)
		}
	}
	if len(left) == 0 {
		return nil
	}
	return g.write(ctx, left)
}

func (g *gitHub) write(ctx context.Context, values []namedValue) error {
	key, err := g.publicKey(ctx)
	if err != nil {
		return err
	}
	refetched := false
	for _, v := range values {
		access, err := g.access(ctx, v.name)
		if err != nil {
			return err
		}
		err = g.put(ctx, key, v.name, v.value, access)
		var ae *Error
		if errors.As(err, &ae) && ae.Status == http.StatusUnprocessableEntity && !refetched {
			refetched = true
			if key, err = g.publicKey(ctx); err != nil {
				return err
			}
			err = g.put(ctx, key, v.name, v.value, access)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// orgAccess is what an organization secret's PUT must repeat to keep who
// can read it; nil for repository and environment secrets.
type orgAccess struct {
	Visibility string
	Selected   []int64 // with "selected"; empty is no repository
}

func (g *gitHub) access(ctx context.Context, name string) (*orgAccess, error) {
	if g.org == "" {
		return nil, nil
	}
	var sec struct {
		Visibility string `json:"visibility"`
	}
	err := g.do(ctx, "get organization secret "+name, http.MethodGet, g.secretsPath+"/"+name, nil, &sec, http.StatusOK)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return &orgAccess{Visibility: "private"}, nil
	}
	if err != nil {
		return nil, err
	}
	a := &orgAccess{Visibility: sec.Visibility}
	if a.Visibility == "" {
		return nil, &Error{Where: g.where, Op: "get organization secret " + name, Status: http.StatusOK, Msg: "the answer has no visibility"}
	}
	if a.Visibility != "selected" {
		return a, nil
	}
	// Paged at 100 ("per_page ... max 100"), until total_count ids.
	a.Selected = []int64{}
	for page := 1; ; page++ {
		var list struct {
			TotalCount   int `json:"total_count"`
			Repositories []struct {
				ID int64 `json:"id"`
			} `json:"repositories"`
		}
		path := g.secretsPath + "/" + name + "/repositories?per_page=100&page=" + strconv.Itoa(page)
		if err := g.do(ctx, "list selected repositories of "+name, http.MethodGet, path, nil, &list, http.StatusOK); err != nil {
			return nil, err
		}
		for _, r := range list.Repositories {
			a.Selected = append(a.Selected, r.ID)
		}
		if len(list.Repositories) == 0 || len(a.Selected) >= list.TotalCount {
			return a, nil
		}
	}
}

// publicKey gets the answer of "Get a repository public key", "Get an
// environment public key" or "Get an organization public key".
func (g *gitHub) publicKey(ctx context.Context) (*sealKey, error) {
	var pk struct {
		KeyID string `json:"key_id"`
		Key   string `json:"key"`
	}
	if err := g.do(ctx, "get public key", http.MethodGet, g.secretsPath+"/public-key", nil, &pk, http.StatusOK); err != nil {
		return nil, err
	}
	raw, err := base64.StdEncoding.DecodeString(pk.Key)
	if err != nil || len(raw) != 32 || pk.KeyID == "" {
		return nil, fmt.Errorf("%s: get public key: the answer is not a key id and a 32-byte base64 key", g.where)
	}
	k := &sealKey{id: pk.KeyID}
	copy(k.key[:], raw)
	return k, nil
}

func (g *gitHub) put(ctx context.Context, key *sealKey, name, value string, access *orgAccess) error {
	sealed, err := box.SealAnonymous(nil, []byte(value), &key.key, rand.Reader)
	if err != nil {
		return fmt.Errorf("%s: seal %s: %w", g.where, name, err)
	}
	body := map[string]any{"encrypted_value": base64.StdEncoding.EncodeToString(sealed), "key_id": key.id}
	if access != nil {
		body["visibility"] = access.Visibility
		if access.Visibility == "selected" {
			body["selected_repository_ids"] = access.Selected
		}
	}
	return g.do(ctx, "put secret "+name, http.MethodPut, g.secretsPath+"/"+name, body, nil, http.StatusCreated, http.StatusNoContent)
}

// Holds reports whether both secrets were updated at or after since, to
// the second: GitHub never returns a secret's value, only its name,
// created_at and updated_at ("Get a repository secret", "Get an
// environment secret", "Get an organization secret": "without revealing
// its encrypted value"), in whole seconds. So this is the evidence GitHub
// allows: that both secrets were written since since, not that they hold
// k (anyone's write since then counts). updated_at is GitHub's clock and
// since the caller's: take since from before the Write, and a skew over a
// second makes Holds false for a write that happened (the next run
// writes again), never true for one older than the skew. A missing
// secret is false, not an error.
func (g *gitHub) Holds(ctx context.Context, _ Key, since time.Time) (bool, error) {
	for _, name := range []string{g.idName, g.secretName} {
		if ok, err := g.updatedSince(ctx, name, since); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// updatedSince reports whether secret name was updated at or after since,
// to the second (a missing secret: false).
func (g *gitHub) updatedSince(ctx context.Context, name string, since time.Time) (bool, error) {
	var sec struct {
		UpdatedAt time.Time `json:"updated_at"`
	}
	err := g.do(ctx, "get secret "+name, http.MethodGet, g.secretsPath+"/"+name, nil, &sec, http.StatusOK)
	var ae *Error
	if errors.As(err, &ae) && ae.Status == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return !sec.UpdatedAt.Truncate(time.Second).Before(since.Truncate(time.Second)), nil
}

// do sends one call with GitHub's headers and decodes a JSON answer into
// out. Any status but ok is an *Error with GitHub's "message", never the
// body sent.
func (g *gitHub) do(ctx context.Context, op, method, path string, body, out any, ok ...int) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("%s: %s: encode: %w", g.where, op, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, g.base+path, rd)
	if err != nil {
		return fmt.Errorf("%s: %s: %w", g.where, op, err)
	}
	// "Authentication ... Authorization: Bearer YOUR-TOKEN", the media
	// type and the API version the docs ask for
	// (https://docs.github.com/en/rest/about-the-rest-api/api-versions).
	req.Header.Set("Authorization", "Bearer "+g.token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := g.http.Do(req)
	if err != nil {
		return &Error{Where: g.where, Op: op, Msg: noAnswer(err)}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	for _, s := range ok {
		if resp.StatusCode == s {
			if out != nil && len(b) > 0 {
				if err := json.Unmarshal(b, out); err != nil {
					return &Error{Where: g.where, Op: op, Status: resp.StatusCode, Msg: "the answer is not the JSON the API documents"}
				}
			}
			return nil
		}
	}
	return &Error{Where: g.where, Op: op, Status: resp.StatusCode, Msg: githubMessage(resp.StatusCode, b)}
}

// githubMessage is the "message" of GitHub's error answer, bounded, or the
// status text.
func githubMessage(status int, b []byte) string {
	var e struct {
		Message string `json:"message"`
	}
	msg := http.StatusText(status)
	if json.Unmarshal(b, &e) == nil && strings.TrimSpace(e.Message) != "" {
		msg = strings.Map(func(r rune) rune {
			if r < 0x20 || r == 0x7f {
				return ' '
			}
			return r
		}, e.Message)
	}
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// noAnswer describes a call that got no answer: the cause, without the
// URL (the client logged the path already).
func noAnswer(err error) string {
	return "no answer: " + transportCause(err)
}
