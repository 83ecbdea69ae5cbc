package bench

import (
	"context"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/internal/awstest"
)

// TestMotoDeliveryBenchCounts: the delivery bench runs at a tiny size and
// counts each key's calls: five to the GitHub emulator (the public key, two
// writes, two reads back) and the SSM destination's, with every key
// delivered; with the GitHub destination failing, the retries show as
// extra invocations and calls.
func TestMotoDeliveryBenchCounts(t *testing.T) {
	tests := []struct {
		name     string
		failRate float64
	}{
		{"no faults", 0},
		{"every first attempt fails", 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := awstest.New(t)
			clock := func(d time.Duration) error { a.Clock(t, d); return nil }
			const keys = 3
			r, err := DeliveryRun(context.Background(), a.Config, clock, DeliveryOptions{Keys: keys, Concurrency: 2, FailRate: tc.failRate, RetryInterval: 10 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%+v", r)
			if len(r.Problems) > 0 {
				t.Fatalf("DeliveryRun: problems %v", r.Problems)
			}
			if tc.failRate == 0 && r.Retries > 0 {
				// moto, loaded, sometimes fails a call (a lost answer
				// then reads as a ConflictError): the step is retried and
				// the exact counts no longer apply.
				t.Logf("retried without injected faults (%v: %v): counts not checked exactly", r.RetriedOn, r.Unexpected)
				if r.Complete != keys || r.Written != 2*keys || r.GitHubTotal() < 5*keys || r.SSMTotal() < 5*keys {
					t.Fatalf("%d complete, %d destinations written, %d GitHub and %d SSM calls; want %d, %d, at least %d and %d", r.Complete, r.Written, r.GitHubTotal(), r.SSMTotal(), keys, 2*keys, 5*keys, 5*keys)
				}
				return
			}
			if tc.failRate == 0 {
				want := map[string]int{
					"GET secrets/public-key":            keys,
					"PUT secrets/AWS_ACCESS_KEY_ID":     keys,
					"PUT secrets/AWS_SECRET_ACCESS_KEY": keys,
					"GET secrets/AWS_ACCESS_KEY_ID":     keys,
					"GET secrets/AWS_SECRET_ACCESS_KEY": keys,
				}
				if !equalCounts(r.GitHub, want) {
					t.Fatalf("GitHub calls %v; want %v", r.GitHub, want)
				}
				if r.Complete != keys || r.Written != 2*keys || r.Invocations != keys {
					t.Fatalf("%d complete, %d destinations written, %d invocations; want %d, %d, %d", r.Complete, r.Written, r.Invocations, keys, 2*keys, keys)
				}
				if r.AWS["ssm:PutParameter"] != 2*keys || r.AWS["ssm:GetParameter"] != 2*keys {
					t.Fatalf("AWS calls %v; want 2 PutParameter and 2 GetParameter a key", r.AWS)
				}
				return
			}
			// Every public key read fails: each key is tried the step's
			// three times, then left incomplete with the old key Active.
			if r.Incomplete != keys || r.Written != keys || r.Retries != 2*keys || r.GitHubFailed != 3*keys {
				t.Fatalf("%d incomplete, %d destinations written, %d retries, %d injected 503; want %d, %d, %d, %d",
					r.Incomplete, r.Written, r.Retries, r.GitHubFailed, keys, keys, 2*keys, 3*keys)
			}
		})
	}
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
