package delivery_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/delivery"
)

func mustParse(t *testing.T, s string) *delivery.Document {
	t.Helper()
	d, err := delivery.ParseDocument([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func items(t *testing.T, a *awstest.Account, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	out, err := a.DynamoDB.Scan(context.Background(), &dynamodb.ScanInput{TableName: aws.String(table)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]map[string]types.AttributeValue{}
	for _, it := range out.Items {
		m[it["id"].(*types.AttributeValueMemberS).Value] = it
	}
	return m
}

// TestMotoStore: Put, Get, Entry and Delete of one user's document in the
// rotation record table: the item's id and kind, updatedAt and by; none is
// nil, nil; an invalid document is refused and not written; a stored one
// that no longer validates comes back as its *FieldError.
func TestMotoStore(t *testing.T) {
	a := awstest.New(t)
	ctx := context.Background()
	a.Records(t, "rotations")
	s := &delivery.Store{API: a.DynamoDB, Table: "rotations"}

	if got := delivery.DocumentID("", "alice"); got != "destinations::alice" {
		t.Fatalf("DocumentID(\"\", alice) = %q", got)
	}
	if got := delivery.DocumentID("111122223333", "bob"); got != "destinations:111122223333:bob" {
		t.Fatalf("DocumentID(111122223333, bob) = %q", got)
	}
	if d, err := s.Get(ctx, "", "alice"); d != nil || err != nil {
		t.Fatalf("Get before Put = %v, %v; want nil, nil", d, err)
	}
	doc := mustParse(t, `{"version":1,"adoption":"off","destinations":[`+ssmSpec+`,`+secretsSpec+`]}`)
	start := time.Now().Add(-time.Second)
	if err := s.Put(ctx, "", "alice", doc, "arn:aws:iam::123456789012:user/ops"); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "", "alice")
	if err != nil || !reflect.DeepEqual(got, doc) {
		t.Fatalf("Get = %+v, %v; want %+v", got, err, doc)
	}
	e, err := s.Entry(ctx, "", "alice")
	if err != nil || e.User != "alice" || e.Account != "" || e.By != "arn:aws:iam::123456789012:user/ops" || e.UpdatedAt.Before(start) || e.UpdatedAt.After(time.Now()) || e.Err != nil {
		t.Fatalf("Entry = %+v, %v", e, err)
	}
	// Another account's user of the same name is another document.
	if d, err := s.Get(ctx, "111122223333", "alice"); d != nil || err != nil {
		t.Fatalf("Get of account 111122223333's alice = %v, %v; want nil, nil", d, err)
	}
	it := items(t, a, "rotations")["destinations::alice"]
	if it == nil || it["kind"].(*types.AttributeValueMemberS).Value != "destinations" {
		t.Fatalf("item = %v; want id destinations::alice, kind destinations", it)
	}

	// An invalid document is refused, and the stored one stays.
	bad := &delivery.Document{Version: 1, Destinations: []delivery.Spec{{Type: "ssm", IDName: "/a"}}}
	if err := s.Put(ctx, "", "alice", bad, "x"); fieldOf(t, err).Field != "destinations[0].secretName" {
		t.Fatalf("Put(invalid) = %v", err)
	}
	if err := s.Put(ctx, "", " ", doc, "x"); fieldOf(t, err).Field != "user" {
		t.Fatalf("Put(no user) = %v", err)
	}
	if got, _ := s.Get(ctx, "", "alice"); !reflect.DeepEqual(got, doc) {
		t.Fatalf("after a refused Put: %+v", got)
	}

	// A document stored by an earlier version that no longer validates.
	if _, err := a.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("rotations"), Item: map[string]types.AttributeValue{
		"id": &types.AttributeValueMemberS{Value: "destinations::carol"}, "kind": &types.AttributeValueMemberS{Value: "destinations"},
		"user": &types.AttributeValueMemberS{Value: "carol"},
		"doc":  &types.AttributeValueMemberS{Value: `{"version":1,"destinations":[{"type":"retired-ci","project":"x"}]}`},
	}}); err != nil {
		t.Fatal(err)
	}
	d, err := s.Get(ctx, "", "carol")
	if d != nil || fieldOf(t, err).Field != "destinations[0].type" {
		t.Fatalf("Get(carol) = %v, %v; want the *FieldError of destinations[0].type", d, err)
	}
	if e, err := s.Entry(ctx, "", "carol"); err != nil || e.Err == nil || e.Document != nil || !strings.Contains(string(e.Raw), "retired-ci") {
		t.Fatalf("Entry(carol) = %+v, %v; want the raw document and its error", e, err)
	}

	for _, want := range []bool{true, false} {
		if existed, err := s.Delete(ctx, "", "alice"); err != nil || existed != want {
			t.Fatalf("Delete = %v, %v; want %v", existed, err, want)
		}
	}
	if d, err := s.Get(ctx, "", "alice"); d != nil || err != nil {
		t.Fatalf("Get after Delete = %v, %v", d, err)
	}
}

// halving leaves half of every other BatchGetItem's keys unprocessed, as
// DynamoDB does when throttled, and counts the keys of each call.
type halving struct {
	delivery.StoreAPI
	mu    sync.Mutex
	calls []int // keys asked per call
}

func (h *halving) BatchGetItem(ctx context.Context, in *dynamodb.BatchGetItemInput, optFns ...func(*dynamodb.Options)) (*dynamodb.BatchGetItemOutput, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for table, ka := range in.RequestItems {
		h.calls = append(h.calls, len(ka.Keys))
		if len(ka.Keys) > 100 {
			return nil, fmt.Errorf("%d keys in one BatchGetItem; DynamoDB allows 100", len(ka.Keys))
		}
		if len(ka.Keys) < 2 || len(h.calls)%2 == 0 {
			return h.StoreAPI.BatchGetItem(ctx, in, optFns...)
		}
		half := len(ka.Keys) / 2
		asked := ka
		asked.Keys = ka.Keys[:half]
		out, err := h.StoreAPI.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{RequestItems: map[string]types.KeysAndAttributes{table: asked}}, optFns...)
		if err != nil {
			return nil, err
		}
		left := ka
		left.Keys = ka.Keys[half:]
		out.UnprocessedKeys = map[string]types.KeysAndAttributes{table: left}
		return out, nil
	}
	return &dynamodb.BatchGetItemOutput{}, nil
}

// TestMotoStoreGetMany: the documents of 230 users in batches of at most
// 100 keys, unprocessed keys asked again: every stored document, none for
// users without one, an invalid one in the errors.
func TestMotoStoreGetMany(t *testing.T) {
	a := awstest.New(t)
	ctx := context.Background()
	a.Records(t, "rotations")
	s := &delivery.Store{API: a.DynamoDB, Table: "rotations"}
	var refs []delivery.Ref
	want := map[delivery.Ref]*delivery.Document{}
	for i := range 230 {
		r := delivery.Ref{User: fmt.Sprintf("user%03d", i)}
		if i%3 == 0 {
			r.Account = "111122223333"
		}
		refs = append(refs, r)
		if i%2 == 0 {
			doc := mustParse(t, fmt.Sprintf(`{"version":1,"destinations":[{"type":"ssm","idName":"/u%d/id","secretName":"/u%d/secret"}]}`, i, i))
			if err := s.Put(ctx, r.Account, r.User, doc, "test"); err != nil {
				t.Fatal(err)
			}
			want[r] = doc
		}
	}
	refs = append(refs, refs[0]) // asked twice: read once
	invalid := delivery.Ref{User: "stale"}
	if _, err := a.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("rotations"), Item: map[string]types.AttributeValue{
		"id": &types.AttributeValueMemberS{Value: delivery.DocumentID("", "stale")}, "kind": &types.AttributeValueMemberS{Value: "destinations"},
		"user": &types.AttributeValueMemberS{Value: "stale"}, "doc": &types.AttributeValueMemberS{Value: `{"version":2}`},
	}}); err != nil {
		t.Fatal(err)
	}
	refs = append(refs, invalid)

	h := &halving{StoreAPI: a.DynamoDB}
	docs, bad, err := (&delivery.Store{API: h, Table: "rotations"}).GetMany(ctx, refs)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != len(want) {
		t.Fatalf("GetMany: %d documents; want %d", len(docs), len(want))
	}
	for r, d := range want {
		if !reflect.DeepEqual(docs[r], d) {
			t.Fatalf("GetMany[%v] = %+v; want %+v", r, docs[r], d)
		}
	}
	if len(bad) != 1 || fieldOf(t, bad[invalid]).Field != "version" {
		t.Fatalf("GetMany errors = %v; want stale's version", bad)
	}
	if !reflect.DeepEqual(h.calls, []int{100, 50, 100, 50, 31, 16}) {
		t.Fatalf("BatchGetItem calls asked %v keys; want batches of 100, unprocessed keys asked again", h.calls)
	}
}
