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
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyrotor/keyrotor/shared/config"
)

// Context keys with their defaults, as documented in README.
const (
	KeyMaxKeyAgeDays       = "maxKeyAgeDays"        // 90
	KeyUnusedDays          = "unusedDays"           // 45
	KeyGraceDays           = "graceDays"            // 7 (1 to MaxGraceDays)
	KeyHoldDays            = "holdDays"             // 30 (1 to 365)
	KeySchedule            = "schedule"             // rate(1 day); "off" disables
	KeySenderAddress       = "senderAddress"        // (required for owner mail)
	KeyAdminEmails         = "adminEmails"          // comma-separated or a JSON list
	KeySecretPrefix        = "secretPrefix"         // iam-access-keys/
	KeyEmailTag            = "emailTag"             // email
	KeyExemptTag           = "exemptTag"            // keyrotor:exempt
	KeyExemptGroup         = "exemptGroup"          // (none)
	KeyKMSKeyArn           = "kmsKeyArn"            // (none: the stack creates a key)
	KeyFanOutConcurrency   = "fanOutConcurrency"    // 10000 (the Distributed Map maximum)
	KeyLambdaConcurrency   = "lambdaConcurrency"    // 0: no reserved concurrency; N > 0 reserves N for each per-user function
	KeyReportRetentionDays = "reportRetentionDays"  // 400
	KeyLogRetentionDays    = "logRetentionDays"     // 90
	KeyRetirePasswords     = "retirePasswords"      // false
	KeyAdoptionDays        = "adoptionDays"         // 0: no adoption window (0 to MaxAdoptionDays)
	KeyAdoptionReminders   = "adoptionReminderDays" // days before the window ends; default half-way and 1
	// Who besides the owner and keyrotor may read a stored key (docs/security.md).
	KeyBreakGlassPrincipals = "breakGlassPrincipals" // (none): IAM role or user ARNs, comma-separated or a JSON list
	// The organization mode (docs/organizations.md): unset, one account.
	KeyOrganizationScope   = "organizationScope"   // "all", or OU, root and account ids (list)
	KeyOrganizationExclude = "organizationExclude" // account ids never rotated (list)
	KeyOrganizationStages  = "organizationStages"  // ordered stages: a JSON list of lists of OU, root and account ids
	// The domains owner addresses may be in (list); unset: any.
	KeyOwnerEmailDomains = "ownerEmailDomains"
	// IAM paths whose users keyrotor never acts on (list).
	KeyExcludedUserPaths = "excludedUserPaths"
	// Where delivery may write in AWS (docs/delivery.md): SSM parameter
	// and Secrets Manager secret names or prefixes ending in * (lists);
	// unset: no AWS destination.
	KeyDeliveryParameters = "deliveryParameters"
	KeyDeliverySecrets    = "deliverySecrets"
	// The organization mode's stacks (read by infra only: the member stack
	// and its StackSet; docs/organizations.md).
	KeyHubAccount          = "hubAccount"
	KeyOrganizationalUnits = "organizationalUnits"
	KeyDelegatedAdmin      = "delegatedAdmin"
	// Acknowledgements of a deliberate choice (see Deployable).
	KeyAllowNoAdmins = "allowNoAdmins" // false; true: no adminEmails, the admins subscribe to the AdminTopicArn output themselves
	KeyLocalRun      = "localRun"      // false; true: a template for local runs on the emulator only (make synth), placeholders allowed
)

// MaxAdoptionDays bounds adoptionDays: the window, the grace period and a
// Redrive's 14 days all run in the key's own execution, within Step
// Functions' one-year limit (see MaxGraceDays).
const MaxAdoptionDays = 90

// Keys lists every context key keyrotor reads.
var Keys = []string{KeyMaxKeyAgeDays, KeyUnusedDays, KeyGraceDays, KeyHoldDays, KeySchedule, KeySenderAddress, KeyAdminEmails,
	KeySecretPrefix, KeyEmailTag, KeyExemptTag, KeyExemptGroup, KeyKMSKeyArn, KeyFanOutConcurrency, KeyLambdaConcurrency,
	KeyReportRetentionDays, KeyLogRetentionDays, KeyRetirePasswords, KeyAdoptionDays, KeyAdoptionReminders,
	KeyOrganizationScope, KeyOrganizationExclude, KeyOrganizationStages, KeyOwnerEmailDomains, KeyExcludedUserPaths,
	KeyBreakGlassPrincipals, KeyDeliveryParameters, KeyDeliverySecrets, KeyHubAccount, KeyOrganizationalUnits, KeyDelegatedAdmin, KeyAllowNoAdmins, KeyLocalRun}

// Settings is everything a deployment is tuned with.
type Settings struct {
	Config              config.Config // what the functions read (their environment)
	Schedule            string        // EventBridge expression; "" when off
	AdminEmails         []string
	FanOutConcurrency   int // child executions at once: each holds a slot through its grace Wait
	LambdaConcurrency   int // reserved concurrency of each per-user function; 0: none
	KMSKeyArn           string
	ReportRetentionDays int
	LogRetentionDays    int
	// AllowNoAdmins acknowledges a deployment without adminEmails; LocalRun
	// marks a template synthesized for local runs only (see Deployable).
	AllowNoAdmins, LocalRun bool
}

// Error names the context key that is wrong and how to fix it.
type Error struct{ Key, Value, Fix string }

func (e *Error) Error() string {
	return fmt.Sprintf("context %s=%q: %s (set it with -c %s=... or in cdk.json)", e.Key, e.Value, e.Fix, e.Key)
}

// MaxGraceDays bounds graceDays so that every execution ends within Step
// Functions' one-year limit on a Standard execution
// (https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html,
// "Maximum execution time"); past it the execution times out, the old key
// stays Inactive and undeleted, and the failed-execution alarm (on
// ExecutionsFailed) does not fire. The grace Wait runs in each key's own
// grace-and-delete execution, which lasts graceDays plus DeleteOldKey with
// its retries (at most about two hours, throttling included). If that step
// still fails, the admins have the 14 days in which Step Functions allows a
// Redrive, and it refuses one once the execution is a year old
// (https://docs.aws.amazon.com/step-functions/latest/dg/redrive-executions.html).
// 365 - 14 (Redrive) - 1 (retries, with room to spare) = 350.
const MaxGraceDays = 365 - 14 - 1

// Default returns the settings with every default.
func Default() Settings {
	return Settings{Config: config.Default(), Schedule: "rate(1 day)", FanOutConcurrency: 10000, ReportRetentionDays: 400, LogRetentionDays: 90}
}

// ContextString reads the context value of key as a string (trimmed; a
// cdk.json number or bool formatted, another JSON value marshalled), and
// whether it is set.
func ContextString(get func(key string) (any, bool), key string) (string, bool) {
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

// FromContext reads the settings through get, which returns a context
// value (a string from -c, or a JSON value from cdk.json) and whether it is
// set.
func FromContext(get func(key string) (any, bool)) (Settings, error) {
	s := Default()
	str := func(key string) (string, bool) { return ContextString(get, key) }
	grace := int(s.Config.GracePeriod / (24 * time.Hour))
	adoption := 0
	for _, n := range []struct {
		key    string
		dst    *int
		lo, hi int
		why    string // added to the error: why the range is what it is
	}{
		{KeyMaxKeyAgeDays, &s.Config.MaxKeyAgeDays, 1, 3650, ""}, {KeyUnusedDays, &s.Config.UnusedDays, 1, 3650, ""},
		{KeyGraceDays, &grace, 1, MaxGraceDays, " (default 7): the grace Wait runs inside a Step Functions execution, which may last " +
			"one year including the 14 days allowed for a Redrive"},
		{KeyHoldDays, &s.Config.HoldDays, 1, config.MaxHoldDays, fmt.Sprintf(" (default %d)", config.DefaultHoldDays)},
		{KeyAdoptionDays, &adoption, 0, MaxAdoptionDays, ": 0 (the default) deactivates the old key right after the owner's notice; " +
			"N keeps it Active up to N days, until the new key is in use"},
		{KeyFanOutConcurrency, &s.FanOutConcurrency, 1, 10000, ""},
		{KeyLambdaConcurrency, &s.LambdaConcurrency, 0, 1000, ": 0 (the default) reserves no Lambda concurrency; " +
			"N reserves N concurrent executions for each of the 5 per-user functions and needs an account concurrency quota of at least 100 + 5 x N"},
		{KeyReportRetentionDays, &s.ReportRetentionDays, 1, 36500, ""}, {KeyLogRetentionDays, &s.LogRetentionDays, 1, 3653, ""},
	} {
		v, ok := str(n.key)
		if !ok {
			continue
		}
		i, err := strconv.Atoi(v)
		if err != nil || i < n.lo || i > n.hi {
			return Settings{}, &Error{n.key, v, fmt.Sprintf("want a whole number from %d to %d%s", n.lo, n.hi, n.why)}
		}
		*n.dst = i
	}
	s.Config.GracePeriod = time.Duration(grace) * 24 * time.Hour
	if adoption+grace > MaxGraceDays {
		return Settings{}, &Error{KeyAdoptionDays, strconv.Itoa(adoption), fmt.Sprintf("adoptionDays + graceDays (%d) must be at most %d: both run in the key's own execution, which may last one year including the 14 days allowed for a Redrive", adoption+grace, MaxGraceDays)}
	}
	s.Config.AdoptionWindow = time.Duration(adoption) * 24 * time.Hour
	if v, ok := get(KeyAdoptionReminders); ok && v != nil {
		days, err := dayList(v)
		if err != nil {
			return Settings{}, &Error{KeyAdoptionReminders, fmt.Sprint(v), "want whole days before the adoption window ends, comma-separated or a JSON list, such as \"7,1\""}
		}
		s.Config.AdoptionReminders = []time.Duration{}
		for _, d := range days {
			if d < 1 || d >= adoption {
				return Settings{}, &Error{KeyAdoptionReminders, fmt.Sprint(v), fmt.Sprintf("each reminder is a whole number of days from 1 to adoptionDays - 1 (%d), counted back from the window's end", adoption-1)}
			}
			s.Config.AdoptionReminders = append(s.Config.AdoptionReminders, time.Duration(d)*24*time.Hour)
		}
	}
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
	if s.KMSKeyArn != "" && !kmsKeyARN.MatchString(s.KMSKeyArn) {
		return Settings{}, &Error{KeyKMSKeyArn, s.KMSKeyArn, "want a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), or leave it unset to let the stack create one"}
	}
	for key, dst := range map[string]*bool{KeyRetirePasswords: &s.Config.RetirePasswords, KeyAllowNoAdmins: &s.AllowNoAdmins, KeyLocalRun: &s.LocalRun} {
		if v, ok := str(key); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return Settings{}, &Error{key, v, "want true or false"}
			}
			*dst = b
		}
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
	if v, ok := get(KeyBreakGlassPrincipals); ok && v != nil {
		l, err := idList(v)
		if err != nil {
			return Settings{}, &Error{KeyBreakGlassPrincipals, fmt.Sprint(v), "want IAM role or user ARNs, comma-separated or a JSON list, " +
				"such as [\"arn:aws:iam::123456789012:role/BreakGlass\"]"}
		}
		s.Config.BreakGlass = l
	}
	for _, d := range []struct {
		key string
		dst *[]string
	}{{KeyDeliveryParameters, &s.Config.DeliveryParameters}, {KeyDeliverySecrets, &s.Config.DeliverySecrets}} {
		if v, ok := get(d.key); ok && v != nil {
			l, err := idList(v)
			if err != nil {
				return Settings{}, &Error{d.key, fmt.Sprint(v), "want names or name prefixes ending in *, comma-separated or a JSON list, such as [\"/ci/*\"]"}
			}
			*d.dst = l
		}
	}
	if err := s.organization(get); err != nil {
		return Settings{}, err
	}
	if v, ok := get(KeyOwnerEmailDomains); ok && v != nil {
		l, err := idList(v)
		if err != nil {
			return Settings{}, &Error{KeyOwnerEmailDomains, fmt.Sprint(v), "want domain names, comma-separated or a JSON list, such as [\"example.com\"]"}
		}
		for i := range l {
			l[i] = strings.ToLower(l[i])
		}
		s.Config.OwnerEmailDomains = l
	}
	if v, ok := get(KeyExcludedUserPaths); ok && v != nil {
		l, err := idList(v)
		if err != nil {
			return Settings{}, &Error{KeyExcludedUserPaths, fmt.Sprint(v), "want IAM paths, comma-separated or a JSON list, such as [\"/breakglass/\"]"}
		}
		s.Config.ExcludedUserPaths = l
	}
	if err := s.Config.Validate(); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			value := ce.Value
			if ce.Var == config.EnvGracePeriod {
				value = strconv.Itoa(grace) // graceDays is set in days
			}
			return Settings{}, &Error{contextKeyFor(ce.Var), value, ce.Fix}
		}
		return Settings{}, err
	}
	return s, nil
}

// organization reads the organization mode's keys into s.Config; the
// values are checked by config.Validate.
func (s *Settings) organization(get func(string) (any, bool)) error {
	if v, ok := get(KeyOrganizationScope); ok && v != nil {
		l, err := idList(v)
		if err != nil {
			return &Error{KeyOrganizationScope, fmt.Sprint(v), `want "all", or OU ids (ou-...), the root id (r-...) and account ids, comma-separated or a JSON list`}
		}
		s.Config.OrgScope = l
	}
	if v, ok := get(KeyOrganizationExclude); ok && v != nil {
		l, err := idList(v)
		if err != nil {
			return &Error{KeyOrganizationExclude, fmt.Sprint(v), "want account ids, comma-separated or a JSON list"}
		}
		s.Config.OrgExclude = l
	}
	if v, ok := get(KeyOrganizationStages); ok && v != nil {
		var stages []any
		switch x := v.(type) {
		case string:
			if err := json.Unmarshal([]byte(x), &stages); err != nil {
				return &Error{KeyOrganizationStages, x, `want a JSON list of stages, each a list of OU or account ids, such as [["ou-ab12-devdevdev"],["ou-ab12-prodprod"]]`}
			}
		case []any:
			stages = x
		default:
			return &Error{KeyOrganizationStages, fmt.Sprint(v), "want a JSON list of stages, each a list of OU or account ids"}
		}
		for i, st := range stages {
			l, err := idList(st)
			if err != nil {
				return &Error{KeyOrganizationStages, fmt.Sprint(v), fmt.Sprintf("stage %d: want a list of OU or account ids", i+1)}
			}
			s.Config.OrgStages = append(s.Config.OrgStages, l)
		}
	}
	// The lists reach the functions through their environment, which
	// Lambda caps at 4 KB for all variables together ("Lambda quotas":
	// https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html).
	env := s.Config.Env()
	if n := len(env[config.EnvOrgScope]) + len(env[config.EnvOrgExclude]) + len(env[config.EnvOrgStages]); n > MaxOrganizationListBytes {
		return &Error{KeyOrganizationStages, fmt.Sprintf("%d bytes of ids", n), fmt.Sprintf("organizationScope, organizationExclude and organizationStages "+
			"together must fit in %d bytes (the functions' environment is at most 4 KB): name OUs rather than many single accounts", MaxOrganizationListBytes)}
	}
	return nil
}

// kmsKeyARN is the shape of a KMS key ARN in any partition: a key, not an
// alias (the key policy grants are made on the key).
var kmsKeyARN = regexp.MustCompile(`^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+$`)

// placeholderDomains are the domains reserved for examples (RFC 2606 and
// RFC 6761): mail to or from them goes nowhere.
var placeholderDomains = regexp.MustCompile(`(?i)(^|\.)(example\.(com|net|org)|example|invalid|test|localhost)$`)

// Deployable reports what keeps a deployment from doing its work: no SES
// sender or a placeholder one (no owner would get a mail), or no admin
// address (nobody would hear of a run, a failure or a blocked user) unless
// allowNoAdmins acknowledges it. A template for local runs (localRun, as
// make synth writes for the emulator) is not deployed, and passes.
func (s Settings) Deployable() error {
	if s.LocalRun {
		return nil
	}
	sender := s.Config.Sender
	switch {
	case sender == "":
		return &Error{KeySenderAddress, sender, "no sender: owners would get no mail and every rotation would wait; " +
			"set it to an address of your domain verified in SES, such as keyrotor@yourcompany.com"}
	case placeholderDomains.MatchString(sender[strings.LastIndexByte(sender, '@')+1:]):
		return &Error{KeySenderAddress, sender, "a placeholder: SES sends nothing from it and every rotation would wait; " +
			"set it to an address of your domain verified in SES, such as keyrotor@yourcompany.com"}
	}
	if len(s.AdminEmails) == 0 && !s.AllowNoAdmins {
		return &Error{KeyAdminEmails, "[]", "no admin address: nobody would hear of a failed run, a blocked user or a refused mail; " +
			"list the addresses that get the run summaries and alerts, or set allowNoAdmins=true if you subscribe to the AdminTopicArn output yourself"}
	}
	for _, a := range s.AdminEmails {
		if placeholderDomains.MatchString(a[strings.LastIndexByte(a, '@')+1:]) {
			return &Error{KeyAdminEmails, a, "a placeholder address: nobody reads it; list the addresses that get the run summaries and alerts"}
		}
	}
	return nil
}

// CheckUnknown refuses a context key keyrotor does not read (a typo would
// otherwise leave its default in place, unseen), naming the key it is
// closest to. Keys of the CDK itself (feature flags "@aws-cdk/...",
// "aws:cdk:...", lookups "availability-zones:...", "cdk-...") pass.
func CheckUnknown(ctx map[string]any) error {
	unknown := Unknown(ctx)
	if len(unknown) == 0 {
		return nil
	}
	k := unknown[0]
	fix := "keyrotor reads no such setting and would use the default"
	if near := nearest(k); near != "" {
		fix += fmt.Sprintf("; did you mean %q?", near)
	} else {
		fix += "; the settings are listed in docs/deploying.md"
	}
	if len(unknown) > 1 {
		fix += fmt.Sprintf(" (%d unknown keys: %s)", len(unknown), strings.Join(unknown, ", "))
	}
	return &Error{Key: k, Value: fmt.Sprint(ctx[k]), Fix: fix}
}

// nearest is the known key closest to k (same letters ignoring case, or at
// most a third of its letters changed), or "".
func nearest(k string) string {
	best, bestD := "", len(k)/3+1
	for _, known := range Keys {
		if strings.EqualFold(known, k) {
			return known
		}
		if d := editDistance(strings.ToLower(known), strings.ToLower(k)); d < bestD {
			best, bestD = known, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// MaxOrganizationListBytes bounds the organization lists in the
// functions' environment (4 KB in all, with room for the other settings).
const MaxOrganizationListBytes = 2500

// idList reads a list of ids: "a,b", "[\"a\",\"b\"]" or ["a", "b"]. A
// number (an account id written without quotes in cdk.json) is refused:
// JSON numbers lose leading zeros.
func idList(v any) ([]string, error) {
	var out []string
	switch x := v.(type) {
	case string:
		x = strings.TrimSpace(x)
		if strings.HasPrefix(x, "[") {
			var l []any
			if err := json.Unmarshal([]byte(x), &l); err != nil {
				return nil, err
			}
			return idList(l)
		}
		for _, p := range strings.Split(x, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	case []any:
		for _, e := range x {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("not a string: %v (write account ids in quotes)", e)
			}
			out = append(out, strings.TrimSpace(s))
		}
	default:
		return nil, fmt.Errorf("not a list: %v", v)
	}
	return out, nil
}

// dayList reads a list of whole numbers: "7,1", "[7,1]", 7 or [7, 1].
func dayList(v any) ([]int, error) {
	var parts []string
	switch x := v.(type) {
	case float64:
		parts = []string{strconv.FormatFloat(x, 'f', -1, 64)}
	case string:
		x = strings.TrimSpace(x)
		if strings.HasPrefix(x, "[") {
			var nums []float64
			if err := json.Unmarshal([]byte(x), &nums); err != nil {
				return nil, err
			}
			return dayList(toAny(nums))
		}
		if x != "" {
			parts = strings.Split(x, ",")
		}
	case []any:
		for _, e := range x {
			f, ok := e.(float64)
			if !ok {
				return nil, fmt.Errorf("not a number: %v", e)
			}
			parts = append(parts, strconv.FormatFloat(f, 'f', -1, 64))
		}
	default:
		return nil, fmt.Errorf("not a list: %v", v)
	}
	var out []int
	for _, p := range parts {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func toAny(nums []float64) []any {
	out := make([]any, len(nums))
	for i, n := range nums {
		out[i] = n
	}
	return out
}

// contextKeyFor maps a function environment variable to its context key.
func contextKeyFor(env string) string {
	return map[string]string{
		config.EnvMaxKeyAgeDays: KeyMaxKeyAgeDays, config.EnvUnusedDays: KeyUnusedDays, config.EnvGracePeriod: KeyGraceDays,
		config.EnvSecretPrefix: KeySecretPrefix, config.EnvSender: KeySenderAddress, config.EnvEmailTag: KeyEmailTag,
		config.EnvExemptTag: KeyExemptTag, config.EnvExemptGroup: KeyExemptGroup, config.EnvHoldDays: KeyHoldDays,
		config.EnvOrgScope: KeyOrganizationScope, config.EnvOrgExclude: KeyOrganizationExclude, config.EnvOrgStages: KeyOrganizationStages,
		config.EnvAdoptionReminders: KeyAdoptionReminders, config.EnvOwnerEmailDomains: KeyOwnerEmailDomains, config.EnvExcludedUserPaths: KeyExcludedUserPaths,
		config.EnvBreakGlass: KeyBreakGlassPrincipals, config.EnvDeliveryParameters: KeyDeliveryParameters, config.EnvDeliverySecrets: KeyDeliverySecrets,
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
		return Settings{}, fmt.Errorf("not JSON: %w", err)
	}
	if err := CheckUnknown(f.Context); err != nil {
		return Settings{}, err
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
		if !known[k] && !strings.Contains(k, ":") && !strings.HasPrefix(k, "@") && !strings.HasPrefix(k, "cdk-") && k != "acknowledged-issue-numbers" {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}
