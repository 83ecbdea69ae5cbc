package delivery_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/keyrotor/keyrotor/internal/awstest"
	"github.com/keyrotor/keyrotor/shared/delivery"
)

func TestMain(m *testing.M) { awstest.Main(m) }

var (
	oldKey = delivery.Key{AccessKeyID: "AKIAOLD0000000000001", SecretAccessKey: "oldSecret/0000000000000000000000000000000"}
	newKey = delivery.Key{AccessKeyID: "AKIANEW0000000000002", SecretAccessKey: "newSecret/abcdefghijklmnopqrstuvwxyz0123456"}
)

func spec(t *testing.T, s string) delivery.Spec {
	t.Helper()
	var sp delivery.Spec
	if err := json.Unmarshal([]byte(s), &sp); err != nil {
		t.Fatal(err)
	}
	return sp
}

// recordingSSM passes SSM calls to moto and records PutParameter's input
// (what moto cannot show: whether keyrotor named the KMS key itself).
type recordingSSM struct {
	delivery.SSMAPI
	mu   sync.Mutex
	puts []ssm.PutParameterInput
}

func (r *recordingSSM) PutParameter(ctx context.Context, in *ssm.PutParameterInput, optFns ...func(*ssm.Options)) (*ssm.PutParameterOutput, error) {
	r.mu.Lock()
	r.puts = append(r.puts, *in)
	r.mu.Unlock()
	return r.SSMAPI.PutParameter(ctx, in, optFns...)
}

// env builds destinations on a's emulator, for any account and region.
func env(a *awstest.Account, s delivery.SSMAPI) delivery.Env {
	return delivery.Env{AWS: func(context.Context, string, string) (delivery.AWSClients, error) {
		return delivery.AWSClients{SSM: s, Secrets: a.Secrets}, nil
	}}
}

// quiet captures the default logger for the test and fails it when a
// secret access key was logged.
func quiet(t *testing.T) {
	t.Helper()
	var buf bytes.Buffer
	prev := slog.Default()
	slog.SetDefault(slog.New(slog.NewJSONHandler(&buf, nil)))
	t.Cleanup(func() {
		slog.SetDefault(prev)
		for _, k := range []delivery.Key{oldKey, newKey} {
			if strings.Contains(buf.String(), k.SecretAccessKey) {
				t.Errorf("a secret access key was logged:\n%s", buf.String())
			}
		}
	})
}

// noSecret fails the test when err shows a secret access key.
func noSecret(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, k := range []delivery.Key{oldKey, newKey} {
		if strings.Contains(err.Error(), k.SecretAccessKey) || strings.Contains(strings.ToLower(err.Error()), strings.ToLower(k.SecretAccessKey)) {
			t.Fatalf("error shows a secret: %v", err)
		}
	}
}

type param struct{ typ, keyID, value string }

// params reads what moto holds: name -> type, KMS key and decrypted value.
func params(t *testing.T, api *ssm.Client) map[string]param {
	t.Helper()
	ctx := context.Background()
	out := map[string]param{}
	desc, err := api.DescribeParameters(ctx, &ssm.DescribeParametersInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range desc.Parameters {
		v, err := api.GetParameter(ctx, &ssm.GetParameterInput{Name: m.Name, WithDecryption: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		out[aws.ToString(m.Name)] = param{typ: string(m.Type), keyID: aws.ToString(m.KeyId), value: aws.ToString(v.Parameter.Value)}
	}
	return out
}

func put(t *testing.T, api *ssm.Client, name, value string, typ ssmtypes.ParameterType, keyID string) {
	t.Helper()
	in := &ssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value), Type: typ}
	if keyID != "" {
		in.KeyId = aws.String(keyID)
	}
	if _, err := api.PutParameter(context.Background(), in); err != nil {
		t.Fatal(err)
	}
}

func build(t *testing.T, s string, e delivery.Env) delivery.Destination {
	t.Helper()
	d, err := delivery.Build(context.Background(), spec(t, s), e)
	if err != nil {
		t.Fatalf("Build(%s) = %v", s, err)
	}
	return d
}

func holds(t *testing.T, d delivery.Destination, k delivery.Key) bool {
	t.Helper()
	ok, err := d.Holds(context.Background(), k, time.Time{})
	noSecret(t, err)
	if err != nil {
		t.Fatalf("Holds(%s) = %v", k, err)
	}
	return ok
}

// TestMotoSSMWrite: Write leaves exactly the new key in two SecureString
// parameters: new ones with the default aws/ssm key; an existing one with
// its own KMS key, named in the call (PutParameter without KeyId would
// switch it to the default key), its tier and description; Holds tells
// the new key from the old.
func TestMotoSSMWrite(t *testing.T) {
	quiet(t)
	a := awstest.New(t)
	ctx := context.Background()
	api := ssm.NewFromConfig(a.Config)
	kmsKey, err := kms.NewFromConfig(a.Config).CreateKey(ctx, &kms.CreateKeyInput{})
	if err != nil {
		t.Fatal(err)
	}
	custom := aws.ToString(kmsKey.KeyMetadata.KeyId)
	if _, err := api.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("/app/secret"), Value: aws.String(oldKey.SecretAccessKey),
		Type: ssmtypes.ParameterTypeSecureString, KeyId: aws.String(custom), Tier: ssmtypes.ParameterTierAdvanced, Description: aws.String("the CI's secret")}); err != nil {
		t.Fatal(err)
	}
	put(t, api, "/other", "untouched", ssmtypes.ParameterTypeString, "")

	rec := &recordingSSM{SSMAPI: api}
	d := build(t, `{"type":"ssm","idName":"/app/id","secretName":"/app/secret","account":"123456789012","region":"us-east-1"}`, env(a, rec))
	if got, want := d.Where(), "ssm parameters /app/id, /app/secret (account 123456789012, us-east-1)"; got != want {
		t.Fatalf("Where() = %q; want %q", got, want)
	}
	if holds(t, d, newKey) {
		t.Fatal("Holds(new) before Write = true")
	}
	err = d.Write(ctx, newKey)
	noSecret(t, err)
	if err != nil {
		t.Fatalf("Write = %v", err)
	}
	got := params(t, api)
	want := map[string]param{
		"/app/id":     {"SecureString", "alias/aws/ssm", newKey.AccessKeyID},
		"/app/secret": {"SecureString", custom, newKey.SecretAccessKey},
		"/other":      {"String", "", "untouched"},
	}
	if len(got) != len(want) {
		t.Fatalf("moto holds %v; want %v", got, want)
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("parameter %s = %+v; want %+v", name, got[name], w)
		}
	}
	if len(rec.puts) != 2 {
		t.Fatalf("%d PutParameter calls; want 2", len(rec.puts))
	}
	for _, in := range rec.puts {
		wantKey := ""
		if aws.ToString(in.Name) == "/app/secret" {
			wantKey = custom
		}
		if aws.ToString(in.Name) == "/app/secret" && (in.Tier != ssmtypes.ParameterTierAdvanced || aws.ToString(in.Description) != "the CI's secret") {
			t.Errorf("PutParameter(/app/secret): tier %q, description %q; want both named as they were", in.Tier, aws.ToString(in.Description))
		}
		if aws.ToString(in.KeyId) != wantKey || in.Type != ssmtypes.ParameterTypeSecureString || !aws.ToBool(in.Overwrite) {
			t.Errorf("PutParameter(%s): KeyId %q, type %s, overwrite %v; want KeyId %q, SecureString, overwrite", aws.ToString(in.Name), aws.ToString(in.KeyId), in.Type, aws.ToBool(in.Overwrite), wantKey)
		}
	}
	desc, err := api.DescribeParameters(ctx, &ssm.DescribeParametersInput{ParameterFilters: []ssmtypes.ParameterStringFilter{{Key: aws.String("Name"), Values: []string{"/app/secret"}}}})
	if err != nil || len(desc.Parameters) != 1 || desc.Parameters[0].Tier != ssmtypes.ParameterTierAdvanced || aws.ToString(desc.Parameters[0].Description) != "the CI's secret" {
		t.Fatalf("after Write /app/secret is %+v, %v; want its tier (Advanced) and description kept", desc, err)
	}
	if !holds(t, d, newKey) || holds(t, d, oldKey) {
		t.Fatal("after Write: Holds(new) false or Holds(old) true")
	}
	// One value off is not held.
	put2 := &ssm.PutParameterInput{Name: aws.String("/app/secret"), Value: aws.String(newKey.SecretAccessKey + "x"), Type: ssmtypes.ParameterTypeSecureString, Overwrite: aws.Bool(true)}
	if _, err := api.PutParameter(ctx, put2); err != nil {
		t.Fatal(err)
	}
	if holds(t, d, newKey) {
		t.Fatal("Holds(new) = true with the secret parameter changed")
	}
	// A repeated Write is harmless.
	if err := d.Write(ctx, newKey); err != nil || !holds(t, d, newKey) {
		t.Fatalf("second Write = %v", err)
	}
}

// TestMotoSSMRefusesString: an existing String parameter is refused with
// a *delivery.Error that says the fix, and nothing is written (neither
// parameter).
func TestMotoSSMRefusesString(t *testing.T) {
	quiet(t)
	a := awstest.New(t)
	ctx := context.Background()
	api := ssm.NewFromConfig(a.Config)
	put(t, api, "/app/secret", oldKey.SecretAccessKey, ssmtypes.ParameterTypeString, "")
	d := build(t, `{"type":"ssm","idName":"/app/id","secretName":"/app/secret"}`, env(a, api))
	err := d.Write(ctx, newKey)
	noSecret(t, err)
	var de *delivery.Error
	if !errors.As(err, &de) || !strings.Contains(de.Msg, "of type String") || !strings.Contains(de.Msg, "SecureString") || !strings.Contains(de.Msg, "nothing was written") || de.Retryable() {
		t.Fatalf("Write over a String parameter = %v (%T); want a *delivery.Error saying SecureString, not retryable", err, err)
	}
	got := params(t, api)
	if len(got) != 1 || got["/app/secret"] != (param{"String", "", oldKey.SecretAccessKey}) {
		t.Fatalf("after a refused Write moto holds %+v; want only the String parameter, unchanged", got)
	}
	if holds(t, d, newKey) {
		t.Fatal("Holds(new) = true after a refused Write")
	}
}

// TestMotoSSMErrors: an AWS error is a *delivery.Error with the API's
// code, never its message or a value.
func TestMotoSSMErrors(t *testing.T) {
	a := awstest.New(t)
	api := ssm.NewFromConfig(a.Config)
	// An empty value: SSM answers ValidationException (moto too), whose
	// message quotes the value it refused.
	d := build(t, `{"type":"ssm","idName":"/app/id","secretName":"/app/secret"}`, env(a, api))
	err := d.Write(context.Background(), delivery.Key{AccessKeyID: newKey.AccessKeyID})
	var de *delivery.Error
	if !errors.As(err, &de) || de.Op != "put parameter /app/secret" || de.Status != 400 || de.Msg != "ValidationException" || de.Retryable() {
		t.Fatalf("Write of an empty secret = %#v; want a *delivery.Error, status 400, Msg ValidationException", err)
	}
	t.Logf("error: %v", err)
}

// secretValue is a secret's current JSON object in moto.
func secretValue(t *testing.T, a *awstest.Account, id string) map[string]string {
	t.Helper()
	s := a.Secret(t, id)
	if s == "" {
		return nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatalf("secret %s is not a JSON object of strings: %v", id, err)
	}
	return m
}

func versions(t *testing.T, a *awstest.Account, id string) map[string][]string {
	t.Helper()
	out, err := a.Secrets.ListSecretVersionIds(context.Background(), &secretsmanager.ListSecretVersionIdsInput{SecretId: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]string{}
	for _, v := range out.Versions {
		m[aws.ToString(v.VersionId)] = v.VersionStages
	}
	return m
}

func createSecret(t *testing.T, a *awstest.Account, name string, value *string) string {
	t.Helper()
	out, err := a.Secrets.CreateSecret(context.Background(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: value})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.ARN)
}

// TestMotoSecretsManagerWrite: Write sets exactly the two keys to the new
// key and keeps the secret's other keys; the new version's id comes from
// the new key's id, and a repeated Write makes no version.
func TestMotoSecretsManagerWrite(t *testing.T) {
	quiet(t)
	a := awstest.New(t)
	ctx := context.Background()
	createSecret(t, a, "app/creds", aws.String(`{"AWS_ACCESS_KEY_ID":"`+oldKey.AccessKeyID+`","AWS_SECRET_ACCESS_KEY":"`+oldKey.SecretAccessKey+`","DB_HOST":"db.internal","PORT":"5432"}`))
	d := build(t, `{"type":"secretsmanager","secretId":"app/creds"}`, env(a, nil))
	if got, want := d.Where(), "secretsmanager secret app/creds: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY (keyrotor's account, keyrotor's region)"; got != want {
		t.Fatalf("Where() = %q; want %q", got, want)
	}
	if !holds(t, d, oldKey) || holds(t, d, newKey) {
		t.Fatal("before Write: want the old key held, not the new")
	}
	err := d.Write(ctx, newKey)
	noSecret(t, err)
	if err != nil {
		t.Fatalf("Write = %v", err)
	}
	got := secretValue(t, a, "app/creds")
	want := map[string]string{"AWS_ACCESS_KEY_ID": newKey.AccessKeyID, "AWS_SECRET_ACCESS_KEY": newKey.SecretAccessKey, "DB_HOST": "db.internal", "PORT": "5432"}
	if len(got) != len(want) {
		t.Fatalf("secret = %v; want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("secret[%s] = %q; want %q", k, got[k], v)
		}
	}
	before := versions(t, a, "app/creds")
	current := ""
	for id, stages := range before {
		if len(stages) > 0 && stages[0] == "AWSCURRENT" || strings.Contains(strings.Join(stages, ","), "AWSCURRENT") {
			current = id
		}
	}
	if !strings.HasPrefix(current, "keyrotor-"+newKey.AccessKeyID+"-") || len(current) < 32 || len(current) > 64 {
		t.Fatalf("current version %q; want keyrotor-%s-..., 32 to 64 characters", current, newKey.AccessKeyID)
	}
	if !holds(t, d, newKey) || holds(t, d, oldKey) {
		t.Fatal("after Write: want the new key held, not the old")
	}
	if err := d.Write(ctx, newKey); err != nil {
		t.Fatalf("second Write = %v", err)
	}
	if after := versions(t, a, "app/creds"); len(after) != len(before) {
		t.Fatalf("a repeated Write made a version: %v, then %v", before, after)
	}
}

// TestMotoSecretsManagerCases: named keys, an ARN, a secret without a
// value; refused, changing nothing: a missing secret (keyrotor creates
// none), a value that is not a JSON object, a binary secret.
func TestMotoSecretsManagerCases(t *testing.T) {
	quiet(t)
	a := awstest.New(t)
	ctx := context.Background()
	e := env(a, nil)

	arn := createSecret(t, a, "named", aws.String(`{"keep":"me"}`))
	d := build(t, `{"type":"secretsmanager","secretId":"`+arn+`","idName":"id","secretName":"secret"}`, e)
	if err := d.Write(ctx, newKey); err != nil {
		t.Fatalf("Write to %s = %v", arn, err)
	}
	if got := secretValue(t, a, "named"); len(got) != 3 || got["id"] != newKey.AccessKeyID || got["secret"] != newKey.SecretAccessKey || got["keep"] != "me" {
		t.Fatalf("named keys: secret = %v", got)
	}
	if !strings.Contains(d.Where(), "(keyrotor's account, us-east-1)") {
		t.Fatalf("Where() = %q; want the ARN's region", d.Where())
	}

	createSecret(t, a, "empty", nil)
	d = build(t, `{"type":"secretsmanager","secretId":"empty"}`, e)
	if err := d.Write(ctx, newKey); err != nil {
		t.Fatalf("Write to a secret without a value = %v", err)
	}
	if got := secretValue(t, a, "empty"); len(got) != 2 || got["AWS_SECRET_ACCESS_KEY"] != newKey.SecretAccessKey {
		t.Fatalf("secret without a value: now %v", got)
	}

	refused := []struct {
		name, secret, want string
		setup              func()
	}{
		{"missing secret", "nowhere", "keyrotor does not create secrets in other people's accounts", func() {}},
		{"plain text", "plain", "not a JSON object", func() { createSecret(t, a, "plain", aws.String("hunter2")) }},
		{"JSON array", "array", "not a JSON object", func() { createSecret(t, a, "array", aws.String(`["a"]`)) }},
		{"binary", "binary", "binary value", func() {
			if _, err := a.Secrets.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("binary"), SecretBinary: []byte{1, 2, 3}}); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			tt.setup()
			before := a.Secret(t, tt.secret)
			d := build(t, `{"type":"secretsmanager","secretId":"`+tt.secret+`"}`, e)
			err := d.Write(ctx, newKey)
			noSecret(t, err)
			var de *delivery.Error
			if !errors.As(err, &de) || !strings.Contains(de.Msg, tt.want) || !strings.Contains(de.Msg, "nothing was written") || de.Retryable() {
				t.Fatalf("Write = %v (%T); want a *delivery.Error saying %q", err, err, tt.want)
			}
			if after := a.Secret(t, tt.secret); after != before {
				t.Fatalf("a refused Write changed the secret: %q -> %q", before, after)
			}
			if ok, err := d.Holds(ctx, newKey, time.Time{}); ok || err != nil {
				t.Fatalf("Holds = %v, %v; want false, nil", ok, err)
			}
		})
	}
	if _, err := a.Secrets.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String("nowhere")}); err == nil {
		t.Fatal("Write created the missing secret")
	}
}

// TestAccountFor: an AWS destination is written in its account, else the
// account of its secret's ARN, else its user's own account.
func TestAccountFor(t *testing.T) {
	tests := []struct {
		name                     string
		spec                     delivery.Spec
		user, account, fromField string
	}{
		{"the user's own", delivery.Spec{Type: "ssm", IDName: "/a", SecretName: "/b"}, "111122223333", "111122223333", ""},
		{"a hub user's own: keyrotor's", delivery.Spec{Type: "ssm", IDName: "/a", SecretName: "/b"}, "", "", ""},
		{"named", delivery.Spec{Type: "ssm", IDName: "/a", SecretName: "/b", Account: "444455556666"}, "111122223333", "444455556666", "account"},
		{"a secret's ARN", delivery.Spec{Type: "secretsmanager", SecretID: "arn:aws:secretsmanager:eu-west-1:444455556666:secret:ci/aws-AbCdEf"}, "", "444455556666", "secretId"},
		{"a secret's name", delivery.Spec{Type: "secretsmanager", SecretID: "ci/aws"}, "111122223333", "111122223333", ""},
		{"not an AWS destination", delivery.Spec{Type: "github", Repository: "o/r"}, "111122223333", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if a, f := tt.spec.AccountFor(tt.user); a != tt.account || f != tt.fromField {
				t.Errorf("AccountFor(%q) = %q, %q; want %q, %q", tt.user, a, f, tt.account, tt.fromField)
			}
		})
	}
}
