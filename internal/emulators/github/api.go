package github

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/nacl/box"
)

const docs = "https://docs.github.com/rest/actions/secrets"

// maxSecret is GitHub's size limit of a secret: "Secrets are limited to
// 48 KB in size"
// (https://docs.github.com/en/actions/reference/security/secrets#limits-for-secrets).
const maxSecret = 48 * 1024

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	// Repository secrets.
	mux.HandleFunc("GET /repos/{owner}/{repo}/actions/secrets/public-key", s.getKey)
	mux.HandleFunc("GET /repos/{owner}/{repo}/actions/secrets/{name}", s.getSecret)
	mux.HandleFunc("PUT /repos/{owner}/{repo}/actions/secrets/{name}", s.putSecret)
	// Environment secrets.
	mux.HandleFunc("GET /repos/{owner}/{repo}/environments/{env}/secrets/public-key", s.getKey)
	mux.HandleFunc("GET /repos/{owner}/{repo}/environments/{env}/secrets/{name}", s.getSecret)
	mux.HandleFunc("PUT /repos/{owner}/{repo}/environments/{env}/secrets/{name}", s.putSecret)
	// Organization secrets.
	mux.HandleFunc("GET /orgs/{org}/actions/secrets/public-key", s.getKey)
	mux.HandleFunc("GET /orgs/{org}/actions/secrets/{name}", s.getSecret)
	mux.HandleFunc("PUT /orgs/{org}/actions/secrets/{name}", s.putSecret)
	mux.HandleFunc("GET /orgs/{org}/actions/secrets/{name}/repositories", s.listSelected)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "Not Found")
	})
	return s.gate(mux)
}

// gate records every request and answers, before the endpoint does,
// injected faults, authentication and the API version.
func (s *Server) gate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			s.mu.Lock()
			s.calls = append(s.calls, Call{Method: r.Method, Path: r.URL.Path, Status: rec.status})
			s.mu.Unlock()
		}()
		s.mu.Lock()
		status := s.faults.Status(r)
		tok, hasAuth := bearer(r)
		valid := s.tokens[tok]
		s.mu.Unlock()
		switch {
		case status != 0:
			writeError(rec, status, http.StatusText(status))
		// A token goes in the Authorization header as "Bearer TOKEN" (or
		// "token TOKEN"); a wrong one is answered 401 "Bad credentials"
		// (https://docs.github.com/en/rest/authentication/authenticating-to-the-rest-api,
		// https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api).
		// The secrets endpoints need one: "OAuth app tokens and personal
		// access tokens (classic) need the repo scope to use this endpoint".
		// Without one the emulator answers 401 "Requires authentication";
		// GitHub may answer 404 instead for a private repository, so as
		// not to disclose it.
		case !hasAuth:
			writeError(rec, http.StatusUnauthorized, "Requires authentication")
		case !valid:
			writeError(rec, http.StatusUnauthorized, "Bad credentials")
		// "If you specify an API version that is no longer supported, you
		// will receive a 400 error"; "Requests without the
		// X-GitHub-Api-Version header will default to use the 2022-11-28
		// version" (https://docs.github.com/en/rest/about-the-rest-api/api-versions).
		// The emulator knows no other version.
		case r.Header.Get("X-GitHub-Api-Version") != "" && r.Header.Get("X-GitHub-Api-Version") != APIVersion:
			writeError(rec, http.StatusBadRequest, fmt.Sprintf("API version %s is not supported.", r.Header.Get("X-GitHub-Api-Version")))
		default:
			next.ServeHTTP(rec, r)
		}
	})
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", false
	}
	for _, p := range []string{"Bearer ", "bearer ", "token "} {
		if t, ok := strings.CutPrefix(h, p); ok {
			return t, true
		}
	}
	return "", true
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	r.status = code
	r.ResponseWriter.WriteHeader(code)
}

// scopeOf finds the scope a request names, nil (and a 404 written) when
// the repository, environment or organization is unknown: GitHub answers
// 404 "Not Found" for a resource that does not exist or that the token
// cannot see (each endpoint lists 404 "Resource not found"). The caller
// holds s.mu.
func (s *Server) scopeOf(w http.ResponseWriter, r *http.Request) *scope {
	var name string
	switch {
	case r.PathValue("org") != "":
		org, ok := s.orgs[strings.ToLower(r.PathValue("org"))]
		if !ok {
			writeError(w, http.StatusNotFound, "Not Found")
			return nil
		}
		name = "org:" + org
	default:
		rp, ok := s.repos[strings.ToLower(r.PathValue("owner")+"/"+r.PathValue("repo"))]
		if !ok {
			writeError(w, http.StatusNotFound, "Not Found")
			return nil
		}
		name = "repo:" + rp.fullName
		if env := r.PathValue("env"); env != "" {
			e, ok := rp.envs[strings.ToLower(env)]
			if !ok {
				writeError(w, http.StatusNotFound, "Not Found")
				return nil
			}
			name = "env:" + rp.fullName + "/" + e
		}
	}
	return s.scopes[strings.ToLower(name)]
}

// getKey answers "Get a repository public key", "Get an environment public
// key" and "Get an organization public key": 200 {"key_id", "key"} with
// the base64 public key to seal values with.
func (s *Server) getKey(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeOf(w, r)
	if sc == nil {
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{
		"key_id": sc.keyID,
		"key":    base64.StdEncoding.EncodeToString(sc.pub[:]),
	})
}

// getSecret answers "Get a repository secret", "Get an environment secret"
// and "Get an organization secret": the secret "without revealing its
// encrypted value": name, created_at and updated_at, and for an
// organization secret its visibility (and selected_repositories_url when
// "selected"); 404 when there is no such secret.
func (s *Server) getSecret(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeOf(w, r)
	if sc == nil {
		return
	}
	sec, ok := sc.secrets[strings.ToUpper(r.PathValue("name"))]
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	out := map[string]string{
		"name":       sec.name,
		"created_at": sec.created.UTC().Format(time.RFC3339),
		"updated_at": sec.updated.UTC().Format(time.RFC3339),
	}
	if sc.org {
		out["visibility"] = sec.visibility
		if sec.visibility == "selected" {
			out["selected_repositories_url"] = s.url + "/orgs/" + r.PathValue("org") + "/actions/secrets/" + sec.name + "/repositories"
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// putSecret answers "Create or update a repository secret", "Create or
// update an environment secret" and "Create or update an organization
// secret": encrypted_value sealed (libsodium sealed box) with the scope's
// public key and the key_id of that key; 201 "Response when creating a
// secret", 204 "Response when updating a secret". An organization secret
// also takes visibility ("all", "private" or "selected", required) and
// selected_repository_ids ("You can only provide a list of repository ids
// when the visibility is set to selected").
//
// Refused with 422, GitHub's status for a request it cannot process:
// a key_id that is not the scope's current key's (stale after a key
// change, or another scope's), an encrypted_value that is not base64 or
// does not open with the scope's private key, a name GitHub refuses, a
// value over 48 KB, and for an organization a missing or unknown
// visibility or repository ids without "selected".
//
// An update of a "selected" organization secret without
// selected_repository_ids leaves it with no repository: GitHub's docs do
// not say what happens to the selection then, and GitHub was observed to
// clear it (external-secrets/external-secrets#6514, fixed by re-sending
// the ids in #6519), so the emulator does the same and a client must
// re-send the ids to keep them.
func (s *Server) putSecret(w http.ResponseWriter, r *http.Request) {
	var body struct {
		EncryptedValue *string  `json:"encrypted_value"`
		KeyID          *string  `json:"key_id"`
		Visibility     *string  `json:"visibility"`
		Selected       *[]int64 `json:"selected_repository_ids"`
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, 4*maxSecret))
	if err != nil || json.Unmarshal(raw, &body) != nil {
		// "Problems parsing JSON" is GitHub's 400 for a body that is not
		// JSON (troubleshooting-the-rest-api).
		writeError(w, http.StatusBadRequest, "Problems parsing JSON")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeOf(w, r)
	if sc == nil {
		return
	}
	name := r.PathValue("name")
	if msg := checkName(name); msg != "" {
		writeError(w, http.StatusUnprocessableEntity, msg)
		return
	}
	if body.EncryptedValue == nil || body.KeyID == nil {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request. encrypted_value and key_id are required.")
		return
	}
	if *body.KeyID != sc.keyID {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request. key_id is not the current public key's id; get the public key again.")
		return
	}
	sealed, err := base64.StdEncoding.DecodeString(*body.EncryptedValue)
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request. encrypted_value is not base64.")
		return
	}
	plain, ok := box.OpenAnonymous(nil, sealed, sc.pub, sc.priv)
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request. encrypted_value could not be decrypted with the public key of key_id.")
		return
	}
	if len(plain) > maxSecret {
		writeError(w, http.StatusUnprocessableEntity, "Invalid request. Secrets are limited to 48 KB.")
		return
	}
	var visibility string
	var selected []int64
	switch {
	case sc.org && body.Visibility == nil:
		writeError(w, http.StatusUnprocessableEntity, "Invalid request. visibility is required.")
		return
	case sc.org:
		visibility = *body.Visibility
		if visibility != "all" && visibility != "private" && visibility != "selected" {
			writeError(w, http.StatusUnprocessableEntity, "Invalid request. visibility must be one of all, private, selected.")
			return
		}
		if body.Selected != nil && visibility != "selected" {
			writeError(w, http.StatusUnprocessableEntity, "Invalid request. selected_repository_ids can only be provided when visibility is selected.")
			return
		}
		if body.Selected != nil {
			for _, id := range *body.Selected {
				rp, ok := s.byRepoID[id]
				if !ok || !strings.EqualFold(rp.owner, r.PathValue("org")) {
					writeError(w, http.StatusUnprocessableEntity, fmt.Sprintf("Invalid request. Repository %d is not in the organization.", id))
					return
				}
			}
			selected = append([]int64{}, *body.Selected...)
		}
	}
	// Repository and environment secrets take only encrypted_value and
	// key_id; other fields are ignored.
	now := s.now().UTC().Truncate(time.Second)
	sec, exists := sc.secrets[strings.ToUpper(name)]
	if !exists {
		sec = &secret{name: strings.ToUpper(name), created: now}
		sc.secrets[sec.name] = sec
	}
	sec.value, sec.updated = string(plain), now
	sec.visibility, sec.selected = visibility, selected
	sec.writes++
	if exists {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusCreated, struct{}{})
}

// listSelected answers "List selected repositories for an organization
// secret": {"total_count", "repositories": [{"id", "name", "full_name"}]},
// paged with page and per_page (default 30, at most 100; Link rel="next"
// while more follow: https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api).
func (s *Server) listSelected(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc := s.scopeOf(w, r)
	if sc == nil {
		return
	}
	sec, ok := sc.secrets[strings.ToUpper(r.PathValue("name"))]
	if !ok {
		writeError(w, http.StatusNotFound, "Not Found")
		return
	}
	page, perPage := atoiOr(r.URL.Query().Get("page"), 1), atoiOr(r.URL.Query().Get("per_page"), 30)
	perPage = min(max(perPage, 1), 100)
	page = max(page, 1)
	type repoOut struct {
		ID       int64  `json:"id"`
		Name     string `json:"name"`
		FullName string `json:"full_name"`
	}
	out := struct {
		TotalCount   int       `json:"total_count"`
		Repositories []repoOut `json:"repositories"`
	}{TotalCount: len(sec.selected), Repositories: []repoOut{}}
	start := (page - 1) * perPage
	for i := start; i < len(sec.selected) && i < start+perPage; i++ {
		rp := s.byRepoID[sec.selected[i]]
		out.Repositories = append(out.Repositories, repoOut{ID: rp.id, Name: rp.name, FullName: rp.fullName})
	}
	if start+perPage < len(sec.selected) {
		next := fmt.Sprintf("%s%s?page=%d&per_page=%d", s.url, r.URL.EscapedPath(), page+1, perPage)
		w.Header().Set("Link", `<`+next+`>; rel="next"`)
	}
	writeJSON(w, http.StatusOK, out)
}

var nameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkName applies GitHub's naming rules for secrets: "Can only contain
// alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_)",
// "Must not start with the GITHUB_ prefix", "Must not start with a
// number" (https://docs.github.com/en/actions/reference/security/secrets#naming-your-secrets).
// It returns "" for a good name.
func checkName(name string) string {
	switch {
	case !nameRE.MatchString(name):
		return "Invalid request. Secret names can only contain alphanumeric characters ([a-z], [A-Z], [0-9]) or underscores (_), and must not start with a number."
	case strings.HasPrefix(strings.ToUpper(name), "GITHUB_"):
		return "Invalid request. Secret names must not start with GITHUB_."
	}
	return ""
}

func atoiOr(s string, def int) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		return def
	}
	return n
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError answers GitHub's error shape: {"message", "documentation_url",
// "status"}.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{
		"message":           msg,
		"documentation_url": docs,
		"status":            strconv.Itoa(status),
	})
}
