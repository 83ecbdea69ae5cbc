// Package rotation holds keyrotor's steps: find the keys that are due,
// create and store a replacement, notify, deactivate the old key and delete
// it after the grace period, and summarize the run. Each step is a type with
// a Handle method that a thin functions/<step>/main.go hands to lambda.Start.
//
// Every step is safe to run again with the same input after a failure at any
// AWS call: it reads the account first and converges to the same end state.
// Progress that must survive a retry is recorded in the rotation record
// (shared/ledger: DynamoDB), never in the Lambda's memory.
package rotation

import (
	"time"

	"github.com/keyrotor/keyrotor/shared/policy"
)

// Request is the execution input. Every field is optional.
type Request struct {
	DryRun bool     `json:"dryRun,omitempty"` // plan only, change nothing
	Users  []string `json:"users,omitempty"`  // restrict to these IAM user names
	AsOf   string   `json:"asOf,omitempty"`   // RFC 3339: evaluate ages as of this instant
	// Accounts restricts an organization-mode run to these account ids
	// (within the scope).
	Accounts []string `json:"accounts,omitempty"`
}

// KeyRef describes the key an item acts on.
type KeyRef struct {
	ID       string     `json:"id"`
	Created  time.Time  `json:"created"`
	AgeDays  int        `json:"ageDays"`
	LastUsed *time.Time `json:"lastUsed,omitempty"` // absent: never used
	// LastUsedService is where the key was last used, when known.
	LastUsedService string `json:"lastUsedService,omitempty"`
}

// Item is one unit of work: one key of one user. It is the input of one
// child execution of the RotateEachUser map.
type Item struct {
	// Account is the member account of the user in organization mode; ""
	// is the account keyrotor runs in (the hub, or the single account).
	Account string `json:"account,omitempty"`
	// AccountAlias is the account's IAM alias (or its name in the
	// organization), for people.
	AccountAlias string        `json:"accountAlias,omitempty"`
	User         string        `json:"user"`
	UserARN      string        `json:"userArn"`
	Email        string        `json:"email,omitempty"` // from the owner e-mail tag; may be absent
	Action       policy.Action `json:"action"`          // rotate or retire
	Reason       string        `json:"reason"`
	OldKey       KeyRef        `json:"oldKey"`
	// RemoveFirst is an Inactive key, deactivated by keyrotor more than a
	// grace period ago, that create-and-store deletes before creating.
	RemoveFirst string `json:"removeFirst,omitempty"`
}

// Skipped is a user keyrotor reports but does not act on.
type Skipped struct {
	Account string `json:"account,omitempty"` // as Item.Account
	User    string `json:"user"`
	UserARN string `json:"userArn,omitempty"`
	// KeyID is the access key id, "password", or for an exempt user find
	// did not check live (nothing due) the key's credential report slot
	// (access_key_1, access_key_2): the report has no key ids.
	KeyID  string        `json:"keyId,omitempty"`
	Action policy.Action `json:"action"` // exempt or blocked
	Reason string        `json:"reason"`
}

// Counts totals a plan.
type Counts struct {
	Users      int `json:"users"`      // users considered
	Candidates int `json:"candidates"` // users checked live
	Rotate     int `json:"rotate"`
	Retire     int `json:"retire"`
	Exempt     int `json:"exempt"`
	Blocked    int `json:"blocked"`
	// Held: rotations a person's action holds; Attention: conditions
	// keyrotor cannot heal by itself; InFlight: rotations another
	// execution drives; InGrace: old keys waiting out their grace period;
	// Resumed: items that finish a rotation an earlier execution began.
	Held      int `json:"held"`
	Attention int `json:"attention"`
	InFlight  int `json:"inFlight"`
	InGrace   int `json:"inGrace"`
	Resumed   int `json:"resumed"`
	// Adopting: rotations in their adoption window (old key still Active).
	Adopting int `json:"adopting"`
	// Organization mode: accounts planned, accounts keyrotor could not
	// reach (their users are not rotated: see Plan.Accounts for the fix),
	// accounts waiting for an earlier stage.
	Accounts    int `json:"accounts,omitempty"`
	Unreachable int `json:"unreachable,omitempty"`
	Waiting     int `json:"waiting,omitempty"`
}

// Account statuses in a plan (organization mode).
const (
	AccountPlanned     = "planned"     // reached and planned
	AccountUnreachable = "unreachable" // the member role or an action was refused: Fix says what to do
	AccountFailed      = "failed"      // another error (throttled, unavailable): tried again by the next run
	AccountWaiting     = "waiting"     // its stage waits for an earlier one
)

// AccountPlan is one account of an organization-mode plan.
type AccountPlan struct {
	Account string `json:"account"`
	Alias   string `json:"alias,omitempty"`
	Stage   int    `json:"stage"`
	Status  string `json:"status"`
	// Reason is why an account was not planned, with the fix.
	Reason string `json:"reason,omitempty"`
	Users  int    `json:"users"`
	Items  int    `json:"items"`
}

// ReportRef names the audit report objects of a run.
type ReportRef struct {
	Bucket string `json:"bucket"`
	CSV    string `json:"csv"`  // object key
	JSON   string `json:"json"` // object key
	Rows   int    `json:"rows"`
}

// Plan is the output of find (state path $.plan).
type Plan struct {
	ExecutionName string    `json:"executionName"`
	AsOf          time.Time `json:"asOf"`
	DryRun        bool      `json:"dryRun"`
	// Pass is 1 for the first pass over all due users, 2 for the retry pass
	// over the users whose first pass failed.
	Pass int `json:"pass"`
	// ToleratedFailurePercentage for the RotateEachUser map: 100 on the first
	// pass (one user's failure never stops another's), 0 on the retry pass (a
	// persistent failure fails the execution, ready for Redrive).
	ToleratedFailurePercentage int    `json:"toleratedFailurePercentage"`
	Bucket                     string `json:"bucket,omitempty"`
	ItemsKey                   string `json:"itemsKey,omitempty"` // S3 JSON array of Item, read by the map
	Counts                     Counts `json:"counts"`
	// Items is an inline copy of the work for people reading the history; it
	// is cut short (ItemsTruncated) when large. The map reads ItemsKey.
	Items          []Item    `json:"items"`
	ItemsTruncated bool      `json:"itemsTruncated,omitempty"`
	Blocked        []Skipped `json:"blocked"`
	Exempt         []Skipped `json:"exempt"`
	Held           []Skipped `json:"held"`
	Attention      []Skipped `json:"attention"`
	InFlight       []Skipped `json:"inFlight"`
	Adopting       []Skipped `json:"adopting"`
	// Accounts is the organization mode's per-account plan, every account
	// in scope (nil in single-account mode).
	Accounts []AccountPlan `json:"accounts,omitempty"`
	// The lists above hold at most InlineListLimit entries each (the counts are whole;
	// the audit report lists everything): a state may not exceed 256 KiB.
	BlockedTruncated   bool       `json:"blockedTruncated,omitempty"`
	ExemptTruncated    bool       `json:"exemptTruncated,omitempty"`
	HeldTruncated      bool       `json:"heldTruncated,omitempty"`
	AttentionTruncated bool       `json:"attentionTruncated,omitempty"`
	AdoptingTruncated  bool       `json:"adoptingTruncated,omitempty"`
	Report             *ReportRef `json:"report,omitempty"`
}

// NewKey is the output of create-and-store (state path $.newKey). It never
// holds the secret.
type NewKey struct {
	KeyID      string    `json:"keyId,omitempty"`
	Created    time.Time `json:"created,omitempty"`
	SecretName string    `json:"secretName,omitempty"`
	SecretARN  string    `json:"secretArn,omitempty"`
	Reused     bool      `json:"reused,omitempty"` // an earlier attempt's key was reused
	// Skipped says why this execution does not go on with the rotation
	// (held, in flight elsewhere, ended by a person's action...).
	Skipped  string `json:"skipped,omitempty"`
	Rotation int    `json:"rotation,omitempty"` // the rotation record's generation
	Note     string `json:"note,omitempty"`     // what else was done (a secret restored)
}

// Delivery is the output of deliver (state path $.delivery): where the
// new key went. It never holds a value.
type Delivery struct {
	// Destinations is how many the user's document lists (0: none, and
	// the rotation goes on as without delivery).
	Destinations int `json:"destinations"`
	// Complete is true when every destination holds the new key, read
	// back: only then may the old key go off.
	Complete bool `json:"complete"`
	// Evidence: the old key goes off only once the new key is seen in use
	// (an adoption window that never ends on its deadline alone).
	Evidence  bool     `json:"evidence,omitempty"`
	Delivered []string `json:"delivered,omitempty"` // verified destinations
	// Left are the destinations that do not hold the new key, with why:
	// the owner's mail lists them, the next run tries them again.
	Left    []Undelivered `json:"left,omitempty"`
	Skipped string        `json:"skipped,omitempty"`
}

// Undelivered is a destination without the new key, and why.
type Undelivered struct {
	Where  string `json:"where"`
	Reason string `json:"reason"`
}

// Notice is the output of notify (state path $.notice).
type Notice struct {
	MailedTo  string `json:"mailedTo,omitempty"`
	MessageID string `json:"messageId,omitempty"`
	// MailStatus: sent, already-sent, admins (no address: the admins'
	// message was the notice), refused, unknown (the send's outcome is not
	// known: tried again by a later run), or skipped.
	MailStatus string `json:"mailStatus"`
	// Accepted is true once the notice for this rotation went out: SES
	// accepted the owner's mail, or (no address) the admins' message was
	// published. The old key is deactivated only then.
	Accepted    bool   `json:"accepted"`
	Skipped     string `json:"skipped,omitempty"` // why this execution does nothing for the rotation
	Waiting     string `json:"waiting,omitempty"` // why the notice did not go out (refused, unknown)
	AdminNotice string `json:"adminNotice,omitempty"`
	// StopsWorking and DeleteAfter are what the owner was told (with an
	// adoption window: at the latest).
	StopsWorking time.Time `json:"stopsWorking"`
	DeleteAfter  time.Time `json:"deleteAfter"`
	// Adoption, when set, is the rotation's adoption window: the state
	// machine starts the key's own execution, which deactivates the old key
	// once the new key is in use, or when the window ends.
	Adoption *Adoption `json:"adoption,omitempty"`
}

// Adoption is an adoption window as the state machines see it: the start
// (notify's output) and each check's outcome (check-adoption's output,
// state path $.adoption).
type Adoption struct {
	// Execution is the key's own execution, which runs the window.
	Execution string    `json:"execution"`
	Until     time.Time `json:"until"`
	// Next is what follows a check: "wait" until NextCheck, "deactivate"
	// (switched over: SwitchOver says why) or "stop".
	Next        string    `json:"next,omitempty"`
	NextCheck   time.Time `json:"nextCheck,omitzero"`
	SwitchOver  string    `json:"switchOver,omitempty"`
	OldLastUsed string    `json:"oldLastUsed,omitempty"`
	NewLastUsed string    `json:"newLastUsed,omitempty"`
	NewKeyInUse bool      `json:"newKeyInUse,omitempty"`
	Checks      int       `json:"checks,omitempty"`
	Reminded    string    `json:"reminded,omitempty"` // a reminder this check sent: sent, admins, refused...
	Note        string    `json:"note,omitempty"`
}

// Deactivation is the output of deactivate (state path $.deactivation).
// The WaitForGracePeriod state waits until DeleteAfter.
type Deactivation struct {
	KeyID         string    `json:"keyId"`
	DeactivatedAt time.Time `json:"deactivatedAt,omitempty"`
	DeleteAfter   time.Time `json:"deleteAfter,omitempty"`
	Note          string    `json:"note,omitempty"`
	// Next is what the state machine does now: "grace" (start the key's
	// grace-and-delete execution), "delete" (the grace period is already
	// over: delete now) or "stop" (nothing more in this execution).
	Next string `json:"next"`
	// GraceExecution names the grace-and-delete execution, after the user
	// and the key, so a person finds it in the console.
	GraceExecution string `json:"graceExecution,omitempty"`
	Rotation       int    `json:"rotation,omitempty"`
}

// Next values of Deactivation.
const (
	NextGrace  = "grace"
	NextDelete = "delete"
	NextStop   = "stop"
	// After an adoption check: wait for the next one, or deactivate now.
	NextWait       = "wait"
	NextDeactivate = "deactivate"
)

// Cleanup is the output of delete (state path $.cleanup).
type Cleanup struct {
	KeyID   string `json:"keyId"`
	Deleted bool   `json:"deleted"`
	Reason  string `json:"reason"`
}

// Task is the state of one child execution, growing as steps finish.
type Task struct {
	Execution    string        `json:"execution"`
	Item         Item          `json:"item"`
	NewKey       *NewKey       `json:"newKey,omitempty"`
	Delivery     *Delivery     `json:"delivery,omitempty"`
	Notice       *Notice       `json:"notice,omitempty"`
	Deactivation *Deactivation `json:"deactivation,omitempty"`
	Cleanup      *Cleanup      `json:"cleanup,omitempty"`
	// Adoption is set in the key's own execution when it runs an adoption
	// window.
	Adoption *Adoption `json:"adoption,omitempty"`
}

// AccountID is the account of the task's user ("" : keyrotor's own).
func (t Task) AccountID() string { return t.Item.Account }

// Skip reports why the steps after an early clean end do nothing, or "".
func (t Task) Skip() string {
	if t.NewKey != nil && t.NewKey.Skipped != "" {
		return t.NewKey.Skipped
	}
	return ""
}
