// Package gitlab emulates the part of the GitLab REST API (v4) that the
// gitlab destination of shared/delivery uses: project-level and
// group-level CI/CD variables. It serves on a loopback port, so a test or
// a separate local Lambda process can use it as its GitLab.
//
// What it does, from GitLab's documentation ("Project-level CI/CD
// variables API", https://docs.gitlab.com/ee/api/project_level_variables.html;
// "Group-level Variables API", https://docs.gitlab.com/ee/api/group_level_variables.html;
// "Mask a CI/CD variable", https://docs.gitlab.com/ee/ci/variables/#mask-a-cicd-variable):
//
//   - every call needs the PRIVATE-TOKEN header holding Token(); without it,
//     or with another token, 401 {"message":"401 Unauthorized"};
//   - :id is the numeric id or the URL-encoded full path of a project or a
//     group; an unknown one is 404 {"message":"404 Project Not Found"}
//     ("404 Group Not Found");
//   - GET /variables/:key (filter[environment_scope] picks one scope) is 200,
//     404 {"message":"404 Variable Not Found"}, or 409 when several scopes
//     hold the key and no filter was given;
//   - POST /variables creates (201): key of at most 255 characters of
//     A-Z, a-z, 0-9 and _, a value, and optionally environment_scope
//     (default "*"), masked, protected, raw, variable_type (env_var or
//     file), description. A key already taken in that scope, an invalid
//     key, or a masked value that breaks the masking rules (a single line,
//     no spaces, at least 8 characters) is 400 with GitLab's
//     {"message":{"field":["reason"]}}; a missing key or value is 400
//     {"error":"key is missing"};
//   - PUT /variables/:key (filter[environment_scope]) changes the
//     attributes it is given and keeps the others (200);
//   - parameters come as a JSON body, a form, or the query string.
//
// The 401, 404 and 409 messages are GitLab's; the wording of the 400
// validation messages follows GitLab's shape but not every detail.
//
// A hidden variable (SetVariable with Hidden) shows a null value, as GitLab
// never reveals one; the API cannot create one here.
//
// Not emulated: pagination of lists, masked_and_hidden on create, instance
// variables, roles and permissions (the one token may do everything).
//
// A variable is named in the test helpers by a scope string and its key.
// The scope string is "project:<id or full path>" or "group:<id or full
// path>", then optionally "@<environment scope>" ("*" when absent):
// "project:acme/app", "project:42@production", "group:acme@*".
package gitlab

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
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

// Variable is a CI/CD variable as the API shows it.
type Variable struct {
	Key              string  `json:"key"`
	Value            string  `json:"value"`
	VariableType     string  `json:"variable_type"`
	Protected        bool    `json:"protected"`
	Masked           bool    `json:"masked"`
	Hidden           bool    `json:"hidden"`
	Raw              bool    `json:"raw"`
	EnvironmentScope string  `json:"environment_scope"`
	Description      *string `json:"description"`
}

// MarshalJSON shows the variable as the API does: a hidden variable's
// value is null.
func (v Variable) MarshalJSON() ([]byte, error) {
	type plain Variable
	out := struct {
		plain
		Value *string `json:"value"`
	}{plain: plain(v)}
	if !v.Hidden {
		out.Value = &v.Value
	}
	return json.Marshal(out)
}

// owner is a project or a group.
type owner struct {
	kind   string // "project" or "group"
	id     int
	path   string
	vars   map[varID]*Variable
	writes map[varID]int
}

type varID struct{ key, scope string }

// Server is a running emulator. Its methods are safe for concurrent use.
type Server struct {
	srv    *http.Server
	ln     net.Listener
	token  string
	faults *fault.Set

	mu     sync.Mutex
	nextID int
	owners []*owner
}

// Start serves a new emulator on 127.0.0.1 at a free port.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	b := make([]byte, 10)
	if _, err := rand.Read(b); err != nil {
		ln.Close()
		return nil, fmt.Errorf("make token: %w", err)
	}
	s := &Server{ln: ln, token: "glpat-" + hex.EncodeToString(b), faults: fault.New(), nextID: 1}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve), ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the emulator.
func (s *Server) Close() { s.srv.Close() }

// URL is the base URL, as a gitlab destination's url field takes it (the
// API is under /api/v4).
func (s *Server) URL() string { return "http://" + s.ln.Addr().String() }

// Token is the one valid PRIVATE-TOKEN.
func (s *Server) Token() string { return s.token }

// AddProject creates a project at its full path ("group/app") and returns
// its numeric id. Adding a path twice returns the first id.
func (s *Server) AddProject(path string) int { return s.add("project", path) }

// AddGroup creates a group at its full path ("acme" or "acme/sub") and
// returns its numeric id.
func (s *Server) AddGroup(path string) int { return s.add("group", path) }

func (s *Server) add(kind, path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range s.owners {
		if o.kind == kind && o.path == path {
			return o.id
		}
	}
	o := &owner{kind: kind, id: s.nextID, path: path, vars: map[varID]*Variable{}, writes: map[varID]int{}}
	s.nextID++
	s.owners = append(s.owners, o)
	return o.id
}

// SetVariable puts v in the project or group of scope (its environment
// part is ignored: v.EnvironmentScope counts, "*" when empty), as if a
// person had made it, without counting a write. An empty VariableType is
// env_var.
func (s *Server) SetVariable(scope string, v Variable) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, _, err := s.lookup(scope)
	if err != nil {
		return err
	}
	if v.EnvironmentScope == "" {
		v.EnvironmentScope = "*"
	}
	if v.VariableType == "" {
		v.VariableType = "env_var"
	}
	c := v
	o.vars[varID{v.Key, v.EnvironmentScope}] = &c
	return nil
}

// Variable returns the variable key of scope, with every attribute.
func (s *Server) Variable(scope, key string) (Variable, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, env, err := s.lookup(scope)
	if err != nil {
		return Variable{}, false
	}
	v, ok := o.vars[varID{key, env}]
	if !ok {
		return Variable{}, false
	}
	return *v, true
}

// Value returns the plaintext value of the variable name of scope.
func (s *Server) Value(scope, name string) (string, bool) {
	v, ok := s.Variable(scope, name)
	return v.Value, ok
}

// Writes counts the successful creates and updates of the variable name
// of scope through the API.
func (s *Server) Writes(scope, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, env, err := s.lookup(scope)
	if err != nil {
		return 0
	}
	return o.writes[varID{name, env}]
}

// Fail answers the next times requests that match (nil: all) with status
// and {"message":"<status> <text>"}, changing nothing; times < 0: every
// matching request from now on.
func (s *Server) Fail(match func(*http.Request) bool, status int, times int) {
	s.faults.Fail(match, status, times)
}

// FailUntil answers every request with 500 while the emulator's clock is
// before t (the zero time ends it).
func (s *Server) FailUntil(t time.Time) { s.faults.FailUntil(t) }

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() { s.faults.Clear() }

// SetClock replaces the emulator's clock (nil: time.Now).
func (s *Server) SetClock(now func() time.Time) { s.faults.SetClock(now) }

// lookup resolves a scope string; the caller holds s.mu.
func (s *Server) lookup(scope string) (*owner, string, error) {
	kind, rest, ok := strings.Cut(scope, ":")
	if !ok || (kind != "project" && kind != "group") {
		return nil, "", fmt.Errorf("scope %q: want project:<id or path>[@env] or group:<id or path>[@env]", scope)
	}
	ref, env, _ := strings.Cut(rest, "@")
	if env == "" {
		env = "*"
	}
	o := s.find(kind, ref)
	if o == nil {
		return nil, "", fmt.Errorf("scope %q: no such %s", scope, kind)
	}
	return o, env, nil
}

// find returns the project or group with id or path ref; the caller holds
// s.mu.
func (s *Server) find(kind, ref string) *owner {
	for _, o := range s.owners {
		if o.kind == kind && (o.path == ref || strconv.Itoa(o.id) == ref) {
			return o
		}
	}
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func message(w http.ResponseWriter, status int, msg any) {
	writeJSON(w, status, map[string]any{"message": msg})
}

var keyPattern = regexp.MustCompile(`^[A-Za-z0-9_]{1,255}$`)

// maskable is the documented rule for a masked value: a single line with
// no spaces, 8 characters or longer ("Mask a CI/CD variable").
func maskable(v string) bool {
	return len(v) >= 8 && !strings.ContainsAny(v, " \t\r\n\v\f")
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if st := s.faults.Status(r); st != 0 {
		message(w, st, fmt.Sprintf("%d %s", st, http.StatusText(st)))
		return
	}
	if r.Header.Get("PRIVATE-TOKEN") != s.token {
		message(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	// The path is read escaped: an :id may be a URL-encoded path.
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/api/v4/"), "/")
	if !strings.HasPrefix(r.URL.EscapedPath(), "/api/v4/") || len(parts) < 3 || len(parts) > 4 ||
		(parts[0] != "projects" && parts[0] != "groups") || parts[2] != "variables" {
		message(w, http.StatusNotFound, "404 Not Found")
		return
	}
	kind := strings.TrimSuffix(parts[0], "s")
	ref, err := url.PathUnescape(parts[1])
	if err != nil {
		message(w, http.StatusNotFound, "404 Not Found")
		return
	}
	key := ""
	if len(parts) == 4 {
		if key, err = url.PathUnescape(parts[3]); err != nil || key == "" {
			message(w, http.StatusNotFound, "404 Not Found")
			return
		}
	}
	params, err := readParams(r)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.find(kind, ref)
	if o == nil {
		if kind == "project" {
			message(w, http.StatusNotFound, "404 Project Not Found")
		} else {
			message(w, http.StatusNotFound, "404 Group Not Found")
		}
		return
	}
	switch {
	case key == "" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, o.list())
	case key == "" && r.Method == http.MethodPost:
		s.create(w, o, params)
	case key != "" && r.Method == http.MethodGet:
		if v := o.pick(w, key, params); v != nil {
			writeJSON(w, http.StatusOK, v)
		}
	case key != "" && r.Method == http.MethodPut:
		if v := o.pick(w, key, params); v != nil {
			s.update(w, o, v, params)
		}
	case key != "" && r.Method == http.MethodDelete:
		if v := o.pick(w, key, params); v != nil {
			delete(o.vars, varID{v.Key, v.EnvironmentScope})
			w.WriteHeader(http.StatusNoContent)
		}
	default:
		message(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
	}
}

func (o *owner) list() []Variable {
	out := make([]Variable, 0, len(o.vars))
	for _, v := range o.vars {
		out = append(out, *v)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Key != out[j].Key {
			return out[i].Key < out[j].Key
		}
		return out[i].EnvironmentScope < out[j].EnvironmentScope
	})
	return out
}

// pick finds the variable key, narrowed by filter[environment_scope], or
// answers 404 or 409 and returns nil.
func (o *owner) pick(w http.ResponseWriter, key string, p params) *Variable {
	scope, filtered := p.str("filter[environment_scope]")
	var found []*Variable
	for id, v := range o.vars {
		if id.key == key && (!filtered || id.scope == scope) {
			found = append(found, v)
		}
	}
	switch len(found) {
	case 0:
		message(w, http.StatusNotFound, "404 Variable Not Found")
		return nil
	case 1:
		return found[0]
	}
	message(w, http.StatusConflict, "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'")
	return nil
}

func (s *Server) create(w http.ResponseWriter, o *owner, p params) {
	key, ok := p.str("key")
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "key is missing"})
		return
	}
	value, ok := p.str("value")
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "value is missing"})
		return
	}
	v := Variable{Key: key, Value: value, VariableType: "env_var", EnvironmentScope: "*"}
	if msg := v.apply(p); msg != nil {
		message(w, http.StatusBadRequest, msg)
		return
	}
	if !keyPattern.MatchString(key) {
		message(w, http.StatusBadRequest, map[string][]string{"key": {"can contain only letters, digits and '_'."}})
		return
	}
	id := varID{v.Key, v.EnvironmentScope}
	if _, taken := o.vars[id]; taken {
		message(w, http.StatusBadRequest, map[string][]string{"key": {fmt.Sprintf("(%s) has already been taken", key)}})
		return
	}
	o.vars[id] = &v
	o.writes[id]++
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) update(w http.ResponseWriter, o *owner, cur *Variable, p params) {
	v := *cur
	if value, ok := p.str("value"); ok {
		v.Value = value
	}
	if msg := v.apply(p); msg != nil {
		message(w, http.StatusBadRequest, msg)
		return
	}
	old := varID{cur.Key, cur.EnvironmentScope}
	id := varID{v.Key, v.EnvironmentScope}
	if _, taken := o.vars[id]; taken && id != old {
		message(w, http.StatusBadRequest, map[string][]string{"key": {fmt.Sprintf("(%s) has already been taken", v.Key)}})
		return
	}
	delete(o.vars, old)
	o.vars[id] = &v
	o.writes[id]++
	writeJSON(w, http.StatusOK, v)
}

// apply sets the optional attributes given in p and checks the result,
// returning GitLab's validation message or nil.
func (v *Variable) apply(p params) any {
	for name, dst := range map[string]*bool{"masked": &v.Masked, "protected": &v.Protected, "raw": &v.Raw} {
		b, ok, err := p.boolean(name)
		if err != nil {
			return map[string][]string{name: {"is invalid"}}
		}
		if ok {
			*dst = b
		}
	}
	if t, ok := p.str("variable_type"); ok {
		if t != "env_var" && t != "file" {
			return map[string][]string{"variable_type": {"does not have a valid value"}}
		}
		v.VariableType = t
	}
	if e, ok := p.str("environment_scope"); ok {
		if e == "" {
			return map[string][]string{"environment_scope": {"can't be blank"}}
		}
		v.EnvironmentScope = e
	}
	if d, ok := p.str("description"); ok {
		v.Description = &d
	}
	if v.Masked && !maskable(v.Value) {
		return map[string][]string{"value": {"is invalid"}}
	}
	return nil
}

// params are a request's parameters: query string, then a JSON or form
// body (the body wins).
type params map[string]any

func readParams(r *http.Request) (params, error) {
	p := params{}
	for k, vs := range r.URL.Query() {
		p[k] = vs[len(vs)-1]
	}
	if r.Body == nil || r.Method == http.MethodGet || r.Method == http.MethodDelete {
		return p, nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, errors.New("body is unreadable")
	}
	if len(body) == 0 {
		return p, nil
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json":
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, errors.New("body is not a JSON object")
		}
		for k, v := range m {
			p[k] = v
		}
	case "application/x-www-form-urlencoded", "":
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, errors.New("body is not a form")
		}
		for k, vs := range q {
			p[k] = vs[len(vs)-1]
		}
	default:
		return nil, fmt.Errorf("content type %s is not supported", ct)
	}
	return p, nil
}

func (p params) str(name string) (string, bool) {
	switch v := p[name].(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

func (p params) boolean(name string) (value, present bool, err error) {
	switch v := p[name].(type) {
	case nil:
		return false, false, nil
	case bool:
		return v, true, nil
	case string:
		b, err := strconv.ParseBool(v)
		return b, err == nil, err
	}
	return false, false, errors.New("not a boolean")
}
