// Package delivery puts a rotated access key where it is used: a CI
// system's secret store (GitHub Actions, GitLab CI/CD, CircleCI), an SSM
// parameter or a Secrets Manager secret. Each destination writes exactly
// the two values of a key and reads back what its API lets it read, so a
// rotation switches over only once every destination holds the new key.
//
// A user's destinations are a Document (JSON), registered once per IAM
// user; the credentials a destination needs (a GitHub token, a GitLab
// token, a CircleCI token) live in Secrets Manager in the hub, named by the
// document, never in it.
//
// A destination type is one file: a Spec check and a constructor,
// registered with Register in its init.
package delivery

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

// Key is what a destination receives: the two values of an access key.
// Its String never shows the secret.
type Key struct {
	AccessKeyID     string
	SecretAccessKey string
}

// String names the key by its id only.
func (k Key) String() string { return k.AccessKeyID }

// GoString keeps %#v from printing the secret.
func (k Key) GoString() string { return "delivery.Key{AccessKeyID:" + k.AccessKeyID + "}" }

// Destination is one place a user's key is consumed.
type Destination interface {
	// Where names the destination for people and records, for example
	// "github repository secret octo/app: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY".
	// It never holds a value.
	Where() string
	// Write overwrites both values with k. A repeated Write is harmless
	// (the destination then holds k), but the caller records a write
	// before making it and asks Holds first on a re-run, so a destination
	// is written once per rotation.
	Write(ctx context.Context, k Key) error
	// Holds reports whether the destination holds k now, from what its API
	// lets a client read back: the value itself (GitLab, SSM, Secrets
	// Manager), its last characters (CircleCI) or the time it was last
	// updated, not before since (GitHub, whose secrets cannot be read).
	Holds(ctx context.Context, k Key, since time.Time) (bool, error)
}

// Resumer is a destination that can finish a write an earlier attempt
// began (since: when it began): it writes only the values that do not
// hold k yet, so a value whose write took effect is not written again
// when the other's failed or its answer was lost.
type Resumer interface {
	Resume(ctx context.Context, k Key, since time.Time) error
}

// Env is what a destination is built with.
type Env struct {
	// HTTP is the client for the CI systems' APIs. Build it with Client.
	HTTP *http.Client
	// Credential returns the value of the hub secret named by a Spec's
	// Credential (a token), read when the destination is built.
	Credential func(ctx context.Context, name string) (string, error)
	// AWS returns the clients for an account and region ("" for the
	// account and region keyrotor runs in): the member role's in
	// organization mode.
	AWS func(ctx context.Context, account, region string) (AWSClients, error)
	// AllowHTTP lets an API base URL be plain http on a loopback address
	// (local runs and tests). Deployments use TLS only.
	AllowHTTP bool
}

// Factory builds a destination from a spec that passed its type's Check.
type Factory func(ctx context.Context, s Spec, env Env) (Destination, error)

// Checker validates a spec of its type, naming the field and the fix.
// field is the JSON path of the spec in its document ("destinations[2]"),
// "" for a spec alone.
type Checker func(s Spec, field string) error

type kind struct {
	check Checker
	build Factory
}

var (
	kindsMu sync.RWMutex
	kinds   = map[string]kind{}
)

// Register makes a destination type known. Call it from the init of the
// type's file.
func Register(typ string, check Checker, build Factory) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	if _, dup := kinds[typ]; dup {
		panic("delivery: type " + typ + " registered twice")
	}
	kinds[typ] = kind{check: check, build: build}
}

// Types lists the registered destination types, sorted.
func Types() []string {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	out := make([]string, 0, len(kinds))
	for t := range kinds {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

func kindOf(typ string) (kind, bool) {
	kindsMu.RLock()
	defer kindsMu.RUnlock()
	k, ok := kinds[typ]
	return k, ok
}

// Build returns the destination of s.
func Build(ctx context.Context, s Spec, env Env) (Destination, error) {
	k, ok := kindOf(s.Type)
	if !ok {
		return nil, &FieldError{Field: "type", Msg: fmt.Sprintf("unknown destination type %q; want one of %s", s.Type, strings.Join(Types(), ", "))}
	}
	if err := k.check(s, ""); err != nil {
		return nil, err
	}
	return k.build(ctx, s, env)
}

// FieldError is a document or spec that cannot work: the field (a JSON
// path such as "destinations[1].repository") and the fix.
type FieldError struct{ Field, Msg string }

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// Error is a destination's API refusing or failing a call. It carries the
// HTTP status and the service's own message, never a request body.
type Error struct {
	Where  string // the destination
	Op     string // "get public key", "put secret", ...
	Status int    // HTTP status, 0 when no answer came
	Msg    string
}

func (e *Error) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("%s: %s: %s", e.Where, e.Op, e.Msg)
	}
	return fmt.Sprintf("%s: %s: HTTP %d: %s", e.Where, e.Op, e.Status, e.Msg)
}

// Detail is the error without the destination's name: what failed and
// the service's answer.
func (e *Error) Detail() string {
	if e.Status == 0 {
		return e.Op + ": " + e.Msg
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Status, e.Msg)
}

// Retryable reports whether the failure may pass by itself (throttling, a
// server error, no answer): the next attempt or run tries again. Others
// (401, 403, 404, 422) need a person.
func (e *Error) Retryable() bool {
	return e.Status == 0 || e.Status == http.StatusTooManyRequests || e.Status >= 500
}
