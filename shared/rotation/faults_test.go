package rotation_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/internal/faultproxy"
	"github.com/keyrotor/keyrotor/shared/awsconf"
	"github.com/keyrotor/keyrotor/shared/ledger"
	"github.com/keyrotor/keyrotor/shared/rotation"
)

// The steps of a rotation, in order, as the fault matrix drives them.
var stepOrder = []string{"create-and-store", "notify", "deactivate", "delete"}

// faultCase is one scenario: a rotation of alice with the given fault
// injected into one step, the step re-run with the same input (as Retry and
// Redrive do), then the rotation finished.
type faultCase struct {
	step string
	op   string
	nth  int
	mode faultproxy.Mode
}

// rig is a fresh account, a proxy in front of it, and steps wired through
// the proxy with one SDK attempt and a short timeout, so every fault reaches
// the step.
type rig struct {
	a      *awstest.Account
	p      *faultproxy.Proxy
	direct *steps
	faulty *steps
	task   rotation.Task
	oldKey string
	// unknownSend: notify could not tell whether SES accepted the mail,
	// so a later run mailed again.
	unknownSend bool
}

func newRig(t *testing.T) *rig {
	t.Helper()
	a := awstest.New(t)
	p, err := faultproxy.New(a.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p.TimeoutHold = 1500 * time.Millisecond
	t.Cleanup(p.Close)
	direct := newSteps(t, a)
	old, _ := seedUser(t, a, "alice", 120, 1, "email", "alice@example.com")
	prox := awstest.Connect(t, p.URL(), func(o *awsconf.Options) { o.MaxAttempts = 1; o.HTTPTimeout = time.Second })
	faulty := &steps{acct: prox, cfg: direct.cfg, logs: direct.logs}
	plan := direct.plan(t, `{}`)
	faulty.now = direct.now
	faulty.rewire()
	return &rig{a: a, p: p, direct: direct, faulty: faulty, task: rotation.Task{Execution: "exec-1", Item: itemFor(t, plan, "alice")}, oldKey: old}
}

// run runs one step on the rig's task, recording its output in the task.
func (r *rig) run(st *steps, step string) error {
	ctx := context.Background()
	var err error
	switch step {
	case "create-and-store":
		var nk *rotation.NewKey
		if nk, err = st.create.Handle(ctx, r.task); err == nil {
			r.task.NewKey = nk
		}
	case "notify":
		var n *rotation.Notice
		if n, err = st.notify.Handle(ctx, r.task); err == nil {
			r.task.Notice = n
		}
	case "deactivate":
		var d *rotation.Deactivation
		if d, err = st.deact.Handle(ctx, r.task); err == nil {
			r.task.Deactivation = d
			// The Wait state: the delete runs after the recorded time.
			r.direct.now, r.faulty.now = d.DeleteAfter.Add(time.Second), d.DeleteAfter.Add(time.Second)
		}
	case "delete":
		var c *rotation.Cleanup
		if c, err = st.del.Handle(ctx, r.task); err == nil {
			r.task.Cleanup = c
		}
	}
	return err
}

// calls lists every AWS call (operation, occurrence) each step makes in an
// undisturbed rotation: the cases are generated from it, so a call added
// to a step cannot go untested.
func calls(t *testing.T) map[string][]faultproxy.Call {
	r := newRig(t)
	out := map[string][]faultproxy.Call{}
	for _, step := range stepOrder {
		r.p.ResetLog()
		if err := r.run(r.faulty, step); err != nil {
			t.Fatalf("undisturbed %s: %v", step, err)
		}
		seen := map[string]int{}
		for _, c := range r.p.Log() {
			seen[c.Operation]++
			out[step] = append(out[step], faultproxy.Call{Service: c.Service, Operation: c.Operation, N: seen[c.Operation]})
		}
	}
	return out
}

// TestSlowFaultMatrix: for every AWS call of every step, in every fault
// mode: inject, re-run the step with the same input, finish the rotation,
// and check the converged end state.
func TestSlowFaultMatrix(t *testing.T) {
	all := calls(t)
	total := 0
	for _, step := range stepOrder {
		if len(all[step]) == 0 {
			t.Fatalf("step %s made no AWS calls", step)
		}
		for _, c := range all[step] {
			for _, m := range faultproxy.Modes {
				fc := faultCase{step: step, op: c.Operation, nth: c.N, mode: m}
				total++
				t.Run(fmt.Sprintf("%s/%s#%d/%s", step, c.Operation, c.N, m), func(t *testing.T) { runFaultCase(t, fc) })
			}
		}
	}
	t.Logf("%d fault cases over %v", total, all)
}

func runFaultCase(t *testing.T, fc faultCase) {
	r := newRig(t)
	for _, step := range stepOrder {
		if step != fc.step {
			if err := r.run(r.direct, step); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
			continue
		}
		// The rule fires once, on the chosen call. A step that fails for
		// another reason first (a slow emulator) meets it on a re-run.
		r.p.FailNth(fc.op, fc.nth, fc.mode)
		err := r.run(r.faulty, step)
		// Re-run with the same input until it succeeds (Retry / Redrive).
		for i := 0; err != nil && i < 4; i++ {
			err = r.run(r.faulty, step)
		}
		if err != nil {
			t.Fatalf("%s did not converge after the fault: %v", step, err)
		}
		if r.p.Injected()[fc.op] != 1 {
			t.Fatalf("the fault on %s #%d was never injected (calls %v)", fc.op, fc.nth, r.p.Calls())
		}
		switch {
		case step == "create-and-store" && r.task.NewKey.Skipped != "":
			personRemovesUnprovenKey(t, r, fc)
		case step == "notify" && !r.task.Notice.Accepted:
			nextRunMailsAgain(t, r, fc)
		}
	}
	assertConverged(t, r)
}

// personRemovesUnprovenKey: CreateAccessKey took effect but its answer was
// lost, so keyrotor cannot prove the new key is its own: it stops, deletes
// nothing and tells the admins. Once a person deletes that key, a re-run
// resumes the rotation.
func personRemovesUnprovenKey(t *testing.T, r *rig, fc faultCase) {
	t.Helper()
	if fc.op != "CreateAccessKey" || fc.mode != faultproxy.DropResponse || !strings.HasPrefix(r.task.NewKey.Skipped, "stopped:") {
		t.Fatalf("create-and-store stopped after a fault on %s/%s: %s", fc.op, fc.mode, r.task.NewKey.Skipped)
	}
	keys := r.a.Keys(t, "alice")
	if len(keys) != 2 || keys[r.oldKey] != "Active" {
		t.Fatalf("keys after the stop = %v; want the old key and the unproven one, both kept", keys)
	}
	rec := r.direct.record(t, r.oldKey)
	_, notes := r.a.Sent(t)
	if rec.Attention == "" || !rec.AttentionTold || len(notes) != 1 || !strings.Contains(notes[0].Message, "cannot prove") {
		t.Fatalf("record attention %q (told %v), notes %+v; want the admins told once", rec.Attention, rec.AttentionTold, notes)
	}
	for id := range keys {
		if id != r.oldKey {
			if _, err := r.a.IAM.DeleteAccessKey(context.Background(), &iam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String(id)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := r.run(r.direct, "create-and-store"); err != nil || r.task.NewKey.KeyID == "" {
		t.Fatalf("create-and-store after the person's fix = %+v, %v", r.task.NewKey, err)
	}
}

// nextRunMailsAgain: SES's answer was lost (5xx, timeout, dropped
// connection), so the notice is recorded unknown, the admins are told and
// nothing is deactivated; the next run mails again.
func nextRunMailsAgain(t *testing.T, r *rig, fc faultCase) {
	t.Helper()
	if fc.op != "SendEmail" || fc.mode == faultproxy.Throttle || r.task.Notice.MailStatus != "unknown" {
		t.Fatalf("notice not accepted after a fault on %s/%s: %+v", fc.op, fc.mode, r.task.Notice)
	}
	rec := r.direct.record(t, r.oldKey)
	_, notes := r.a.Sent(t)
	if rec.Notice != ledger.NoticeUnknown || !rec.AttentionTold || len(notes) != 1 || !strings.Contains(notes[0].Message, "is unknown") {
		t.Fatalf("record notice %q (attention told %v), notes %+v; want unknown, the admins told", rec.Notice, rec.AttentionTold, notes)
	}
	r.unknownSend = true
	if err := r.run(r.direct, "notify"); err != nil || !r.task.Notice.Accepted {
		t.Fatalf("notify on the next run = %+v, %v; want accepted", r.task.Notice, err)
	}
}

// assertConverged: exactly one new Active key that works, stored in its
// secret; the old key deleted (after its grace); no orphan keys or
// secrets; the rotation record deleted, with one accepted owner mail; at
// most one mail sent, unless SES's answer to a send was lost (then the
// admins were told, and the next run mailed again).
func assertConverged(t *testing.T, r *rig) {
	t.Helper()
	a := r.a
	keys := a.Keys(t, "alice")
	var stored rotation.StoredKey
	if err := json.Unmarshal([]byte(a.Secret(t, "iam-access-keys/alice")), &stored); err != nil {
		t.Fatalf("secret: %v", err)
	}
	if len(keys) != 1 || keys[stored.AccessKeyID] != "Active" || stored.ReplacesKeyID != r.oldKey {
		t.Fatalf("keys %v, stored %s; want exactly the stored new key", keys, stored.AccessKeyID)
	}
	if r.task.NewKey == nil || r.task.NewKey.KeyID != stored.AccessKeyID {
		t.Fatalf("step output names key %v; stored %s", r.task.NewKey, stored.AccessKeyID)
	}
	a.Use(t, stored.AccessKeyID, stored.SecretAccessKey)
	if !r.task.Cleanup.Deleted {
		t.Fatalf("old key not deleted: %+v", r.task.Cleanup)
	}
	if !r.task.Deactivation.DeleteAfter.After(r.task.Deactivation.DeactivatedAt) {
		t.Fatalf("deleteAfter %v not after deactivation %v", r.task.Deactivation.DeleteAfter, r.task.Deactivation.DeactivatedAt)
	}
	list, err := a.Secrets.ListSecrets(context.Background(), &secretsmanager.ListSecretsInput{})
	if err != nil || len(list.SecretList) != 1 {
		t.Fatalf("secrets = %d (%v); want one", len(list.SecretList), err)
	}
	for k := range a.Tags(t, "alice") {
		if strings.HasPrefix(k, "keyrotor:") {
			t.Fatalf("user tag %s written", k)
		}
	}
	rec := r.direct.record(t, r.oldKey)
	if rec.State != ledger.Deleted || rec.Notice != ledger.NoticeAccepted || rec.OwnerMails != 1 || rec.NewKeyID != stored.AccessKeyID || rec.Attention != "" || rec.Owner != "" {
		t.Fatalf("final record = %+v; want deleted, one accepted owner mail, the stored key, no attention or owner", rec)
	}
	mails, _ := a.Sent(t)
	want := 1
	if r.unknownSend && r.p.Injected()["SendEmail"] == 1 && strings.HasSuffix(t.Name(), "/"+faultproxy.DropResponse.String()) {
		want = 2 // SES took the first mail; nobody could know
	}
	if len(mails) != want {
		t.Fatalf("%d owner mails; want %d", len(mails), want)
	}
}
