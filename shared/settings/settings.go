// Package settings reads keyrotor's deployment settings from CDK context
// (`-c key=value` or the "context" of cdk.json). The stack and the local
// runner both use it, so a local run and a deployment behave alike.
package settings

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/shared/config"
)

// Context keys with their defaults, as documented in README.
const (
	KeyMaxKeyAgeDays       = "maxKeyAgeDays"       // 90
	KeyUnusedDays          = "unusedDays"          // 45
	KeyGraceDays           = "graceDays"           // 7
	KeySchedule            = "schedule"            // rate(1 day); "off" disables
	KeySenderAddress       = "senderAddress"       // (required for owner mail)
	KeyAdminEmails         = "adminEmails"         // comma-separated or a JSON list
	KeySecretPrefix        = "secretPrefix"        // iam-access-keys/
	KeyEmailTag            = "emailTag"            // email
	KeyExemptTag           = "exemptTag"           // keyrotor:exempt
	KeyExemptGroup         = "exemptGroup"         // (none)
	KeyKMSKeyArn           = "kmsKeyArn"           // (none: the stack creates a key)
	KeyFanOutConcurrency   = "fanOutConcurrency"   // 10000 (the Distributed Map maximum)
	KeyLambdaConcurrency   = "lambdaConcurrency"   // 10: reserved concurrency of each per-user function
	KeyReportRetentionDays = "reportRetentionDays" // 400
	KeyLogRetentionDays    = "logRetentionDays"    // 90
	KeyRetirePasswords     = "retirePasswords"     // false
)

// Keys lists every context key keyrotor reads.
var Keys = []string{KeyMaxKeyAgeDays, KeyUnusedDays, KeyGraceDays, KeySchedule, KeySenderAddress, KeyAdminEmails,
	KeySecretPrefix, KeyEmailTag, KeyExemptTag, KeyExemptGroup, KeyKMSKeyArn, KeyFanOutConcurrency, KeyLambdaConcurrency,
	KeyReportRetentionDays, KeyLogRetentionDays, KeyRetirePasswords}

// Settings is everything a deployment is tuned with.
type Settings struct {
	Config              config.Config // what the functions read (their environment)
	Schedule            string        // EventBridge expression; "" when off
	AdminEmails         []string
	FanOutConcurrency   int // child executions at once: each holds a slot through its grace Wait
	LambdaConcurrency   int // reserved concurrency of the per-user functions: bounds IAM call pressure
	KMSKeyArn           string
	ReportRetentionDays int
	LogRetentionDays    int
}

// Error names the context key that is wrong and how to fix it.
type Error struct{ Key, Value, Fix string }

func (e *Error) Error() string {
	return fmt.Sprintf("context %s=%q: %s (set it with -c %s=... or in cdk.json)", e.Key, e.Value, e.Fix, e.Key)
}

// Default returns the settings with every default.
func Default() Settings {
	return Settings{Config: config.Default(), Schedule: "rate(1 day)", FanOutConcurrency: 10000, LambdaConcurrency: 10, ReportRetentionDays: 400, LogRetentionDays: 90}
}

// FromContext reads the settings through get, which returns a context
// value (a string from -c, or a JSON value from cdk.json) and whether it is
// set.
func FromContext(get func(key string) (any, bool)) (Settings, error) {
	s := Default()
	str := func(key string) (string, bool) {
		v, ok := get(key)
		if !ok || v == nil {
			return "", false
		}
		switch x := v.(type) {
		case string:
			return strings.TrimSpace(x), true
		case float64:
			return strconv.FormatFloat(x, 'f', -1, 64), true
		case bool:
			return strconv.FormatBool(x), true
		}
		b, _ := json.Marshal(v)
		return string(b), true
	}
	num := func(key string, dst *int, lo, hi int) error {
		v, ok := str(key)
		if !ok {
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			return &Error{key, v, fmt.Sprintf("want a whole number from %d to %d", lo, hi)}
		}
		*dst = n
		return nil
	}
	grace := int(s.Config.GracePeriod / (24 * time.Hour))
	for _, n := range []struct {
		key    string
		dst    *int
		lo, hi int
	}{
		{KeyMaxKeyAgeDays, &s.Config.MaxKeyAgeDays, 1, 3650}, {KeyUnusedDays, &s.Config.UnusedDays, 1, 3650},
		{KeyGraceDays, &grace, 0, 365}, {KeyFanOutConcurrency, &s.FanOutConcurrency, 1, 10000},
		{KeyLambdaConcurrency, &s.LambdaConcurrency, 1, 1000},
		{KeyReportRetentionDays, &s.ReportRetentionDays, 1, 36500}, {KeyLogRetentionDays, &s.LogRetentionDays, 1, 3653},
	} {
		if err := num(n.key, n.dst, n.lo, n.hi); err != nil {
			return Settings{}, err
		}
	}
	s.Config.GracePeriod = time.Duration(grace) * 24 * time.Hour
	if v, ok := str(KeySchedule); ok {
		switch {
		case v == "off" || v == "none" || v == "false":
			s.Schedule = ""
		case strings.HasPrefix(v, "rate(") || strings.HasPrefix(v, "cron("):
			s.Schedule = v
		default:
			return Settings{}, &Error{KeySchedule, v, `want an EventBridge expression such as "rate(1 day)" or "cron(0 6 * * ? *)", or "off"`}
		}
	}
	for key, dst := range map[string]*string{KeySenderAddress: &s.Config.Sender, KeySecretPrefix: &s.Config.SecretPrefix,
		KeyEmailTag: &s.Config.EmailTag, KeyExemptTag: &s.Config.ExemptTag, KeyExemptGroup: &s.Config.ExemptGroup, KeyKMSKeyArn: &s.KMSKeyArn} {
		if v, ok := str(key); ok && v != "" {
			*dst = v
		}
	}
	if s.KMSKeyArn != "" && !strings.HasPrefix(s.KMSKeyArn, "arn:") {
		return Settings{}, &Error{KeyKMSKeyArn, s.KMSKeyArn, "want a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), or leave it unset to let the stack create one"}
	}
	if v, ok := str(KeyRetirePasswords); ok {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return Settings{}, &Error{KeyRetirePasswords, v, "want true or false"}
		}
		s.Config.RetirePasswords = b
	}
	if v, ok := get(KeyAdminEmails); ok && v != nil {
		var list []string
		switch x := v.(type) {
		case string:
			if strings.HasPrefix(strings.TrimSpace(x), "[") {
				if err := json.Unmarshal([]byte(x), &list); err != nil {
					return Settings{}, &Error{KeyAdminEmails, x, "want a comma-separated list or a JSON list of addresses"}
				}
			} else {
				for _, a := range strings.Split(x, ",") {
					if a = strings.TrimSpace(a); a != "" {
						list = append(list, a)
					}
				}
			}
		case []any:
			for _, a := range x {
				sa, ok := a.(string)
				if !ok {
					return Settings{}, &Error{KeyAdminEmails, fmt.Sprint(x), "want a list of e-mail addresses"}
				}
				list = append(list, strings.TrimSpace(sa))
			}
		default:
			return Settings{}, &Error{KeyAdminEmails, fmt.Sprint(x), "want a comma-separated list or a JSON list of addresses"}
		}
		for _, a := range list {
			if p, err := mail.ParseAddress(a); err != nil || p.Address != a {
				return Settings{}, &Error{KeyAdminEmails, a, "not a bare e-mail address such as security@example.com"}
			}
		}
		s.AdminEmails = list
	}
	if err := s.Config.Validate(); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			return Settings{}, &Error{contextKeyFor(ce.Var), ce.Value, ce.Fix}
		}
		return Settings{}, err
	}
	return s, nil
}

// contextKeyFor maps a function environment variable to its context key.
func contextKeyFor(env string) string {
	return map[string]string{
		config.EnvMaxKeyAgeDays: KeyMaxKeyAgeDays, config.EnvUnusedDays: KeyUnusedDays, config.EnvGracePeriod: KeyGraceDays,
		config.EnvSecretPrefix: KeySecretPrefix, config.EnvSender: KeySenderAddress, config.EnvEmailTag: KeyEmailTag,
		config.EnvExemptTag: KeyExemptTag, config.EnvExemptGroup: KeyExemptGroup,
	}[env]
}

// FromCDKJSON reads the settings from the "context" object of a cdk.json.
func FromCDKJSON(path string) (Settings, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Settings{}, err
	}
	var f struct {
		Context map[string]any `json:"context"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return Settings{}, fmt.Errorf("%s: %w", path, err)
	}
	return FromContext(func(k string) (any, bool) { v, ok := f.Context[k]; return v, ok })
}

// Unknown returns the keys of ctx that look like keyrotor settings but are
// not (typos), sorted.
func Unknown(ctx map[string]any) []string {
	known := map[string]bool{}
	for _, k := range Keys {
		known[k] = true
	}
	var out []string
	for k := range ctx {
		if !known[k] && !strings.Contains(k, ":") && !strings.HasPrefix(k, "@") {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
