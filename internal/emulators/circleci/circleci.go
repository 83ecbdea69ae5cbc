// Package circleci emulates the part of the CircleCI API v2 that the
// circleci destination of shared/delivery uses: project environment
// variables and context environment variables. It serves on a loopback
// port, so a test or a separate local Lambda process can use it as its
// CircleCI.
//
// What it does, from the CircleCI API v2 reference
// (https://circleci.com/docs/api/v2/index.html, sections "Project" and
// "Context") and "Using Environment Variables"
// (https://circleci.com/docs/2.0/env-vars/):
//
//   - every call needs the Circle-Token header holding Token(); without it,
//     or with another token, 401 {"message":"You must log in first."};
//   - POST /api/v2/project/{project-slug}/envvar {"name","value"} creates or
//     replaces a variable: 201 {"name","value":"xxxx"+last 4}. The slug's
//     "/" may be URL-escaped;
//   - GET /api/v2/project/{project-slug}/envvar/{name} is 200 with the value
//     masked: four 'x' and the value's last four characters (the whole
//     value when shorter than four, as the site shows it);
//     GET /api/v2/project/{project-slug}/envvar lists them so;
//   - PUT /api/v2/context/{context-id}/environment-variable/{env-var-name}
//     {"value"} creates or updates: 200 {"variable","created_at",
//     "updated_at","context_id"}, never the value;
//   - GET /api/v2/context/{context-id}/environment-variable lists the
//     variables without values, PageSize items a page, next_page_token and
//     the page-token query parameter;
//   - an unknown project, context or variable is 404 {"message":...}; a
//     context id that is not a UUID, a variable name that does not follow
//     the documented rule (letters, digits and _, starting with a letter),
//     a missing name or value, or a body that is not JSON is 400. The
//     reference gives these calls only "default: Error response." with a
//     message field, so these statuses and the wording of these messages
//     (except the 401's) are the emulator's choice, not CircleCI's words.
//
// Not emulated: creating and listing contexts, organizations, project
// settings, other credentials than the one token.
//
// A variable is named in the test helpers by a scope string and its name:
// "project:<slug>" ("project:gh/acme/app") or "context:<context id>".
package circleci

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyrotor/keyrotor/internal/emulators/fault"
)

// PageSize is how many context variables a list page holds unless
// SetPageSize changes it.
const PageSize = 20

type variable struct {
	value            string
	created, updated time.Time
	writes           int
}

type store struct {
	vars map[string]*variable
}

// Server is a running emulator. Its methods are safe for concurrent use.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	token  string
	faults *fault.Set

	mu       sync.Mutex
	projects map[string]*store // by slug
	contexts map[string]*store // by id
	pageSize int
}

// Start serves a new emulator on 127.0.0.1 at a free port.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		ln.Close()
		return nil, fmt.Errorf("make token: %w", err)
	}
	s := &Server{
		ln: ln, token: "CCIPAT_" + hex.EncodeToString(b), faults: fault.New(),
		projects: map[string]*store{}, contexts: map[string]*store{}, pageSize: PageSize,
	}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the emulator.
func (s *Server) Close() { s.srv.Close() }

// URL is the base URL, as a circleci destination's url field takes it
// (the API is under /api/v2).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Token is the one valid Circle-Token.
func (s *Server) Token() string { return s.token }

// AddProject creates the project of slug ("gh/acme/app",
// "circleci/<org id>/<project id>").
func (s *Server) AddProject(slug string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.projects[slug] == nil {
		s.projects[slug] = &store{vars: map[string]*variable{}}
	}
}

// AddContext creates a context and returns its id, a random UUID. The
// name is not kept: the API calls emulated address contexts by id.
func (s *Server) AddContext(name string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	id := h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
	s.mu.Lock()
	defer s.mu.Unlock()
	s.contexts[id] = &store{vars: map[string]*variable{}}
	return id
}

// SetVariable puts a variable in scope as if a person had set it, at the
// emulator's clock, without counting a write.
func (s *Server) SetVariable(scope, name, value string) error {
	now := s.faults.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.lookup(scope)
	if st == nil {
		return fmt.Errorf("scope %q: no such project or context", scope)
	}
	v := st.vars[name]
	if v == nil {
		v = &variable{created: now}
		st.vars[name] = v
	}
	v.value, v.updated = value, now
	return nil
}

// Value returns the plaintext value of the variable name of scope.
func (s *Server) Value(scope, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.lookup(scope); st != nil {
		if v := st.vars[name]; v != nil {
			return v.value, true
		}
	}
	return "", false
}

// Updated returns when the variable name of scope was created and last
// written, by the emulator's clock.
func (s *Server) Updated(scope, name string) (created, updated time.Time, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.lookup(scope); st != nil {
		if v := st.vars[name]; v != nil {
			return v.created, v.updated, true
		}
	}
	return time.Time{}, time.Time{}, false
}

// Writes counts the successful writes of the variable name of scope
// through the API.
func (s *Server) Writes(scope, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.lookup(scope); st != nil {
		if v := st.vars[name]; v != nil {
			return v.writes
		}
	}
	return 0
}

// SetPageSize sets how many items a context variable list page holds
// (n < 1: PageSize).
func (s *Server) SetPageSize(n int) {
	if n < 1 {
		n = PageSize
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pageSize = n
}

// Fail answers the next times requests that match (nil: all) with status
// and {"message":"<status text>"}, changing nothing; times < 0: every
// matching request from now on.
func (s *Server) Fail(match func(*http.Request) bool, status int, times int) {
	s.faults.Fail(match, status, times)
}

// FailUntil answers every request with 500 while the emulator's clock is
// before t (the zero time ends it).
func (s *Server) FailUntil(t time.Time) { s.faults.FailUntil(t) }

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// SetClock replaces the emulator's clock, which stamps created_at and
// updated_at and times FailUntil (nil: time.Now).
func (s *Server) SetClock(now func() time.Time) { s.faults.SetClock(now) }

// lookup resolves a scope string; the caller holds s.mu.
func (s *Server) lookup(scope string) *store {
	kind, ref, _ := strings.Cut(scope, ":")
	switch kind {
	case "project":
		return s.projects[ref]
	case "context":
		return s.contexts[ref]
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func message(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

var (
	namePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]*$`)
	uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
)

// masked is how CircleCI shows a project variable's value: "xxxx" and the
// last four characters.
func masked(v string) string {
	if len(v) < 4 {
		return "xxxx" + v
	}
	return "xxxx" + v[len(v)-4:]
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if st := s.faults.Status(r); st != 0 {
		message(w, st, http.StatusText(st))
		return
	}
	if r.Header.Get("Circle-Token") != s.token {
		message(w, http.StatusUnauthorized, "You must log in first.")
		return
	}
	path, err := url.PathUnescape(r.URL.EscapedPath())
	if err != nil || !strings.HasPrefix(path, "/api/v2/") {
		message(w, http.StatusNotFound, "Not found")
		return
	}
	parts := strings.Split(strings.TrimPrefix(path, "/api/v2/"), "/")
	switch {
	case parts[0] == "project" && len(parts) >= 5 && parts[4] == "envvar":
		s.project(w, r, strings.Join(parts[1:4], "/"), parts[5:])
	case parts[0] == "context" && len(parts) >= 3 && parts[2] == "environment-variable":
		s.context(w, r, parts[1], parts[3:])
	default:
		message(w, http.StatusNotFound, "Not found")
	}
}

func (s *Server) project(w http.ResponseWriter, r *http.Request, slug string, rest []string) {
	now := s.faults.Now()
	var body struct {
		Name  *string `json:"name"`
		Value *string `json:"value"`
	}
	if r.Method == http.MethodPost {
		if !decode(w, r, &body) {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.projects[slug]
	if st == nil {
		message(w, http.StatusNotFound, "Project not found")
		return
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		names := sortedNames(st.vars)
		items := make([]map[string]string, 0, len(names))
		for _, n := range names {
			items = append(items, map[string]string{"name": n, "value": masked(st.vars[n].value)})
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_page_token": nil})
	case len(rest) == 0 && r.Method == http.MethodPost:
		if body.Name == nil || body.Value == nil {
			message(w, http.StatusBadRequest, "name and value are required")
			return
		}
		if !namePattern.MatchString(*body.Name) {
			message(w, http.StatusBadRequest, "Environment variable names must start with a letter and contain only letters, numbers and underscores.")
			return
		}
		v := st.vars[*body.Name]
		if v == nil {
			v = &variable{created: now}
			st.vars[*body.Name] = v
		}
		v.value, v.updated = *body.Value, now
		v.writes++
		writeJSON(w, http.StatusCreated, map[string]string{"name": *body.Name, "value": masked(v.value), "created-at": stamp(v.created)})
	case len(rest) == 1 && r.Method == http.MethodGet:
		v := st.vars[rest[0]]
		if v == nil {
			message(w, http.StatusNotFound, "Environment variable not found.")
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"name": rest[0], "value": masked(v.value), "created-at": stamp(v.created)})
	case len(rest) == 1 && r.Method == http.MethodDelete:
		delete(st.vars, rest[0])
		message(w, http.StatusOK, "Environment variable deleted.")
	default:
		message(w, http.StatusMethodNotAllowed, "Method not allowed")
	}
}

func (s *Server) context(w http.ResponseWriter, r *http.Request, id string, rest []string) {
	now := s.faults.Now()
	if !uuidPattern.MatchString(id) {
		message(w, http.StatusBadRequest, "Invalid context id: must be a UUID.")
		return
	}
	var body struct {
		Value *string `json:"value"`
	}
	if r.Method == http.MethodPut {
		if !decode(w, r, &body) {
			return
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.contexts[strings.ToLower(id)]
	if st == nil {
		message(w, http.StatusNotFound, "Context not found")
		return
	}
	entry := func(name string, v *variable) map[string]string {
		return map[string]string{"variable": name, "created_at": stamp(v.created), "updated_at": stamp(v.updated), "context_id": id}
	}
	switch {
	case len(rest) == 0 && r.Method == http.MethodGet:
		names := sortedNames(st.vars)
		start := 0
		if tok := r.URL.Query().Get("page-token"); tok != "" {
			n, err := strconv.Atoi(tok)
			if err != nil || n < 0 || n > len(names) {
				message(w, http.StatusBadRequest, "Invalid page-token.")
				return
			}
			start = n
		}
		end := min(start+s.pageSize, len(names))
		items := make([]map[string]string, 0, end-start)
		for _, n := range names[start:end] {
			items = append(items, entry(n, st.vars[n]))
		}
		var next any
		if end < len(names) {
			next = strconv.Itoa(end)
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": items, "next_page_token": next})
	case len(rest) == 1 && r.Method == http.MethodPut:
		if body.Value == nil {
			message(w, http.StatusBadRequest, "value is required")
			return
		}
		if !namePattern.MatchString(rest[0]) {
			message(w, http.StatusBadRequest, "Environment variable names must start with a letter and contain only letters, numbers and underscores.")
			return
		}
		v := st.vars[rest[0]]
		if v == nil {
			v = &variable{created: now}
			st.vars[rest[0]] = v
		}
		v.value, v.updated = *body.Value, now
		v.writes++
		writeJSON(w, http.StatusOK, entry(rest[0], v))
	case len(rest) == 1 && r.Method == http.MethodDelete:
		if st.vars[rest[0]] == nil {
			message(w, http.StatusNotFound, "Environment variable not found.")
			return
		}
		delete(st.vars, rest[0])
		message(w, http.StatusOK, "Environment variable deleted.")
	default:
		message(w, http.StatusMethodNotAllowed, "Method not allowed")
	}
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		message(w, http.StatusBadRequest, "Request body is not valid JSON.")
		return false
	}
	return true
}

func sortedNames(m map[string]*variable) []string {
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
