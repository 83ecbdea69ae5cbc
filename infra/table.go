package main

import (
	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsdynamodb"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/jsii-runtime-go"

	"github.com/keyrotor/keyrotor/shared/ledger"
)

// rotationTable holds one record per rotation (shared/ledger): conditional
// writes and strongly consistent reads make it the one authority on which
// rotation is in flight; TTL removes finished records; point-in-time
// recovery keeps the audit trail safe from a bad write; the stack's key
// encrypts it.
func rotationTable(stack awscdk.Stack, key awskms.IKey) awsdynamodb.Table {
	return awsdynamodb.NewTable(stack, jsii.String("RotationTable"), &awsdynamodb.TableProps{
		PartitionKey:        &awsdynamodb.Attribute{Name: jsii.String(ledger.AttrID), Type: awsdynamodb.AttributeType_STRING},
		BillingMode:         awsdynamodb.BillingMode_PAY_PER_REQUEST,
		TimeToLiveAttribute: jsii.String(ledger.AttrExpiresAt),
		PointInTimeRecoverySpecification: &awsdynamodb.PointInTimeRecoverySpecification{
			PointInTimeRecoveryEnabled: jsii.Bool(true),
		},
		Encryption:    awsdynamodb.TableEncryption_CUSTOMER_MANAGED,
		EncryptionKey: key,
		RemovalPolicy: awscdk.RemovalPolicy_RETAIN,
	})
}
