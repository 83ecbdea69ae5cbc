package notice

import (
	"strings"
	"testing"
)

func TestOwnerAddress(t *testing.T) {
	tests := []struct {
		name, raw string
		domains   []string
		want      string // "" : refused
		problem   string
	}{
		{"bare", "alice@corp.example", nil, "alice@corp.example", ""},
		{"trimmed", "  alice@corp.example ", nil, "alice@corp.example", ""},
		{"allowed domain, any case", "alice@Corp.Example", []string{"corp.example"}, "alice@Corp.Example", ""},
		{"a list", "evil@attacker.example, alice@corp.example", nil, "", "not one e-mail address"},
		{"display name", `"Alice" <alice@corp.example>`, nil, "", "not a bare e-mail address"},
		{"angle brackets", "<alice@corp.example>", nil, "", "not a bare e-mail address"},
		{"domain not allowed", "alice@attacker.example", []string{"corp.example"}, "", "in domain attacker.example"},
		{"subdomain not allowed", "alice@mail.corp.example", []string{"corp.example"}, "", "in domain mail.corp.example"},
		{"non-ASCII", "alicé@corp.example", nil, "", "not a plain ASCII"},
		{"empty", "", nil, "", "not one e-mail address"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problem := OwnerAddress(tt.raw, tt.domains)
			if got != tt.want || !strings.Contains(problem, tt.problem) || (tt.want == "") == (problem == "") {
				t.Fatalf("OwnerAddress(%q) = %q, %q; want %q, a problem containing %q", tt.raw, got, problem, tt.want, tt.problem)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "a@b.example", `"a@b.example"`},
		{"control characters removed", "a@b\r\nSubject: x\x1b[31m", `"a@bSubject: x[31m"`},
		{"format characters removed", "a\u202eb", `"ab"`},
		{"quotes escaped", `"A" <a@b>`, `"\"A\" <a@b>"`},
		{"cut", strings.Repeat("x", 200), `"` + strings.Repeat("x", MaxQuoted) + `..."`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Quote(tt.in); got != tt.want {
				t.Fatalf("Quote(%q) = %s; want %s", tt.in, got, tt.want)
			}
		})
	}
}
