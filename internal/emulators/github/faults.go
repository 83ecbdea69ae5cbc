package github

import (
	"net/http"
	"strings"
	"time"
)

// Fail answers the next times requests that match with status and a
// GitHub-shaped error body ({"message": ...}), before checking anything
// else; times < 0 fails every matching request until ClearFaults. match
// nil matches every request. Faults added earlier are tried first (the
// CI emulators' shared internal/emulators/fault).
func (s *Server) Fail(match func(r *http.Request) bool, status, times int) {
	s.faults.Fail(match, status, times)
}

// DownUntil answers every request with 500 while the emulator's clock
// (SetClock) is before t: GitHub down for a while, for example a day.
// The zero time brings it up.
func (s *Server) DownUntil(t time.Time) { s.faults.FailUntil(t) }

// ClearFaults removes every fault, DownUntil's too.
func (s *Server) ClearFaults() { s.faults.Clear() }

// Match returns a matcher for Fail: requests of method ("" for any) whose
// unescaped path ends with suffix, such as ("PUT", "/AWS_SECRET_ACCESS_KEY")
// or ("GET", "/public-key").
func Match(method, suffix string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return (method == "" || r.Method == method) && strings.HasSuffix(r.URL.Path, suffix)
	}
}
