// Package github emulates the part of the GitHub REST API that a GitHub
// Actions secrets destination uses: the public keys, the secrets of
// repositories, of environments and of organizations, and the selected
// repositories of an organization secret. It checks what GitHub checks
// (a token, the repository, environment or organization, the key id, that
// the value opens with the scope's private key, the secret's name, an
// organization secret's visibility) and answers as GitHub's docs say, so a
// client that works here has met every rule the docs state. It holds each
// secret's plaintext, which GitHub never shows, so tests can assert on
// exactly what was delivered.
//
// A test starts one with Start (a loopback port, so a separate Lambda
// process can reach it too), adds repositories, environments and
// organizations, and hands URL and Token to the code under test. Faults
// are injected with Fail (a number of answers) or DownUntil (every answer
// until a time of the emulator's clock).
//
// The REST reference the behaviour follows is "REST API endpoints for
// GitHub Actions Secrets", API version 2022-11-28:
// https://docs.github.com/en/rest/actions/secrets?apiVersion=2022-11-28
// Each handler names its section.
//
// Scopes name where a secret lives, in the emulator's own notation:
// "repo:OWNER/REPO", "env:OWNER/REPO/ENVIRONMENT" and "org:ORG". GitHub
// treats owner, repository and organization names, and secret names, as
// case-insensitive; the emulator compares them case-insensitively too and
// stores secret names in upper case, as GitHub does ("GitHub stores secret
// names as uppercase regardless of how they are entered",
// https://docs.github.com/en/actions/reference/security/secrets#naming-your-secrets).
package github

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/nacl/box"

	"github.com/keyrotor/keyrotor/internal/emulators/fault"
)

// APIVersion is the only REST API version the emulator serves.
const APIVersion = "2022-11-28"

// Server is a running emulator. It is safe for concurrent use.
type Server struct {
	srv *http.Server
	ln  net.Listener
	url string

	mu       sync.Mutex
	now      func() time.Time
	tokens   map[string]bool
	token    string
	repos    map[string]*repo  // lower-cased "owner/repo"
	scopes   map[string]*scope // lower-cased scope
	orgs     map[string]string // lower-cased org -> org as added
	nextID   int64             // repository ids
	faults   *fault.Set        // injected failures, on the emulator's clock
	calls    []Call            // every request, in order
	keyIDs   map[string]*scope // key id -> scope, to tell a stale key id from an unknown one
	byRepoID map[int64]*repo   // selected_repository_ids
}

type repo struct {
	id       int64
	fullName string // as added
	owner    string
	name     string
	envs     map[string]string // lower-cased env -> env as added
}

// scope is where secrets live, with its own key pair: GitHub has one
// public key per repository, per environment and per organization (Get a
// repository / an environment / an organization public key).
type scope struct {
	name    string // "repo:octo/app", as added
	org     bool
	pub     *[32]byte
	priv    *[32]byte
	keyID   string
	secrets map[string]*secret // upper-cased name
}

type secret struct {
	name       string
	value      string
	created    time.Time
	updated    time.Time
	visibility string  // organization secrets only
	selected   []int64 // with visibility "selected"
	writes     int
}

// Call is one request the emulator answered.
type Call struct {
	Method string
	Path   string // unescaped
	Status int
}

// Start runs an emulator on 127.0.0.1 at a free port. Close stops it.
func Start() (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen on loopback: %w", err)
	}
	s := &Server{
		ln:       ln,
		url:      "http://" + ln.Addr().String(),
		now:      time.Now,
		faults:   fault.New(),
		tokens:   map[string]bool{},
		repos:    map[string]*repo{},
		scopes:   map[string]*scope{},
		orgs:     map[string]string{},
		keyIDs:   map[string]*scope{},
		byRepoID: map[int64]*repo{},
		nextID:   100000,
	}
	s.token = "ghp_" + randomHex(18)
	s.tokens[s.token] = true
	s.srv = &http.Server{Handler: s.routes(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// Close stops the emulator.
func (s *Server) Close() error { return s.srv.Close() }

// URL is the API base URL, like https://api.github.com (plain http on
// loopback).
func (s *Server) URL() string { return s.url }

// Token returns a token the emulator accepts.
func (s *Server) Token() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.token
}

// AddToken makes tok a valid token too.
func (s *Server) AddToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[tok] = true
}

// RevokeToken makes tok invalid (Bad credentials from then on).
func (s *Server) RevokeToken(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.tokens, tok)
}

// SetClock replaces the clock that stamps created_at and updated_at and
// that DownUntil compares with (default time.Now).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
	s.faults.SetClock(now)
}

// AddRepo adds a repository "owner/repo" and returns its id (the id an
// organization secret's selected_repository_ids names). Adding it again
// returns the same id.
func (s *Server) AddRepo(fullName string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addRepo(fullName).id
}

func (s *Server) addRepo(fullName string) *repo {
	key := strings.ToLower(fullName)
	if r, ok := s.repos[key]; ok {
		return r
	}
	owner, name, ok := strings.Cut(fullName, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		panic("github emulator: repository " + fullName + " is not owner/repo")
	}
	s.nextID++
	r := &repo{id: s.nextID, fullName: fullName, owner: owner, name: name, envs: map[string]string{}}
	s.repos[key] = r
	s.byRepoID[r.id] = r
	s.newScope("repo:"+fullName, false)
	return r
}

// AddEnvironment adds environment env to repository fullName, adding the
// repository too if it is new.
func (s *Server) AddEnvironment(fullName, env string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.addRepo(fullName)
	if _, ok := r.envs[strings.ToLower(env)]; ok {
		return
	}
	r.envs[strings.ToLower(env)] = env
	s.newScope("env:"+fullName+"/"+env, false)
}

// AddOrg adds an organization.
func (s *Server) AddOrg(org string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.orgs[strings.ToLower(org)]; ok {
		return
	}
	s.orgs[strings.ToLower(org)] = org
	s.newScope("org:"+org, true)
}

func (s *Server) newScope(name string, org bool) {
	sc := &scope{name: name, org: org, secrets: map[string]*secret{}}
	s.rotate(sc)
	s.scopes[strings.ToLower(name)] = sc
}

// rotate gives sc a new key pair and key id (box.GenerateKey: the
// curve25519 keys of libsodium's sealed boxes, which GitHub's public keys
// are: https://docs.github.com/en/rest/guides/encrypting-secrets-for-the-rest-api).
func (s *Server) rotate(sc *scope) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		panic("github emulator: generate key: " + err.Error())
	}
	sc.pub, sc.priv = pub, priv
	// GitHub's key ids are decimal strings ("012345678912345678").
	id := make([]byte, 18)
	for i := range id {
		var b [1]byte
		_, _ = rand.Read(b[:])
		id[i] = '0' + b[0]%10
	}
	sc.keyID = string(id)
	s.keyIDs[sc.keyID] = sc
}

// RotateKey gives a scope a new public key and key id: a value sealed
// with the old key, or sent with the old key id, is refused from then on.
func (s *Server) RotateKey(scopeName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scopes[strings.ToLower(scopeName)]
	if !ok {
		return fmt.Errorf("no scope %s", scopeName)
	}
	s.rotate(sc)
	return nil
}

// PublicKey returns a scope's key id and base64 public key, as GitHub
// serves them.
func (s *Server) PublicKey(scopeName string) (keyID, key string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scopes[strings.ToLower(scopeName)]
	if !ok {
		return "", "", false
	}
	return sc.keyID, base64.StdEncoding.EncodeToString(sc.pub[:]), true
}

// Value returns the plaintext a scope's secret holds.
func (s *Server) Value(scopeName, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secret(scopeName, name)
	if sec == nil {
		return "", false
	}
	return sec.value, true
}

// Writes counts the successful PUTs of a scope's secret (SetSecret does
// not count).
func (s *Server) Writes(scopeName, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secret(scopeName, name)
	if sec == nil {
		return 0
	}
	return sec.writes
}

// Updated returns a secret's updated_at (whole seconds, as GitHub shows it).
func (s *Server) Updated(scopeName, name string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secret(scopeName, name)
	if sec == nil {
		return time.Time{}, false
	}
	return sec.updated, true
}

// Access returns an organization secret's visibility and selected
// repository ids.
func (s *Server) Access(scopeName, name string) (visibility string, repoIDs []int64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sec := s.secret(scopeName, name)
	if sec == nil {
		return "", nil, false
	}
	return sec.visibility, append([]int64(nil), sec.selected...), true
}

// SetSecret puts a secret in place as someone else did, at the emulator's
// clock, without counting a write: visibility and repoIDs for an
// organization secret ("" is "private").
func (s *Server) SetSecret(scopeName, name, value, visibility string, repoIDs ...int64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sc, ok := s.scopes[strings.ToLower(scopeName)]
	if !ok {
		return fmt.Errorf("no scope %s", scopeName)
	}
	if msg := checkName(name); msg != "" {
		return errors.New(msg)
	}
	now := s.now().UTC().Truncate(time.Second)
	sec := sc.secrets[strings.ToUpper(name)]
	if sec == nil {
		sec = &secret{name: strings.ToUpper(name), created: now}
		sc.secrets[sec.name] = sec
	}
	sec.value, sec.updated = value, now
	for _, id := range repoIDs {
		if _, ok := s.byRepoID[id]; !ok {
			return fmt.Errorf("no repository with id %d", id)
		}
	}
	if sc.org {
		if visibility == "" {
			visibility = "private"
		}
		sec.visibility, sec.selected = visibility, append([]int64(nil), repoIDs...)
	}
	return nil
}

func (s *Server) secret(scopeName, name string) *secret {
	sc, ok := s.scopes[strings.ToLower(scopeName)]
	if !ok {
		return nil
	}
	return sc.secrets[strings.ToUpper(name)]
}

// Calls returns every request answered so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Count counts the answered requests of method whose path ends with
// suffix ("" for any).
func (s *Server) Count(method, suffix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if (method == "" || c.Method == method) && strings.HasSuffix(c.Path, suffix) {
			n++
		}
	}
	return n
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
