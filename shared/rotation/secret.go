package rotation

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"

	"github.com/keyrotor/keyrotor/shared/config"
)

// A stored key is protected by the secret's resource policy, which keyrotor
// puts on every secret it creates before the first value and re-asserts on
// every store: an explicit Deny, which no identity-based Allow of the
// account overrides (IAM User Guide, "Policy evaluation logic": "an
// explicit deny in any of these policies overrides the allow",
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html;
// Secrets Manager User Guide, "Resource-based policies",
// https://docs.aws.amazon.com/secretsmanager/latest/userguide/auth-and-access_resource-policies.html).
//
// aws:PrincipalArn is the ARN of the role (not of its session) or of the
// user making the request, and aws:userid of an IAM user is its unique id
// (AIDA...), never reused (IAM User Guide, "AWS global condition context
// keys",
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn).
// A negated condition operator on a key the request lacks (a service
// principal has no aws:PrincipalArn) matches, so the Deny applies to it too.

// Sids of keyrotor's resource policy statements.
const (
	SidDenyRead   = "KeyRotorOnlyOwnerKeyRotorAndBreakGlassRead"
	SidDenyManage = "KeyRotorOnlyKeyRotorAndBreakGlassManage"
)

// ReadActions are the actions that reveal a stored key: only its owner,
// keyrotor and the break-glass principals may call them.
var ReadActions = []string{"secretsmanager:GetSecretValue"}

// ManageActions are the actions that change a stored key's value, its
// protection (resource policy, tags the read-own-secret policy reads,
// encryption key), its rotation or where it is replicated: only keyrotor and
// the break-glass principals may call them. Deleting and restoring stay
// open to the account's administrators (a deleted secret holds no key
// anyone can read, and keyrotor writes by ARN, so a secret re-created under
// the same name is another secret).
var ManageActions = []string{
	"secretsmanager:CancelRotateSecret",
	"secretsmanager:DeleteResourcePolicy",
	"secretsmanager:PutResourcePolicy",
	"secretsmanager:PutSecretValue",
	"secretsmanager:RemoveRegionsFromReplication",
	"secretsmanager:ReplicateSecretToRegions",
	"secretsmanager:RotateSecret",
	"secretsmanager:StopReplicationToReplica",
	"secretsmanager:TagResource",
	"secretsmanager:UntagResource",
	"secretsmanager:UpdateSecret",
	"secretsmanager:UpdateSecretVersionStage",
}

// Trusted returns the principals a stored key's resource policy lets in
// besides its owner: the role create-and-store acts as, then the
// break-glass principals.
func Trusted(cfg config.Config) []string {
	out := []string{}
	if cfg.StoreRoleARN != "" {
		out = append(out, cfg.StoreRoleARN)
	}

	for _, p := range cfg.BreakGlass {
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// SecretPolicy is the resource policy of the secret holding the key of the
// IAM user whose unique id is ownerID.
func SecretPolicy(cfg config.Config, ownerID string) string {
	trusted := Trusted(cfg)
	readers := slices.Clone(trusted)
	if cfg.DeliverRoleARN != "" && !slices.Contains(readers, cfg.DeliverRoleARN) {
		// The deliver step reads the key to put it where it is used; it
		// may change nothing.
		readers = append(readers, cfg.DeliverRoleARN)
	}
	doc := map[string]any{
		"Version": "2012-10-17",
		"Statement": []any{
			map[string]any{
				"Sid": SidDenyRead, "Effect": "Deny", "Principal": "*", "Action": ReadActions, "Resource": "*",
				"Condition": map[string]any{
					"ArnNotEquals":    map[string]any{"aws:PrincipalArn": readers},
					"StringNotEquals": map[string]any{"aws:userid": ownerID},
				},
			},
			map[string]any{
				"Sid": SidDenyManage, "Effect": "Deny", "Principal": "*", "Action": ManageActions, "Resource": "*",
				"Condition": map[string]any{"ArnNotEquals": map[string]any{"aws:PrincipalArn": trusted}},
			},
		},
	}
	b, _ := json.Marshal(doc)
	return string(b)
}

// policyIsKeyRotors reports whether got (a secret's resource policy) is
// keyrotor's policy for ownerID: want's statements, compared as IAM reads
// them (a single string or a list, in any order), except for the list of
// trusted principals, which changes with the break-glass setting and the
// stack's roles. keyrotor replaces the policy with its own before it
// writes a value, so an older list never outlives the next store.
func policyIsKeyRotors(got, want string) bool {
	g, w := normalPolicy(got), normalPolicy(want)
	return g != nil && w != nil && reflect.DeepEqual(g, w)
}

// normalPolicy returns doc with every string-or-list value as a sorted
// list and the trusted principals (aws:PrincipalArn's values) left out,
// or nil when doc is not a JSON object.
func normalPolicy(doc string) any {
	var v any
	if json.Unmarshal([]byte(doc), &v) != nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	return normal(m, "")
}

func normal(v any, key string) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			if strings.EqualFold(k, "aws:PrincipalArn") {
				out[strings.ToLower(k)] = "<trusted>"
				continue
			}
			if s, ok := e.(string); ok && k == "Principal" && s == "*" {
				e = map[string]any{"AWS": "*"} // the same principal, as IAM may echo it
			}
			out[k] = normal(e, k)
		}
		return out
	case []any:
		var strs []string
		var rest []any
		for _, e := range x {
			if s, ok := e.(string); ok {
				strs = append(strs, s)
			} else {
				rest = append(rest, normal(e, key))
			}
		}
		if len(rest) > 0 {
			if key == "Statement" {
				sort.Slice(rest, func(i, j int) bool { return fmt.Sprint(rest[i]) < fmt.Sprint(rest[j]) })
			}
			return rest
		}
		sort.Strings(strs)
		return strs
	case string:
		if key == "Version" || key == "Sid" || key == "Effect" {
			return x
		}
		return []string{x}
	}
	return v
}

// ownership is what inspect found: the secret's ARN, whether it is
// scheduled for deletion, and why it is not keyrotor's (none: it is).
type ownership struct {
	arn     string
	deleted bool
	why     []string
}

// notOwnedError: the secret named for a user's key is not one keyrotor can
// prove is its own. Handled inside create-and-store (the rotation waits
// with attention), never returned to the state machine.
type notOwnedError struct{ ownership }

func (e *notOwnedError) Error() string {
	return fmt.Sprintf("secret %s is not keyrotor's: %s", e.arn, strings.Join(e.why, "; "))
}

func isNotFound(err error) bool {
	var nf *smtypes.ResourceNotFoundException
	return errors.As(err, &nf)
}

// inspect reads what makes the secret id (a name or an ARN) keyrotor's:
// its KMS key, its tags, no replicas and no rotation of its own (from
// DescribeSecret), and, unless the secret is scheduled for deletion, its
// resource policy. exists is false when there is no such secret.
func (c *Creator) inspect(ctx context.Context, id, ownerID string) (o ownership, exists bool, err error) {
	d, err := c.Secrets.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(id)})
	if isNotFound(err) {
		return o, false, nil
	}
	if err != nil {
		return o, false, fmt.Errorf("describe secret %s: %w", id, err)
	}
	o.arn, o.deleted = aws.ToString(d.ARN), d.DeletedDate != nil
	if !sameKey(aws.ToString(d.KmsKeyId), c.Config.KMSKeyID, o.arn) {
		have, want := aws.ToString(d.KmsKeyId), c.Config.KMSKeyID
		if have == "" {
			have = "aws/secretsmanager (the account's default key)"
		}
		if want == "" {
			want = "aws/secretsmanager (the account's default key)"
		}
		o.why = append(o.why, fmt.Sprintf("it is encrypted with KMS key %s, not keyrotor's %s", have, want))
	}
	want := map[string]string{TagUserID: ownerID, TagManaged: "true"}
	got := map[string]string{}
	for _, t := range d.Tags {
		got[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	if !reflect.DeepEqual(got, want) {
		var extra []string
		for k, v := range got {
			if want[k] != v {
				extra = append(extra, fmt.Sprintf("%s=%q", k, cut(v)))
			}
		}
		for k := range want {
			if _, ok := got[k]; !ok {
				extra = append(extra, k+" missing")
			}
		}
		sort.Strings(extra)
		o.why = append(o.why, fmt.Sprintf("its tags are not keyrotor's for this user (%s)", strings.Join(extra, ", ")))
	}
	if len(d.ReplicationStatus) > 0 {
		var regions []string
		for _, r := range d.ReplicationStatus {
			regions = append(regions, aws.ToString(r.Region))
		}
		o.why = append(o.why, "it is replicated to "+strings.Join(regions, ", "))
	}
	if p := aws.ToString(d.PrimaryRegion); p != "" && !strings.Contains(o.arn, ":"+p+":") {
		o.why = append(o.why, "it is a replica of a secret in "+p)
	}
	if aws.ToBool(d.RotationEnabled) || aws.ToString(d.RotationLambdaARN) != "" {
		o.why = append(o.why, "it has a rotation of its own ("+aws.ToString(d.RotationLambdaARN)+")")
	}
	if o.deleted {
		return o, true, nil
	}
	p, err := c.Secrets.GetResourcePolicy(ctx, &secretsmanager.GetResourcePolicyInput{SecretId: aws.String(id)})
	if err != nil {
		return o, true, fmt.Errorf("read the resource policy of secret %s: %w", id, err)
	}
	// No policy: a secret keyrotor created before it put one, or one
	// whose first store was interrupted. Safe to take: keyrotor's policy
	// goes on before any value (store).
	if doc := aws.ToString(p.ResourcePolicy); doc != "" && !policyIsKeyRotors(doc, SecretPolicy(c.Config, ownerID)) {
		o.why = append(o.why, "its resource policy is not keyrotor's: "+cut(compact(doc)))
	}
	return o, true, nil
}

// sameKey reports whether a secret's KmsKeyId (DescribeSecret answers the
// key id or the alias ARN it was created with; "" for the default key) is
// keyrotor's key: want, a key ARN or an alias name (config.MemberKeyAlias),
// in the secret's account (arn).
func sameKey(have, want, arn string) bool {
	switch {
	case have == want:
		return true
	case have == "" || want == "":
		return false
	case strings.Contains(want, ":key/"):
		// A key ARN: its id alone names the same key.
		return have == want[strings.LastIndex(want, "/")+1:]
	case strings.HasPrefix(want, "alias/"):
		// The alias ARN in the secret's own account.
		parts := strings.Split(arn, ":")
		return len(parts) > 5 && have == strings.Join([]string{"arn", parts[1], "kms", parts[3], parts[4], want}, ":")
	}
	return false
}

// cut shortens what a person (or an attacker) wrote before it goes into a
// message for the admins.
func cut(s string) string {
	const max = 300
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}

func compact(doc string) string {
	var v any
	if json.Unmarshal([]byte(doc), &v) != nil {
		return doc
	}
	b, _ := json.Marshal(v)
	return string(b)
}
