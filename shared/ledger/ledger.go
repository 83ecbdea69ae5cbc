// Package ledger is keyrotor's record of every rotation: one DynamoDB item
// per old credential, written with conditional writes and read strongly
// consistent, so that whatever starts executions (the schedule, a person, a
// Redrive) exactly one rotation of a given old key is in flight, and each
// step sees what earlier attempts and earlier executions did.
//
// The record is authoritative. It is kept out of the user's IAM tags on
// purpose: those belong to the customer, count against IAM's 50-tag quota
// and are eventually consistent. Each transition is appended to the
// record's history with its time and execution, so the record doubles as
// the audit trail of the rotation.
package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyrotor/keyrotor/shared/failures"
)

// State is where a rotation stands.
type State string

// The states of a rotation, in order. Held, Ended and Deleted are final for
// the rotation; a later rotation of the same old key starts a new record
// generation (Rotation+1) only after a hold has passed.
const (
	Started     State = "started"     // claimed; nothing changed in IAM yet
	Creating    State = "creating"    // CreateAccessKey is being called (its key id not yet known)
	Created     State = "created"     // the new key exists; its id is recorded, its secret maybe not stored
	Stored      State = "stored"      // the new key is stored in Secrets Manager
	Notified    State = "notified"    // the owner's notice was accepted (SES, or the admins' topic)
	Adopting    State = "adopting"    // an adoption window runs: the old key stays Active until the new key is in use (or the window ends)
	Deactivated State = "deactivated" // the old key is Inactive; its grace period runs
	Deleted     State = "deleted"     // the old key is deleted: the rotation is done
	Held        State = "held"        // a person acted (re-activated the old key...): hands off until HeldUntil
	Ended       State = "ended"       // ended without deleting (user deleted, old key deleted by a person...)
)

// InFlight reports whether s is a state a rotation passes through (not final).
func (s State) InFlight() bool {
	switch s {
	case Started, Creating, Created, Stored, Notified, Adopting, Deactivated:
		return true
	}
	return false
}

// Notice outcomes.
const (
	NoticeAccepted = "accepted" // SES accepted the owner's mail, or the admins' message was published
	NoticeRefused  = "refused"  // SES (or SNS) refused it: nothing was sent
	NoticeUnknown  = "unknown"  // the send's outcome is unknown (timeout, dropped connection)
)

// Entry is one transition of a rotation.
type Entry struct {
	At        time.Time `json:"at"`
	State     State     `json:"state"`
	Execution string    `json:"execution,omitempty"`
	Note      string    `json:"note,omitempty"`
}

// Record is one rotation of one old credential.
type Record struct {
	// ID names the old credential: its access key id, or PasswordID(...).
	ID string `json:"id"`
	// Account is the member account of the user in organization mode; ""
	// is the account keyrotor runs in.
	Account  string `json:"account,omitempty"`
	User     string `json:"user"`
	Action   string `json:"action"`   // rotate, retire or retire-password
	Rotation int    `json:"rotation"` // 1 for the first rotation of this old key, then 2, ...
	State    State  `json:"state"`

	// Owner is the execution that drives the rotation until LeaseUntil; an
	// execution that finds the lease passed takes the rotation over.
	Owner      string    `json:"owner,omitempty"`
	LeaseUntil time.Time `json:"leaseUntil,omitempty"`

	CreatingAt    time.Time `json:"creatingAt,omitempty"` // when CreateAccessKey was first called
	NewKeyID      string    `json:"newKeyId,omitempty"`
	NewKeyCreated time.Time `json:"newKeyCreated,omitempty"`
	// PrevNewKeyID is the new key of the previous rotation of this old key
	// (a held rotation): the next rotation reuses it when it is still
	// Active and stored.
	PrevNewKeyID string `json:"prevNewKeyId,omitempty"`
	SecretName   string `json:"secretName,omitempty"`
	SecretARN    string `json:"secretArn,omitempty"`
	// ProofAt is the last time keyrotor itself used the new key (its
	// sts:GetCallerIdentity proof): a later use is someone else's.
	ProofAt time.Time `json:"proofAt,omitempty"`

	Notice        string    `json:"notice,omitempty"` // NoticeAccepted, NoticeRefused, NoticeUnknown or ""
	NoticeAt      time.Time `json:"noticeAt,omitempty"`
	NoticeChannel string    `json:"noticeChannel,omitempty"` // mail or admins
	MessageID     string    `json:"messageId,omitempty"`
	OwnerMails    int       `json:"ownerMails"` // owner mails SES accepted for this rotation
	AdminsTold    bool      `json:"adminsTold,omitempty"`

	// Adoption is the adoption window of this rotation, when it has one.
	Adoption *Adoption `json:"adoption,omitempty"`

	// Deliveries is the new key's delivery to each of the user's
	// destinations (shared/delivery), one entry per destination: a
	// Retry, a Redrive or a takeover reads it and never writes a
	// destination twice or skips one.
	Deliveries []Delivery `json:"deliveries,omitempty"`
	// Evidence is set when the new key was delivered to destinations whose
	// document asks for evidence: the old key goes off only once the new
	// key is seen in use, never at a window's deadline without that.
	Evidence bool `json:"evidence,omitempty"`

	DeactivatedAt  time.Time `json:"deactivatedAt,omitempty"`
	DeleteAfter    time.Time `json:"deleteAfter,omitempty"`
	GraceExecution string    `json:"graceExecution,omitempty"`

	HeldUntil time.Time `json:"heldUntil,omitempty"`
	Outcome   string    `json:"outcome,omitempty"` // why the rotation is held, ended or done

	// Attention is a condition keyrotor cannot heal by itself (a refused
	// mail, a key it cannot prove it created). It is reported to the admins
	// once (AttentionTold) and shown in every run's summary until cleared.
	Attention      string    `json:"attention,omitempty"`
	AttentionSince time.Time `json:"attentionSince,omitempty"`
	AttentionTold  bool      `json:"attentionTold,omitempty"`

	History []Entry `json:"history"`

	// Version is the optimistic-concurrency counter: every write is
	// conditional on the version read.
	Version int `json:"version"`
	// ExpiresAt (Unix seconds) lets DynamoDB TTL remove a finished record.
	ExpiresAt int64 `json:"expiresAt,omitempty"`
}

// Delivery is one destination's progress (Record.Deliveries).
type Delivery struct {
	// Where names the destination (delivery.Destination.Where): never a
	// value.
	Where string        `json:"where"`
	State DeliveryState `json:"state"`
	// WriteAt is when keyrotor began writing the new key there: a re-run
	// asks the destination whether it holds the key since then before it
	// writes again, and one that finishes that write (writing only the
	// value the destination lacks: GitHub, SSM) keeps it.
	WriteAt    time.Time `json:"writeAt,omitzero"`
	VerifiedAt time.Time `json:"verifiedAt,omitzero"`
	// Reason is the last failure (the destination's status and message).
	Reason string `json:"reason,omitempty"`
	// Tries counts the attempts of execution TriedBy (the orchestrator
	// retries a few times, then the next run).
	Tries   int    `json:"tries,omitempty"`
	TriedBy string `json:"triedBy,omitempty"`
}

// DeliveryState is a destination's progress.
type DeliveryState string

const (
	DeliveryPending  DeliveryState = "pending"  // not written yet
	DeliveryWriting  DeliveryState = "writing"  // a write began; its outcome is read back on a re-run
	DeliveryVerified DeliveryState = "verified" // the destination holds the new key, read back
	DeliveryFailed   DeliveryState = "failed"   // the last attempt failed (Reason)
)

// Delivery returns the entry of the destination where, adding a pending
// one if there is none.
func (r *Record) Delivery(where string) *Delivery {
	for i := range r.Deliveries {
		if r.Deliveries[i].Where == where {
			return &r.Deliveries[i]
		}
	}
	r.Deliveries = append(r.Deliveries, Delivery{Where: where, State: DeliveryPending})
	return &r.Deliveries[len(r.Deliveries)-1]
}

// Undelivered lists the destinations that do not hold the new key yet,
// as far as keyrotor verified: the old key must not go off while any does.
func (r *Record) Undelivered() []string {
	var out []string
	for _, d := range r.Deliveries {
		if d.State != DeliveryVerified {
			out = append(out, d.Where)
		}
	}
	return out
}

// Switch-over reasons: why the old key was deactivated after an adoption
// window.
const (
	SwitchEvidence = "evidence" // the new key is in use and the old one was not used since
	SwitchDeadline = "deadline" // the window ended without that evidence
	SwitchPerson   = "person"   // a person deactivated the old key during the window
)

// Use is a key's last use as IAM reports it (GetAccessKeyLastUsed).
type Use struct {
	At      time.Time `json:"at"`
	Service string    `json:"service,omitempty"`
	Region  string    `json:"region,omitempty"`
}

// String describes the use for people ("never" when u is nil).
func (u *Use) String() string {
	if u == nil || u.At.IsZero() {
		return "never"
	}
	s := u.At.UTC().Format(time.RFC3339)
	if u.Service != "" {
		s += " (" + u.Service
		if u.Region != "" && u.Region != "N/A" {
			s += ", " + u.Region
		}
		s += ")"
	}
	return s
}

// Adoption is a rotation's adoption window: between the owner's notice and
// the old key's deactivation, the key's own execution checks the keys'
// last use until the new key is adopted or the window ends.
type Adoption struct {
	Until     time.Time `json:"until"`     // the deadline: deactivated then at the latest
	Every     int64     `json:"every"`     // seconds between checks
	Execution string    `json:"execution"` // the key's own execution that runs the window
	Attempt   int       `json:"attempt,omitempty"`
	// HandedOffBy is the daily execution that last started the window's
	// execution.
	HandedOffBy string `json:"handedOffBy,omitempty"`
	Checks      int    `json:"checks"`
	// NewSeenAt is the check that first saw the new key in use, and
	// OldAtNewSeen the old key's last use then: adopted when a later check
	// finds the old key not used since.
	NewSeenAt    time.Time `json:"newSeenAt,omitempty"`
	OldAtNewSeen *Use      `json:"oldAtNewSeen,omitempty"`
	OldLastUsed  *Use      `json:"oldLastUsed,omitempty"`
	NewLastUsed  *Use      `json:"newLastUsed,omitempty"`
	// Reminders are the points (seconds before Until) whose reminder went
	// out or was tried.
	Reminders  []int64   `json:"reminders,omitempty"`
	SwitchOver string    `json:"switchOver,omitempty"` // SwitchEvidence, SwitchDeadline or SwitchPerson
	SwitchedAt time.Time `json:"switchedAt,omitempty"`
}

// PasswordID names a console password by its user and the time it was set
// (a user sets many passwords over time; each is its own credential).
func PasswordID(user string, set time.Time) string {
	return fmt.Sprintf("password:%s:%d", user, set.Unix())
}

// historyLimit bounds a record's history (DynamoDB items are at most
// 400 KB); the oldest entries after the first are dropped.
const historyLimit = 60

// Log appends a transition to the history.
func (r *Record) Log(at time.Time, state State, execution, note string) {
	r.History = append(r.History, Entry{At: at.UTC(), State: state, Execution: execution, Note: note})
	if n := len(r.History); n > historyLimit {
		r.History = append(r.History[:1], r.History[n-historyLimit+1:]...)
	}
}

// Move sets the state and logs the transition.
func (r *Record) Move(at time.Time, state State, execution, note string) {
	r.State = state
	r.Log(at, state, execution, note)
}

// LeaseHeldByOther reports whether another execution drives the rotation
// now (its lease has not passed).
func (r *Record) LeaseHeldByOther(execution string, now time.Time) bool {
	return r.State.InFlight() && r.Owner != "" && r.Owner != execution && now.Before(r.LeaseUntil)
}

// API is the part of DynamoDB the store uses: GetItem and PutItem for the
// steps, Scan for find and the audit report.
type API interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	Scan(ctx context.Context, in *dynamodb.ScanInput, optFns ...func(*dynamodb.Options)) (*dynamodb.ScanOutput, error)
}

var _ API = (*dynamodb.Client)(nil)

// Table attribute names. The record itself is the JSON attribute "doc";
// the others are what DynamoDB needs to see (key, condition, TTL).
const (
	AttrID        = "id"
	attrVersion   = "v"
	attrDoc       = "doc"
	attrState     = "state"
	attrUser      = "user"
	AttrExpiresAt = "expiresAt" // the table's TTL attribute
	// AttrKind tells the table's other items from rotation records: the
	// table also holds users' destination documents (shared/delivery).
	// A record has no kind attribute, or KindRecord.
	AttrKind   = "kind"
	KindRecord = "record"
)

// IsRecord reports whether an item of the table is a rotation record.
func IsRecord(item map[string]types.AttributeValue) bool {
	k, ok := item[AttrKind]
	if !ok {
		return true
	}
	s, ok := k.(*types.AttributeValueMemberS)
	return ok && s.Value == KindRecord
}

// TableCreator creates tables (local runs and tests; the stack creates the
// real one).
type TableCreator interface {
	CreateTable(ctx context.Context, in *dynamodb.CreateTableInput, optFns ...func(*dynamodb.Options)) (*dynamodb.CreateTableOutput, error)
}

// CreateTable creates a record table with the stack's key schema (AttrID,
// a string); a table that exists already is fine.
func CreateTable(ctx context.Context, api TableCreator, name string) error {
	_, err := api.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(name),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String(AttrID), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String(AttrID), KeyType: types.KeyTypeHash}},
	})
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	return nil
}

// Store reads and writes records in one table.
type Store struct {
	API   API
	Table string
}

// Get reads the record of id (strongly consistent); nil when there is none.
func (s *Store) Get(ctx context.Context, id string) (*Record, error) {
	out, err := s.API.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{AttrID: &types.AttributeValueMemberS{Value: id}},
	})
	if err != nil {
		return nil, fmt.Errorf("read rotation record %s: %w", id, err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return decode(out.Item)
}

// Put writes r if nobody wrote the record since it was read at r.Version
// (a new record: version 0, none may exist). It increments r.Version.
func (s *Store) Put(ctx context.Context, r *Record) error {
	next := *r
	next.Version = r.Version + 1
	doc, err := json.Marshal(&next)
	if err != nil {
		return fmt.Errorf("encode rotation record %s: %w", r.ID, err)
	}
	item := map[string]types.AttributeValue{
		AttrID:      &types.AttributeValueMemberS{Value: r.ID},
		attrVersion: &types.AttributeValueMemberN{Value: strconv.Itoa(next.Version)},
		attrDoc:     &types.AttributeValueMemberS{Value: string(doc)},
		attrState:   &types.AttributeValueMemberS{Value: string(r.State)},
		attrUser:    &types.AttributeValueMemberS{Value: r.User},
	}
	if r.ExpiresAt > 0 {
		item[AttrExpiresAt] = &types.AttributeValueMemberN{Value: strconv.FormatInt(r.ExpiresAt, 10)}
	}
	in := &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item}
	if r.Version == 0 {
		in.ConditionExpression = aws.String("attribute_not_exists(#id)")
		in.ExpressionAttributeNames = map[string]string{"#id": AttrID}
	} else {
		in.ConditionExpression = aws.String("#v = :v")
		in.ExpressionAttributeNames = map[string]string{"#v": attrVersion}
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":v": &types.AttributeValueMemberN{Value: strconv.Itoa(r.Version)}}
	}
	if _, err := s.API.PutItem(ctx, in); err != nil {
		var cf *types.ConditionalCheckFailedException
		if errors.As(err, &cf) {
			return &failures.ConflictError{ID: r.ID}
		}
		return fmt.Errorf("write rotation record %s: %w", r.ID, err)
	}
	r.Version = next.Version
	return nil
}

// All reads every record (a paginated Scan, strongly consistent), by ID.
// The table's other items (IsRecord) are skipped.
func (s *Store) All(ctx context.Context) (map[string]*Record, error) {
	out := map[string]*Record{}
	var start map[string]types.AttributeValue
	for {
		page, err := s.API.Scan(ctx, &dynamodb.ScanInput{TableName: aws.String(s.Table), ConsistentRead: aws.Bool(true), ExclusiveStartKey: start})
		if err != nil {
			return nil, fmt.Errorf("scan rotation records: %w", err)
		}
		for _, item := range page.Items {
			if !IsRecord(item) {
				continue
			}
			r, err := decode(item)
			if err != nil {
				return nil, err
			}
			out[r.ID] = r
		}
		if len(page.LastEvaluatedKey) == 0 {
			return out, nil
		}
		start = page.LastEvaluatedKey
	}
}

func decode(item map[string]types.AttributeValue) (*Record, error) {
	id := ""
	if v, ok := item[AttrID].(*types.AttributeValueMemberS); ok {
		id = v.Value
	}
	doc, ok := item[attrDoc].(*types.AttributeValueMemberS)
	if !ok {
		return nil, fmt.Errorf("rotation record %s has no doc attribute", id)
	}
	var r Record
	if err := json.Unmarshal([]byte(doc.Value), &r); err != nil {
		return nil, fmt.Errorf("decode rotation record %s: %w", id, err)
	}
	if v, ok := item[attrVersion].(*types.AttributeValueMemberN); ok {
		r.Version, _ = strconv.Atoi(v.Value)
	}
	return &r, nil
}
