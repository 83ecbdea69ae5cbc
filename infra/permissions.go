package main

// Permissions lists, per function directory, exactly the IAM actions the
// function calls (see shared/rotation). The stack grants these and nothing
// else; a template test compares every role with this table, and the
// end-to-end runs check every call a function was seen to make against it.
var Permissions = map[string][]string{
	"find": {
		"iam:GenerateCredentialReport", "iam:GetCredentialReport", // account-level: resource "*"
		"iam:ListAccessKeys", "iam:ListUserTags", "iam:GetAccessKeyLastUsed", // users
		"iam:ListUsers",                     // users deleted or created since the credential report (the audit)
		"iam:GetGroup",                      // the exempt group, when one is set
		"iam:GetUser",                       // a console password's last use, when retirePasswords is on
		"dynamodb:Scan", "dynamodb:PutItem", // the rotation records; releases a failed execution's lease
		"dynamodb:BatchGetItem",              // the rotated users' destination documents (docs/delivery.md)
		"states:DescribeExecution",           // is a rotation's owner execution still running?
		"s3:PutObject",                       // plans/ and reports/
		"kms:Encrypt", "kms:GenerateDataKey", // the bucket's key
		"kms:Decrypt", // the table's key
		// The organization mode only (OrgOnly): the accounts in scope, each
		// account's alias (mails name the account), the member role.
		"organizations:ListAccounts", "organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent",
		"iam:ListAccountAliases",
		"sts:AssumeRole",
	},
	"create-and-store": {
		"iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey",
		"iam:GetUser", // the user's unique id, for the secret's tag and resource policy
		"secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
		"secretsmanager:DescribeSecret", "secretsmanager:RestoreSecret",
		"secretsmanager:GetResourcePolicy", "secretsmanager:PutResourcePolicy", // is the secret keyrotor's; keyrotor's policy on it
		// CreateSecret with Tags also needs TagResource (Secrets Manager API
		// Reference, CreateSecret, "Required permissions": "If you include
		// tags in the secret, you also need secretsmanager:TagResource").
		"secretsmanager:TagResource",
		"dynamodb:GetItem", "dynamodb:PutItem",
		"sns:Publish", // conditions for the admins
		"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
		"sts:AssumeRole", // the member role (organization mode only)
	},
	"notify": {
		"dynamodb:GetItem", "dynamodb:PutItem",
		"ses:SendEmail",
		"sns:Publish",
		"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
	},
	"check-adoption": {
		"iam:ListAccessKeys", "iam:GetAccessKeyLastUsed",
		"dynamodb:GetItem", "dynamodb:PutItem",
		"ses:SendEmail", // reminders
		"sns:Publish",   // switch-overs
		"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
		"sts:AssumeRole", // the member role (organization mode only)
	},
	"deactivate": {
		"iam:ListAccessKeys", "iam:UpdateAccessKey",
		"iam:GetAccessKeyLastUsed", // a retirement's key, used since its notice, is not switched off
		"dynamodb:GetItem", "dynamodb:PutItem",
		"sns:Publish", // holds
		"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
		"sts:AssumeRole", // the member role (organization mode only)
	},
	"delete": {
		"iam:ListAccessKeys", "iam:DeleteAccessKey",
		"iam:GetAccessKeyLastUsed",              // a key used since it was switched off was re-activated by a person: kept
		"iam:GetUser", "iam:DeleteLoginProfile", // console passwords, when retirePasswords is on
		"iam:GetLoginProfile", // ... a password a person set anew since its notice is kept
		"dynamodb:GetItem", "dynamodb:PutItem",
		"sns:Publish",
		"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
		"sts:AssumeRole", // the member role (organization mode only)
	},
	"deliver": {
		"dynamodb:GetItem", "dynamodb:PutItem", // the user's destinations document; the rotation record
		// The stored key (to deliver it), the destinations' API tokens
		// (under config.DeliveryCredentialPrefix) and, for secretsmanager
		// destinations, what their secret holds (its other keys are kept).
		"secretsmanager:GetSecretValue",
		"secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret", // secretsmanager destinations (deliverySecrets)
		"ssm:PutParameter", "ssm:GetParameter", // ssm destinations (deliveryParameters)
		"ssm:DescribeParameters", // is an existing parameter a SecureString, with which key: resource "*"
		"sns:Publish",            // conditions for the admins
		"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
		"sts:AssumeRole", // a member user's stored key, through the member role (organization mode only)
	},
	"summarize": {
		// s3:ListBucket: without it S3 answers AccessDenied, not NoSuchKey,
		// for a missing object (GetObject permissions, S3 API Reference),
		// and summarize reads a missing summary as empty.
		"s3:GetObject", "s3:PutObject", "s3:ListBucket",
		"sns:Publish",
		"kms:Decrypt", "kms:GenerateDataKey",
	},
}

// PasswordOnly are the actions of Permissions a function calls only for
// console passwords: granted only when retirePasswords is on.
var PasswordOnly = map[string][]string{
	"find":   {"iam:GetUser"},
	"delete": {"iam:GetUser", "iam:GetLoginProfile", "iam:DeleteLoginProfile"},
}

// OrgOnly are the actions of Permissions a function calls only in the
// organization mode (organizationScope set: docs/organizations.md): granted
// only then. sts:AssumeRole is every MemberFunction's (the member role);
// find lists the organization's accounts and reads each account's alias.
var OrgOnly = map[string][]string{
	"find": {"organizations:ListAccounts", "organizations:ListAccountsForParent", "organizations:ListOrganizationalUnitsForParent",
		"iam:ListAccountAliases", "sts:AssumeRole"},
	"create-and-store": {"sts:AssumeRole"},
	"deliver":          {"sts:AssumeRole"},
	"check-adoption":   {"sts:AssumeRole"},
	"deactivate":       {"sts:AssumeRole"},
	"delete":           {"sts:AssumeRole"},
}

// DeliveryOnly are deliver's actions granted only when the settings name
// what delivery may write: "parameters" (deliveryParameters) or "secrets"
// (deliverySecrets); their resources are exactly those names
// (deliveryResources).
var DeliveryOnly = map[string]string{
	"ssm:PutParameter": "parameters", "ssm:GetParameter": "parameters", "ssm:DescribeParameters": "parameters",
	"secretsmanager:PutSecretValue": "secrets", "secretsmanager:DescribeSecret": "secrets",
}

// granted reports whether fn's role gets action under the settings
// exemptGroup, retirePasswords and the organization mode (organization).
func granted(fn, action string, exemptGroup string, retirePasswords, organization bool) bool {
	if action == "iam:GetGroup" && exemptGroup == "" {
		return false
	}
	for _, a := range PasswordOnly[fn] {
		if a == action && !retirePasswords {
			return false
		}
	}
	for _, a := range OrgOnly[fn] {
		if a == action && !organization {
			return false
		}
	}
	return true
}

// anyResource are the actions of Permissions that support no resource-level
// permissions: their statements name the resource "*" (Service
// Authorization Reference, the Resource types column is empty:
// https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html
// for the IAM actions,
// https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsorganizations.html
// for the Organizations ones).
var anyResource = map[string]bool{
	"iam:GenerateCredentialReport": true, "iam:GetCredentialReport": true, "iam:ListAccountAliases": true,
	"organizations:ListAccounts": true, "organizations:ListAccountsForParent": true, "organizations:ListOrganizationalUnitsForParent": true,
}
