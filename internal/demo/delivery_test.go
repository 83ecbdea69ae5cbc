package demo_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/demo"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// TestMotoDeliveredPipeline: the pipeline the delivery e2e test and demo
// count on to notice a broken switch-over does: it takes a new pair from
// its destination only once both values changed, and a job signed with a
// key IAM lists as Inactive counts as failed (moto itself accepts it).
func TestMotoDeliveredPipeline(t *testing.T) {
	a := awstest.New(t)
	a.User(t, "ci")
	oldID, oldSecret := a.KeyWithSecret(t, "ci")
	newID, newSecret := a.KeyWithSecret(t, "ci")
	var mu sync.Mutex
	held := demo.Key{}
	p := &demo.DeliveredPipeline{User: "ci", Old: demo.Key{ID: oldID, Secret: oldSecret}, Every: 50 * time.Millisecond,
		Read: func(context.Context) (demo.Key, bool, error) {
			mu.Lock()
			defer mu.Unlock()
			return held, held.ID != "", nil
		}}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx, a.Config) }()
	defer func() { stop(); <-done }()
	wait := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("after 5s: %s", what)
			}
		}
	}
	// Half written (the new id, the old secret): the old pair stays.
	mu.Lock()
	held = demo.Key{ID: newID, Secret: oldSecret}
	mu.Unlock()
	wait("3 jobs", func() bool { calls, _, _, _ := p.Result(); return calls >= 3 })
	if _, failures, key, switched := p.Result(); len(failures) != 0 || key.ID != oldID || !switched.IsZero() {
		t.Fatalf("half-written destination: failures %q, key %s, switched %v; want the old key kept, no failure", failures, key.ID, switched)
	}
	// The old key off while the pipeline still uses it: a failure.
	a.SetKeyStatus(t, "ci", oldID, false)
	wait("a failure", func() bool { _, f, _, _ := p.Result(); return len(f) > 0 })
	if _, failures, _, _ := p.Result(); !strings.Contains(failures[0], "InvalidAccessKeyId") {
		t.Fatalf("failure %q; want the inactive key named", failures[0])
	}
	// Both values new: taken up.
	mu.Lock()
	held = demo.Key{ID: newID, Secret: newSecret}
	mu.Unlock()
	wait("the new key taken up", func() bool { _, _, k, s := p.Result(); return k.ID == newID && !s.IsZero() })
}
