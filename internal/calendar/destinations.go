package calendar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	ghemu "github.com/keyrotor/keyrotor/internal/emulators/github"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/org"
	"github.com/keyrotor/keyrotor/shared/policy"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// Destinations in the simulation (issue 21): a share of every account's
// users have their key delivered to a GitHub repository secret (one
// emulator, on loopback, on the world's clock) and some also to a pair of
// SSM parameters under /ci/ in their own account (a member's written
// through its member role). Their pipelines read the key from there each
// day, so the new key is adopted with no person in the loop; calls to the
// destinations fail at random before they take effect, lose their answer
// after, and a destination is down for a day now and then.

// ghCredential is the hub secret holding the emulator's token.
const ghCredential = "keyrotor-delivery/github"

// ghNames are the two secrets of every simulated repository (the defaults).
var ghNames = [2]string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}

// userDest is one user's destinations.
type userDest struct {
	repo     string // "octo/app-007": its repository secret
	ssmNames [2]string
	ssm      bool
	account  string // the user's account, where its parameters are ("": the hub)
}

func (u *userDest) scope() string { return "repo:" + u.repo }

// destinations are the simulation's destinations, their faults and what
// the invariants saw of them.
type destinations struct {
	gh     *ghemu.Server
	ssm    map[string]*ssm.Client // the people's, by account ("": the hub): read what a parameter holds, no faults
	by     map[string]*userDest
	docs   map[string]*delivery.Document // ref -> document
	faults *destFaults

	writes   map[string]int            // value (place#name) -> writes seen so far
	perKey   map[string]map[string]int // value -> key id held when written -> writes
	Rewrites int                       // writes of a value after its first in a rotation
	Broken   []string                  // pipelines' calls failed on a key keyrotor switched off (filled by work)
	usable   int                       // pipelines' calls with a destination's key checked (by work)
	// HalfWritten counts the pipelines' calls that failed with an Active
	// key: the destination held a new id and an old secret (or the
	// reverse), its second value's write having failed.
	HalfWritten int
}

// documents answers the deliver step from the simulation's documents.
type documents struct {
	w *World
	d *destinations
}

func (d documents) Get(_ context.Context, account, user string) (*delivery.Document, error) {
	return d.d.docs[d.w.Ref(account, user)], nil
}

var _ rotation.Documents = documents{}

// setupDestinations gives a share of the hub's users (those whose seeded
// key a pipeline uses) destinations holding their seeded key, starts the
// emulator, stores its token in the hub and wires the deliver step.
func setupDestinations(ctx context.Context, w *World, seeded *Seeded, o Options) (*destinations, error) {
	r := rand.New(rand.NewPCG(uint64(o.Seed), 6))
	gh, err := ghemu.Start()
	if err != nil {
		return nil, err
	}
	gh.SetClock(w.Now)
	d := &destinations{gh: gh, ssm: map[string]*ssm.Client{}, by: map[string]*userDest{}, docs: map[string]*delivery.Document{},
		writes: map[string]int{}, perKey: map[string]map[string]int{}}
	for _, a := range w.Accounts() {
		d.ssm[a] = ssm.NewFromConfig(w.PeopleIn(a).Config)
	}
	if _, err := w.People.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String(ghCredential), SecretString: aws.String(gh.Token())}); err != nil {
		gh.Close()
		return nil, fmt.Errorf("store the github token: %w", err)
	}
	for i, ref := range seeded.Users {
		k := seeded.Keys[ref]
		if k.Unused || r.Float64() >= o.Delivery {
			continue
		}
		acct, _ := SplitRef(ref)
		u := &userDest{repo: fmt.Sprintf("octo/app-%03d", i), account: acct}
		gh.AddRepo(u.repo)
		for j, v := range []string{k.ID, k.Secret} {
			if err := gh.SetSecret(u.scope(), ghNames[j], v, ""); err != nil {
				gh.Close()
				return nil, err
			}
		}
		doc := &delivery.Document{Version: 1, Destinations: []delivery.Spec{{Type: "github", Repository: u.repo, Credential: ghCredential, URL: gh.URL()}}}
		if r.IntN(2) == 0 {
			u.ssm = true
			u.ssmNames = [2]string{fmt.Sprintf("/ci/app-%03d/aws-access-key-id", i), fmt.Sprintf("/ci/app-%03d/aws-secret-access-key", i)}
			for j, v := range []string{k.ID, k.Secret} {
				if _, err := d.ssm[acct].PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String(u.ssmNames[j]), Value: aws.String(v), Type: ssmtypes.ParameterTypeSecureString}); err != nil {
					gh.Close()
					return nil, fmt.Errorf("seed parameter %s: %w", u.ssmNames[j], err)
				}
			}
			// No account: the user's own (a member's, through its member role).
			doc.Destinations = append(doc.Destinations, delivery.Spec{Type: "ssm", IDName: u.ssmNames[0], SecretName: u.ssmNames[1]})
		}
		d.by[ref], d.docs[ref] = u, doc
	}
	d.faults = &destFaults{r: rand.New(rand.NewPCG(uint64(o.Seed), 7)), fault: o.DestFaults, lost: o.DestLost, now: w.Now, lostAt: map[string]int{}, injected: map[string]int{}}
	// Failures before a call takes effect, as GitHub answers them.
	gh.Fail(func(*http.Request) bool { return d.faults.draw("github 500", d.faults.fault/3) }, http.StatusInternalServerError, -1)
	gh.Fail(func(*http.Request) bool { return d.faults.draw("github 429", d.faults.fault/3) }, http.StatusTooManyRequests, -1)

	hc := delivery.Client(w.log(), 10*time.Second)
	hc.Transport = &faultTransport{f: d.faults, next: hc.Transport}
	awsCfg := w.Steps.Config.Copy()
	awsCfg.HTTPClient = &http.Client{Transport: &faultTransport{f: d.faults, next: http.DefaultTransport, ssm: true}}
	w.Config.DeliveryParameters = []string{"/ci/*"}
	w.Destinations = documents{w: w, d: d}
	w.Delivery = delivery.Env{
		HTTP:       hc,
		AllowHTTP:  true,
		Credential: rotation.HubCredentials(w.Steps.Secrets),
		// As the deliver function builds them: keyrotor's own account
		// directly, a member through its member role (assumed with the
		// steps' clients, as lambdastep.PerAccount does).
		AWS: rotation.DestinationClients(w.Config, &org.Sessions{Home: awsCfg, HomeAccount: w.Config.HomeAccount,
			STS: sts.NewFromConfig(w.Steps.Config), SessionName: "keyrotor-deliver"}),
	}
	return d, nil
}

// day sets the day's faults: on quiet days none; otherwise a destination
// service is down for the day now and then.
func (d *destinations) day(on bool, down float64) {
	d.faults.mu.Lock()
	d.faults.on, d.faults.ssmDown = on, time.Time{}
	d.faults.mu.Unlock()
	d.gh.DownUntil(time.Time{})
	if !on {
		return
	}
	until := d.faults.now().Add(23 * time.Hour)
	if d.faults.draw("github down for a day", down) {
		d.gh.DownUntil(until)
	}
	if d.faults.draw("ssm down for a day", down) {
		d.faults.mu.Lock()
		d.faults.ssmDown = until
		d.faults.mu.Unlock()
	}
}

// destFaults draws the faults of destination calls from the seed.
type destFaults struct {
	mu          sync.Mutex
	r           *rand.Rand
	on          bool
	fault, lost float64
	now         func() time.Time
	ssmDown     time.Time
	lostAt      map[string]int // place -> answers of writes lost after they took effect, not yet attributed
	injected    map[string]int // kind -> count
}

// draw reports whether a fault of kind happens, at rate.
func (f *destFaults) draw(kind string, rate float64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.on || rate <= 0 || f.r.Float64() >= rate {
		return false
	}
	f.injected[kind]++
	return true
}

// Injected counts the destination faults injected, by kind.
func (d *destinations) Injected() map[string]int {
	d.faults.mu.Lock()
	defer d.faults.mu.Unlock()
	out := map[string]int{"values written again in a rotation": d.Rewrites}
	for k, v := range d.faults.injected {
		out[k] = v
	}
	return out
}

// faultTransport fails destination calls: before they take effect (no
// connection; SSM down for the day) or after (the request is performed and
// its answer lost, as a reset connection after the service committed).
type faultTransport struct {
	f    *destFaults
	next http.RoundTripper
	ssm  bool
}

func (t *faultTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	kind := map[bool]string{true: "ssm", false: "github"}[t.ssm]
	t.f.mu.Lock()
	down := t.ssm && !t.f.ssmDown.IsZero() && t.f.now().Before(t.f.ssmDown)
	t.f.mu.Unlock()
	if down {
		return nil, errors.New("dial tcp: connection refused (simulated: ssm down for the day)")
	}
	if t.f.draw(kind+" no connection", t.f.fault/3) {
		return nil, errors.New("dial tcp: connection refused (simulated)")
	}
	place := ""
	switch {
	case !t.ssm && r.Method == http.MethodPut:
		// /repos/octo/app-007/actions/secrets/AWS_ACCESS_KEY_ID
		if i := strings.Index(r.URL.Path, "/actions/secrets/"); i > 0 {
			place = "github:" + strings.TrimPrefix(r.URL.Path[:i], "/repos/") + "#" + r.URL.Path[i+len("/actions/secrets/"):]
		}
	case t.ssm && r.Header.Get("X-Amz-Target") == "AmazonSSM.PutParameter" && r.Body != nil:
		b, err := io.ReadAll(r.Body)
		r.Body.Close()
		if err != nil {
			return nil, err
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		var in struct{ Name string }
		_ = json.Unmarshal(b, &in)
		place = "ssm:" + in.Name
	}
	resp, err := t.next.RoundTrip(r)
	if err != nil || place == "" || !t.f.draw(kind+" answer lost after the write", t.f.lost) {
		return resp, err
	}
	resp.Body.Close()
	t.f.mu.Lock()
	t.f.lostAt[place]++
	t.f.mu.Unlock()
	return nil, errors.New("read: connection reset by peer (simulated, after the write took effect)")
}

// holds returns the key a user's destinations hold now, asked of the
// emulator and of SSM: by destination name ("github", "ssm"), id and
// secret ("" when unreadable).
func (d *destinations) holds(ctx context.Context, ref string) map[string][2]string {
	u := d.by[ref]
	if u == nil {
		return nil
	}
	out := map[string][2]string{}
	id, _ := d.gh.Value(u.scope(), ghNames[0])
	secret, _ := d.gh.Value(u.scope(), ghNames[1])
	out["github "+u.repo] = [2]string{id, secret}
	if u.ssm {
		var v [2]string
		for j, name := range u.ssmNames {
			if p, err := d.ssm[u.account].GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)}); err == nil {
				v[j] = aws.ToString(p.Parameter.Value)
			}
		}
		out["ssm "+u.ssmNames[0]] = v
	}
	return out
}

// values lists a user's destination values with their write counts now:
// value (place#name) -> writes, and the place of each.
func (d *destinations) values(ctx context.Context, ref string) (map[string]int, map[string]string, error) {
	u := d.by[ref]
	counts, place := map[string]int{}, map[string]string{}
	for _, name := range ghNames {
		v := "github:" + u.repo + "#" + name
		counts[v], place[v] = d.gh.Writes(u.scope(), name), "github "+u.repo
	}
	if u.ssm {
		for _, name := range u.ssmNames {
			p, err := d.ssm[u.account].GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name)})
			if err != nil {
				return nil, nil, err
			}
			// Version 1 is the people's own parameter: keyrotor's writes
			// are the versions after it.
			v := "ssm:" + name
			counts[v], place[v] = int(p.Parameter.Version)-1, "ssm "+u.ssmNames[0]
		}
	}
	return counts, place, nil
}

// check asserts the delivery invariants after a day: (a) an old key is
// off only while every destination of its user holds the new key (asked
// of the destinations, not the record); (b) no destination value written
// twice in a rotation but for the documented case, counted apart; (c)
// the delivered pipelines' failures on a key keyrotor switched off,
// gathered by work.
func (d *destinations) check(ctx context.Context, w *World, p *people, rep *Report, recs map[string]*ledger.Record, keys map[string]map[string]iamtypes.StatusType, fail func(string, ...any)) error {
	for _, ref := range sortedKeys(d.by) {
		if p.gone[ref] {
			continue
		}
		held := d.holds(ctx, ref)
		// (a)
		for _, id := range sortedKeys(recs) {
			rec := recs[id]
			if w.RecRef(rec) != ref || rec.NewKeyID == "" || rec.Action != string(policy.Rotate) {
				continue
			}
			st, ok := keys[ref][rec.ID]
			if ok && st == iamtypes.StatusTypeActive || lastActBy(w, rec.ID) != "keyrotor" {
				continue // Active, or a person's act is the last on it
			}
			for _, where := range sortedKeys(held) {
				rep.Checks["old key off only when delivered"]++
				if d.by[ref].account != "" && strings.HasPrefix(where, "ssm ") {
					rep.Checks["old key off only when delivered: a member's own SSM parameters"]++
				}
				hid := held[where][0]
				later := recs[rec.NewKeyID] != nil && recs[rec.NewKeyID].NewKeyID == hid // the new key's own rotation since
				if hid != rec.NewKeyID && !later {
					fail("user %s: the old key %s is %s (by keyrotor) while %s holds %s, not the new key %s (deliveries %s; %s)",
						ref, rec.ID, map[bool]string{true: string(st), false: "deleted"}[ok], where, hid, rec.NewKeyID, deliveries(rec), summary(rec))
				}
			}
		}
		// (b)
		counts, place, err := d.values(ctx, ref)
		if err != nil {
			return err
		}
		for _, v := range sortedKeys(counts) {
			d.faults.mu.Lock()
			lost := d.faults.lostAt[v]
			delete(d.faults.lostAt, v)
			d.faults.mu.Unlock()
			rep.Checks["destination value written once per rotation"]++
			delta := counts[v] - d.writes[v]
			d.writes[v] = counts[v]
			hid := held[place[v]][0]
			// docs/delivery.md "Limits" lets GitLab and CircleCI write a
			// half-done write again whole; GitHub and SSM finish it
			// (delivery.Resumer): here no value is written twice.
			if delta <= 0 {
				continue
			}
			if d.perKey[v] == nil {
				d.perKey[v] = map[string]int{}
			}
			before := d.perKey[v][hid]
			d.perKey[v][hid] += delta
			n := d.perKey[v][hid]
			if n > 1 {
				d.Rewrites += n - max(before, 1)
			}
			if n > 1 && before <= 1 {
				var hist []string
				for _, id := range sortedKeys(recs) {
					if rec := recs[id]; rec.NewKeyID == hid {
						for _, h := range rec.History {
							hist = append(hist, fmt.Sprintf("%s %s %s", stamp(h.At), h.State, h.Note))
						}
						hist = append(hist, "deliveries "+deliveries(rec))
					}
				}
				fail("user %s: %s written %d times while it holds %s (answers of its writes lost today: %d): history %q", ref, v, n, hid, lost, hist)
			}
		}
	}
	// (c)
	rep.Checks["delivered pipeline's key usable"] += d.usable
	d.usable = 0
	for _, b := range d.Broken {
		fail("%s", b)
	}
	d.Broken = nil
	return nil
}

func deliveries(rec *ledger.Record) string {
	b, _ := json.Marshal(rec.Deliveries)
	return string(b)
}

// secrets are what the destinations hold and the emulator's token: none
// may appear in an output, log, mail or message.
func (d *destinations) secrets(ctx context.Context) []string {
	out := []string{d.gh.Token()}
	for _, ref := range sortedKeys(d.by) {
		for _, v := range d.holds(ctx, ref) {
			out = append(out, v[1])
		}
	}
	return out
}
