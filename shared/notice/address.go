package notice

import (
	"fmt"
	"net/mail"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxQuoted is the longest a value from a tag is quoted in a message to
// the admins (runes, before quoting).
const MaxQuoted = 80

// OwnerAddress checks an owner address read from a user tag: exactly one
// bare ASCII address (no display name, no angle brackets, no list; RFC
// 5322 addr-spec as net/mail parses it), in one of domains when domains
// is set (lowercase, exact match). It returns the address, or a problem
// to tell the admins: anyone allowed iam:TagUser writes the tag, and the
// notice must reach the owner, not whoever wrote it.
func OwnerAddress(raw string, domains []string) (string, string) {
	v := strings.TrimSpace(raw)
	a, err := mail.ParseAddress(v)
	switch {
	case err != nil:
		return "", "is not one e-mail address: want one address such as alice@example.com"
	case a.Name != "" || a.Address != v:
		return "", "is not a bare e-mail address (no display name, angle brackets or list): want one address such as alice@example.com"
	}
	for _, r := range v {
		if r < 0x21 || r > 0x7e {
			return "", "is not a plain ASCII e-mail address (it has spaces, control or non-ASCII characters)"
		}
	}
	domain := strings.ToLower(v[strings.LastIndex(v, "@")+1:])
	if len(domains) > 0 && !slices.Contains(domains, domain) {
		return "", fmt.Sprintf("is in domain %s, which ownerEmailDomains does not allow (%s)", domain, strings.Join(domains, ", "))
	}
	return v, ""
}

// Quote returns a value read from a tag (or any outside source) for a
// message to people: control and format characters removed, cut to
// MaxQuoted runes (marked with ...), in Go's double quotes, which escape
// what is left.
func Quote(v string) string {
	v = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError {
			return -1
		}
		return r
	}, v)
	if utf8.RuneCountInString(v) > MaxQuoted {
		v = string([]rune(v)[:MaxQuoted]) + "..."
	}
	return fmt.Sprintf("%q", v)
}
