package github

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/nacl/box"
)

// call sends one request with the emulator's token (tok "" sends none)
// and returns the status and decoded JSON answer.
func call(t *testing.T, s *Server, tok, method, path string, body any, hdr ...string) (int, map[string]any, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	b, _ := io.ReadAll(resp.Body)
	if len(b) > 0 {
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s %s: answer %q is not JSON: %v", method, path, b, err)
		}
	}
	return resp.StatusCode, out, resp.Header
}

// sealFor fetches a scope's public key at prefix and seals value with it.
func sealFor(t *testing.T, s *Server, prefix, value string) map[string]any {
	t.Helper()
	st, key, _ := call(t, s, s.Token(), "GET", prefix+"/public-key", nil)
	if st != 200 {
		t.Fatalf("GET %s/public-key = %d; want 200", prefix, st)
	}
	return map[string]any{"key_id": key["key_id"], "encrypted_value": seal(t, key["key"].(string), value)}
}

func seal(t *testing.T, b64key, value string) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64key)
	if err != nil || len(raw) != 32 {
		t.Fatalf("public key %q is not 32 bytes of base64", b64key)
	}
	var pub [32]byte
	copy(pub[:], raw)
	out, err := box.SealAnonymous(nil, []byte(value), &pub, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(out)
}

func start(t *testing.T) *Server {
	t.Helper()
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	s.AddRepo("octo/app")
	s.AddEnvironment("octo/app", "prod")
	s.AddOrg("octo")
	return s
}

func TestGate(t *testing.T) {
	s := start(t)
	tests := []struct {
		name   string
		tok    string
		hdr    []string
		path   string
		status int
		msg    string
	}{
		{name: "no token", tok: "", path: "/repos/octo/app/actions/secrets/public-key", status: 401, msg: "Requires authentication"},
		{name: "wrong token", tok: "ghp_wrong", path: "/repos/octo/app/actions/secrets/public-key", status: 401, msg: "Bad credentials"},
		{name: "unsupported API version", tok: s.Token(), hdr: []string{"X-GitHub-Api-Version", "2020-01-01"}, path: "/repos/octo/app/actions/secrets/public-key", status: 400},
		{name: "repository key", tok: s.Token(), hdr: []string{"X-GitHub-Api-Version", APIVersion}, path: "/repos/octo/app/actions/secrets/public-key", status: 200},
		{name: "names are case-insensitive", tok: s.Token(), path: "/repos/Octo/App/actions/secrets/public-key", status: 200},
		{name: "environment key", tok: s.Token(), path: "/repos/octo/app/environments/prod/secrets/public-key", status: 200},
		{name: "organization key", tok: s.Token(), path: "/orgs/octo/actions/secrets/public-key", status: 200},
		{name: "unknown repository", tok: s.Token(), path: "/repos/octo/nope/actions/secrets/public-key", status: 404, msg: "Not Found"},
		{name: "unknown environment", tok: s.Token(), path: "/repos/octo/app/environments/staging/secrets/public-key", status: 404, msg: "Not Found"},
		{name: "unknown organization", tok: s.Token(), path: "/orgs/nope/actions/secrets/public-key", status: 404, msg: "Not Found"},
		{name: "unknown secret", tok: s.Token(), path: "/repos/octo/app/actions/secrets/NOPE", status: 404, msg: "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, out, _ := call(t, s, tt.tok, "GET", tt.path, nil, tt.hdr...)
			if st != tt.status {
				t.Fatalf("GET %s = %d %v; want %d", tt.path, st, out, tt.status)
			}
			if tt.msg != "" && out["message"] != tt.msg {
				t.Errorf("message = %v; want %q", out["message"], tt.msg)
			}
			if st == 200 && (out["key_id"] == "" || out["key"] == nil) {
				t.Errorf("public key answer %v lacks key_id or key", out)
			}
		})
	}
	s.AddToken("ghp_second")
	if st, _, _ := call(t, s, "ghp_second", "GET", "/orgs/octo/actions/secrets/public-key", nil); st != 200 {
		t.Errorf("added token: %d; want 200", st)
	}
	s.RevokeToken("ghp_second")
	if st, _, _ := call(t, s, "ghp_second", "GET", "/orgs/octo/actions/secrets/public-key", nil); st != 401 {
		t.Errorf("revoked token: %d; want 401", st)
	}
}

func TestPutCreatesThenUpdates(t *testing.T) {
	tests := []struct {
		name, prefix, scope string
		extra               map[string]any
	}{
		{name: "repository", prefix: "/repos/octo/app/actions/secrets", scope: "repo:octo/app"},
		{name: "environment", prefix: "/repos/octo/app/environments/prod/secrets", scope: "env:octo/app/prod"},
		{name: "organization", prefix: "/orgs/octo/actions/secrets", scope: "org:octo", extra: map[string]any{"visibility": "private"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t)
			now := time.Date(2026, 3, 1, 10, 0, 0, 500, time.UTC)
			s.SetClock(func() time.Time { return now })
			put := func(value string) int {
				body := sealFor(t, s, tt.prefix, value)
				for k, v := range tt.extra {
					body[k] = v
				}
				st, out, _ := call(t, s, s.Token(), "PUT", tt.prefix+"/my_secret", body)
				if st != 201 && st != 204 {
					t.Fatalf("PUT = %d %v", st, out)
				}
				return st
			}
			if st := put("first"); st != 201 {
				t.Errorf("create: %d; want 201", st)
			}
			now = now.Add(time.Hour)
			if st := put("second"); st != 204 {
				t.Errorf("update: %d; want 204", st)
			}
			if v, ok := s.Value(tt.scope, "MY_SECRET"); !ok || v != "second" {
				t.Errorf("Value = %q, %v; want second", v, ok)
			}
			if n := s.Writes(tt.scope, "my_secret"); n != 2 {
				t.Errorf("Writes = %d; want 2", n)
			}
			st, got, _ := call(t, s, s.Token(), "GET", tt.prefix+"/MY_SECRET", nil)
			want := map[string]any{"name": "MY_SECRET", "created_at": "2026-03-01T10:00:00Z", "updated_at": "2026-03-01T11:00:00Z"}
			if tt.extra != nil {
				want["visibility"] = "private"
			}
			if st != 200 || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("GET secret = %d %v; want 200 %v", st, got, want)
			}
			if strings.Contains(fmt.Sprint(got), "second") {
				t.Errorf("GET secret shows the value: %v", got)
			}
		})
	}
}

func TestPutRefusals(t *testing.T) {
	const repoPrefix = "/repos/octo/app/actions/secrets"
	const orgPrefix = "/orgs/octo/actions/secrets"
	tests := []struct {
		name   string
		prefix string
		secret string
		body   func(t *testing.T, s *Server) map[string]any
		status int
	}{
		{
			name: "stale key id after a key change", prefix: repoPrefix, secret: "A", status: 422,
			body: func(t *testing.T, s *Server) map[string]any {
				b := sealFor(t, s, repoPrefix, "v")
				if err := s.RotateKey("repo:octo/app"); err != nil {
					t.Fatal(err)
				}
				return b
			},
		},
		{
			name: "another scope's key", prefix: repoPrefix, secret: "A", status: 422,
			body: func(t *testing.T, s *Server) map[string]any {
				return sealFor(t, s, orgPrefix, "v")
			},
		},
		{
			name: "right key id, sealed with another key", prefix: repoPrefix, secret: "A", status: 422,
			body: func(t *testing.T, s *Server) map[string]any {
				b := sealFor(t, s, repoPrefix, "v")
				other := sealFor(t, s, orgPrefix, "v")
				b["encrypted_value"] = other["encrypted_value"]
				return b
			},
		},
		{
			name: "not base64", prefix: repoPrefix, secret: "A", status: 422,
			body: func(t *testing.T, s *Server) map[string]any {
				b := sealFor(t, s, repoPrefix, "v")
				b["encrypted_value"] = "plain text!"
				return b
			},
		},
		{
			name: "no key id", prefix: repoPrefix, secret: "A", status: 422,
			body: func(t *testing.T, s *Server) map[string]any {
				b := sealFor(t, s, repoPrefix, "v")
				delete(b, "key_id")
				return b
			},
		},
		{name: "GITHUB_ prefix", prefix: repoPrefix, secret: "github_token", status: 422, body: repoBody},
		{name: "starts with a number", prefix: repoPrefix, secret: "1KEY", status: 422, body: repoBody},
		{name: "a hyphen", prefix: repoPrefix, secret: "MY-KEY", status: 422, body: repoBody},
		{name: "organization without visibility", prefix: orgPrefix, secret: "A", status: 422, body: orgBody(nil)},
		{name: "organization, unknown visibility", prefix: orgPrefix, secret: "A", status: 422, body: orgBody(map[string]any{"visibility": "public"})},
		{name: "organization, ids without selected", prefix: orgPrefix, secret: "A", status: 422, body: orgBody(map[string]any{"visibility": "private", "selected_repository_ids": []int64{}})},
		{name: "organization, another owner's repository", prefix: orgPrefix, secret: "A", status: 422, body: func(t *testing.T, s *Server) map[string]any {
			id := s.AddRepo("other/thing")
			return orgBody(map[string]any{"visibility": "selected", "selected_repository_ids": []int64{id}})(t, s)
		}},
		{name: "organization, all", prefix: orgPrefix, secret: "A", status: 201, body: orgBody(map[string]any{"visibility": "all"})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t)
			st, out, _ := call(t, s, s.Token(), "PUT", tt.prefix+"/"+tt.secret, tt.body(t, s))
			if st != tt.status {
				t.Fatalf("PUT = %d %v; want %d", st, out, tt.status)
			}
			scope := "repo:octo/app"
			if tt.prefix == orgPrefix {
				scope = "org:octo"
			}
			_, held := s.Value(scope, tt.secret)
			if held != (st == 201) {
				t.Errorf("secret held = %v after %d", held, st)
			}
			if st == 422 && out["message"] == "" {
				t.Errorf("422 without a message")
			}
		})
	}
}

func repoBody(t *testing.T, s *Server) map[string]any {
	return sealFor(t, s, "/repos/octo/app/actions/secrets", "v")
}

func orgBody(extra map[string]any) func(t *testing.T, s *Server) map[string]any {
	return func(t *testing.T, s *Server) map[string]any {
		b := sealFor(t, s, "/orgs/octo/actions/secrets", "v")
		for k, v := range extra {
			b[k] = v
		}
		return b
	}
}

// TestSelectedRepositories: the ids a PUT sends are the selection, listed
// page by page; an update without them clears it (as GitHub was observed
// to, external-secrets/external-secrets#6514).
func TestSelectedRepositories(t *testing.T) {
	s := start(t)
	var ids []int64
	for i := range 5 {
		ids = append(ids, s.AddRepo(fmt.Sprintf("octo/r%d", i)))
	}
	put := func(extra map[string]any) int {
		st, out, _ := call(t, s, s.Token(), "PUT", "/orgs/octo/actions/secrets/K", orgBody(extra)(t, s))
		if st != 201 && st != 204 {
			t.Fatalf("PUT = %d %v", st, out)
		}
		return st
	}
	put(map[string]any{"visibility": "selected", "selected_repository_ids": ids})
	var listed []int64
	for page := 1; ; page++ {
		st, out, hdr := call(t, s, s.Token(), "GET", fmt.Sprintf("/orgs/octo/actions/secrets/K/repositories?per_page=2&page=%d", page), nil)
		if st != 200 || out["total_count"] != float64(5) {
			t.Fatalf("page %d = %d %v", page, st, out)
		}
		for _, r := range out["repositories"].([]any) {
			listed = append(listed, int64(r.(map[string]any)["id"].(float64)))
		}
		if !strings.Contains(hdr.Get("Link"), `rel="next"`) {
			break
		}
	}
	if fmt.Sprint(listed) != fmt.Sprint(ids) {
		t.Errorf("listed %v; want %v", listed, ids)
	}
	_, got, _ := call(t, s, s.Token(), "GET", "/orgs/octo/actions/secrets/K", nil)
	if got["visibility"] != "selected" || got["selected_repositories_url"] == nil {
		t.Errorf("GET = %v; want visibility selected with selected_repositories_url", got)
	}
	put(map[string]any{"visibility": "selected"})
	if v, sel, _ := s.Access("org:octo", "K"); v != "selected" || len(sel) != 0 {
		t.Errorf("after an update without ids: %s %v; want selected []", v, sel)
	}
}

func TestFaults(t *testing.T) {
	s := start(t)
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	s.SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	path := "/repos/octo/app/actions/secrets/public-key"

	s.Fail(Match("GET", "/public-key"), 503, 2)
	for i, want := range []int{503, 503, 200} {
		if st, _, _ := call(t, s, s.Token(), "GET", path, nil); st != want {
			t.Errorf("call %d = %d; want %d", i, st, want)
		}
	}
	s.Fail(Match("PUT", ""), 502, -1)
	if st, _, _ := call(t, s, s.Token(), "GET", path, nil); st != 200 {
		t.Errorf("GET with a PUT fault = %d; want 200", st)
	}

	s.ClearFaults()
	s.DownUntil(now.Add(24 * time.Hour))
	if st, _, _ := call(t, s, s.Token(), "GET", path, nil); st != 500 {
		t.Errorf("while down = %d; want 500", st)
	}
	mu.Lock()
	now = now.Add(24 * time.Hour)
	mu.Unlock()
	if st, _, _ := call(t, s, s.Token(), "GET", path, nil); st != 200 {
		t.Errorf("a day later = %d; want 200", st)
	}
	if n := s.Count("GET", "/public-key"); n != 6 {
		t.Errorf("Count = %d; want 6", n)
	}
}

// TestConcurrentPuts: writes from many goroutines each land once.
func TestConcurrentPuts(t *testing.T) {
	s := start(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := sealFor(t, s, "/repos/octo/app/actions/secrets", "v")
			if st, out, _ := call(t, s, s.Token(), "PUT", fmt.Sprintf("/repos/octo/app/actions/secrets/S%d", i), body); st != 201 {
				t.Errorf("PUT S%d = %d %v", i, st, out)
			}
		}()
	}
	wg.Wait()
	for i := range 8 {
		if n := s.Writes("repo:octo/app", fmt.Sprintf("S%d", i)); n != 1 {
			t.Errorf("Writes(S%d) = %d; want 1", i, n)
		}
	}
}
