package main

// Permissions lists, per function directory, exactly the IAM actions the
// function calls (see shared/rotation). The stack grants these and nothing
// else; a template test compares every role with this table.
var Permissions = map[string][]string{
	"find": {
		"iam:GenerateCredentialReport", "iam:GetCredentialReport", // account-level: resource "*"
		"iam:ListAccessKeys", "iam:ListUserTags", "iam:GetAccessKeyLastUsed", // users
		"iam:GetGroup",                       // the exempt group, when one is set
		"s3:PutObject",                       // plans/ and reports/
		"kms:Encrypt", "kms:GenerateDataKey", // the bucket's key
	},
	"create-and-store": {
		"iam:ListAccessKeys", "iam:CreateAccessKey", "iam:DeleteAccessKey",
		"iam:ListUserTags", "iam:TagUser", "iam:UntagUser",
		"secretsmanager:GetSecretValue", "secretsmanager:CreateSecret", "secretsmanager:PutSecretValue",
		"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey",
	},
	"notify": {
		"iam:ListUserTags", "iam:TagUser", "iam:UntagUser",
		"s3:PutObject", "s3:GetObject", // the notification lock under ledger/
		"ses:SendEmail",
		"sns:Publish",
		"kms:Decrypt", "kms:GenerateDataKey",
	},
	"deactivate": {
		"iam:ListAccessKeys", "iam:UpdateAccessKey", "iam:ListUserTags", "iam:TagUser",
	},
	"delete": {
		"iam:ListAccessKeys", "iam:DeleteAccessKey", "iam:ListUserTags", "iam:UntagUser",
		"iam:GetUser", "iam:DeleteLoginProfile", // console passwords, when retirePasswords is on
		"sns:Publish",
		"kms:Decrypt", "kms:GenerateDataKey",
	},
	"summarize": {
		"s3:GetObject", "s3:PutObject", "s3:ListBucket",
		"sns:Publish",
		"kms:Decrypt", "kms:GenerateDataKey",
	},
}
