package faultproxy

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// forward relays a call that met no fault to the target, through the
// checks moto lacks that are switched on.
func (p *Proxy) forward(w http.ResponseWriter, r *http.Request, req request) {
	if p.deny(w, req) || p.RoleDenies && p.roleDenies(w, r, req) {
		return
	}
	switch {
	case req.service == "sts" && req.proto == awsQuery && req.op == "AssumeRole":
		p.assumeRole(w, r, req)
		return
	case req.service == "iam" && req.proto == awsQuery && req.op == "CreateAccessKey":
		// Learn the new key's account and user (AccountOf).
		rec := newRecorder()
		p.forwardIAM(rec, r, req)
		p.learnAccessKey(req, rec)
		rec.relay(w, rec.body.Bytes())
		return
	}
	p.forwardIAM(w, r, req)
}

// forwardIAM relays a call through the IAM checks that are switched on.
func (p *Proxy) forwardIAM(w http.ResponseWriter, r *http.Request, req request) {
	if req.service == "iam" && req.proto == awsQuery {
		switch req.op {
		case "TagUser":
			if p.TagLimits {
				p.tagUser(w, r, req)
				return
			}
		case "CreateAccessKey", "UpdateAccessKey", "DeleteAccessKey":
			if p.Consistency > 0 {
				p.writeKey(w, r, req)
				return
			}
		case "ListAccessKeys":
			if p.Consistency > 0 {
				p.listKeys(w, r, req)
				return
			}
		}
	}
	p.rp.ServeHTTP(w, r)
}

// IAM's tag quotas, from the IAM User Guide, "IAM and AWS STS quotas"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_iam-quotas.html:
// "Tags per IAM user: 50"), and the IAM API Reference, "TagUser"
// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_TagUser.html)
// with its "Tag" data type
// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_Tag.html): Tags
// holds at most 50 items; a Key is 1 to 128 characters, a Value 0 to 256.
// "If any one of the tags is invalid or if you exceed the allowed maximum
// number of tags, then the entire request fails". Exceeding the quota is
// LimitExceeded (HTTP 409); a key or value out of its length constraint
// fails IAM's input validation, ValidationError (HTTP 400, the IAM API
// Reference's "Common Errors"), as moto's own CreateUser tag checks answer.
const (
	maxUserTags   = 50
	maxTagKeyLen  = 128
	maxTagValLen  = 256
	iamXMLNS      = "https://iam.amazonaws.com/doc/2010-05-08/"
	iamAPIVersion = "2010-05-08"
)

type tag struct{ key, value string }

// requestTags reads Tags.member.N.Key/Value from a TagUser form.
func requestTags(form url.Values) []tag {
	var tags []tag
	for n := 1; ; n++ {
		k, hasKey := form[fmt.Sprintf("Tags.member.%d.Key", n)]
		v, hasVal := form[fmt.Sprintf("Tags.member.%d.Value", n)]
		if !hasKey && !hasVal {
			return tags
		}
		var t tag
		if hasKey {
			t.key = k[0]
		}
		if hasVal {
			t.value = v[0]
		}
		tags = append(tags, t)
	}
}

// checkTags returns IAM's validation error for tags, or "" if they are
// valid on their own.
func checkTags(tags []tag) string {
	if len(tags) > maxUserTags {
		return fmt.Sprintf("1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to %d", maxUserTags)
	}
	for i, t := range tags {
		switch n := utf8.RuneCountInString(t.key); {
		case n < 1:
			return fmt.Sprintf("1 validation error detected: Value '%s' at 'tags.%d.member.key' failed to satisfy constraint: Member must have length greater than or equal to 1", t.key, i+1)
		case n > maxTagKeyLen:
			return fmt.Sprintf("1 validation error detected: Value '%s' at 'tags.%d.member.key' failed to satisfy constraint: Member must have length less than or equal to %d", t.key, i+1, maxTagKeyLen)
		}
		if utf8.RuneCountInString(t.value) > maxTagValLen {
			return fmt.Sprintf("1 validation error detected: Value '%s' at 'tags.%d.member.value' failed to satisfy constraint: Member must have length less than or equal to %d", t.value, i+1, maxTagValLen)
		}
	}
	return ""
}

// tagUser forwards a TagUser call only if the user's tags stay within
// IAM's quotas, counting the tags the user already has (read from moto);
// otherwise it answers as IAM does and moto never sees the call.
func (p *Proxy) tagUser(w http.ResponseWriter, r *http.Request, req request) {
	tags := requestTags(req.form)
	if msg := checkTags(tags); msg != "" {
		req.queryError(w, http.StatusBadRequest, "Sender", "ValidationError", msg)
		return
	}
	p.tagMu.Lock() // the count and the write must not interleave with another TagUser
	defer p.tagMu.Unlock()
	var existing struct {
		Keys []string `xml:"ListUserTagsResult>Tags>member>Key"`
	}
	user := req.form.Get("UserName")
	status, body, err := p.query(r, url.Values{"Action": {"ListUserTags"}, "UserName": {user}, "MaxItems": {"1000"}})
	if err == nil && status == http.StatusOK && xml.Unmarshal(body, &existing) == nil {
		keys := map[string]bool{}
		for _, k := range existing.Keys {
			keys[k] = true
		}
		for _, t := range tags {
			keys[t.key] = true // an existing key is overwritten, not added
		}
		if len(keys) > maxUserTags {
			req.queryError(w, http.StatusConflict, "Sender", "LimitExceeded", fmt.Sprintf("Cannot exceed quota for TagsPerUser: %d", maxUserTags))
			return
		}
	}
	// Otherwise (no such user...) moto answers the call itself.
	p.rp.ServeHTTP(w, r)
}

// query sends an IAM query call to moto on behalf of r: with r's
// Authorization, so moto acts in the same account (moto does not check
// signatures). It returns the status and body of the answer.
func (p *Proxy) query(r *http.Request, params url.Values) (int, []byte, error) {
	params.Set("Version", iamAPIVersion)
	out, err := http.NewRequestWithContext(context.WithoutCancel(r.Context()), http.MethodPost, p.target.String()+"/", strings.NewReader(params.Encode()))
	if err != nil {
		return 0, nil, fmt.Errorf("build %s: %w", params.Get("Action"), err)
	}
	out.Host = r.Host
	out.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	for _, h := range []string{"Authorization", "X-Amz-Date", "X-Amz-Security-Token"} {
		if v := r.Header.Get(h); v != "" {
			out.Header.Set(h, v)
		}
	}
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		return 0, nil, fmt.Errorf("%s: %w", params.Get("Action"), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("read %s: %w", params.Get("Action"), err)
	}
	return resp.StatusCode, body, nil
}

// recorder is a ResponseWriter that keeps the answer, to be read or
// rewritten before it is relayed.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func newRecorder() *recorder { return &recorder{header: http.Header{}, status: http.StatusOK} }

func (rec *recorder) Header() http.Header         { return rec.header }
func (rec *recorder) Write(b []byte) (int, error) { return rec.body.Write(b) }
func (rec *recorder) WriteHeader(status int)      { rec.status = status }

// relay writes the recorded answer to w, with body in place of the
// recorded one.
func (rec *recorder) relay(w http.ResponseWriter, body []byte) {
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(rec.status)
	_, _ = w.Write(body)
}

// IAM's eventual consistency, from the IAM User Guide, "Troubleshoot IAM",
// "Changes that I make are not always immediately visible"
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/troubleshoot_general.html#troubleshoot_general_eventual-consistency):
// IAM is eventually consistent; a change takes time to become visible
// from every endpoint, and reads can miss a change made just before
// (the guide's advice: don't put IAM changes on the critical, high
// availability code path; verify changes have propagated before
// depending on them).
//
// The proxy plays the worst case for keyrotor within Proxy.Consistency of
// a write it forwarded (CreateAccessKey, UpdateAccessKey, DeleteAccessKey
// with a UserName): ListAccessKeys of that user answers with the keys as
// they were before the write. A created key is left out, an updated key
// shows its old status, a deleted key is still listed. After the window
// moto's answer goes through unchanged.

// keyWrite is one access key write the proxy forwarded.
type keyWrite struct {
	at     time.Time
	keyID  string
	before *keyMeta // the key before the write; nil if it did not exist
}

// keyMeta is one member of ListAccessKeysResult>AccessKeyMetadata.
type keyMeta struct {
	UserName    string `xml:"UserName"`
	AccessKeyID string `xml:"AccessKeyId"`
	Status      string `xml:"Status"`
	CreateDate  string `xml:"CreateDate"`
}

type listKeysResponse struct {
	XMLName     xml.Name  `xml:"ListAccessKeysResponse"`
	Xmlns       string    `xml:"xmlns,attr,omitempty"`
	UserName    string    `xml:"ListAccessKeysResult>UserName,omitempty"`
	Keys        []keyMeta `xml:"ListAccessKeysResult>AccessKeyMetadata>member"`
	IsTruncated bool      `xml:"ListAccessKeysResult>IsTruncated"`
	Marker      string    `xml:"ListAccessKeysResult>Marker,omitempty"`
	RequestID   string    `xml:"ResponseMetadata>RequestId"`
}

func (p *Proxy) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// listKeysOf reads user's keys from moto.
func (p *Proxy) listKeysOf(r *http.Request, user string) ([]keyMeta, error) {
	status, body, err := p.query(r, url.Values{"Action": {"ListAccessKeys"}, "UserName": {user}})
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("list access keys of %s: HTTP %d", user, status)
	}
	var out listKeysResponse
	if err := xml.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("list access keys of %s: %w", user, err)
	}
	return out.Keys, nil
}

// writeKey forwards an access key write and, if it succeeds, remembers
// the key as it was before.
func (p *Proxy) writeKey(w http.ResponseWriter, r *http.Request, req request) {
	user, keyID := req.form.Get("UserName"), req.form.Get("AccessKeyId")
	if user == "" { // the caller's own key: its user is not in the call
		p.rp.ServeHTTP(w, r)
		return
	}
	p.keyMu.Lock() // the key read before and the write must not interleave with another write
	defer p.keyMu.Unlock()
	var before *keyMeta
	if req.op != "CreateAccessKey" {
		keys, err := p.listKeysOf(r, user)
		if err != nil {
			p.rp.ServeHTTP(w, r) // moto answers (NoSuchEntity...); nothing to remember
			return
		}
		for _, k := range keys {
			if k.AccessKeyID == keyID {
				before = &k
			}
		}
	}
	rec := newRecorder()
	p.rp.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	if rec.status == http.StatusOK {
		if req.op == "CreateAccessKey" {
			var out struct {
				ID string `xml:"CreateAccessKeyResult>AccessKey>AccessKeyId"`
			}
			if xml.Unmarshal(body, &out) == nil {
				keyID = out.ID
			}
		}
		if keyID != "" && (req.op == "CreateAccessKey" || before != nil) {
			p.mu.Lock()
			p.history[user] = append(p.history[user], keyWrite{at: p.now(), keyID: keyID, before: before})
			p.mu.Unlock()
		}
	}
	rec.relay(w, body)
}

// listKeys forwards ListAccessKeys and undoes, newest first, the writes
// to the user's keys made within the window.
func (p *Proxy) listKeys(w http.ResponseWriter, r *http.Request, req request) {
	user := req.form.Get("UserName")
	rec := newRecorder()
	p.rp.ServeHTTP(rec, r)
	body := rec.body.Bytes()
	var out listKeysResponse
	if user == "" || rec.status != http.StatusOK || xml.Unmarshal(body, &out) != nil {
		rec.relay(w, body)
		return
	}
	recent := p.recentWrites(user)
	if len(recent) == 0 {
		rec.relay(w, body)
		return
	}
	keys := out.Keys
	for _, kw := range slices.Backward(recent) {
		i := slices.IndexFunc(keys, func(k keyMeta) bool { return k.AccessKeyID == kw.keyID })
		switch {
		case kw.before == nil && i >= 0:
			keys = slices.Delete(keys, i, i+1)
		case kw.before != nil && i >= 0:
			keys[i] = *kw.before
		case kw.before != nil:
			keys = append(keys, *kw.before)
		}
	}
	slices.SortStableFunc(keys, func(a, b keyMeta) int { return strings.Compare(a.CreateDate, b.CreateDate) })
	out.Keys, out.Xmlns = keys, iamXMLNS
	rewritten, err := xml.Marshal(out)
	if err != nil {
		rec.relay(w, body)
		return
	}
	rec.relay(w, append([]byte(xml.Header), rewritten...))
}

// recentWrites returns user's key writes within the window, oldest
// first, and forgets older ones.
func (p *Proxy) recentWrites(user string) []keyWrite {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.history[user]
	i := 0
	for i < len(h) && !now.Before(h[i].at.Add(p.Consistency)) {
		i++
	}
	h = h[i:]
	if len(h) == 0 {
		delete(p.history, user)
		return nil
	}
	p.history[user] = h
	return slices.Clone(h)
}
