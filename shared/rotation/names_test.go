package rotation

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyrotor/keyrotor/shared/ledger"
)

// userChars are the characters of IAM user names (IAM API Reference,
// CreateUser, UserName: [\w+=,.@-]+, 1 to 64 characters).
const userChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+=,.@_-"

// named is one execution the name builder names.
type named struct {
	account, user, id string
	rotation, attempt int
}

func (n named) name() string {
	return executionName(n.account, n.user, n.id, n.rotation, n.attempt)
}

// checkName asserts what every execution name keeps: 1-80 characters of
// 0-9A-Za-z-_ (log-safe), the start of the user's name (with the account
// in organization mode), and a real key's id whole at its end.
func checkName(t *testing.T, n named) string {
	t.Helper()
	got := n.name()
	if got == "" || len(got) > maxExecutionName || logSafe(got) != got {
		t.Fatalf("executionName(%+v) = %q: want 1-80 characters of 0-9A-Za-z-_", n, got)
	}
	who := n.user
	if n.account != "" {
		who = n.account + "-" + n.user
	}
	if want := clip(logSafe(who), minUserPart); !strings.HasPrefix(got, want) {
		t.Fatalf("executionName(%+v) = %q; want it to start with %q", n, got, want)
	}
	tail := fmt.Sprintf("-r%d", n.rotation)
	if n.attempt > 0 {
		tail += fmt.Sprintf("-%d", n.attempt)
	}
	if !strings.HasSuffix(got, tail) {
		t.Fatalf("executionName(%+v) = %q; want it to end with %q", n, got, tail)
	}
	if len(n.id) == 20 && !strings.HasSuffix(got, "-"+n.id+tail) {
		t.Fatalf("executionName(%+v) = %q; want the key id %s whole before %q", n, got, n.id, tail)
	}
	return got
}

// TestExecutionNames: every legal user name length (1-64) and character,
// access keys and console passwords, with and without a member account,
// first and later rotations and attempts: log-safe, at most 80 characters,
// the user's name first, the key id kept, and no two credentials or
// rotations under one name.
func TestExecutionNames(t *testing.T) {
	set := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	seen := map[string]named{}
	for length := 1; length <= 64; length++ {
		for i := range userChars {
			// Every character at every position over the run, and the
			// one-character names of each.
			var b strings.Builder
			for j := range length {
				b.WriteByte(userChars[(i+j)%len(userChars)])
			}
			user := b.String()
			key := fmt.Sprintf("AKIA%016d", length*len(userChars)+i)
			for _, account := range []string{"", "111122223333"} {
				id := ledger.PasswordID(user, set)
				if account != "" {
					id = account + "/" + id
				}
				for _, n := range []named{
					{account, user, key, 1, 0},
					{account, user, key, 2, 0},
					{account, user, key, 1, 3},
					{account, user, id, 1, 0},
					{account, user, id, 12345, 99},
				} {
					got := checkName(t, n)
					if prev, ok := seen[got]; ok && (prev.id != n.id || prev.rotation != n.rotation || prev.attempt != n.attempt) {
						t.Fatalf("%+v and %+v are both named %q", prev, n, got)
					}
					seen[got] = n
				}
			}
		}
	}
}

// TestExecutionNamesExamples pins the naming people see in the console.
func TestExecutionNamesExamples(t *testing.T) {
	set := time.Unix(1772359200, 0)
	long := "c+=,.@_-" + strings.Repeat("z", 56)
	tests := []struct {
		name string
		in   named
		want string
	}{
		{"plain user", named{"", "alice", "AKIAIOSFODNN7EXAMPLE", 1, 0}, "alice-AKIAIOSFODNN7EXAMPLE-r1"},
		{"mail-like user", named{"", "jo.smith@example.com", "AKIAIOSFODNN7EXAMPLE", 2, 0}, "jo_smith_example_com-AKIAIOSFODNN7EXAMPLE-r2"},
		{"later attempt in a member account", named{"111122223333", "a+b=c,d", "AKIAIOSFODNN7EXAMPLE", 1, 2}, "111122223333-a_b_c_d-AKIAIOSFODNN7EXAMPLE-r1-2"},
		{"longest user", named{"", long, "AKIAIOSFODNN7EXAMPLE", 1, 0}, "c______-" + strings.Repeat("z", 48) + "-AKIAIOSFODNN7EXAMPLE-r1"},
		{"password", named{"", "carol", ledger.PasswordID("carol", set), 1, 0}, "carol-pw1772359200_66e278a3-r1"}, // as docs/design.md shows
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.in.name(); got != tt.want {
				t.Fatalf("executionName(%+v) = %q; want %q", tt.in, got, tt.want)
			}
		})
	}
}

// legal maps fuzzed bytes onto a legal user name: 1-64 characters of
// userChars (legal characters stay as they are).
func legal(raw string) string {
	if raw == "" {
		raw = "\x00"
	}
	if len(raw) > 64 {
		raw = raw[:64]
	}
	b := []byte(raw)
	for i, c := range b {
		if !strings.ContainsRune(userChars, rune(c)) {
			b[i] = userChars[int(c)%len(userChars)]
		}
	}
	return string(b)
}

// FuzzExecutionName: for any legal user name, account, access key id or
// console password, rotation and attempt, the name builder does not panic,
// keeps what TestExecutionNames checks, and gives two different
// credentials (or rotations, or attempts) two different names. Raw inputs
// are also fed as they are (not legal), which must not panic either.
func FuzzExecutionName(f *testing.F) {
	for length := 1; length <= 64; length++ {
		u := strings.Repeat(userChars, 2)[length%len(userChars) : length%len(userChars)+length]
		f.Add(u, "x."+u, uint64(length), int64(1772359200+length), true, uint16(1), uint8(0))
	}
	f.Add("", "", uint64(0), int64(0), false, uint16(0), uint8(0))
	f.Add("a+b=c,d.e@f_g-h", "a+b=c,d.e@f_g_h", uint64(7), int64(-1), false, uint16(65535), uint8(255))
	f.Fuzz(func(t *testing.T, user1, user2 string, keyNum uint64, set int64, member bool, rotation uint16, attempt uint8) {
		// Raw: anything at all must not panic.
		_ = executionName(user2, user1, user2+":"+user1, int(rotation)-1, int(attempt)-1)
		account := ""
		if member {
			account = "111122223333"
		}
		u1, u2 := legal(user1), legal(user2)
		key1, key2 := fmt.Sprintf("AKIA%016d", keyNum%1e16), fmt.Sprintf("ASIA%016d", keyNum%1e16)
		pw := func(u string) string {
			id := ledger.PasswordID(u, time.Unix(set, 0))
			if account != "" {
				id = account + "/" + id
			}
			return id
		}
		rot, att := int(rotation), int(attempt)
		pairs := [][2]named{
			{{account, u1, key1, rot, att}, {account, u2, key2, rot, att}},
			{{account, u1, key1, rot, att}, {account, u1, key1, rot + 1, att}},
			{{account, u1, key1, rot, att}, {account, u1, key1, rot, att + 1}},
			{{account, u1, pw(u1), rot, att}, {account, u2, pw(u2), rot, att}},
			{{account, u1, pw(u1), rot, att}, {account, u1, key1, rot, att}},
		}
		for _, p := range pairs {
			a, b := checkName(t, p[0]), checkName(t, p[1])
			if a == b && p[0] != p[1] && (p[0].id != p[1].id || p[0].rotation != p[1].rotation || p[0].attempt != p[1].attempt) {
				t.Fatalf("%+v and %+v are both named %q", p[0], p[1], a)
			}
		}
	})
}
