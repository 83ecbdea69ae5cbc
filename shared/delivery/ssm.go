package delivery

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/keyrotor/keyrotor/shared/failures"
)

// SSMAPI is the SSM calls the ssm destination makes: DescribeParameters
// (an existing parameter's type and KMS key), PutParameter and
// GetParameter.
type SSMAPI interface {
	ssm.DescribeParametersAPIClient
	PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error)
	GetParameter(ctx context.Context, in *ssm.GetParameterInput, optFns ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
}

var _ SSMAPI = (*ssm.Client)(nil)

func init() { Register("ssm", checkSSM, newSSM) }

// SSM's naming rules for a parameter (SSM API Reference, PutParameter,
// Name: "Naming Constraints"): letters, digits and _ . - with / between
// the levels of a hierarchy, which starts with /; no "aws" or "ssm"
// prefix (case-insensitive); at most fifteen levels; at most 1011
// characters counting the ARN before the name.
var parameterName = regexp.MustCompile(`^[a-zA-Z0-9_.\-/]+$`)

const (
	maxParameterLevels = 15
	// maxParameterName leaves room for the longest ARN prefix
	// (arn:aws-iso-b:ssm:us-isob-east-1:111122223333:parameter/, 56
	// characters) inside SSM's 1011.
	maxParameterName = 1011 - 56
)

func checkSSM(s Spec, field string) error {
	if err := s.Only(field, "idName", "secretName", "account", "region"); err != nil {
		return err
	}
	for _, n := range []struct{ json, value, what string }{
		{"idName", s.IDName, "the name of the SSM parameter for the access key id, such as /app/aws-access-key-id"},
		{"secretName", s.SecretName, "the name of the SSM parameter for the secret access key, such as /app/aws-secret-access-key"},
	} {
		if err := Required(field, n.json, n.value, n.what); err != nil {
			return err
		}
		if err := checkParameterName(join(field, n.json), n.value); err != nil {
			return err
		}
	}
	if s.IDName == s.SecretName {
		return &FieldError{Field: join(field, "secretName"), Msg: "the same parameter as idName; name two parameters"}
	}
	return checkPlace(s, field)
}

func checkParameterName(field, name string) error {
	bad := func(msg string) error {
		return &FieldError{Field: field, Msg: fmt.Sprintf("%q: %s (SSM's parameter naming rules)", name, msg)}
	}
	switch {
	case !parameterName.MatchString(name):
		return bad("a parameter name holds only letters, digits and _ . - with / between levels; no spaces")
	case len(name) > maxParameterName:
		return bad(fmt.Sprintf("%d characters; at most %d", len(name), maxParameterName))
	}
	lower := strings.ToLower(strings.TrimLeft(name, "/"))
	if strings.HasPrefix(lower, "aws") || strings.HasPrefix(lower, "ssm") {
		return bad(`SSM reserves names that begin with "aws" or "ssm"; choose another`)
	}
	if strings.Contains(name, "/") {
		if !strings.HasPrefix(name, "/") {
			return bad("a name with levels begins with /, such as /" + name)
		}
		levels := strings.Split(name[1:], "/")
		for _, l := range levels {
			if l == "" {
				return bad("every level needs a name: no // and no / at the end")
			}
		}
		if len(levels) > maxParameterLevels {
			return bad(fmt.Sprintf("%d levels; at most %d", len(levels), maxParameterLevels))
		}
	}
	return nil
}

// ssmDest writes a key to two SecureString parameters.
type ssmDest struct {
	api             SSMAPI
	idName, secret  string
	account, region string
}

func newSSM(ctx context.Context, s Spec, env Env) (Destination, error) {
	d := &ssmDest{idName: s.IDName, secret: s.SecretName, account: s.Account, region: s.Region}
	c, err := clients(ctx, env, d.Where(), s.Account, s.Region)
	if err != nil {
		return nil, err
	}
	if c.SSM == nil {
		return nil, fmt.Errorf("%s: no SSM client", d.Where())
	}
	d.api = c.SSM
	return d, nil
}

func (d *ssmDest) Where() string {
	return fmt.Sprintf("ssm parameters %s, %s (%s)", d.idName, d.secret, place(d.account, d.region))
}

// Write puts both values as SecureString parameters, overwriting. An
// existing parameter keeps its KMS key, tier and description: PutParameter
// without KeyId would encrypt it with the account's default key instead
// (SSM API Reference, PutParameter, KeyId). An existing parameter of
// another type (String, StringList) is refused before anything is
// written: its readers do not decrypt, and a secret does not belong in
// plain text.
func (d *ssmDest) Write(ctx context.Context, k Key) error {
	return d.write(ctx, k, []namedValue{{d.idName, k.AccessKeyID}, {d.secret, k.SecretAccessKey}})
}

// Resume writes the parameters that do not hold their value yet (read
// decrypted, compared exactly).
func (d *ssmDest) Resume(ctx context.Context, k Key, _ time.Time) error {
	var left []namedValue
	for _, v := range []namedValue{{d.idName, k.AccessKeyID}, {d.secret, k.SecretAccessKey}} {
		ok, err := d.holds(ctx, v.name, v.value)
		if err != nil {
			return err
		}
		if !ok {
			left = append(left, v)
		}
	}
	if len(left) == 0 {
		return nil
	}
	return d.write(ctx, k, left)
}

func (d *ssmDest) write(ctx context.Context, k Key, values []namedValue) error {
	existing, err := d.describe(ctx)
	if err != nil {
		return err
	}
	for _, name := range []string{d.idName, d.secret} {
		if p, ok := existing[name]; ok && p.Type != types.ParameterTypeSecureString {
			return &Error{Where: d.Where(), Op: "check parameter " + name, Status: statusRefused, Msg: fmt.Sprintf(
				"parameter %s is of type %s; keyrotor writes keys only as SecureString: make it a SecureString parameter "+
					"(and have its readers decrypt it), or name another parameter; nothing was written", name, p.Type)}
		}
	}
	for _, v := range values {
		in := &ssm.PutParameterInput{Name: aws.String(v.name), Value: aws.String(v.value), Type: types.ParameterTypeSecureString, Overwrite: aws.Bool(true)}
		if p, ok := existing[v.name]; ok {
			in.KeyId = p.KeyId
			in.Description = p.Description
			if p.Tier != "" {
				in.Tier = p.Tier
			}
		}
		if _, err := d.api.PutParameter(ctx, in); err != nil {
			return awsError(d.Where(), "put parameter "+v.name, err)
		}
	}
	return nil
}

// describe returns the metadata of those of the two parameters that exist.
func (d *ssmDest) describe(ctx context.Context) (map[string]types.ParameterMetadata, error) {
	out := map[string]types.ParameterMetadata{}
	p := ssm.NewDescribeParametersPaginator(d.api, &ssm.DescribeParametersInput{
		ParameterFilters: []types.ParameterStringFilter{{Key: aws.String("Name"), Option: aws.String("Equals"), Values: []string{d.idName, d.secret}}},
	})
	// DescribeParameters may answer a filtered request with empty pages
	// and a NextToken: read every page.
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, awsError(d.Where(), "describe parameters", err)
		}
		for _, m := range page.Parameters {
			out[aws.ToString(m.Name)] = m
		}
	}
	return out, nil
}

// Holds reads both parameters, decrypted: each must equal its value
// exactly. A missing parameter holds nothing.
func (d *ssmDest) Holds(ctx context.Context, k Key, _ time.Time) (bool, error) {
	for _, v := range []namedValue{{d.idName, k.AccessKeyID}, {d.secret, k.SecretAccessKey}} {
		if ok, err := d.holds(ctx, v.name, v.value); err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// holds reports whether parameter name holds value (missing: false).
func (d *ssmDest) holds(ctx context.Context, name, value string) (bool, error) {
	out, err := d.api.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if failures.APICode(err) == "ParameterNotFound" {
		return false, nil
	}
	if err != nil {
		return false, awsError(d.Where(), "get parameter "+name, err)
	}
	return out.Parameter != nil && aws.ToString(out.Parameter.Value) == value, nil
}
