// Package fault is the fault injection and the clock the CI API emulators
// (internal/emulators/github, gitlab and circleci) share: a
// request can be answered with a chosen status a number of times, or every
// request with 500 until a given time of the emulator's clock ("the
// destination is down for a day").
package fault

import (
	"net/http"
	"sync"
	"time"
)

// Set holds the faults and the clock of one emulator. The zero value is
// not usable; use New. It is safe for concurrent use.
type Set struct {
	mu    sync.Mutex
	rules []*rule
	until time.Time
	now   func() time.Time
}

type rule struct {
	match  func(*http.Request) bool
	status int
	left   int // < 0: no limit
}

// New returns an empty set whose clock is time.Now.
func New() *Set { return &Set{now: time.Now} }

// Fail answers the next times requests that match (nil matches every
// request) with status, before the emulator looks at them: nothing
// changes. times < 0 fails every matching request from now on. Rules are
// tried in the order they were added.
func (s *Set) Fail(match func(*http.Request) bool, status, times int) {
	if times == 0 {
		return
	}
	if match == nil {
		match = func(*http.Request) bool { return true }
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &rule{match: match, status: status, left: times})
}

// FailUntil answers every request with 500 while the clock is before t.
// The zero time ends it.
func (s *Set) FailUntil(t time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.until = t
}

// Clear removes every fault.
func (s *Set) Clear() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
	s.until = time.Time{}
}

// SetClock replaces the clock (nil restores time.Now).
func (s *Set) SetClock(now func() time.Time) {
	if now == nil {
		now = time.Now
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// Now reads the clock.
func (s *Set) Now() time.Time {
	s.mu.Lock()
	now := s.now
	s.mu.Unlock()
	return now()
}

// Status returns the status a fault answers r with, or 0 when r goes
// through. A matching counted rule is used up by the call.
func (s *Set) Status(r *http.Request) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.until.IsZero() && s.now().Before(s.until) {
		return http.StatusInternalServerError
	}
	for i, f := range s.rules {
		if !f.match(r) {
			continue
		}
		if f.left > 0 {
			f.left--
			if f.left == 0 {
				s.rules = append(s.rules[:i:i], s.rules[i+1:]...)
			}
		}
		return f.status
	}
	return 0
}
