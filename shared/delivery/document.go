package delivery

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sort"
	"strings"
)

// DocumentVersion is the only version of the document format.
const DocumentVersion = 1

// MaxDestinations bounds one user's destinations: each is written and
// read back inside one Lambda invocation.
const MaxDestinations = 10

// Adoption settings of a Document.
const (
	// AdoptionEvidence (the default with destinations): the old key goes
	// off only once the delivered key is seen in use and the old one no
	// longer is; at the window's deadline without that evidence the old
	// key stays and the admins are told.
	AdoptionEvidence = "evidence"
	// AdoptionOff: the rotation goes on as one without destinations (the
	// stack's adoptionDays decides), once every destination holds the key.
	AdoptionOff = "off"
)

// Document is one IAM user's destinations.
type Document struct {
	Version      int    `json:"version"`
	Adoption     string `json:"adoption,omitempty"`
	Destinations []Spec `json:"destinations"`
}

// Spec is one destination: its type and that type's fields. Fields of
// other types must be empty.
type Spec struct {
	Type string `json:"type"`

	// IDName and SecretName name the two values: CI variables (default
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), the two SSM parameters
	// (required), or the two keys of a Secrets Manager secret's JSON
	// (same defaults).
	IDName     string `json:"idName,omitempty"`
	SecretName string `json:"secretName,omitempty"`
	// Credential names the hub secret (Secrets Manager, in the account
	// keyrotor runs in) that holds the API token of a CI system.
	Credential string `json:"credential,omitempty"`
	// URL is the API's base URL, for GitHub Enterprise Server or a
	// self-managed GitLab; default the public service. https only.
	URL string `json:"url,omitempty"`

	// github: a repository secret (Repository), an environment secret
	// (Repository and Environment) or an organization secret
	// (Organization).
	Repository   string `json:"repository,omitempty"`
	Environment  string `json:"environment,omitempty"`
	Organization string `json:"organization,omitempty"`

	// gitlab: a project variable (Project: id or full path) or a group
	// variable (Group), of EnvironmentScope ("*" when empty).
	// circleci: a project variable (Project: slug such as gh/org/repo) or
	// a context variable (Context: the context's id).
	Project          string `json:"project,omitempty"`
	Group            string `json:"group,omitempty"`
	EnvironmentScope string `json:"environmentScope,omitempty"`
	Context          string `json:"context,omitempty"`

	// ssm and secretsmanager: where. Account "" is the user's own account
	// (keyrotor's own for a user of the hub; see AccountFor); another
	// account is reached, in organization mode, through its member role.
	// Region "" is keyrotor's own region. SecretID is the Secrets Manager
	// secret's name or ARN.
	Account  string `json:"account,omitempty"`
	Region   string `json:"region,omitempty"`
	SecretID string `json:"secretId,omitempty"`
}

// ParseDocument reads and validates a document: known fields only, the
// current version, 1 to MaxDestinations destinations of registered types,
// each valid for its type, no destination twice. Its error names the
// field, as a JSON path, and the fix.
func ParseDocument(b []byte) (*Document, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var d Document
	if err := dec.Decode(&d); err != nil {
		return nil, jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &FieldError{Field: "document", Msg: "holds more than one JSON value; want one object"}
	}
	return &d, d.Validate()
}

// Validate checks the document as ParseDocument does.
func (d *Document) Validate() error {
	switch {
	case d.Version != DocumentVersion:
		return &FieldError{Field: "version", Msg: fmt.Sprintf("got %d; want %d", d.Version, DocumentVersion)}
	case d.Adoption != "" && d.Adoption != AdoptionEvidence && d.Adoption != AdoptionOff:
		return &FieldError{Field: "adoption", Msg: fmt.Sprintf("got %q; want %q (the default) or %q", d.Adoption, AdoptionEvidence, AdoptionOff)}
	case len(d.Destinations) == 0:
		return &FieldError{Field: "destinations", Msg: "empty; list at least one destination, or remove the document"}
	case len(d.Destinations) > MaxDestinations:
		return &FieldError{Field: "destinations", Msg: fmt.Sprintf("%d destinations; at most %d", len(d.Destinations), MaxDestinations)}
	}
	seen := map[string]int{}
	for i, s := range d.Destinations {
		field := fmt.Sprintf("destinations[%d]", i)
		k, ok := kindOf(s.Type)
		if !ok {
			return &FieldError{Field: field + ".type", Msg: fmt.Sprintf("unknown destination type %q; want one of %s", s.Type, strings.Join(Types(), ", "))}
		}
		if err := k.check(s, field); err != nil {
			return err
		}
		id := s.identity()
		if j, dup := seen[id]; dup {
			return &FieldError{Field: field, Msg: fmt.Sprintf("the same destination as destinations[%d]; list it once", j)}
		}
		seen[id] = i
	}
	return nil
}

// Evidence reports whether the rotation must see the delivered key in use
// before the old one goes off.
func (d *Document) Evidence() bool { return d.Adoption != AdoptionOff }

// identity is the spec without its names' defaults applied: two specs of
// the same identity write the same place.
func (s Spec) identity() string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Names returns the two value names, with the CI defaults.
func (s Spec) Names() (id, secret string) {
	id, secret = s.IDName, s.SecretName
	if id == "" {
		id = "AWS_ACCESS_KEY_ID"
	}
	if secret == "" {
		secret = "AWS_SECRET_ACCESS_KEY"
	}
	return id, secret
}

// Only returns a FieldError for the first non-empty field of s not in
// allowed (JSON names): a field of another destination type is a mistake.
func (s Spec) Only(field string, allowed ...string) error {
	b, _ := json.Marshal(s)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	ok := map[string]bool{"type": true}
	for _, a := range allowed {
		ok[a] = true
	}
	for _, name := range sortedKeys(m) {
		if !ok[name] {
			return &FieldError{Field: join(field, name), Msg: fmt.Sprintf("not a field of a %s destination; remove it (it takes %s)", s.Type, strings.Join(allowed, ", "))}
		}
	}
	return nil
}

// Required returns a FieldError when value is empty.
func Required(field, name, value, what string) error {
	if strings.TrimSpace(value) == "" {
		return &FieldError{Field: join(field, name), Msg: "missing: " + what}
	}
	return nil
}

// CheckURL accepts an API base URL: https, or http on a loopback address
// when allowHTTP (local runs and tests).
func CheckURL(field, raw string, allowHTTP bool) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return &FieldError{Field: join(field, "url"), Msg: fmt.Sprintf("%q is not an absolute URL; want https://host[/path]", raw)}
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && allowHTTP && isLoopback(u.Hostname()):
		return nil
	}
	return &FieldError{Field: join(field, "url"), Msg: fmt.Sprintf("%q: keys are delivered over TLS only; want https://", raw)}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func join(field, name string) string {
	if field == "" {
		return name
	}
	return field + "." + name
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.Is(err, io.EOF):
		return &FieldError{Field: "document", Msg: "empty; want a JSON object with version and destinations (docs/delivery.md)"}
	case errors.As(err, &se):
		return &FieldError{Field: "document", Msg: fmt.Sprintf("not JSON (offset %d): %v", se.Offset, err)}
	case errors.As(err, &te):
		return &FieldError{Field: te.Field, Msg: fmt.Sprintf("want a %s", te.Type)}
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return &FieldError{Field: name, Msg: "unknown field; see docs/delivery.md for the document's fields"}
	}
	return &FieldError{Field: "document", Msg: err.Error()}
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
