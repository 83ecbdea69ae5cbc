package bench

import (
	"context"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/awstest"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// TestMotoDiscoveryCallBudget: discovery makes at most 3 + 2 x due IAM calls
// however many users there are, and finds exactly the due users.
func TestMotoDiscoveryCallBudget(t *testing.T) {
	a := awstest.New(t)
	clock := func(d time.Duration) error { a.Clock(t, d); return nil }
	ctx := context.Background()
	due, err := SeedScale(ctx, a.Config, clock, 300, 5)
	if err != nil {
		t.Fatal(err)
	}
	d, err := MeasureDiscovery(ctx, a.Config, 300, due)
	if err != nil {
		t.Fatal(err)
	}
	if d.Planned != due || due != 15 {
		t.Fatalf("planned %d of %d due; want 15", d.Planned, due)
	}
	if d.Total > d.Target {
		t.Fatalf("discovery made %d calls %v; want at most 3 + 2 x %d = %d", d.Total, d.Calls, due, d.Target)
	}
	// The audit's dry run: the daily calls plus every other user's tags.
	au, err := MeasureAudit(ctx, a.Config, 300, due)
	if err != nil {
		t.Fatal(err)
	}
	if au.Total > au.Target || au.Calls["ListUserTags"] != 300 || au.Calls["ListAccessKeys"] != due {
		t.Fatalf("audit made %d calls %v; want at most 3 + %d due + 300 users = %d, the tags of all 300 users", au.Total, au.Calls, due, au.Target)
	}
	b, err := MeasureBaseline(ctx, a.Config)
	if err != nil {
		t.Fatal(err)
	}
	if b.Calls < 301 { // moto answers ListUsers in one page; AWS pages at 100
		t.Fatalf("baseline made %d calls; want one ListUsers page or more plus one ListAccessKeys per user", b.Calls)
	}
}
