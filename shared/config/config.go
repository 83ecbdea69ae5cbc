// Package config reads keyrotor's settings from the environment the stack
// gives each function. Every variable has a default where one makes sense;
// a malformed value fails start-up with an error naming the variable.
package config

import (
	"fmt"
	"net/mail"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Environment variable names. The CDK stack sets exactly these.
const (
	EnvMaxKeyAgeDays   = "KEYROTOR_MAX_KEY_AGE_DAYS"
	EnvUnusedDays      = "KEYROTOR_UNUSED_DAYS"
	EnvGracePeriod     = "KEYROTOR_GRACE_PERIOD"
	EnvSecretPrefix    = "KEYROTOR_SECRET_PREFIX"
	EnvEmailTag        = "KEYROTOR_EMAIL_TAG"
	EnvExemptTag       = "KEYROTOR_EXEMPT_TAG"
	EnvExemptGroup     = "KEYROTOR_EXEMPT_GROUP"
	EnvSender          = "KEYROTOR_SENDER"
	EnvAdminTopicARN   = "KEYROTOR_ADMIN_TOPIC_ARN"
	EnvKMSKeyID        = "KEYROTOR_KMS_KEY_ID"
	EnvReportBucket    = "KEYROTOR_REPORT_BUCKET"
	EnvRetirePasswords = "KEYROTOR_RETIRE_PASSWORDS"
	EnvRotationTable   = "KEYROTOR_ROTATION_TABLE"
	EnvHoldDays        = "KEYROTOR_HOLD_DAYS"
	// The adoption window (0: none, the default): see Config.AdoptionWindow.
	EnvAdoptionWindow    = "KEYROTOR_ADOPTION_WINDOW"
	EnvAdoptionCheck     = "KEYROTOR_ADOPTION_CHECK"
	EnvAdoptionReminders = "KEYROTOR_ADOPTION_REMINDERS"
	// EnvRecordingInterval is IAM's recording interval of a key's last use
	// (15 minutes, the default). Only runs against an emulated account,
	// which records every use at once, set it lower, to run a window's
	// checks seconds apart (internal/local); the stack never sets it.
	EnvRecordingInterval = "KEYROTOR_RECORDING_INTERVAL"
	// EnvStatusLag replaces, for runs against an emulated account, how long
	// IAM may list a key's status before keyrotor's own change of it
	// (ledger.StatusLag, 2 minutes); moto lists every change at once.
	EnvStatusLag = "KEYROTOR_STATUS_LAG"
	// The organization mode (docs/organizations.md); unset: one account.
	EnvOrgScope    = "KEYROTOR_ORG_SCOPE"    // "all", or comma-separated OU, root and account ids
	EnvOrgExclude  = "KEYROTOR_ORG_EXCLUDE"  // comma-separated account ids
	EnvOrgStages   = "KEYROTOR_ORG_STAGES"   // stages separated by ";", each comma-separated OU, root and account ids
	EnvHomeAccount = "KEYROTOR_HOME_ACCOUNT" // the account the stack runs in (set by the stack in organization mode)
	// The domains owner addresses may be in (comma-separated); unset: any.
	EnvOwnerEmailDomains = "KEYROTOR_OWNER_EMAIL_DOMAINS"
	// IAM paths whose users keyrotor never acts on (comma-separated).
	EnvExcludedUserPaths = "KEYROTOR_EXCLUDED_USER_PATHS"
	// Who may read a stored key besides its owner (docs/security.md): the
	// role create-and-store runs as (set by the stack) and the operator's
	// break-glass principals.
	EnvStoreRoleARN = "KEYROTOR_STORE_ROLE_ARN"
	EnvBreakGlass   = "KEYROTOR_BREAK_GLASS" // comma-separated IAM role or user ARNs
	// The deliver step's role (set by the stack): it reads a stored key to
	// deliver it, so the key's resource policy lets it in too.
	EnvDeliverRoleARN = "KEYROTOR_DELIVER_ROLE_ARN"
	// Where delivery may write in AWS (docs/delivery.md): SSM parameter
	// name patterns and Secrets Manager secret name patterns, comma-
	// separated, "*" at the end only. The stack grants exactly these.
	EnvDeliveryParameters = "KEYROTOR_DELIVERY_PARAMETERS"
	EnvDeliverySecrets    = "KEYROTOR_DELIVERY_SECRETS"
	// Local runs only (the stack never sets it): a destination's API may
	// be plain http on a loopback address (the emulators).
	EnvDeliveryAllowHTTP = "KEYROTOR_DELIVERY_ALLOW_HTTP"
)

// DeliveryCredentialPrefix is the name prefix of the hub secrets that hold
// destinations' API tokens: a destination's credential must be under it,
// and the deliver step's role may read nothing else but stored keys.
const DeliveryCredentialPrefix = "keyrotor-delivery/"

// The organization mode's fixed names: the member stack (infra/member.go)
// creates them in every member account, so the hub builds their ARNs for
// any account without looking them up.
const (
	// MemberRoleName: arn:<partition>:iam::<account>:role/KeyRotorMember.
	MemberRoleName = "KeyRotorMember"
	// MemberKeyAlias is the member account's key for the secrets stored there.
	MemberKeyAlias = "alias/KeyRotorMember"
	// ScopeAll is the organization scope of every account.
	ScopeAll = "all"
)

// Defaults.
const (
	DefaultMaxKeyAgeDays = 90
	DefaultUnusedDays    = 45
	DefaultGracePeriod   = 7 * 24 * time.Hour
	DefaultHoldDays      = 30
	// DefaultAdoptionCheck is how often a rotation in its adoption window
	// checks whether the new key is in use.
	DefaultAdoptionCheck = 24 * time.Hour
	// RecordingInterval is how late IAM may record a key's use: it
	// "tracks last used information at up to a 15-minute interval"
	// (Getting credential reports, IAM User Guide). Two adoption checks
	// closer than that cannot tell a key unused from a use not yet
	// recorded.
	RecordingInterval   = 15 * time.Minute
	DefaultSecretPrefix = "iam-access-keys/"
	DefaultEmailTag     = "email"
	DefaultExemptTag    = "keyrotor:exempt"
	// MaxHoldDays bounds HoldDays: a year, the longest anyone should leave
	// a key alone without a decision.
	MaxHoldDays = 365
	// ExemptTagValue is the value of the exemption tag that exempts a user.
	ExemptTagValue = "true"
)

// Config is every setting a keyrotor function may read.
type Config struct {
	MaxKeyAgeDays   int           // an Active key older than this is rotated
	UnusedDays      int           // an Active key unused this long is retired
	GracePeriod     time.Duration // between deactivation and deletion
	SecretPrefix    string        // secret name = prefix + user name
	EmailTag        string        // IAM user tag holding the owner's address
	ExemptTag       string        // IAM user tag that, set to "true", exempts the user
	ExemptGroup     string        // optional IAM group whose members are exempt
	Sender          string        // SES sender address (verified identity)
	AdminTopicARN   string        // SNS topic for admin messages
	KMSKeyID        string        // optional KMS key for the secrets
	ReportBucket    string        // S3 bucket for plans, results and reports
	RetirePasswords bool          // remove console passwords unused for UnusedDays
	RotationTable   string        // DynamoDB table of rotation records (shared/ledger)
	HoldDays        int           // hands off a rotation a person interfered with, this long
	// AdoptionWindow, when positive, keeps the old key Active after the
	// owner's notice until the new key is in use and the old one no longer
	// is (checked every AdoptionCheck), or until the window ends.
	AdoptionWindow time.Duration
	AdoptionCheck  time.Duration
	// AdoptionReminders are the points before the window's end at which an
	// owner who has not switched yet is reminded; nil: half-way and one
	// check before the end (see Reminders).
	AdoptionReminders []time.Duration
	// RecordingIntervalOverride replaces RecordingInterval for runs
	// against an emulated account (EnvRecordingInterval); 0: IAM's.
	RecordingIntervalOverride time.Duration
	// StatusLagOverride replaces ledger.StatusLag for runs against an
	// emulated account (EnvStatusLag); 0: IAM's.
	StatusLagOverride time.Duration

	// OrgScope, when set, turns the organization mode on: the accounts
	// rotated are those of the organization under these OU, root or
	// account ids (or ScopeAll), minus OrgExclude, stage by stage
	// (OrgStages: an account in no stage is in a last one).
	OrgScope   []string
	OrgExclude []string
	OrgStages  [][]string
	// HomeAccount is the account the functions run in (the hub); its users
	// are reached without assuming a role.
	HomeAccount string
	// OwnerEmailDomains, when set, are the only domains (lowercase) an
	// owner address (EmailTag) may be in; an address elsewhere is not
	// mailed and the admins are told.
	OwnerEmailDomains []string
	// ExcludedUserPaths are IAM paths (such as /breakglass/) whose users
	// keyrotor never acts on: find reports them exempt, and the roles
	// deny writing their credentials.
	ExcludedUserPaths []string

	// StoreRoleARN is the role create-and-store acts as in the account of
	// the secrets it stores (the stack sets the function's role; in a
	// member account lambdastep sets the member role): the one keyrotor
	// principal a stored key's resource policy lets in. BreakGlass are the
	// operator's principals (IAM role or user ARNs) that may read and
	// manage every stored key too, to recover (docs/security.md).
	StoreRoleARN string
	BreakGlass   []string
	// DeliverRoleARN is the deliver step's role, which reads stored keys
	// to deliver them (single-account mode; a member's secrets are read
	// through its member role, StoreRoleARN there).
	DeliverRoleARN string
	// DeliveryParameters and DeliverySecrets are the SSM parameter and
	// Secrets Manager secret name patterns destinations may write ("/ci/*",
	// "ci/aws-*"); none: no AWS destination may be written.
	DeliveryParameters []string
	DeliverySecrets    []string
	// DeliveryAllowHTTP: local runs only (see EnvDeliveryAllowHTTP).
	DeliveryAllowHTTP bool
}

// DeliveryAllowed reports whether name matches one of patterns (exact, or
// a prefix ending in "*").
func DeliveryAllowed(patterns []string, name string) bool {
	for _, p := range patterns {
		if p == name || strings.HasSuffix(p, "*") && strings.HasPrefix(name, strings.TrimSuffix(p, "*")) {
			return true
		}
	}
	return false
}

// patternsOverlap reports whether two name patterns (a name, or a prefix
// ending in *) can match one name.
func patternsOverlap(a, b string) bool {
	pa, wa := strings.CutSuffix(a, "*")
	pb, wb := strings.CutSuffix(b, "*")
	switch {
	case wa && wb:
		return strings.HasPrefix(pa, pb) || strings.HasPrefix(pb, pa)
	case wa:
		return strings.HasPrefix(pb, pa)
	case wb:
		return strings.HasPrefix(pa, pb)
	}
	return a == b
}

// UnderExcludedPath returns the excluded path the user of arn (an IAM
// user ARN, which holds the user's path) is under, or "".
func (c Config) UnderExcludedPath(arn string) string {
	_, res, ok := strings.Cut(arn, ":user/")
	if !ok {
		return ""
	}
	for _, p := range c.ExcludedUserPaths {
		if strings.HasPrefix("/"+res, p) {
			return p
		}
	}
	return ""
}

// Organization reports whether the organization mode is on.
func (c Config) Organization() bool { return len(c.OrgScope) > 0 }

// Reminders returns the reminder points of the adoption window (before its
// end), latest first, each inside the window and after its first check.
func (c Config) Reminders() []time.Duration {
	pts := c.AdoptionReminders
	if pts == nil {
		pts = []time.Duration{c.AdoptionWindow / 2, c.adoptionCheck()}
	}
	var out []time.Duration
	for _, p := range pts {
		if p > 0 && p < c.AdoptionWindow && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

func (c Config) adoptionCheck() time.Duration {
	if c.AdoptionCheck > 0 {
		return c.AdoptionCheck
	}
	return DefaultAdoptionCheck
}

// DefaultDeliveryWindow is the adoption window of a rotation whose new key
// was delivered to destinations that ask for evidence, when no
// AdoptionWindow is set: its end is when the admins are told that nothing
// uses the new key yet (the old key stays Active until something does).
const DefaultDeliveryWindow = 7 * 24 * time.Hour

// Window is the adoption window a rotation gets: AdoptionWindow, or for a
// delivered key that switches over on evidence, DefaultDeliveryWindow when
// none is set. 0: none.
func (c Config) Window(evidence bool) time.Duration {
	if c.AdoptionWindow > 0 || !evidence {
		return c.AdoptionWindow
	}
	return DefaultDeliveryWindow
}

// CheckEvery is the time between two checks of an adoption window.
func (c Config) CheckEvery() time.Duration { return c.adoptionCheck() }

// Recording is the recording interval of a key's last use the adoption
// checks rely on: IAM's, unless an emulated account's run scaled it.
func (c Config) Recording() time.Duration {
	if c.RecordingIntervalOverride > 0 {
		return c.RecordingIntervalOverride
	}
	return RecordingInterval
}

// Error names the variable that is wrong and how to fix it.
type Error struct{ Var, Value, Fix string }

func (e *Error) Error() string {
	return fmt.Sprintf("config: %s=%q: %s", e.Var, e.Value, e.Fix)
}

// Default returns the configuration with every default applied.
func Default() Config {
	return Config{
		MaxKeyAgeDays: DefaultMaxKeyAgeDays,
		UnusedDays:    DefaultUnusedDays,
		GracePeriod:   DefaultGracePeriod,
		HoldDays:      DefaultHoldDays,
		SecretPrefix:  DefaultSecretPrefix,
		EmailTag:      DefaultEmailTag,
		ExemptTag:     DefaultExemptTag,
	}
}

// FromEnv reads the configuration through getenv (os.Getenv in main).
func FromEnv(getenv func(string) string) (Config, error) {
	c := Default()
	var err error
	if c.MaxKeyAgeDays, err = days(getenv, EnvMaxKeyAgeDays, c.MaxKeyAgeDays); err != nil {
		return Config{}, err
	}
	if c.UnusedDays, err = days(getenv, EnvUnusedDays, c.UnusedDays); err != nil {
		return Config{}, err
	}
	if c.HoldDays, err = days(getenv, EnvHoldDays, c.HoldDays); err != nil {
		return Config{}, err
	}
	if v := strings.TrimSpace(getenv(EnvGracePeriod)); v != "" {
		d, perr := time.ParseDuration(v)
		if perr != nil || d < 0 {
			return Config{}, &Error{EnvGracePeriod, v, "want a non-negative Go duration such as 168h (7 days) or 0s"}
		}
		c.GracePeriod = d
	}
	str := func(name string, dst *string) {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			*dst = v
		}
	}
	str(EnvSecretPrefix, &c.SecretPrefix)
	str(EnvEmailTag, &c.EmailTag)
	str(EnvExemptTag, &c.ExemptTag)
	str(EnvExemptGroup, &c.ExemptGroup)
	str(EnvSender, &c.Sender)
	str(EnvAdminTopicARN, &c.AdminTopicARN)
	str(EnvKMSKeyID, &c.KMSKeyID)
	str(EnvReportBucket, &c.ReportBucket)
	str(EnvRotationTable, &c.RotationTable)
	for _, d := range []struct {
		name string
		dst  *time.Duration
	}{{EnvAdoptionWindow, &c.AdoptionWindow}, {EnvAdoptionCheck, &c.AdoptionCheck}, {EnvRecordingInterval, &c.RecordingIntervalOverride}, {EnvStatusLag, &c.StatusLagOverride}} {
		if v := strings.TrimSpace(getenv(d.name)); v != "" {
			x, perr := time.ParseDuration(v)
			if perr != nil || x < 0 {
				return Config{}, &Error{d.name, v, "want a non-negative Go duration such as 336h (14 days) or 0s (no adoption window)"}
			}
			*d.dst = x
		}
	}
	if v := strings.TrimSpace(getenv(EnvAdoptionReminders)); v != "" {
		c.AdoptionReminders = []time.Duration{}
		for _, f := range strings.Split(v, ",") {
			x, perr := time.ParseDuration(strings.TrimSpace(f))
			if perr != nil || x <= 0 {
				return Config{}, &Error{EnvAdoptionReminders, v, "want a comma-separated list of positive Go durations before the window's end, such as 168h,24h"}
			}
			c.AdoptionReminders = append(c.AdoptionReminders, x)
		}
	}
	str(EnvHomeAccount, &c.HomeAccount)
	str(EnvStoreRoleARN, &c.StoreRoleARN)
	list := func(v string) []string {
		var out []string
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	if v := strings.TrimSpace(getenv(EnvOrgScope)); v != "" {
		c.OrgScope = list(v)
	}
	if v := strings.TrimSpace(getenv(EnvOwnerEmailDomains)); v != "" {
		c.OwnerEmailDomains = list(v)
	}
	if v := strings.TrimSpace(getenv(EnvExcludedUserPaths)); v != "" {
		c.ExcludedUserPaths = list(v)
	}
	if v := strings.TrimSpace(getenv(EnvBreakGlass)); v != "" {
		c.BreakGlass = list(v)
	}
	str(EnvDeliverRoleARN, &c.DeliverRoleARN)
	if v := strings.TrimSpace(getenv(EnvDeliveryParameters)); v != "" {
		c.DeliveryParameters = list(v)
	}
	if v := strings.TrimSpace(getenv(EnvDeliverySecrets)); v != "" {
		c.DeliverySecrets = list(v)
	}
	c.DeliveryAllowHTTP = strings.TrimSpace(getenv(EnvDeliveryAllowHTTP)) == "true"
	if v := strings.TrimSpace(getenv(EnvOrgExclude)); v != "" {
		c.OrgExclude = list(v)
	}
	if v := strings.TrimSpace(getenv(EnvOrgStages)); v != "" {
		for _, st := range strings.Split(v, ";") {
			c.OrgStages = append(c.OrgStages, list(st))
		}
	}
	if v := strings.TrimSpace(getenv(EnvRetirePasswords)); v != "" {
		b, perr := strconv.ParseBool(v)
		if perr != nil {
			return Config{}, &Error{EnvRetirePasswords, v, "want true or false"}
		}
		c.RetirePasswords = b
	}
	return c, c.Validate()
}

// Validate checks the relations between settings.
func (c Config) Validate() error {
	if c.MaxKeyAgeDays < 1 {
		return &Error{EnvMaxKeyAgeDays, strconv.Itoa(c.MaxKeyAgeDays), "want a whole number of days, 1 or more (default 90)"}
	}
	if c.UnusedDays < 1 {
		return &Error{EnvUnusedDays, strconv.Itoa(c.UnusedDays), "want a whole number of days, 1 or more (default 45)"}
	}
	if c.HoldDays < 1 || c.HoldDays > MaxHoldDays {
		return &Error{EnvHoldDays, strconv.Itoa(c.HoldDays), fmt.Sprintf("want a whole number of days from 1 to %d (default %d)", MaxHoldDays, DefaultHoldDays)}
	}
	if c.GracePeriod > time.Duration(c.MaxKeyAgeDays)*24*time.Hour {
		return &Error{EnvGracePeriod, c.GracePeriod.String(), fmt.Sprintf("the grace period must not be longer than the max key age (%d days), or a key would be due again before its predecessor is deleted", c.MaxKeyAgeDays)}
	}
	if !validSecretPrefix(c.SecretPrefix) {
		return &Error{EnvSecretPrefix, c.SecretPrefix, "use letters, digits and /_+=.@- only, at most 400 characters (default iam-access-keys/)"}
	}
	if c.Sender != "" {
		a, err := mail.ParseAddress(c.Sender)
		if err != nil || a.Address != c.Sender {
			return &Error{EnvSender, c.Sender, "want a bare e-mail address such as keyrotor@example.com, verified in SES"}
		}
	}
	if c.AdoptionWindow > 0 && c.CheckEvery() < c.Recording() {
		return &Error{EnvAdoptionCheck, c.CheckEvery().String(), fmt.Sprintf("the adoption checks must be at least IAM's recording interval of a key's use (%s) apart, or a use not yet recorded passes for evidence: want %s or more (default 24h)", c.Recording(), c.Recording())}
	}
	for _, r := range c.AdoptionReminders {
		if r >= c.AdoptionWindow {
			return &Error{EnvAdoptionReminders, r.String(), fmt.Sprintf("a reminder must come before the adoption window (%s) ends: want a point inside the window, counted back from its end", c.AdoptionWindow)}
		}
	}
	if err := c.validateOrganization(); err != nil {
		return err
	}
	for _, p := range c.ExcludedUserPaths {
		if !userPathRE.MatchString(p) {
			return &Error{EnvExcludedUserPaths, strings.Join(c.ExcludedUserPaths, ","), fmt.Sprintf("%q: want IAM paths that start and end with /, "+
				"such as /breakglass/, of printable ASCII without * or ? (the root path / would exclude every user)", p)}
		}
	}
	for _, d := range c.OwnerEmailDomains {
		if !domainRE.MatchString(d) {
			return &Error{EnvOwnerEmailDomains, strings.Join(c.OwnerEmailDomains, ","), fmt.Sprintf("%q: want lowercase domain names such as example.com (no @, no wildcard)", d)}
		}
	}
	for _, p := range c.BreakGlass {
		if !IsPrincipalARN(p) {
			return &Error{EnvBreakGlass, strings.Join(c.BreakGlass, ","), fmt.Sprintf("%q: want IAM role or user ARNs such as arn:aws:iam::123456789012:role/BreakGlass "+
				"(no wildcards: each principal named may read every stored key)", p)}
		}
	}
	if c.DeliverRoleARN != "" && !IsPrincipalARN(c.DeliverRoleARN) {
		return &Error{EnvDeliverRoleARN, c.DeliverRoleARN, "want the ARN of the deliver step's role (the stack sets it)"}
	}
	for _, l := range []struct {
		env      string
		patterns []string
		example  string
	}{{EnvDeliveryParameters, c.DeliveryParameters, "/ci/*"}, {EnvDeliverySecrets, c.DeliverySecrets, "ci/aws-*"}} {
		for _, p := range l.patterns {
			if p == "" || p == "*" || strings.Contains(strings.TrimSuffix(p, "*"), "*") {
				return &Error{l.env, strings.Join(l.patterns, ","), fmt.Sprintf("%q: want names or name prefixes ending in * such as %s (not * alone: name what delivery may overwrite)", p, l.example)}
			}
		}
	}
	// Delivery overwrites what deliverySecrets names: never keyrotor's own
	// secrets (a stored key's resource policy lets keyrotor's roles write
	// it, so only this check would stand between a broad pattern and
	// another user's stored key or a destination's token).
	for _, p := range c.DeliverySecrets {
		for _, own := range []string{c.SecretPrefix, DeliveryCredentialPrefix} {
			if own != "" && patternsOverlap(p, own+"*") {
				return &Error{EnvDeliverySecrets, strings.Join(c.DeliverySecrets, ","), fmt.Sprintf("%q may name keyrotor's own secrets (%s*): delivery must never overwrite a stored key or a destination's token; name your pipelines' secrets outside %s and %s", p, own, c.SecretPrefix, DeliveryCredentialPrefix)}
			}
		}
	}
	if c.StoreRoleARN != "" && !IsPrincipalARN(c.StoreRoleARN) {
		return &Error{EnvStoreRoleARN, c.StoreRoleARN, "want the ARN of create-and-store's role (the stack sets it)"}
	}
	if c.AdminTopicARN != "" && !strings.HasPrefix(c.AdminTopicARN, "arn:") {
		return &Error{EnvAdminTopicARN, c.AdminTopicARN, "want an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"}
	}
	return nil
}

var (
	accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)
	// A domain name: dot-separated labels of lowercase letters, digits and
	// inner hyphens, at most 253 characters, with a top-level label.
	// An IAM path other than the root: /, then printable ASCII (IAM API
	// Reference, CreateUser, Path), ending with /; no wildcard.
	userPathRE = regexp.MustCompile(`^/[\x21-\x29\x2b-\x3e\x40-\x7e]+/$`)
	domainRE   = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}[a-z0-9]$`)
	// Organizations' id patterns: an OU, the root, an account.
	orgTargetRE = regexp.MustCompile(`^(ou-[a-z0-9]{4,32}-[a-z0-9]{8,32}|r-[a-z0-9]{4,32}|[0-9]{12})$`)
)

// principalARNRE: an IAM role or user ARN, path allowed, no wildcard (IAM
// names: letters, digits and +=,.@_-; IAM User Guide, "IAM identifiers").
var principalARNRE = regexp.MustCompile(`^arn:aws(-[a-z]+)*:iam::[0-9]{12}:(role|user)/([A-Za-z0-9+=,.@_-]+/)*[A-Za-z0-9+=,.@_-]{1,128}$`)

// IsPrincipalARN reports whether s is the ARN of an IAM role or user
// (arn:aws:iam::123456789012:role/Name), without wildcards.
func IsPrincipalARN(s string) bool { return principalARNRE.MatchString(s) }

// IsAccountID reports whether s is a 12-digit AWS account id.
func IsAccountID(s string) bool { return accountIDRE.MatchString(s) }

// IsOrgTarget reports whether s is an OU id (ou-...), a root id (r-...) or
// an account id.
func IsOrgTarget(s string) bool { return orgTargetRE.MatchString(s) }

func (c Config) validateOrganization() error {
	join := func(l []string) string { return strings.Join(l, ",") }
	for _, s := range c.OrgScope {
		if !(s == ScopeAll && len(c.OrgScope) == 1) && !IsOrgTarget(s) {
			return &Error{EnvOrgScope, join(c.OrgScope), fmt.Sprintf("%q: want %q alone, or OU ids (ou-...), the root id (r-...) and 12-digit account ids", s, ScopeAll)}
		}
	}
	if !c.Organization() && (len(c.OrgExclude) > 0 || len(c.OrgStages) > 0) {
		name, v := EnvOrgExclude, join(c.OrgExclude)
		if len(c.OrgStages) > 0 {
			name, v = EnvOrgStages, fmt.Sprint(c.OrgStages)
		}
		return &Error{name, v, "applies to the organization mode only: set the scope too (\"all\", OU ids or account ids), or remove it"}
	}
	for _, a := range c.OrgExclude {
		if !IsAccountID(a) {
			return &Error{EnvOrgExclude, join(c.OrgExclude), fmt.Sprintf("%q: want 12-digit account ids", a)}
		}
	}
	seen := map[string]int{}
	for i, st := range c.OrgStages {
		if len(st) == 0 {
			return &Error{EnvOrgStages, fmt.Sprint(c.OrgStages), fmt.Sprintf("stage %d is empty: list its OU or account ids, or remove it", i+1)}
		}
		for _, s := range st {
			if !IsOrgTarget(s) {
				return &Error{EnvOrgStages, fmt.Sprint(c.OrgStages), fmt.Sprintf("stage %d: %q: want OU ids (ou-...), the root id (r-...) or 12-digit account ids", i+1, s)}
			}
			if j, ok := seen[s]; ok {
				return &Error{EnvOrgStages, fmt.Sprint(c.OrgStages), fmt.Sprintf("%q is in stage %d and stage %d: name it in one stage only", s, j+1, i+1)}
			}
			seen[s] = i
		}
	}
	if c.HomeAccount != "" && !IsAccountID(c.HomeAccount) {
		return &Error{EnvHomeAccount, c.HomeAccount, "want the 12-digit account id of the hub (the stack sets it)"}
	}
	return nil
}

func days(getenv func(string) string, name string, def int) (int, error) {
	v := strings.TrimSpace(getenv(name))
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 3650 {
		return 0, &Error{name, v, fmt.Sprintf("want a whole number of days from 1 to 3650 (default %d)", def)}
	}
	return n, nil
}

func validSecretPrefix(p string) bool {
	if p == "" || len(p) > 400 {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/_+=.@-", r)) {
			return false
		}
	}
	return true
}

// Env returns c as the environment variables FromEnv reads, for the CDK
// stack and the local runner. Empty optional settings are left out.
func (c Config) Env() map[string]string {
	m := map[string]string{
		EnvMaxKeyAgeDays: strconv.Itoa(c.MaxKeyAgeDays),
		EnvUnusedDays:    strconv.Itoa(c.UnusedDays),
		EnvGracePeriod:   c.GracePeriod.String(),
		EnvSecretPrefix:  c.SecretPrefix,
		EnvEmailTag:      c.EmailTag,
		EnvExemptTag:     c.ExemptTag,
		EnvHoldDays:      strconv.Itoa(c.HoldDays),
	}
	opt := map[string]string{EnvExemptGroup: c.ExemptGroup, EnvSender: c.Sender, EnvAdminTopicARN: c.AdminTopicARN,
		EnvKMSKeyID: c.KMSKeyID, EnvReportBucket: c.ReportBucket, EnvRotationTable: c.RotationTable}
	for k, v := range opt {
		if v != "" {
			m[k] = v
		}
	}
	if c.RetirePasswords {
		m[EnvRetirePasswords] = "true"
	}
	if c.Organization() {
		m[EnvOrgScope] = strings.Join(c.OrgScope, ",")
		if len(c.OrgExclude) > 0 {
			m[EnvOrgExclude] = strings.Join(c.OrgExclude, ",")
		}
		if len(c.OrgStages) > 0 {
			var st []string
			for _, s := range c.OrgStages {
				st = append(st, strings.Join(s, ","))
			}
			m[EnvOrgStages] = strings.Join(st, ";")
		}
	}
	if c.HomeAccount != "" {
		m[EnvHomeAccount] = c.HomeAccount
	}
	if len(c.ExcludedUserPaths) > 0 {
		m[EnvExcludedUserPaths] = strings.Join(c.ExcludedUserPaths, ",")
	}
	if len(c.OwnerEmailDomains) > 0 {
		m[EnvOwnerEmailDomains] = strings.Join(c.OwnerEmailDomains, ",")
	}
	if c.StoreRoleARN != "" {
		m[EnvStoreRoleARN] = c.StoreRoleARN
	}
	if len(c.BreakGlass) > 0 {
		m[EnvBreakGlass] = strings.Join(c.BreakGlass, ",")
	}
	if c.DeliverRoleARN != "" {
		m[EnvDeliverRoleARN] = c.DeliverRoleARN
	}
	if len(c.DeliveryParameters) > 0 {
		m[EnvDeliveryParameters] = strings.Join(c.DeliveryParameters, ",")
	}
	if len(c.DeliverySecrets) > 0 {
		m[EnvDeliverySecrets] = strings.Join(c.DeliverySecrets, ",")
	}
	if c.DeliveryAllowHTTP {
		m[EnvDeliveryAllowHTTP] = "true"
	}
	if c.StatusLagOverride > 0 {
		m[EnvStatusLag] = c.StatusLagOverride.String()
	}
	if c.AdoptionWindow > 0 {
		m[EnvAdoptionWindow] = c.AdoptionWindow.String()
		m[EnvAdoptionCheck] = c.adoptionCheck().String()
		if c.RecordingIntervalOverride > 0 {
			m[EnvRecordingInterval] = c.RecordingIntervalOverride.String()
		}
		if c.AdoptionReminders != nil {
			var parts []string
			for _, r := range c.AdoptionReminders {
				parts = append(parts, r.String())
			}
			m[EnvAdoptionReminders] = strings.Join(parts, ",")
		}
	}
	return m
}
