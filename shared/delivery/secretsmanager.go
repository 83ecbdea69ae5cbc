package delivery

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/arn"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/keyrotor/keyrotor/shared/failures"
)

// SecretsAPI is the Secrets Manager calls the secretsmanager destination
// makes: GetSecretValue (the value it keeps the other keys of, and what
// Holds reads), DescribeSecret (a secret that has no value yet) and
// PutSecretValue.
type SecretsAPI interface {
	GetSecretValue(ctx context.Context, in *secretsmanager.GetSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	DescribeSecret(ctx context.Context, in *secretsmanager.DescribeSecretInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.DescribeSecretOutput, error)
	PutSecretValue(ctx context.Context, in *secretsmanager.PutSecretValueInput, optFns ...func(*secretsmanager.Options)) (*secretsmanager.PutSecretValueOutput, error)
}

var _ SecretsAPI = (*secretsmanager.Client)(nil)

func init() { Register("secretsmanager", checkSecrets, newSecrets) }

// secretName is a secret's name as Secrets Manager allows it (API
// Reference, CreateSecret, Name: ASCII letters, digits and /_+=.@-; 1 to
// 512 characters).
var secretName = regexp.MustCompile(`^[A-Za-z0-9/_+=.@-]{1,512}$`)

func checkSecrets(s Spec, field string) error {
	if err := s.Only(field, "secretId", "idName", "secretName", "account", "region"); err != nil {
		return err
	}
	if err := Required(field, "secretId", s.SecretID, "the name or ARN of the Secrets Manager secret to write (it must exist: keyrotor does not create it)"); err != nil {
		return err
	}
	f := join(field, "secretId")
	if strings.HasPrefix(s.SecretID, "arn:") {
		a, err := arn.Parse(s.SecretID)
		if err != nil || a.Service != "secretsmanager" || !strings.HasPrefix(a.Resource, "secret:") || a.Region == "" || a.AccountID == "" {
			return &FieldError{Field: f, Msg: fmt.Sprintf("%q is not a Secrets Manager secret ARN; want arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-abcdef, or the secret's name", s.SecretID)}
		}
		if s.Account != "" && s.Account != a.AccountID {
			return &FieldError{Field: join(field, "account"), Msg: fmt.Sprintf("%s, but secretId is a secret of account %s; make them agree, or leave account out", s.Account, a.AccountID)}
		}
		if s.Region != "" && s.Region != a.Region {
			return &FieldError{Field: join(field, "region"), Msg: fmt.Sprintf("%s, but secretId is a secret in %s; make them agree, or leave region out (the ARN's region is used)", s.Region, a.Region)}
		}
	} else if !secretName.MatchString(s.SecretID) {
		return &FieldError{Field: f, Msg: fmt.Sprintf("%q is not a secret name: a name holds 1 to 512 ASCII letters, digits and /_+=.@- (Secrets Manager's naming rules); or give the secret's ARN", s.SecretID)}
	}
	id, secret := s.Names()
	for _, n := range []struct{ json, value string }{{"idName", s.IDName}, {"secretName", s.SecretName}} {
		if n.value != "" && strings.TrimSpace(n.value) == "" {
			return &FieldError{Field: join(field, n.json), Msg: "blank; name the JSON key, or leave it out for the default"}
		}
	}
	if id == secret {
		return &FieldError{Field: join(field, "secretName"), Msg: fmt.Sprintf("the same JSON key as idName (%q); name two keys", id)}
	}
	return checkPlace(s, field)
}

// secretsDest writes a key to two keys of a secret's JSON value.
type secretsDest struct {
	api              SecretsAPI
	secretID         string
	idKey, secretKey string
	account, region  string
}

func newSecrets(ctx context.Context, s Spec, env Env) (Destination, error) {
	d := &secretsDest{secretID: s.SecretID, account: s.Account, region: s.Region}
	d.idKey, d.secretKey = s.Names()
	if d.region == "" {
		if a, err := arn.Parse(s.SecretID); err == nil {
			d.region = a.Region
		}
	}
	c, err := clients(ctx, env, d.Where(), d.account, d.region)
	if err != nil {
		return nil, err
	}
	if c.Secrets == nil {
		return nil, fmt.Errorf("%s: no Secrets Manager client", d.Where())
	}
	d.api = c.Secrets
	return d, nil
}

func (d *secretsDest) Where() string {
	return fmt.Sprintf("secretsmanager secret %s: %s, %s (%s)", d.secretID, d.idKey, d.secretKey, place(d.account, d.region))
}

// current is a secret's value as Write and Holds read it.
type current struct {
	fields  map[string]json.RawMessage // nil: no value yet
	version string                     // the AWSCURRENT version's id, "" when none
}

// read returns the secret's current JSON object. A secret that does not
// exist, holds a binary value or a string that is not a JSON object is
// refused: keyrotor neither creates secrets in other people's accounts nor
// overwrites values it does not understand.
func (d *secretsDest) read(ctx context.Context) (*current, error) {
	out, err := d.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(d.secretID)})
	if failures.APICode(err) == "ResourceNotFoundException" {
		// Either no secret, or a secret created without a value.
		if _, derr := d.api.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(d.secretID)}); derr != nil {
			if failures.APICode(derr) == "ResourceNotFoundException" {
				return nil, &Error{Where: d.Where(), Op: "get secret value", Status: statusRefused, Msg: "ResourceNotFoundException: the secret does not exist, and keyrotor does not create secrets " +
					"in other people's accounts: create it (its value may be {}), let keyrotor's role read and write it, and run again; nothing was written"}
			}
			return nil, awsError(d.Where(), "describe secret", derr)
		}
		return &current{}, nil
	}
	if err != nil {
		return nil, awsError(d.Where(), "get secret value", err)
	}
	c := &current{version: aws.ToString(out.VersionId)}
	if out.SecretString == nil {
		return nil, &Error{Where: d.Where(), Op: "get secret value", Status: statusRefused, Msg: "the secret holds a binary value; keyrotor writes a JSON object of two keys: " +
			"give it a JSON object (such as {}) or name another secret; nothing was written"}
	}
	raw := bytes.TrimSpace([]byte(*out.SecretString))
	if len(raw) == 0 {
		return c, nil
	}
	if raw[0] != '{' || json.Unmarshal(raw, &c.fields) != nil {
		return nil, &Error{Where: d.Where(), Op: "get secret value", Status: statusRefused, Msg: "the secret's value is not a JSON object; keyrotor keeps what else a secret holds and writes " +
			"two keys of a JSON object: make its value a JSON object (such as {}) or name another secret; nothing was written"}
	}
	return c, nil
}

// holds reports whether both keys hold k's values exactly.
func (c *current) holds(idKey, secretKey string, k Key) bool {
	str := func(name string) (string, bool) {
		var v string
		raw, ok := c.fields[name]
		if !ok || json.Unmarshal(raw, &v) != nil {
			return "", false
		}
		return v, true
	}
	id, ok1 := str(idKey)
	secret, ok2 := str(secretKey)
	return ok1 && ok2 && id == k.AccessKeyID && secret == k.SecretAccessKey
}

// Write sets the two keys of the secret's JSON object, keeping its other
// keys, as a new version (PutSecretValue: the secret's own KMS key). Its
// ClientRequestToken, the new version's id, is derived from the new key's
// id and the version it replaces, so a repeated call is ignored (Secrets
// Manager API Reference, PutSecretValue, ClientRequestToken). A secret
// that holds k already is left as it is.
func (d *secretsDest) Write(ctx context.Context, k Key) error {
	c, err := d.read(ctx)
	if err != nil {
		return err
	}
	if c.holds(d.idKey, d.secretKey, k) {
		return nil
	}
	if c.fields == nil {
		c.fields = map[string]json.RawMessage{}
	}
	c.fields[d.idKey], _ = json.Marshal(k.AccessKeyID)
	c.fields[d.secretKey], _ = json.Marshal(k.SecretAccessKey)
	value, err := json.Marshal(c.fields)
	if err != nil {
		return &Error{Where: d.Where(), Op: "encode secret value", Msg: "cannot encode the secret's JSON"}
	}
	_, err = d.api.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{
		SecretId: aws.String(d.secretID), SecretString: aws.String(string(value)),
		ClientRequestToken: aws.String(versionToken(k.AccessKeyID, c.version)),
	})
	if err != nil {
		return awsError(d.Where(), "put secret value", err)
	}
	return nil
}

// versionToken is the ClientRequestToken (the new version's id) of the
// version that writes key id over the version base: readable
// ("keyrotor-AKIA...-3f2a9c01b7de"), 32 to 64 characters as Secrets
// Manager requires.
func versionToken(id, base string) string {
	sum := sha256.Sum256([]byte(base))
	t := "keyrotor-" + id + "-" + hex.EncodeToString(sum[:6])
	if len(t) < 32 || len(t) > 64 || strings.ContainsFunc(id, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') }) {
		sum := sha256.Sum256([]byte(id + "\x00" + base))
		t = "keyrotor-" + hex.EncodeToString(sum[:20])
	}
	return t
}

// Holds reads the secret's current value: both keys must hold k's values
// exactly. A secret without a value, or without the keys, holds nothing.
func (d *secretsDest) Holds(ctx context.Context, k Key, _ time.Time) (bool, error) {
	out, err := d.api.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(d.secretID)})
	if failures.APICode(err) == "ResourceNotFoundException" {
		return false, nil
	}
	if err != nil {
		return false, awsError(d.Where(), "get secret value", err)
	}
	if out.SecretString == nil {
		return false, nil
	}
	c := &current{}
	if json.Unmarshal([]byte(*out.SecretString), &c.fields) != nil {
		return false, nil
	}
	return c.holds(d.idKey, d.secretKey, k), nil
}
