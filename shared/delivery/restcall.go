package delivery

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// restCall is one JSON call to a CI system's REST API (gitlab.go,
// circleci.go). Header carries the token; Redact lists the strings no
// error may show (the token, the secret being written).
type restCall struct {
	Client *http.Client
	Where  string // the destination, for errors
	Op     string // "update variable AWS_SECRET_ACCESS_KEY", for errors
	Method string
	URL    string
	Header map[string]string
	Body   any // marshalled as JSON when not nil
	Redact []string
}

// restMaxBody bounds what is read of an answer.
const restMaxBody = 1 << 20

// do makes the call. It returns the status and the body of a 2xx answer,
// and of the statuses in also (a 404 the caller understands); any other
// answer, or none, is an *Error carrying the status and the service's
// message, never the request's body.
func (c restCall) do(ctx context.Context, also ...int) (int, []byte, error) {
	var body io.Reader
	if c.Body != nil {
		b, err := json.Marshal(c.Body)
		if err != nil {
			return 0, nil, fmt.Errorf("encode %s request: %w", c.Op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, c.Method, c.URL, body)
	if err != nil {
		return 0, nil, &Error{Where: c.Where, Op: c.Op, Msg: c.redact(err.Error())}
	}
	req.Header.Set("Accept", "application/json")
	if c.Body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range c.Header {
		req.Header.Set(k, v)
	}
	resp, err := c.Client.Do(req)
	if err != nil {
		return 0, nil, &Error{Where: c.Where, Op: c.Op, Msg: "no answer: " + c.redact(transportCause(err))}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, restMaxBody))
	if err != nil {
		return resp.StatusCode, nil, &Error{Where: c.Where, Op: c.Op, Msg: "answer cut short: " + c.redact(transportCause(err))}
	}
	if resp.StatusCode/100 == 2 {
		return resp.StatusCode, b, nil
	}
	for _, s := range also {
		if resp.StatusCode == s {
			return resp.StatusCode, b, nil
		}
	}
	return resp.StatusCode, b, &Error{Where: c.Where, Op: c.Op, Status: resp.StatusCode, Msg: c.redact(restMessage(resp.StatusCode, b))}
}

// redact replaces every string of c.Redact in s.
func (c restCall) redact(s string) string {
	for _, r := range c.Redact {
		if r != "" {
			s = strings.ReplaceAll(s, r, "[redacted]")
		}
	}
	return s
}

// transportCause is a transport error without the URL url.Error repeats.
func transportCause(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// restMessage is the service's own words from an error answer: GitLab and
// CircleCI put them in "message" (GitLab's validation errors as an object
// of fields and reasons) or, for a missing parameter, GitLab in "error".
func restMessage(status int, body []byte) string {
	var m struct {
		Message json.RawMessage `json:"message"`
		Error   json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &m) == nil {
		for _, raw := range []json.RawMessage{m.Message, m.Error} {
			var s string
			switch {
			case len(raw) == 0 || string(raw) == "null":
				continue
			case json.Unmarshal(raw, &s) == nil:
				return s
			default:
				var c bytes.Buffer
				if json.Compact(&c, raw) == nil {
					return c.String()
				}
			}
		}
	}
	return http.StatusText(status)
}

// checkAPIBase checks a spec's url field: CheckURL (TLS, or http on a
// loopback address when allowHTTP), no user, query or fragment, and not
// the API's own path (api, "/api/v4"), which the destination adds.
func checkAPIBase(field, raw string, allowHTTP bool, api string) error {
	if err := CheckURL(field, raw, allowHTTP); err != nil {
		return err
	}
	u, _ := url.Parse(raw)
	switch {
	case u.User != nil:
		return &FieldError{Field: join(field, "url"), Msg: "holds a user or password; put the token in the hub secret named by credential"}
	case u.RawQuery != "" || u.Fragment != "":
		return &FieldError{Field: join(field, "url"), Msg: "holds a query or fragment; want the base URL only, such as https://host"}
	case strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), api):
		return &FieldError{Field: join(field, "url"), Msg: fmt.Sprintf("ends with %s; want the base URL without it (the destination adds %s)", api, api)}
	}
	return nil
}

// apiBase joins a checked base URL and an API path.
func apiBase(raw, api string) string {
	return strings.TrimSuffix(raw, "/") + api
}
