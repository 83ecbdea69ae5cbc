package operator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/keyrotor/keyrotor/shared/audit"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/metrics"
)

// Rotation is one rotation as `keyrotor status` shows it.
type Rotation struct {
	Account  string `json:"account,omitempty"`
	User     string `json:"user"`
	Key      string `json:"key"` // the old credential (the record id)
	Rotation int    `json:"rotation"`
	State    string `json:"state"` // the record's state
	// Until is the date that matters: the adoption window's end, the
	// delete date (in grace), the hold's end.
	Until time.Time `json:"until,omitzero"`
	// Note says who drives it (in flight), why it is held, or what a
	// person must do (needing attention).
	Note string `json:"note,omitempty"`
	// Destinations are where the new key is delivered (the user's
	// destinations document), each with its state.
	Destinations []ledger.Delivery `json:"destinations,omitempty"`
}

// AccountStatus counts one account's rotations (organization mode).
type AccountStatus struct {
	Account   string `json:"account"` // "" is the account keyrotor runs in
	InFlight  int    `json:"inFlight"`
	Adopting  int    `json:"adopting"`
	InGrace   int    `json:"inGrace"`
	Held      int    `json:"held"`
	Attention int    `json:"attention"`
}

// Status is the state of a deployment at a glance.
type Status struct {
	Stack string    `json:"stack"`
	AsOf  time.Time `json:"asOf"`
	// Figures are the dashboard's: keys by age band and the oldest key to
	// rotate as of the last run (its audit report, ReportKey), rotations
	// by state as of now (the records).
	Figures   metrics.Figures `json:"figures"`
	KeysAsOf  time.Time       `json:"keysAsOf,omitzero"`
	ReportKey string          `json:"reportKey,omitempty"`
	InFlight  []Rotation      `json:"inFlight"`
	Adopting  []Rotation      `json:"adopting"`
	InGrace   []Rotation      `json:"inGrace"`
	Held      []Rotation      `json:"held"`
	Attention []Rotation      `json:"attention"`
	Accounts  []AccountStatus `json:"accounts,omitempty"` // organization mode: records of several accounts
}

// BuildStatus sorts the records by what each rotation is doing at now; the
// figures come from the report's rows (nil: no run yet) and the records.
func BuildStatus(stack string, records map[string]*ledger.Record, report *audit.Report, reportKey string, now time.Time) *Status {
	st := &Status{Stack: stack, AsOf: now.UTC(), InFlight: []Rotation{}, Adopting: []Rotation{}, InGrace: []Rotation{}, Held: []Rotation{}, Attention: []Rotation{}}
	var rows []audit.Row
	if report != nil {
		rows, st.KeysAsOf, st.ReportKey = report.Rows, report.AsOf, reportKey
	}
	st.Figures = audit.FiguresOf(rows, records, now)
	ids := make([]string, 0, len(records))
	for id := range records {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := records[ids[i]], records[ids[j]]
		if a.Account != b.Account {
			return a.Account < b.Account
		}
		if a.User != b.User {
			return a.User < b.User
		}
		return ids[i] < ids[j]
	})
	accounts := map[string]*AccountStatus{}
	acct := func(a string) *AccountStatus {
		if accounts[a] == nil {
			accounts[a] = &AccountStatus{Account: a}
		}
		return accounts[a]
	}
	for _, id := range ids {
		rec := records[id]
		r := Rotation{Account: rec.Account, User: rec.User, Key: rec.ID, Rotation: rec.Rotation, State: string(rec.State), Destinations: rec.Deliveries}
		switch audit.StateOf(rec, now) {
		case audit.StateInFlight:
			r.Until = rec.LeaseUntil
			if rec.Owner != "" {
				r.Note = "execution " + rec.Owner
			}
			st.InFlight = append(st.InFlight, r)
			acct(rec.Account).InFlight++
		case audit.StateAdopting:
			if rec.Adoption != nil {
				r.Until = rec.Adoption.Until
				r.Note = fmt.Sprintf("new key %s last used %s; old key last used %s", rec.NewKeyID, rec.Adoption.NewLastUsed, rec.Adoption.OldLastUsed)
			}
			st.Adopting = append(st.Adopting, r)
			acct(rec.Account).Adopting++
		case audit.StateInGrace:
			r.Until = rec.DeleteAfter
			r.Note = "Inactive since " + stamp(rec.DeactivatedAt) + "; deleted after " + stamp(rec.DeleteAfter) + " unless re-activated"
			st.InGrace = append(st.InGrace, r)
			acct(rec.Account).InGrace++
		case audit.StateHeld:
			r.Until, r.Note = rec.HeldUntil, rec.Outcome
			st.Held = append(st.Held, r)
			acct(rec.Account).Held++
		}
		if rec.Attention != "" {
			a := r
			a.Until, a.Note = time.Time{}, rec.Attention
			st.Attention = append(st.Attention, a)
			acct(rec.Account).Attention++
		}
	}
	orgMode := false
	for a := range accounts {
		orgMode = orgMode || a != ""
	}
	if orgMode {
		for _, a := range accounts {
			st.Accounts = append(st.Accounts, *a)
		}
		sort.Slice(st.Accounts, func(i, j int) bool { return st.Accounts[i].Account < st.Accounts[j].Account })
	}
	return st
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04Z")
}

// WriteTable prints the status for people: the figures, then one section
// per state (omitted when empty), with an ACCOUNT column in organization
// mode.
func (st *Status) WriteTable(w io.Writer) error {
	var b bytes.Buffer
	f := st.Figures
	fmt.Fprintf(&b, "keyrotor status of stack %s at %s\n\n", st.Stack, stamp(st.AsOf))
	if st.ReportKey == "" {
		fmt.Fprintf(&b, "Keys: no run has written its audit report yet\n")
	} else {
		fmt.Fprintf(&b, "Keys (as of the last run, %s): %d fresh (< 90 days), %d aging (90-365), %d old (> 365)\n", stamp(st.KeysAsOf), f.KeysFresh, f.KeysAging, f.KeysOld)
		if f.Oldest != nil {
			who := "user " + f.Oldest.User
			if f.Oldest.Account != "" {
				who += " in account " + f.Oldest.Account
			}
			fmt.Fprintf(&b, "Oldest key to rotate: %s (%s), %d days\n", f.Oldest.ID, who, f.Oldest.AgeDays)
		} else {
			fmt.Fprintf(&b, "Oldest key to rotate: none\n")
		}
	}
	fmt.Fprintf(&b, "Rotations: %d in flight, %d adopting, %d in grace, %d held, %d needing attention\n", f.InFlight, f.Adopting, f.InGrace, f.Held, f.Attention)
	org := len(st.Accounts) > 0
	section := func(title, until string, rs []Rotation) {
		if len(rs) == 0 {
			return
		}
		fmt.Fprintf(&b, "\n%s (%d)\n", title, len(rs))
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		head := []string{"USER", "KEY", "ROTATION", "STATE", until, "NOTE"}
		if org {
			head = append([]string{"ACCOUNT"}, head...)
		}
		fmt.Fprintln(tw, strings.Join(head, "\t"))
		for _, r := range rs {
			cols := []string{r.User, r.Key, fmt.Sprint(r.Rotation), r.State, day(r.Until), r.Note}
			if org {
				cols = append([]string{accountName(r.Account)}, cols...)
			}
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
		}
		tw.Flush()
	}
	section("In flight", "LEASE UNTIL", st.InFlight)
	section("In their adoption window", "WINDOW ENDS", st.Adopting)
	section("In grace (old key Inactive)", "DELETE AFTER", st.InGrace)
	section("Held by a person", "HELD UNTIL", st.Held)
	section("Needing attention (what to do)", "-", st.Attention)
	st.writeDestinations(&b, org)
	if org {
		fmt.Fprintf(&b, "\nBy account\n")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ACCOUNT\tIN FLIGHT\tADOPTING\tIN GRACE\tHELD\tATTENTION")
		for _, a := range st.Accounts {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\n", accountName(a.Account), a.InFlight, a.Adopting, a.InGrace, a.Held, a.Attention)
		}
		tw.Flush()
	}
	_, err := w.Write(b.Bytes())
	return err
}

// writeDestinations prints, for each rotation shown above whose user has
// destinations, where its new key goes and how far each delivery got.
func (st *Status) writeDestinations(b *bytes.Buffer, org bool) {
	seen := map[string]bool{}
	var rs []Rotation
	for _, sec := range [][]Rotation{st.InFlight, st.Adopting, st.InGrace, st.Held, st.Attention} {
		for _, r := range sec {
			if len(r.Destinations) > 0 && !seen[r.Key] {
				seen[r.Key] = true
				rs = append(rs, r)
			}
		}
	}
	if len(rs) == 0 {
		return
	}
	fmt.Fprintf(b, "\nNew keys' destinations (%d)\n", len(rs))
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	head := []string{"USER", "KEY", "DESTINATION", "DELIVERY"}
	if org {
		head = append([]string{"ACCOUNT"}, head...)
	}
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	for _, r := range rs {
		for _, d := range r.Destinations {
			cols := []string{r.User, r.Key, d.Where, DeliveryText(d)}
			if org {
				cols = append([]string{accountName(r.Account)}, cols...)
			}
			fmt.Fprintln(tw, strings.Join(cols, "\t"))
		}
	}
	tw.Flush()
}

// DeliveryText says how far the new key's delivery to one destination
// got, for people: delivered (read back, when), failed (why), a write
// begun, or pending.
func DeliveryText(d ledger.Delivery) string {
	switch d.State {
	case ledger.DeliveryVerified:
		return "delivered, read back " + stamp(d.VerifiedAt)
	case ledger.DeliveryFailed:
		return "failed: " + d.Reason
	case ledger.DeliveryWriting:
		return "write begun " + stamp(d.WriteAt) + ", not read back yet"
	}
	return "pending"
}

func accountName(a string) string {
	if a == "" {
		return "(this account)"
	}
	return a
}

// ObjectsAPI reads the report bucket.
type ObjectsAPI interface {
	s3.ListObjectsV2APIClient
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
}

// LatestReport reads the newest audit report (JSON) a run wrote in bucket,
// skipping previews (a dry run's asOf in the future); nil when none.
func LatestReport(ctx context.Context, api ObjectsAPI, bucket string) (*audit.Report, string, error) {
	type obj struct {
		key string
		at  time.Time
	}
	var objs []obj
	p := s3.NewListObjectsV2Paginator(api, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String("reports/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, "", fmt.Errorf("list the reports in %s: %w", bucket, err)
		}
		for _, o := range page.Contents {
			if strings.HasSuffix(aws.ToString(o.Key), ".json") {
				objs = append(objs, obj{aws.ToString(o.Key), aws.ToTime(o.LastModified)})
			}
		}
	}
	sort.Slice(objs, func(i, j int) bool {
		if !objs[i].at.Equal(objs[j].at) {
			return objs[i].at.After(objs[j].at)
		}
		return objs[i].key > objs[j].key
	})
	for _, o := range objs {
		out, err := api.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(o.key)})
		if err != nil {
			return nil, "", fmt.Errorf("read s3://%s/%s: %w", bucket, o.key, err)
		}
		var r audit.Report
		err = json.NewDecoder(out.Body).Decode(&r)
		out.Body.Close()
		if err != nil {
			return nil, "", fmt.Errorf("decode s3://%s/%s: %w", bucket, o.key, err)
		}
		if r.AsOf.After(r.GeneratedAt.Add(time.Minute)) {
			continue // a preview (dryRun with asOf)
		}
		return &r, o.key, nil
	}
	return nil, "", nil
}
