package delivery

import (
	"log/slog"
	"net/http"
	"time"
)

// Client returns the HTTP client destinations use: a timeout, no
// redirects followed (a token is never sent to another host), and a log
// line per request that names the method, host, path and status only:
// never a header (tokens), a query or a body (sealed or plain values).
func Client(log *slog.Logger, timeout time.Duration) *http.Client {
	if log == nil {
		log = slog.Default()
	}
	return &http.Client{
		Timeout:   timeout,
		Transport: &logged{next: http.DefaultTransport, log: log},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

type logged struct {
	next http.RoundTripper
	log  *slog.Logger
}

func (l *logged) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := l.next.RoundTrip(r)
	attrs := []any{"method", r.Method, "host", r.URL.Host, "path", r.URL.Path, "ms", time.Since(start).Milliseconds()}
	if err != nil {
		l.log.WarnContext(r.Context(), "destination call failed", append(attrs, "error", "no answer")...)
		return nil, err
	}
	l.log.InfoContext(r.Context(), "destination call", append(attrs, "status", resp.StatusCode)...)
	return resp, nil
}
