package main

import (
	"slices"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssns"
	"github.com/aws/aws-cdk-go/awscdk/v2/awssnssubscriptions"
	"github.com/aws/jsii-runtime-go"
)

// adminTopic creates the admins' topic, encrypted with a key of its own,
// that the functions and the stack's CloudWatch alarms publish to.
//
// The topic has its own key whatever kmsKeyArn says: CloudWatch must be
// allowed kms:Decrypt and kms:GenerateDataKey* on the key of an encrypted
// topic it publishes to, and the policy of a key imported by ARN cannot be
// edited here; a dedicated key also keeps CloudWatch out of the policy of
// the key that protects the secrets. See "Enable compatibility between
// event sources from AWS services and encrypted topics":
// https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services
//
// EnforceSSL adds a topic policy, and any topic policy replaces SNS's
// default one, which is what let the account's CloudWatch alarms publish.
// So the policy allows cloudwatch.amazonaws.com sns:Publish explicitly, for
// alarms of this account and region only (aws:SourceAccount, aws:SourceArn):
// https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html
func adminTopic(stack awscdk.Stack, adminEmails []string) (awskms.Key, awssns.Topic) {
	key := awskms.NewKey(stack, jsii.String("AdminTopicKey"), &awskms.KeyProps{
		Description:       jsii.String("keyrotor: encrypts the admins' topic (keyrotor's messages and its CloudWatch alarms)"),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
	})
	cloudwatch := awsiam.NewServicePrincipal(jsii.String("cloudwatch.amazonaws.com"), nil)
	// The key encrypts this topic only, and CloudWatch may publish to the
	// topic only from this account's alarms (below), so the key statement
	// needs no conditions of its own (as in the SNS guide's example).
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublishToTheEncryptedTopic"),
		Principals: &[]awsiam.IPrincipal{cloudwatch},
		Actions:    jsii.Strings("kms:Decrypt", "kms:GenerateDataKey*"),
		Resources:  jsii.Strings("*"),
	}), nil)

	topic := awssns.NewTopic(stack, jsii.String("AdminTopic"), &awssns.TopicProps{
		DisplayName: jsii.String("keyrotor admins"),
		MasterKey:   key,
		EnforceSSL:  jsii.Bool(true),
	})
	for _, addr := range adminEmails {
		topic.AddSubscription(awssnssubscriptions.NewEmailSubscription(jsii.String(addr), nil))
	}
	alarms := "arn:" + *stack.Partition() + ":cloudwatch:" + *stack.Region() + ":" + *stack.Account() + ":alarm:*"
	topic.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("CloudWatchAlarmsPublish"),
		Principals: &[]awsiam.IPrincipal{cloudwatch},
		Actions:    jsii.Strings("sns:Publish"),
		Resources:  jsii.Strings(*topic.TopicArn()),
		Conditions: &map[string]any{
			"StringEquals": map[string]any{"aws:SourceAccount": *stack.Account()},
			"ArnLike":      map[string]any{"aws:SourceArn": alarms},
		},
	}))
	return key, topic
}

// keys returns the KMS keys fn encrypts or decrypts with: the stack's key
// (secrets, the bucket) and, if fn publishes to the admins' topic, its key.
func (g grants) keys(fn string) []string {
	out := []string{*g.key.KeyArn()}
	if slices.Contains(Permissions[fn], "sns:Publish") {
		out = append(out, *g.topicKey.KeyArn())
	}
	return out
}
