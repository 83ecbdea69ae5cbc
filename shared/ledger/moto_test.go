package ledger_test

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/delivery"
	"github.com/keyrotor/keyrotor/shared/ledger"
)

func TestMain(m *testing.M) { awstest.Main(m) }

// TestMotoAllSkipsDestinations: the record table also holds users'
// destination documents (shared/delivery); All reads the rotation records
// only, and neither breaks on nor returns a document's item. An item of
// kind "record" is a record.
func TestMotoAllSkipsDestinations(t *testing.T) {
	a := awstest.New(t)
	ctx := context.Background()
	store := a.Records(t, "rotations")
	rec := &ledger.Record{ID: "AKIAREC0000000000001", User: "alice", Action: "rotate", Rotation: 1, State: ledger.Started, History: []ledger.Entry{}}
	if err := store.Put(ctx, rec); err != nil {
		t.Fatal(err)
	}
	doc, err := delivery.ParseDocument([]byte(`{"version":1,"destinations":[{"type":"ssm","idName":"/app/id","secretName":"/app/secret"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := (&delivery.Store{API: a.DynamoDB, Table: "rotations"}).Put(ctx, "", "alice", doc, "test"); err != nil {
		t.Fatal(err)
	}
	// A record written with kind "record" (as a later version may).
	if _, err := a.DynamoDB.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String("rotations"), Item: map[string]types.AttributeValue{
		ledger.AttrID:   &types.AttributeValueMemberS{Value: "AKIAREC0000000000002"},
		ledger.AttrKind: &types.AttributeValueMemberS{Value: ledger.KindRecord},
		"v":             &types.AttributeValueMemberN{Value: "1"},
		"doc":           &types.AttributeValueMemberS{Value: `{"id":"AKIAREC0000000000002","user":"bob","action":"rotate","rotation":1,"state":"started","history":[]}`},
	}}); err != nil {
		t.Fatal(err)
	}
	all, err := store.All(ctx)
	if err != nil {
		t.Fatalf("All with a destinations item in the table = %v", err)
	}
	if len(all) != 2 || all["AKIAREC0000000000001"] == nil || all["AKIAREC0000000000002"] == nil {
		t.Fatalf("All = %v; want the two records only", all)
	}
	if _, ok := all[delivery.DocumentID("", "alice")]; ok {
		t.Fatal("All returned the destinations item")
	}
}
