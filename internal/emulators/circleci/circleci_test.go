package circleci

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type call struct {
	method, path, token, body string
}

func do(t *testing.T, s *Server, c call) (int, map[string]any) {
	t.Helper()
	var body io.Reader
	if c.body != "" {
		body = strings.NewReader(c.body)
	}
	req, err := http.NewRequest(c.method, s.URL()+c.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "-" {
		tok := c.token
		if tok == "" {
			tok = s.Token()
		}
		req.Header.Set("Circle-Token", tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestAPI(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var elapsed atomic.Int64
	s.SetClock(func() time.Time { return start.Add(time.Duration(elapsed.Load())) })
	s.AddProject("gh/acme/app")
	ctx := s.AddContext("deploy")
	if !uuidPattern.MatchString(ctx) {
		t.Fatalf("AddContext = %q; want a UUID", ctx)
	}
	s.SetPageSize(1)
	proj := "/api/v2/project/gh/acme/app/envvar"
	cv := "/api/v2/context/" + ctx + "/environment-variable"
	tests := []struct {
		name   string
		call   call
		status int
		want   map[string]any // fields that must be equal
	}{
		{"no token", call{method: "GET", path: proj, token: "-"}, 401, map[string]any{"message": "You must log in first."}},
		{"wrong token", call{method: "GET", path: cv, token: "nope"}, 401, map[string]any{"message": "You must log in first."}},
		{"unknown project", call{method: "GET", path: "/api/v2/project/gh/acme/nope/envvar/X"}, 404, map[string]any{"message": "Project not found"}},
		{"unknown variable", call{method: "GET", path: proj + "/NOPE"}, 404, nil},
		{"create", call{method: "POST", path: proj, body: `{"name":"SECRET","value":"abcdefgh1234"}`}, 201, map[string]any{"name": "SECRET", "value": "xxxx1234"}},
		{"replace", call{method: "POST", path: proj, body: `{"name":"SECRET","value":"abcdefgh5678"}`}, 201, map[string]any{"value": "xxxx5678"}},
		{"escaped slug", call{method: "GET", path: "/api/v2/project/gh%2Facme%2Fapp/envvar/SECRET"}, 200, map[string]any{"value": "xxxx5678"}},
		{"bad name", call{method: "POST", path: proj, body: `{"name":"1ABC","value":"v"}`}, 400, nil},
		{"no value", call{method: "POST", path: proj, body: `{"name":"ABC"}`}, 400, nil},
		{"not json", call{method: "POST", path: proj, body: `name=ABC`}, 400, nil},
		{"context not uuid", call{method: "GET", path: "/api/v2/context/deploy/environment-variable"}, 400, nil},
		{"unknown context", call{method: "GET", path: "/api/v2/context/00000000-0000-4000-8000-000000000000/environment-variable"}, 404, map[string]any{"message": "Context not found"}},
		{"context put", call{method: "PUT", path: cv + "/A", body: `{"value":"one"}`}, 200, map[string]any{"variable": "A", "created_at": "2026-03-01T12:00:00.000Z", "updated_at": "2026-03-01T12:00:00.000Z", "context_id": ctx}},
		{"context put B", call{method: "PUT", path: cv + "/B", body: `{"value":"two"}`}, 200, nil},
		{"context page 1", call{method: "GET", path: cv}, 200, map[string]any{"next_page_token": "1"}},
		{"context page 2", call{method: "GET", path: cv + "?page-token=1"}, 200, map[string]any{"next_page_token": nil}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, m := do(t, s, tc.call)
			if status != tc.status {
				t.Fatalf("%s %s = %d %v; want %d", tc.call.method, tc.call.path, status, m, tc.status)
			}
			for k, want := range tc.want {
				if m[k] != want {
					t.Errorf("%s = %v; want %v", k, m[k], want)
				}
			}
		})
	}
	if v, _ := s.Value("project:gh/acme/app", "SECRET"); v != "abcdefgh5678" {
		t.Errorf("Value = %q; want the plaintext abcdefgh5678", v)
	}
	if n := s.Writes("project:gh/acme/app", "SECRET"); n != 2 {
		t.Errorf("Writes = %d; want 2", n)
	}
	elapsed.Store(int64(time.Hour))
	if st, _ := do(t, s, call{method: "PUT", path: cv + "/A", body: `{"value":"three"}`}); st != 200 {
		t.Fatalf("PUT = %d", st)
	}
	created, updated, ok := s.Updated("context:"+ctx, "A")
	if !ok || !created.Equal(start) || !updated.Equal(start.Add(time.Hour)) {
		t.Errorf("Updated = %v, %v, %v; want created %v, updated an hour later", created, updated, ok, start)
	}
}

func TestFailUntil(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddProject("gh/acme/app")
	start := time.Now()
	var elapsed atomic.Int64
	s.SetClock(func() time.Time { return start.Add(time.Duration(elapsed.Load())) })
	s.FailUntil(start.Add(24 * time.Hour))
	if st, _ := do(t, s, call{method: "GET", path: "/api/v2/project/gh/acme/app/envvar"}); st != 500 {
		t.Errorf("during outage = %d; want 500", st)
	}
	elapsed.Store(int64(24 * time.Hour))
	if st, _ := do(t, s, call{method: "GET", path: "/api/v2/project/gh/acme/app/envvar"}); st != 200 {
		t.Errorf("after outage = %d; want 200", st)
	}
}
