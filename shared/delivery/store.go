package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyrotor/keyrotor/shared/ledger"
)

// StoreAPI is the part of DynamoDB the document store uses.
type StoreAPI interface {
	GetItem(ctx context.Context, in *dynamodb.GetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.GetItemOutput, error)
	PutItem(ctx context.Context, in *dynamodb.PutItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.PutItemOutput, error)
	DeleteItem(ctx context.Context, in *dynamodb.DeleteItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.DeleteItemOutput, error)
	BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error)
}

var _ StoreAPI = (*dynamodb.Client)(nil)

// Kind is the value of the kind attribute (ledger.AttrKind) of a
// document's item, which ledger.Store.All skips.
const Kind = "destinations"

// Attribute names of a document's item besides ledger.AttrID and
// ledger.AttrKind. The document is the JSON attribute "doc", as a
// rotation record is.
const (
	attrDoc       = "doc"
	attrAccount   = "account"
	attrUser      = "user"
	attrUpdatedAt = "updatedAt"
	attrBy        = "by"
)

// batchLimit is BatchGetItem's limit: 100 items per call.
const batchLimit = 100

// Store keeps users' documents in keyrotor's rotation record table, one
// item per user.
type Store struct {
	API   StoreAPI
	Table string
}

// Ref names a user: Account "" is keyrotor's own account, as in rotation
// records.
type Ref struct{ Account, User string }

// Entry is a stored document with who wrote it and when.
type Entry struct {
	Account   string          `json:"account,omitempty"`
	User      string          `json:"user"`
	Raw       json.RawMessage `json:"document"`
	UpdatedAt time.Time       `json:"updatedAt"`
	By        string          `json:"by,omitempty"`
	// Document is Raw parsed, nil when it no longer validates (Err).
	Document *Document `json:"-"`
	Err      error     `json:"-"`
}

// DocumentID is the item id of a user's document.
func DocumentID(account, user string) string {
	return "destinations:" + account + ":" + user
}

// Get reads a user's document (strongly consistent): nil, nil when there
// is none; a stored document that no longer validates (a type since
// removed, a rule since tightened) returns its *FieldError.
func (s *Store) Get(ctx context.Context, account, user string) (*Document, error) {
	e, err := s.Entry(ctx, account, user)
	if err != nil || e == nil {
		return nil, err
	}
	if e.Err != nil {
		return nil, e.Err
	}
	return e.Document, nil
}

// Entry reads a user's stored document with its updatedAt and by; nil
// when there is none. A document that no longer validates is returned
// with Document nil and Err set.
func (s *Store) Entry(ctx context.Context, account, user string) (*Entry, error) {
	id := DocumentID(account, user)
	out, err := s.API.GetItem(ctx, &dynamodb.GetItemInput{
		TableName: aws.String(s.Table), ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{ledger.AttrID: &types.AttributeValueMemberS{Value: id}},
	})
	if err != nil {
		return nil, fmt.Errorf("read destinations of %s: %w", refName(account, user), err)
	}
	if len(out.Item) == 0 {
		return nil, nil
	}
	return decodeEntry(out.Item)
}

// Put validates doc and writes it as the user's document (replacing one),
// recording the time and by (who wrote it).
func (s *Store) Put(ctx context.Context, account, user string, doc *Document, by string) error {
	if strings.TrimSpace(user) == "" {
		return &FieldError{Field: "user", Msg: "missing: the IAM user whose key the document delivers"}
	}
	if doc == nil {
		return &FieldError{Field: "document", Msg: "missing"}
	}
	if err := doc.Validate(); err != nil {
		return err
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode destinations of %s: %w", refName(account, user), err)
	}
	item := map[string]types.AttributeValue{
		ledger.AttrID:   &types.AttributeValueMemberS{Value: DocumentID(account, user)},
		ledger.AttrKind: &types.AttributeValueMemberS{Value: Kind},
		attrDoc:         &types.AttributeValueMemberS{Value: string(b)},
		attrUser:        &types.AttributeValueMemberS{Value: user},
		attrUpdatedAt:   &types.AttributeValueMemberS{Value: time.Now().UTC().Format(time.RFC3339Nano)},
	}
	if account != "" {
		item[attrAccount] = &types.AttributeValueMemberS{Value: account}
	}
	if by != "" {
		item[attrBy] = &types.AttributeValueMemberS{Value: by}
	}
	if _, err := s.API.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(s.Table), Item: item}); err != nil {
		return fmt.Errorf("write destinations of %s: %w", refName(account, user), err)
	}
	return nil
}

// Delete removes a user's document and reports whether there was one.
func (s *Store) Delete(ctx context.Context, account, user string) (bool, error) {
	out, err := s.API.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:    aws.String(s.Table),
		Key:          map[string]types.AttributeValue{ledger.AttrID: &types.AttributeValueMemberS{Value: DocumentID(account, user)}},
		ReturnValues: types.ReturnValueAllOld,
	})
	if err != nil {
		return false, fmt.Errorf("remove destinations of %s: %w", refName(account, user), err)
	}
	return len(out.Attributes) > 0, nil
}

// GetMany reads the documents of many users (BatchGetItem, 100 per call,
// strongly consistent; unprocessed keys are asked again). Users without
// a document are in neither map; a document that no longer validates is
// in the second, with its *FieldError. The error is the table's.
func (s *Store) GetMany(ctx context.Context, refs []Ref) (map[Ref]*Document, map[Ref]error, error) {
	docs, bad := map[Ref]*Document{}, map[Ref]error{}
	byID := map[string]Ref{}
	var ids []string
	for _, r := range refs {
		id := DocumentID(r.Account, r.User)
		if _, dup := byID[id]; !dup {
			byID[id] = r
			ids = append(ids, id)
		}
	}
	for len(ids) > 0 {
		n := min(batchLimit, len(ids))
		keys := make([]map[string]types.AttributeValue, 0, n)
		for _, id := range ids[:n] {
			keys = append(keys, map[string]types.AttributeValue{ledger.AttrID: &types.AttributeValueMemberS{Value: id}})
		}
		ids = ids[n:]
		items, err := s.batchGet(ctx, keys)
		if err != nil {
			return nil, nil, err
		}
		for _, item := range items {
			e, err := decodeEntry(item)
			if err != nil {
				return nil, nil, err
			}
			r, ok := byID[itemID(item)]
			if !ok {
				continue
			}
			if e.Err != nil {
				bad[r] = e.Err
				continue
			}
			docs[r] = e.Document
		}
	}
	return docs, bad, nil
}

// batchGet reads up to 100 keys, asking again for the keys DynamoDB left
// unprocessed (throttling, the 16 MB answer limit) with a growing pause.
func (s *Store) batchGet(ctx context.Context, keys []map[string]types.AttributeValue) ([]map[string]types.AttributeValue, error) {
	var items []map[string]types.AttributeValue
	req := map[string]types.KeysAndAttributes{s.Table: {Keys: keys, ConsistentRead: aws.Bool(true)}}
	pause := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		out, err := s.API.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: req})
		if err != nil {
			return nil, fmt.Errorf("read destinations: %w", err)
		}
		items = append(items, out.Responses[s.Table]...)
		left, ok := out.UnprocessedKeys[s.Table]
		if !ok || len(left.Keys) == 0 {
			return items, nil
		}
		if attempt == maxBatchAttempts {
			return nil, fmt.Errorf("read destinations: %d documents still unprocessed after %d attempts (throttled?)", len(left.Keys), attempt)
		}
		req = map[string]types.KeysAndAttributes{s.Table: left}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(pause):
		}
		pause = min(2*pause, 2*time.Second)
	}
}

// maxBatchAttempts bounds the calls for one batch's unprocessed keys.
const maxBatchAttempts = 8

func decodeEntry(item map[string]types.AttributeValue) (*Entry, error) {
	str := func(name string) string {
		if v, ok := item[name].(*types.AttributeValueMemberS); ok {
			return v.Value
		}
		return ""
	}
	id := itemID(item)
	if k := str(ledger.AttrKind); k != Kind {
		return nil, fmt.Errorf("item %s is not a destinations document (kind %q)", id, k)
	}
	e := &Entry{Account: str(attrAccount), User: str(attrUser), Raw: json.RawMessage(str(attrDoc)), By: str(attrBy)}
	if t := str(attrUpdatedAt); t != "" {
		e.UpdatedAt, _ = time.Parse(time.RFC3339Nano, t)
	}
	e.Document, e.Err = ParseDocument(e.Raw)
	if e.Err != nil {
		e.Document = nil
	}
	return e, nil
}

func itemID(item map[string]types.AttributeValue) string {
	if v, ok := item[ledger.AttrID].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

func refName(account, user string) string {
	if account == "" {
		return "user " + user
	}
	return "user " + user + " of account " + account
}
