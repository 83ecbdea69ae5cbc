// Package faultproxy is a fault-injecting reverse proxy for tests and
// benchmarks. It sits in front of moto_server, names the AWS operation of
// every request, and can answer chosen calls with throttling, a server
// error, a timeout, a dropped connection, or let the call through and drop
// the answer (the change happened; the caller never heard).
package faultproxy

import (
	"bytes"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Mode is a kind of fault.
type Mode int

// The faults.
const (
	Throttle       Mode = iota // HTTP 400 with the protocol's throttling error
	ServerError                // HTTP 500 InternalFailure
	Timeout                    // no answer until the client gives up
	DropConnection             // the connection closes without an answer
	DropResponse               // the call reaches AWS; the answer is lost
)

// Modes lists every mode.
var Modes = []Mode{Throttle, ServerError, Timeout, DropConnection, DropResponse}

func (m Mode) String() string {
	return [...]string{"throttle", "server-error", "timeout", "drop-connection", "drop-response"}[m]
}

// Call is one request the proxy saw.
type Call struct {
	Service   string // from the SigV4 credential scope: iam, sts, secretsmanager, email, sns, s3...
	Operation string
	N         int // 1-based count of this operation so far
	Fault     string
}

type rule struct {
	op       string
	n        int     // Nth call; 0 for a rate rule
	fraction float64 // rate rules
	ops      map[string]bool
	mode     Mode
}

// Proxy is a running fault proxy.
type Proxy struct {
	target *url.URL
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy
	// TimeoutHold is how long a Timeout fault holds a request (default 10s).
	TimeoutHold time.Duration

	mu       sync.Mutex
	rules    []rule
	rng      *rand.Rand
	counts   map[string]int
	injected map[string]int
	log      []Call
}

// New starts a proxy on a free loopback port in front of target.
func New(target string) (*Proxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: u, ln: ln, TimeoutHold: 10 * time.Second, counts: map[string]int{}, injected: map[string]int{}, rng: rand.New(rand.NewSource(1))}
	p.rp = httputil.NewSingleHostReverseProxy(u)
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve)}
	go p.srv.Serve(ln)
	return p, nil
}

// URL is the proxy's endpoint.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// Close stops the proxy.
func (p *Proxy) Close() { p.srv.Close() }

// FailNth answers the nth call (1-based, counted from now) of op with m.
func (p *Proxy) FailNth(op string, n int, m Mode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, rule{op: op, n: p.counts[op] + n, mode: m})
}

// FailRate answers a fraction of the calls of ops (all when empty) with m,
// drawing from a seeded generator.
func (p *Proxy) FailRate(ops []string, fraction float64, m Mode, seed int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	set := map[string]bool{}
	for _, o := range ops {
		set[o] = true
	}
	p.rng = rand.New(rand.NewSource(seed))
	p.rules = append(p.rules, rule{fraction: fraction, ops: set, mode: m})
}

// Clear removes every rule.
func (p *Proxy) Clear() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = nil
}

// Calls returns how many calls of each operation the proxy saw.
func (p *Proxy) Calls() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.counts {
		out[k] = v
	}
	return out
}

// Injected returns how many faults were injected, by operation.
func (p *Proxy) Injected() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]int{}
	for k, v := range p.injected {
		out[k] = v
	}
	return out
}

// Log returns every call seen, in order.
func (p *Proxy) Log() []Call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Call(nil), p.log...)
}

// ResetLog forgets the calls seen so far (rules stay).
func (p *Proxy) ResetLog() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.log = nil
}

var scopeRE = regexp.MustCompile(`Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request`)

// identify names the service and operation of r, restoring its body.
func identify(r *http.Request) (service, op string) {
	if m := scopeRE.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		service = m[1]
	}
	if t := r.Header.Get("X-Amz-Target"); t != "" {
		if i := strings.LastIndex(t, "."); i >= 0 {
			return service, t[i+1:]
		}
		return service, t
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	if strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		if v, err := url.ParseQuery(string(body)); err == nil && v.Get("Action") != "" {
			return service, v.Get("Action")
		}
	}
	path := r.URL.Path
	switch {
	case service == "ses" && strings.HasPrefix(path, "/v2/email/outbound-emails"):
		return service, "SendEmail"
	case service == "ses" && strings.HasPrefix(path, "/v2/email/identities"):
		return service, map[string]string{"POST": "CreateEmailIdentity", "GET": "GetEmailIdentity"}[r.Method]
	case service == "s3":
		parts := strings.SplitN(strings.TrimPrefix(path, "/"), "/", 2)
		switch {
		case len(parts) == 2 && parts[1] != "" && r.Method == http.MethodPut:
			return service, "PutObject"
		case len(parts) == 2 && parts[1] != "" && r.Method == http.MethodGet:
			return service, "GetObject"
		case r.Method == http.MethodGet && r.URL.Query().Get("list-type") == "2":
			return service, "ListObjectsV2"
		case r.Method == http.MethodPut:
			return service, "CreateBucket"
		}
	}
	return service, r.Method + " " + path
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	service, op := identify(r)
	p.mu.Lock()
	p.counts[op]++
	n := p.counts[op]
	var fault *Mode
	for i, ru := range p.rules {
		switch {
		case ru.n > 0 && ru.op == op && ru.n == n:
			m := ru.mode
			fault = &m
			p.rules = append(p.rules[:i], p.rules[i+1:]...)
		case ru.n == 0 && (len(ru.ops) == 0 || ru.ops[op]) && p.rng.Float64() < ru.fraction:
			m := ru.mode
			fault = &m
		}
		if fault != nil {
			break
		}
	}
	c := Call{Service: service, Operation: op, N: n}
	if fault != nil {
		c.Fault = fault.String()
		p.injected[op]++
	}
	p.log = append(p.log, c)
	hold := p.TimeoutHold
	p.mu.Unlock()

	if fault == nil {
		p.rp.ServeHTTP(w, r)
		return
	}
	switch *fault {
	case Throttle:
		throttle(w, r, service)
	case ServerError:
		serverError(w, r)
	case Timeout:
		select {
		case <-r.Context().Done():
		case <-time.After(hold):
		}
		hijackClose(w)
	case DropConnection:
		hijackClose(w)
	case DropResponse:
		rec := &discard{header: http.Header{}}
		p.rp.ServeHTTP(rec, r) // the change happens
		hijackClose(w)
	}
}

type discard struct{ header http.Header }

func (d *discard) Header() http.Header         { return d.header }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func hijackClose(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}

func isJSONProtocol(r *http.Request) bool {
	return r.Header.Get("X-Amz-Target") != "" || strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-amz-json")
}

func throttle(w http.ResponseWriter, r *http.Request, service string) {
	switch {
	case isJSONProtocol(r):
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", "ThrottlingException")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"__type":"ThrottlingException","message":"Rate exceeded"}`)
	case service == "ses" || service == "email":
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Amzn-ErrorType", "TooManyRequestsException")
		w.WriteHeader(http.StatusTooManyRequests)
		fmt.Fprint(w, `{"message":"Rate exceeded"}`)
	case service == "s3":
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
	default:
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>`)
	}
}

func serverError(w http.ResponseWriter, r *http.Request) {
	if isJSONProtocol(r) {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		w.Header().Set("X-Amzn-ErrorType", "InternalFailure")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"__type":"InternalFailure","message":"injected server error"}`)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprint(w, `<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code><Message>injected server error</Message></Error><RequestId>00000000-0000-0000-0000-000000000000</RequestId></ErrorResponse>`)
}
