package github

import (
	"net/http"
	"strings"
	"time"
)

type fault struct {
	match  func(*http.Request) bool
	status int
	left   int // answers still to fail; < 0: every matching request
}

// Fail answers the next times requests that match with status and a
// GitHub-shaped error body ({"message": ...}), before checking anything
// else; times < 0 fails every matching request until ClearFaults. match
// nil matches every request. Faults added earlier are tried first.
// match runs while the emulator is locked: it must not call the Server.
func (s *Server) Fail(match func(r *http.Request) bool, status, times int) {
	if match == nil {
		match = func(*http.Request) bool { return true }
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{match: match, status: status, left: times})
}

// DownUntil answers every request with 500 while the emulator's clock
// (SetClock) is before t: GitHub down for a while, for example a day.
// The zero time brings it up.
func (s *Server) DownUntil(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.downUntil = t
}

// ClearFaults removes every fault, DownUntil's too.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults, s.downUntil = nil, time.Time{}
}

// Match returns a matcher for Fail: requests of method ("" for any) whose
// unescaped path ends with suffix, such as ("PUT", "/AWS_SECRET_ACCESS_KEY")
// or ("GET", "/public-key").
func Match(method, suffix string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return (method == "" || r.Method == method) && strings.HasSuffix(r.URL.Path, suffix)
	}
}

// injected returns the status of a fault r meets, 0 when none. The caller
// holds s.mu.
func (s *Server) injected(r *http.Request) int {
	if !s.downUntil.IsZero() && s.now().Before(s.downUntil) {
		return http.StatusInternalServerError
	}
	for _, f := range s.faults {
		if f.left == 0 || !f.match(r) {
			continue
		}
		if f.left > 0 {
			f.left--
		}
		return f.status
	}
	return 0
}
