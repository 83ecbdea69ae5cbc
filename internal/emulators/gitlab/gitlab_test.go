package gitlab

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
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
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "-" {
		tok := c.token
		if tok == "" {
			tok = s.Token()
		}
		req.Header.Set("PRIVATE-TOKEN", tok)
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
	pid := s.AddProject("acme/app")
	s.AddGroup("acme")
	if err := s.SetVariable("project:acme/app", Variable{Key: "DUP", Value: "one-value", EnvironmentScope: "production"}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVariable("project:acme/app", Variable{Key: "DUP", Value: "two-value", EnvironmentScope: "staging"}); err != nil {
		t.Fatal(err)
	}
	enc := "/api/v4/projects/" + url.PathEscape("acme/app") + "/variables"
	tests := []struct {
		name    string
		call    call
		status  int
		message string
	}{
		{"no token", call{method: "GET", path: enc, token: "-"}, 401, "401 Unauthorized"},
		{"wrong token", call{method: "GET", path: enc, token: "glpat-nope"}, 401, "401 Unauthorized"},
		{"unknown project", call{method: "GET", path: "/api/v4/projects/999/variables/X"}, 404, "404 Project Not Found"},
		{"unknown group", call{method: "GET", path: "/api/v4/groups/nope/variables/X"}, 404, "404 Group Not Found"},
		{"unknown variable", call{method: "GET", path: enc + "/NOPE"}, 404, "404 Variable Not Found"},
		{"create", call{method: "POST", path: enc, body: `{"key":"NEW","value":"abcdefgh","masked":true}`}, 201, ""},
		{"create taken", call{method: "POST", path: enc, body: `{"key":"NEW","value":"abcdefgh"}`}, 400, `{"key":["(NEW) has already been taken"]}`},
		{"create other scope", call{method: "POST", path: enc, body: `{"key":"NEW","value":"abcdefgh","environment_scope":"production"}`}, 201, ""},
		{"create bad key", call{method: "POST", path: enc, body: `{"key":"A-B","value":"abcdefgh"}`}, 400, `{"key":["can contain only letters, digits and '_'."]}`},
		{"create unmaskable", call{method: "POST", path: enc, body: `{"key":"SHORT","value":"abc","masked":true}`}, 400, `{"value":["is invalid"]}`},
		{"create spaces masked", call{method: "POST", path: enc, body: `{"key":"SP","value":"abc defghij","masked":true}`}, 400, `{"value":["is invalid"]}`},
		{"create no value", call{method: "POST", path: enc, body: `{"key":"NOVAL"}`}, 400, ""},
		{"get ambiguous", call{method: "GET", path: enc + "/DUP"}, 409, "There are multiple variables with provided parameters. Please use 'filter[environment_scope]'"},
		{"get filtered", call{method: "GET", path: enc + "/DUP?filter%5Benvironment_scope%5D=staging"}, 200, ""},
		{"get by id", call{method: "GET", path: "/api/v4/projects/" + itoa(pid) + "/variables/DUP?filter[environment_scope]=production"}, 200, ""},
		{"update masked unmaskable", call{method: "PUT", path: enc + "/NEW?filter[environment_scope]=*", body: `{"value":"short"}`}, 400, `{"value":["is invalid"]}`},
		{"update", call{method: "PUT", path: enc + "/NEW?filter[environment_scope]=*", body: `{"value":"longer-value"}`}, 200, ""},
		{"group create", call{method: "POST", path: "/api/v4/groups/acme/variables", body: `{"key":"G","value":"group-value"}`}, 201, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, m := do(t, s, tc.call)
			if status != tc.status {
				t.Fatalf("%s %s = %d %v; want %d", tc.call.method, tc.call.path, status, m, tc.status)
			}
			if tc.message == "" {
				return
			}
			got, _ := json.Marshal(m["message"])
			if s, ok := m["message"].(string); ok {
				got = []byte(s)
			}
			if string(got) != tc.message {
				t.Errorf("message = %s; want %s", got, tc.message)
			}
		})
	}
	v, ok := s.Variable("project:acme/app", "NEW")
	if !ok || v.Value != "longer-value" || !v.Masked || v.EnvironmentScope != "*" {
		t.Errorf("NEW = %+v, %v; want longer-value, masked, scope *", v, ok)
	}
	if n := s.Writes("project:acme/app", "NEW"); n != 2 {
		t.Errorf("Writes(NEW) = %d; want 2 (create, update)", n)
	}
	if got, _ := s.Value("project:"+itoa(pid)+"@production", "NEW"); got != "abcdefgh" {
		t.Errorf("Value(NEW@production) = %q; want abcdefgh", got)
	}
	if got, _ := s.Value("group:acme", "G"); got != "group-value" {
		t.Errorf("Value(group G) = %q", got)
	}
}

func TestFaults(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddProject("acme/app")
	path := "/api/v4/projects/acme%2Fapp/variables"
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var elapsed atomic.Int64
	s.SetClock(func() time.Time { return start.Add(time.Duration(elapsed.Load())) })

	s.Fail(func(r *http.Request) bool { return r.Method == http.MethodPost }, 503, 2)
	for i, want := range []int{503, 503, 201} {
		if got, _ := do(t, s, call{method: "POST", path: path, body: `{"key":"K` + itoa(i) + `","value":"v"}`}); got != want {
			t.Errorf("POST %d = %d; want %d", i, got, want)
		}
	}
	s.FailUntil(start.Add(24 * time.Hour))
	if got, _ := do(t, s, call{method: "GET", path: path}); got != 500 {
		t.Errorf("GET during outage = %d; want 500", got)
	}
	elapsed.Store(int64(24 * time.Hour))
	if got, _ := do(t, s, call{method: "GET", path: path}); got != 200 {
		t.Errorf("GET after outage = %d; want 200", got)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestHiddenAndConcurrent(t *testing.T) {
	s, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.AddProject("acme/app")
	if err := s.SetVariable("project:acme/app", Variable{Key: "HID", Value: "hidden-value", Masked: true, Hidden: true}); err != nil {
		t.Fatal(err)
	}
	status, m := do(t, s, call{method: "GET", path: "/api/v4/projects/acme%2Fapp/variables/HID"})
	if v, present := m["value"]; status != 200 || !present || v != nil {
		t.Errorf("GET hidden = %d %v; want 200 with a null value", status, m)
	}
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Not do: t.Fatal belongs to the test's goroutine.
			req, _ := http.NewRequest("POST", s.URL()+"/api/v4/projects/acme%2Fapp/variables", strings.NewReader(`{"key":"K`+itoa(i)+`","value":"v"}`))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("PRIVATE-TOKEN", s.Token())
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			s.Value("project:acme/app", "K"+itoa(i))
		}()
	}
	wg.Wait()
	for i := range 20 {
		if n := s.Writes("project:acme/app", "K"+itoa(i)); n != 1 {
			t.Errorf("Writes(K%d) = %d; want 1", i, n)
		}
	}
}
