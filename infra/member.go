package main

// The member side of the organization mode (docs/organizations.md): in
// every member account, a role that only the hub's function roles may
// assume, allowed exactly the IAM, Secrets Manager and KMS actions of the
// per-account steps; the account's own key for the secrets stored there;
// and the read-own-secret policy. A StackSet in the hub deploys it to the
// organization. The hub's side (organizationScope set: fixed role names,
// sts:AssumeRole on the member role, the Organizations actions) is in
// stack.go and permissions.go.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscloudformation"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/aws-cdk-go/awscdk/v2/awskms"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
	"github.com/cdklabs/cdk-nag-go/cdknag/v2"

	"github.com/keyrotor/keyrotor/shared/config"
	"github.com/keyrotor/keyrotor/shared/settings"
)

// Context keys of the organization mode. They are read here, from the CDK
// context (-c key=value, or cdk.json's "context"), not by shared/settings:
// the functions never read them.
const (
	// KeyHubAccount: the 12-digit account of the hub (the KeyRotor stack).
	// Set, it adds the KeyRotorMember stack; unset, synthesis is the
	// single-account one.
	KeyHubAccount = settings.KeyHubAccount
	// KeyOrganizationalUnits: OU ids (ou-...) or the root id (r-...),
	// comma-separated or a JSON list; with hubAccount, the hub gets a
	// StackSet deploying KeyRotorMember to every account in them.
	KeyOrganizationalUnits = settings.KeyOrganizationalUnits
	// KeyDelegatedAdmin: true when the hub is a delegated administrator
	// account for StackSets (CallAs DELEGATED_ADMIN), false (the default)
	// in the management account (CallAs SELF).
	KeyDelegatedAdmin = settings.KeyDelegatedAdmin
)

// OrgKeys lists the context keys read here.
var OrgKeys = []string{KeyHubAccount, KeyOrganizationalUnits, KeyDelegatedAdmin}

const (
	// MemberStackName names the member stack and its StackSet.
	MemberStackName = "KeyRotorMember"
	// MemberRoleName is fixed, so the hub can build the role's ARN for any
	// account: arn:<partition>:iam::<account>:role/KeyRotorMember. The
	// functions read the same constant (shared/org).
	MemberRoleName = config.MemberRoleName
	// MemberKeyAlias names the member account's key, so the hub can pass it
	// to Secrets Manager (KmsKeyId) without looking it up.
	MemberKeyAlias = config.MemberKeyAlias
	// maxTemplateBody is CloudFormation's limit on a TemplateBody.
	maxTemplateBody = 51200
)

// MemberFunctions are the hub functions whose steps act in an account
// (IAM users and keys, and their secrets): the member role trusts their
// roles only. notify and summarize act in the hub alone.
// deliver reads a member user's stored key through the member role (the
// member role's own read of the stored secrets: it adds no action there)
// and writes the AWS destinations of a member account through it: exactly
// the parameters and secrets deliveryParameters and deliverySecrets name
// (memberDeliveryStatements; docs/delivery.md).
var MemberFunctions = []string{"find", "create-and-store", "check-adoption", "deactivate", "delete", "deliver"}

// HubRoleName is the name the hub's role of function fn must have in
// region for the member role to trust it. In the organization mode the hub
// names the roles of MemberFunctions so (newFunction, with the stack's
// region); in a single account CloudFormation names them. The region is in
// the name because IAM names are per account and a hub may be deployed in
// several regions.
func HubRoleName(fn, region string) string { return "KeyRotor-" + fn + "-" + region }

// perAccount reports whether an action of Permissions is called in the
// account whose users are rotated (the member), rather than in the hub:
// IAM, Secrets Manager and KMS, and SSM (delivery's parameters).
func perAccount(action string) bool {
	for _, p := range []string{"iam:", "secretsmanager:", "kms:", "ssm:"} {
		if strings.HasPrefix(action, p) {
			return true
		}
	}
	return false
}

// MemberActions is the member role's action list under cfg: the per-account
// actions of MemberFunctions in Permissions, each granted as the hub grants
// it in the organization mode (granted: the password actions only with
// retirePasswords, the group lookup only with exemptGroup; the member stack
// serves the organization mode only, so OrgOnly's per-account actions, such
// as iam:ListAccountAliases, always; delivery's actions, DeliveryOnly,
// only when their setting names something to write), sorted.
func MemberActions(cfg config.Config) []string {
	var out []string
	for _, fn := range MemberFunctions {
		for _, a := range Permissions[fn] {
			if fn == "deliver" && !deliveryGranted(cfg, a) {
				continue
			}
			if a == "kms:Encrypt" {
				// The hub's functions encrypt with the hub's key (the table);
				// in a member only Secrets Manager uses the member key, with
				// GenerateDataKey and Decrypt (Secrets Manager User Guide,
				// "Secret encryption and decryption in AWS Secrets Manager").
				continue
			}
			if perAccount(a) && granted(fn, a, cfg.ExemptGroup, cfg.RetirePasswords, true) && !slices.Contains(out, a) {
				out = append(out, a)
			}
		}
	}
	slices.Sort(out)
	return out
}

// deliveryGranted reports whether deliver's action a is granted under
// cfg: an action of DeliveryOnly only when its setting (deliveryParameters,
// deliverySecrets) names something.
func deliveryGranted(cfg config.Config, a string) bool {
	switch DeliveryOnly[a] {
	case "parameters":
		return len(cfg.DeliveryParameters) > 0
	case "secrets":
		return len(cfg.DeliverySecrets) > 0
	}
	return true
}

// Organization is the organization mode's context.
type Organization struct {
	HubAccount          string   // "" : single account
	OrganizationalUnits []string // the StackSet's targets; none: no StackSet
	DelegatedAdmin      bool
}

var (
	accountID = regexp.MustCompile(`^[0-9]{12}$`)
	// The pattern of DeploymentTargets.OrganizationalUnitIds.
	ouID = regexp.MustCompile(`^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32})$`)
)

// OrganizationFromContext reads and validates hubAccount,
// organizationalUnits and delegatedAdmin through get (as
// settings.FromContext reads its keys). A bad value is a *settings.Error
// naming the key and the fix.
func OrganizationFromContext(get func(key string) (any, bool)) (Organization, error) {
	var o Organization
	str := func(key string) (string, bool) { return settings.ContextString(get, key) }
	if v, _ := str(KeyHubAccount); v != "" {
		if !accountID.MatchString(v) {
			return Organization{}, &settings.Error{Key: KeyHubAccount, Value: v, Fix: "want the hub's 12-digit AWS account id " +
				"(the account of the KeyRotor stack), such as 123456789012, as a string (a JSON number loses leading zeros); " +
				"leave it unset for a single-account deployment"}
		}
		o.HubAccount = v
	}
	if v, ok := get(KeyOrganizationalUnits); ok && v != nil {
		var list []string
		bad := &settings.Error{Key: KeyOrganizationalUnits, Value: fmt.Sprint(v), Fix: "want organizational unit ids (ou-...) or the root id (r-...), " +
			"comma-separated or a JSON list, such as \"ou-ab12-cd34ef56,ou-ab12-gh78ij90\""}
		switch x := v.(type) {
		case string:
			x = strings.TrimSpace(x)
			if strings.HasPrefix(x, "[") {
				if err := json.Unmarshal([]byte(x), &list); err != nil {
					return Organization{}, bad
				}
			} else {
				list = strings.Split(x, ",")
			}
		case []any:
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return Organization{}, bad
				}
				list = append(list, s)
			}
		default:
			return Organization{}, bad
		}
		for _, id := range list {
			if id = strings.TrimSpace(id); id == "" || slices.Contains(o.OrganizationalUnits, id) {
				continue
			}
			if !ouID.MatchString(id) {
				bad.Value = id
				return Organization{}, bad
			}
			o.OrganizationalUnits = append(o.OrganizationalUnits, id)
		}
	}
	if v, ok := str(KeyDelegatedAdmin); ok && v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Organization{}, &settings.Error{Key: KeyDelegatedAdmin, Value: v, Fix: "want true (the hub is a delegated administrator " +
				"account for StackSets) or false (the management account)"}
		}
		o.DelegatedAdmin = b
	}
	if len(o.OrganizationalUnits) > 0 && o.HubAccount == "" {
		return Organization{}, &settings.Error{Key: KeyOrganizationalUnits, Value: strings.Join(o.OrganizationalUnits, ","),
			Fix: "the StackSet deploys the member stack, which needs hubAccount: set hubAccount to the hub's account id too, or remove organizationalUnits"}
	}
	if o.DelegatedAdmin && len(o.OrganizationalUnits) == 0 {
		return Organization{}, &settings.Error{Key: KeyDelegatedAdmin, Value: "true",
			Fix: "delegatedAdmin applies only to the StackSet: set organizationalUnits (and hubAccount) too, or remove delegatedAdmin"}
	}
	return o, nil
}

// KeyRotorMemberStackProps configures the member stack.
type KeyRotorMemberStackProps struct {
	awscdk.StackProps
	// Settings: the same context as the hub's; the member reads
	// secretPrefix, exemptGroup and retirePasswords.
	Settings   settings.Settings
	HubAccount string
}

// NewKeyRotorMemberStack defines the member side in one account. The stack
// is environment-agnostic (the same template serves every account, as the
// StackSet's body) and needs no bootstrapping: it has no assets, and the
// CLI deploys it with its own credentials.
func NewKeyRotorMemberStack(scope constructs.Construct, id string, props *KeyRotorMemberStackProps) awscdk.Stack {
	sp := props.StackProps
	if sp.Synthesizer == nil {
		sp.Synthesizer = awscdk.NewCliCredentialsStackSynthesizer(nil)
	}
	if sp.Description == nil {
		sp.Description = jsii.String("keyrotor member: the role through which a keyrotor hub rotates this account's IAM user access keys")
	}
	stack := awscdk.NewStack(scope, &id, &sp)
	cfg := props.Settings.Config
	partition, region, account := *stack.Partition(), *stack.Region(), *stack.Account()
	viaSecretsManager := "secretsmanager." + region + ".amazonaws.com"

	var hubRoles []string
	for _, fn := range MemberFunctions {
		hubRoles = append(hubRoles, "arn:"+partition+":iam::"+props.HubAccount+":role/"+HubRoleName(fn, region))
	}
	// The hub account is the principal; aws:PrincipalArn narrows it to the
	// hub's function roles by name (IAM User Guide, "AWS global condition
	// context keys": the ARN of the role, not of its session). A role of
	// that name exists only once in the hub account. aws:PrincipalOrgID
	// must be this account's own organization (aws:ResourceOrgID: the
	// organization of the account that owns the role), so the trust ends
	// when either account leaves the organization: a key missing from the
	// request context matches no StringEquals (same page, aws:PrincipalOrgID
	// and aws:ResourceOrgID; the hub's side, memberRoleStatement, is the
	// mirror image).
	role := awsiam.NewRole(stack, jsii.String("Role"), &awsiam.RoleProps{
		RoleName:    jsii.String(MemberRoleName),
		Description: jsii.String("keyrotor member: the hub's find, create-and-store, check-adoption, deactivate and delete functions act in this account through this role"),
		AssumedBy: awsiam.NewPrincipalWithConditions(awsiam.NewAccountPrincipal(jsii.String(props.HubAccount)), &map[string]any{
			"ArnEquals":    map[string]any{"aws:PrincipalArn": jsii.Strings(hubRoles...)},
			"StringEquals": map[string]any{"aws:PrincipalOrgID": "${aws:ResourceOrgID}"},
		}),
	})

	key := awskms.NewKey(stack, jsii.String("Key"), &awskms.KeyProps{
		Description:       jsii.String("keyrotor member: encrypts the rotated access keys stored in this account's Secrets Manager"),
		Alias:             jsii.String(MemberKeyAlias),
		EnableKeyRotation: jsii.Bool(true),
		RemovalPolicy:     awscdk.RemovalPolicy_RETAIN,
		// The account administers the key, without CDK's default root
		// kms:* (keyPolicy, stack.go).
		Policy: keyPolicy(stack),
	})
	// Its use: the member role, and the account's users, only through
	// Secrets Manager.
	var kmsActions []string
	for _, a := range MemberActions(cfg) {
		if strings.HasPrefix(a, "kms:") {
			kmsActions = append(kmsActions, a)
		}
	}
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("MemberRoleThroughSecretsManager"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(role.RoleArn())},
		Actions:    jsii.Strings(kmsActions...),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{"StringEquals": map[string]any{"kms:ViaService": viaSecretsManager}},
	}), nil)
	// The read-own-secret policy below grants each user kms:Decrypt through
	// Secrets Manager, for its own secret only (the secret's tag).
	key.AddToResourcePolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("UsersDecryptOwnSecretThroughSecretsManager"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewAccountRootPrincipal()},
		Actions:    jsii.Strings("kms:Decrypt"),
		Resources:  jsii.Strings("*"),
		Conditions: &map[string]any{"StringEquals": map[string]any{"kms:ViaService": viaSecretsManager, "kms:CallerAccount": account}},
	}), nil)

	for _, st := range memberStatements(stack, key, cfg) {
		role.AddToPolicy(st)
	}
	// The member's own protection, whatever the hub asks: keys and
	// passwords of users tagged exempt, or under the paths this account
	// excludes, are never written through this role.
	role.AddToPolicy(exemptDeny(partition, cfg.ExemptTag))
	excludedPathsDeny(stack, role, cfg.ExcludedUserPaths)
	cdknag.NagSuppressions_AddResourceSuppressions(role, &[]*cdknag.NagPackSuppression{{
		Id: jsii.String("AwsSolutions-IAM5"),
		Reason: jsii.String("Wildcards only where IAM allows nothing narrower: any IAM user of the account may own a key (user/*), " +
			"secrets are named by user under the configured prefix; the credential-report and account-alias actions support no resource."),
	}}, jsii.Bool(true))

	readOwnSecretPolicy(stack, cfg.SecretPrefix, key)

	awscdk.NewCfnOutput(stack, jsii.String("MemberRoleArn"), &awscdk.CfnOutputProps{
		Value:       role.RoleArn(),
		Description: jsii.String("The role the hub's functions assume in this account"),
	})
	awscdk.NewCfnOutput(stack, jsii.String("MemberKeyArn"), &awscdk.CfnOutputProps{
		Value:       key.KeyArn(),
		Description: jsii.String("The key of the secrets keyrotor stores in this account (" + MemberKeyAlias + ")"),
	})
	awscdk.Aspects_Of(stack).Add(cdknag.NewAwsSolutionsChecks(&cdknag.NagPackProps{Verbose: jsii.Bool(true)}), nil)
	return stack
}

// ExcludedUserPathsParameter names the member stack's parameter: IAM
// paths (such as /breakglass/) whose users keyrotor's member role may not
// create, change or delete keys or passwords of. Each account sets its own
// (cdk deploy KeyRotorMember --parameters ExcludedUserPaths=/breakglass/,
// or a StackSet parameter override); the default excludes none.
const ExcludedUserPathsParameter = "ExcludedUserPaths"

// CredentialWriteActions are the IAM actions that create, change or delete
// a user's credentials: the member role and the hub's function roles are
// denied them on protected users (exemptDeny, excludedPathsDeny), whether
// or not a role is granted them today.
var CredentialWriteActions = []string{
	"iam:CreateAccessKey", "iam:UpdateAccessKey", "iam:DeleteAccessKey",
	"iam:CreateLoginProfile", "iam:UpdateLoginProfile", "iam:DeleteLoginProfile",
}

// exemptDeny denies CredentialWriteActions on every user tagged
// exemptTag=true (any case, as find reads it). IAM users support
// aws:ResourceTag/<key> on these actions (IAM User Guide, "Controlling
// access to and for IAM users and roles using tags":
// https://docs.aws.amazon.com/IAM/latest/UserGuide/access_iam-tags.html;
// Service Authorization Reference, IAM, resource type user:
// https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsidentityandaccessmanagementiam.html).
// An explicit Deny wins over every Allow (IAM User Guide, "Policy
// evaluation logic"), so a compromised hub, which cannot untag users
// (no role has iam:UntagUser), cannot reach them either.
func exemptDeny(partition, exemptTag string) awsiam.PolicyStatement {
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("DenyExemptUsers"),
		Effect:     awsiam.Effect_DENY,
		Actions:    jsii.Strings(CredentialWriteActions...),
		Resources:  jsii.Strings("arn:" + partition + ":iam::*:user/*"),
		Conditions: &map[string]any{"StringEqualsIgnoreCase": map[string]any{"aws:ResourceTag/" + exemptTag: config.ExemptTagValue}},
	})
}

// pathsDeny denies CredentialWriteActions on the users under paths (the
// hub's own account: excludedUserPaths).
func pathsDeny(partition string, paths []string) awsiam.PolicyStatement {
	var resources []string
	for _, p := range paths {
		resources = append(resources, "arn:"+partition+":iam::*:user"+p+"*")
	}
	return awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("DenyExcludedUserPaths"),
		Effect:    awsiam.Effect_DENY,
		Actions:   jsii.Strings(CredentialWriteActions...),
		Resources: jsii.Strings(resources...),
	})
}

// excludedPathsDeny adds the ExcludedUserPaths parameter (its default:
// the deployment's excludedUserPaths) and, when it is
// set, a policy of the role denying CredentialWriteActions on the users
// under those paths: arn:*:iam::*:user<path>* for each (a user's ARN holds
// its path: IAM User Guide, "IAM identifiers").
func excludedPathsDeny(stack awscdk.Stack, role awsiam.Role, defaults []string) {
	paths := awscdk.NewCfnParameter(stack, jsii.String(ExcludedUserPathsParameter), &awscdk.CfnParameterProps{
		Type:    jsii.String("CommaDelimitedList"),
		Default: jsii.String(strings.Join(defaults, ",")),
		Description: jsii.String("IAM paths, such as /breakglass/, each starting and ending with /: keyrotor may not create, change or delete " +
			"the keys or passwords of users under them; empty: none (the default is the hub's excludedUserPaths setting)"),
	})
	set := awscdk.NewCfnCondition(stack, jsii.String("HasExcludedUserPaths"), &awscdk.CfnConditionProps{
		Expression: awscdk.Fn_ConditionNot(awscdk.Fn_ConditionEquals(awscdk.Fn_Join(jsii.String(""), paths.ValueAsList()), jsii.String(""))),
	})
	// IAM accepts wildcards in every field of a resource ARN; the
	// separator of Fn::Join must be a literal, so the partition and the
	// account are wildcards (the role acts in its own account only).
	prefix := "arn:*:iam::*:user"
	resources := awscdk.Fn_Split(jsii.String(","), awscdk.Fn_Join(jsii.String(""), &[]*string{
		jsii.String(prefix), awscdk.Fn_Join(jsii.String("*,"+prefix), paths.ValueAsList()), jsii.String("*"),
	}), nil)
	deny := awsiam.NewCfnPolicy(stack, jsii.String("ExcludedUserPathsDeny"), &awsiam.CfnPolicyProps{
		PolicyName: jsii.String("KeyRotorMemberExcludedUserPaths"),
		Roles:      &[]*string{role.RoleName()},
		PolicyDocument: map[string]any{
			"Version": "2012-10-17",
			"Statement": []any{map[string]any{
				"Sid": "DenyExcludedUserPaths", "Effect": "Deny", "Action": CredentialWriteActions, "Resource": resources,
			}},
		},
	})
	deny.CfnOptions().SetCondition(set)
}

// memberStatements grants MemberActions, each on the narrowest resource
// IAM supports in the member account (as grants.statements does in the
// hub); the key's actions only through Secrets Manager.
func memberStatements(stack awscdk.Stack, key awskms.IKey, cfg config.Config) []awsiam.PolicyStatement {
	partition, region, account := *stack.Partition(), *stack.Region(), *stack.Account()
	resource := func(action string) string {
		switch {
		case anyResource[action]:
			return "*"
		case action == "iam:GetGroup":
			return "arn:" + partition + ":iam::" + account + ":group/" + cfg.ExemptGroup
		case strings.HasPrefix(action, "iam:"):
			return "arn:" + partition + ":iam::" + account + ":user/*"
		case strings.HasPrefix(action, "secretsmanager:"):
			return "arn:" + partition + ":secretsmanager:" + region + ":" + account + ":secret:" + cfg.SecretPrefix + "*"
		}
		return *key.KeyArn() // kms:
	}
	var order []string
	byResource := map[string][]string{}
	for _, a := range MemberActions(cfg) {
		if strings.HasPrefix(a, "ssm:") {
			continue // delivery's only: memberDeliveryStatements
		}
		r := resource(a)
		if byResource[r] == nil {
			order = append(order, r)
		}
		byResource[r] = append(byResource[r], a)
	}
	var out []awsiam.PolicyStatement
	for _, r := range order {
		p := &awsiam.PolicyStatementProps{Actions: jsii.Strings(byResource[r]...), Resources: jsii.Strings(r)}
		if r == *key.KeyArn() {
			p.Conditions = &map[string]any{"StringEquals": map[string]any{"kms:ViaService": "secretsmanager." + region + ".amazonaws.com"}}
		}
		out = append(out, awsiam.NewPolicyStatement(p))
	}
	return append(out, memberDeliveryStatements(stack, cfg)...)
}

// memberDeliveryStatements let the deliver step write, through the member
// role, the AWS destinations of a member account: exactly the SSM
// parameters and secrets deliveryParameters and deliverySecrets name, in
// the member account, in any region (the ARN forms of deliveryTargets,
// which the hub's deliver role has in the hub), with the actions the hub's
// deliver role has on them: ssm:PutParameter and ssm:GetParameter (and
// ssm:DescribeParameters, which supports no resource), and
// secretsmanager:GetSecretValue, PutSecretValue and DescribeSecret. None
// when neither setting names anything. No kms: action: a parameter or
// secret under its service's AWS managed key (aws/ssm, aws/secretsmanager)
// needs none, since that key's policy lets every principal of the account
// use it through the service; one under a customer managed key needs that
// key's policy to allow the member role (docs/delivery.md, "Limits").
func memberDeliveryStatements(stack awscdk.Stack, cfg config.Config) []awsiam.PolicyStatement {
	partition, region, account := *stack.Partition(), *stack.Region(), *stack.Account()
	params, secrets := deliveryTargets(cfg, func(service, resource string) string {
		return "arn:" + partition + ":" + service + ":" + region + ":" + account + ":" + resource
	})
	var out []awsiam.PolicyStatement
	if len(params) > 0 {
		out = append(out,
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Sid: jsii.String("DeliveryParameters"),
				Actions: jsii.Strings("ssm:PutParameter", "ssm:GetParameter"), Resources: jsii.Strings(params...)}),
			awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Sid: jsii.String("DeliveryParameterTypes"),
				Actions: jsii.Strings("ssm:DescribeParameters"), Resources: jsii.Strings("*")}))
	}
	if len(secrets) > 0 {
		out = append(out, awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{Sid: jsii.String("DeliverySecrets"),
			Actions:   jsii.Strings("secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue", "secretsmanager:DescribeSecret"),
			Resources: jsii.Strings(secrets...)}))
	}
	return out
}

// MemberTemplateBody synthesizes the member stack alone, in an app of its
// own (no analytics metadata), and returns its template as compact JSON:
// the StackSet's TemplateBody.
func MemberTemplateBody(props *KeyRotorMemberStackProps) (string, error) {
	dir, err := os.MkdirTemp("", "keyrotor-member-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	app := awscdk.NewApp(&awscdk.AppProps{Outdir: jsii.String(dir), AnalyticsReporting: jsii.Bool(false)})
	NewKeyRotorMemberStack(app, MemberStackName, props)
	tmpl := app.Synth(nil).GetStackByName(jsii.String(MemberStackName)).Template()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(tmpl); err != nil {
		return "", err
	}
	return strings.TrimSpace(b.String()), nil
}

// AddMemberStackSet adds to the hub a service-managed StackSet that deploys
// template (the member stack's) to every account of org's OUs, in the hub's
// region, except the hub account itself (which the hub rotates directly and
// which already has its own key and read-own-secret policy) and the
// accounts of exclude (organizationExclude: keyrotor never acts there, so
// they get no role it could assume). Accounts that
// join the OUs later get the stack; accounts that leave lose it.
func AddMemberStackSet(hub awscdk.Stack, template string, org Organization, exclude []string) (awscloudformation.CfnStackSet, error) {
	if len(template) > maxTemplateBody {
		return nil, fmt.Errorf("the member stack's template is %d bytes, over CloudFormation's %d for a StackSet's TemplateBody", len(template), maxTemplateBody)
	}
	// With credentials, the CLI resolves the hub's account (env in main.go).
	if a := *hub.Account(); a != "" && !*awscdk.Token_IsUnresolved(hub.Account()) && a != org.HubAccount {
		return nil, &settings.Error{Key: KeyHubAccount, Value: org.HubAccount, Fix: "the StackSet is in the hub stack, which deploys to account " +
			*hub.Account() + ": set hubAccount to that account, or deploy with the hub account's credentials"}
	}
	callAs := "SELF"
	if org.DelegatedAdmin {
		callAs = "DELEGATED_ADMIN"
	}
	return awscloudformation.NewCfnStackSet(hub, jsii.String("MemberStackSet"), &awscloudformation.CfnStackSetProps{
		StackSetName:    jsii.String(MemberStackName),
		Description:     jsii.String("keyrotor member: the role, key and read-own-secret policy in every account of the organizational units"),
		PermissionModel: jsii.String("SERVICE_MANAGED"),
		CallAs:          jsii.String(callAs),
		AutoDeployment: &awscloudformation.CfnStackSet_AutoDeploymentProperty{
			Enabled: jsii.Bool(true), RetainStacksOnAccountRemoval: jsii.Bool(false),
		},
		Capabilities: jsii.Strings("CAPABILITY_NAMED_IAM"), // the fixed role and policy names
		TemplateBody: jsii.String(template),
		StackInstancesGroup: &[]any{&awscloudformation.CfnStackSet_StackInstancesProperty{
			DeploymentTargets: &awscloudformation.CfnStackSet_DeploymentTargetsProperty{
				OrganizationalUnitIds: jsii.Strings(org.OrganizationalUnits...),
				AccountFilterType:     jsii.String("DIFFERENCE"),
				Accounts:              jsii.Strings(notDeployedTo(org.HubAccount, exclude)...),
			},
			Regions: jsii.Strings(*hub.Region()),
		}},
	}), nil
}

// addOrganization adds, from the context (the app's, else cdk.json's as
// main reads it), the member stack when hubAccount is set and the StackSet
// when organizationalUnits is set too. Without hubAccount it adds nothing.
func addOrganization(app awscdk.App, hub awscdk.Stack, s settings.Settings, fileCtx map[string]any) error {
	org, err := OrganizationFromContext(func(k string) (any, bool) {
		if v := app.Node().TryGetContext(jsii.String(k)); v != nil {
			return v, true
		}
		v, ok := fileCtx[k]
		return v, ok
	})
	if err != nil || org.HubAccount == "" {
		return err
	}
	props := &KeyRotorMemberStackProps{Settings: s, HubAccount: org.HubAccount}
	NewKeyRotorMemberStack(app, MemberStackName, props)
	if len(org.OrganizationalUnits) == 0 {
		return nil
	}
	body, err := MemberTemplateBody(props)
	if err != nil {
		return err
	}
	_, err = AddMemberStackSet(hub, body, org, s.Config.OrgExclude)
	return err
}

// notDeployedTo lists the accounts of the StackSet's OUs that get no
// member stack: the hub (rotated directly) and the excluded accounts
// (organizationExclude), which keyrotor must never act in. DeploymentTargets'
// AccountFilterType DIFFERENCE deploys to the OUs minus these accounts
// (CloudFormation User Guide, "AWS::CloudFormation::StackSet
// DeploymentTargets":
// https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-cloudformation-stackset-deploymenttargets.html).
func notDeployedTo(hub string, exclude []string) []string {
	out := []string{hub}
	for _, a := range exclude {
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	return out
}
