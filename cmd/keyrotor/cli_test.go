package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHelp: -h on the command and on every subcommand prints the usage to
// stdout, nothing to stderr, and exits 0.
func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"help"}, {"run", "-h"}, {"demo", "-h"}, {"audit", "-h"}, {"release", "-h"}, {"version", "-h"}, {"run", "--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			code, out, errOut := keyrotor(t, "", args...)
			if code != 0 || !strings.Contains(out, "usage") && !strings.Contains(out, "Usage") || errOut != "" {
				t.Fatalf("keyrotor %v: exit %d\nstdout: %s\nstderr: %s", args, code, out, errOut)
			}
		})
	}
}

// TestUsageErrors: a usage error or a bad input is one "keyrotor ..." line
// on stderr naming the flag, and exit status 2; nothing runs.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no command", "", nil, "Usage"},
		{"unknown command", "", []string{"rotate"}, `keyrotor: unknown command "rotate"`},
		{"unknown flag", "", []string{"run", "--endpoit", "x"}, "keyrotor run: flag provided but not defined: -endpoit"},
		{"stray argument", "", []string{"release", "AKIA1"}, `keyrotor release: unexpected argument "AKIA1"`},
		{"empty standard input", "", []string{"run", "--endpoint", "http://127.0.0.1:1", "--input", "-"}, "keyrotor run: --input: standard input is empty"},
		{"blank standard input", "\n  \n", []string{"run", "--endpoint", "http://127.0.0.1:1", "--input", "-"}, "keyrotor run: --input: standard input is empty"},
		{"inline JSON with a bad field", "", []string{"run", "--endpoint", "http://127.0.0.1:1", "--input", `{"user":["alice"]}`}, "keyrotor run: --input:"},
		{"remote endpoint", "", []string{"run", "--endpoint", "https://iam.amazonaws.com"}, "keyrotor run: --endpoint https://iam.amazonaws.com is not on this machine"},
		{"private address", "", []string{"run", "--endpoint", "http://10.0.0.5:5000"}, "--allow-remote-endpoint"},
		{"not a URL", "", []string{"run", "--endpoint", "127.0.0.1:5000"}, "want a URL such as http://127.0.0.1:5000"},
		{"release without key", "", []string{"release"}, "keyrotor release: --key is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := keyrotor(t, tt.stdin, tt.args...)
			if code != 2 || !strings.Contains(errOut, tt.want) || out != "" {
				t.Fatalf("keyrotor %v: exit %d\nstdout: %s\nstderr: %s\nwant exit 2 and %q", tt.args, code, out, errOut, tt.want)
			}
			if tt.args != nil && strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
				t.Fatalf("keyrotor %v: more than one line on stderr:\n%s", tt.args, errOut)
			}
		})
	}
}

// TestInputForms: --input takes a file, - or the JSON itself.
func TestInputForms(t *testing.T) {
	for _, tt := range []struct {
		name, path, stdin string
	}{
		{"inline", `{"users":["alice"]}`, ""},
		{"standard input", "-", `{"users":["alice"]}` + "\n"},
		{"file", "testdata/input-alice.json", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readInput(tt.path, strings.NewReader(tt.stdin))
			if err != nil || string(got) != `{"users":["alice"]}` {
				t.Fatalf("readInput(%q) = %s, %v", tt.path, got, err)
			}
		})
	}
}

// TestVersion: keyrotor version prints a version to stdout.
func TestVersion(t *testing.T) {
	code, out, errOut := keyrotor(t, "", "version")
	if code != 0 || !strings.HasPrefix(out, "keyrotor ") || errOut != "" {
		t.Fatalf("version: exit %d, %q, %q", code, out, errOut)
	}
}

// TestAuditCDKJSONUnknownKey: audit --cdk-json refuses a misspelled
// setting as synthesis does, naming the key it is closest to.
func TestAuditCDKJSONUnknownKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cdk.json")
	if err := os.WriteFile(path, []byte(`{"context":{"gracedays":3}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := keyrotor(t, "", "audit", "--endpoint", "http://127.0.0.1:1", "--cdk-json", path)
	if code != 2 || out != "" || !strings.Contains(errOut, `context gracedays="3"`) || !strings.Contains(errOut, `did you mean "graceDays"?`) {
		t.Fatalf("audit --cdk-json with gracedays: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
}
