package server

import (
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/eventlog"
	"example.com/sse-on-envoy/upstream/mercure"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
	"example.com/sse-on-envoy/upstream/replay"
	"example.com/sse-on-envoy/upstream/stream"
)

var (
	pubSecret = []byte("publisher-secret-0123456789abcdef")
	subSecret = []byte("subscriber-secret-0123456789abcde")
)

func hmacToken(t *testing.T, secret []byte, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func publisherToken(t *testing.T, topics ...string) string {
	return hmacToken(t, pubSecret, jwt.MapClaims{"mercure": map[string]any{"publish": topics}})
}

func subscriberToken(t *testing.T, topics ...string) string {
	return hmacToken(t, subSecret, jwt.MapClaims{"mercure": map[string]any{"subscribe": topics}})
}

// mercureConfig is a server on log with the hub on a keyed sibling stream.
func mercureConfig(t testing.TB, log *eventlog.Log) Config {
	t.Helper()
	pk, err := mercure.NewHMACKey(pubSecret)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := mercure.NewHMACKey(subSecret)
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Interval: -1,
		Log:      log,
		Handler:  HandlerOptions{Stream: stream.Options{Heartbeat: time.Second}},
		Mercure: &hubhttp.Config{
			Log:           log.Sibling(eventlog.Config{Stream: "MERCURE", History: 1000, Keyed: true}),
			PublisherKey:  pk,
			SubscriberKey: sk,
			Limits:        mercure.Limits{MaxTopics: 4, MaxData: 1024, MaxSubscriptionBytes: 4096},
		},
	}
}

// embeddedLog opens an embedded NATS log closed after everything else.
func embeddedLog(t testing.TB) *eventlog.Log {
	t.Helper()
	l, err := eventlog.Open(eventlog.Config{DataDir: t.TempDir(), History: 1000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

func startMercure(t *testing.T) *running {
	t.Helper()
	r := startServer(t, mercureConfig(t, embeddedLog(t)), nil)
	waitHealthy(t, r.plain)
	return r
}

func waitHealthy(t *testing.T, base string) {
	t.Helper()
	waitFor(t, "healthy", func() bool {
		resp, err := http.Get(base + HealthPath)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

type pubResult struct {
	status int
	body   string
	ctype  string
}

// post publishes form with token (none if empty) and returns the answer.
func post(t *testing.T, base, token string, form url.Values) pubResult {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t), http.MethodPost, base+hubhttp.Path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return do(t, req)
}

func do(t *testing.T, req *http.Request) pubResult {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return pubResult{resp.StatusCode, strings.TrimSpace(string(b)), resp.Header.Get("Content-Type")}
}

// mustPublish publishes and returns the update's id.
func mustPublish(t *testing.T, base string, form url.Values) string {
	t.Helper()
	res := post(t, base, publisherToken(t, "*"), form)
	if res.status != http.StatusOK || !strings.HasPrefix(res.ctype, "text/plain") || res.body == "" {
		t.Fatalf("publish %v: %+v", form, res)
	}
	return res.body
}

// subscribe opens a subscription: query holds topic, lastEventID,
// authorization...; header may carry Last-Event-ID or Authorization.
func subscribe(t *testing.T, base string, query url.Values, header http.Header) *clientStream {
	t.Helper()
	return openStream(testContext(t), t, http.DefaultClient, base+hubhttp.Path+"?"+query.Encode(), header)
}

// readUntil reads events up to and including the one with id marker and
// returns their ids.
func (s *clientStream) readUntil(t *testing.T, marker string) []string {
	t.Helper()
	var ids []string
	for {
		e := s.next(t)
		ids = append(ids, e.ID)
		if e.ID == marker {
			return ids
		}
	}
}

func TestMercurePublishSubscribe(t *testing.T) {
	r := startMercure(t)
	sub := subscribe(t, r.plain, url.Values{"topic": {"https://example.com/books/{id}"}}, nil)
	if got := sub.resp.Header.Get(hubhttp.ReplayOutcomeHeader); got != string(replay.New) {
		t.Errorf("%s = %q, want %q", hubhttp.ReplayOutcomeHeader, got, replay.New)
	}
	if got := sub.resp.Header.Get("Last-Event-ID"); got != mercure.Earliest {
		t.Errorf("Last-Event-ID on an empty log = %q, want earliest", got)
	}
	mustPublish(t, r.plain, url.Values{"topic": {"https://example.com/books/1/reviews"}, "data": {"not followed"}})
	id := mustPublish(t, r.plain, url.Values{
		"topic": {"https://example.com/books/1", "urn:alt"},
		"data":  {"line one\nline two"},
		"type":  {"book"},
		"retry": {"1500"},
	})
	if !regexp.MustCompile(`^urn:uuid:[0-9a-f-]{36}$`).MatchString(id) {
		t.Errorf("hub-assigned id %q is not a urn:uuid", id)
	}
	got := sub.next(t)
	want := sse.Event{ID: id, Type: "book", Data: "line one\nline two", Retry: 1500 * time.Millisecond}
	if got != want {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	if !strings.Contains(sub.raw.buf.String(), "data: line one\ndata: line two\n") {
		t.Errorf("multi-line data not sent as two data lines: %q", sub.raw.buf.String())
	}
	own := mustPublish(t, r.plain, url.Values{"topic": {"https://example.com/books/2"}, "id": {"https://example.com/books/2#v7"}})
	if own != "https://example.com/books/2#v7" || sub.next(t).ID != own {
		t.Fatalf("the publisher's own id is not kept: %q", own)
	}
	// Also served on the TLS listener (HTTP/2).
	tls := openStream(testContext(t), t, r.h2, r.secure+hubhttp.Path+"?topic=*", nil)
	if tls.resp.ProtoMajor != 2 || tls.resp.Header.Get("Last-Event-ID") != own {
		t.Fatalf("TLS listener: proto %s, Last-Event-ID %q", tls.resp.Proto, tls.resp.Header.Get("Last-Event-ID"))
	}
}

// Private updates reach only subscribers whose mercure.subscribe claim
// matches one of their topics; anonymous subscribers and subscribers with a
// claim for other topics see the public ones only.
func TestMercurePrivate(t *testing.T) {
	r := startMercure(t)
	open := func(token string) *clientStream {
		q := url.Values{"topic": {"https://example.com/users/{id}", "urn:marker"}}
		h := http.Header{}
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		return subscribe(t, r.plain, q, h)
	}
	anon := open("")
	alice := open(subscriberToken(t, "https://example.com/users/alice"))
	other := open(subscriberToken(t, "https://example.com/users/bob"))
	all := open(subscriberToken(t, "*"))
	cookie := openStream(testContext(t), t, http.DefaultClient, r.plain+hubhttp.Path+"?topic=*", http.Header{
		"Cookie": {mercure.CookieName + "=" + subscriberToken(t, "https://example.com/users/{id}")},
	})
	query := subscribe(t, r.plain, url.Values{"topic": {"*"}, "authorization": {subscriberToken(t, "https://example.com/users/alice")}}, nil)

	priv := mustPublish(t, r.plain, url.Values{"topic": {"https://example.com/users/alice"}, "private": {"on"}, "id": {"private-1"}})
	pub := mustPublish(t, r.plain, url.Values{"topic": {"https://example.com/users/alice"}, "id": {"public-1"}})
	marker := mustPublish(t, r.plain, url.Values{"topic": {"urn:marker"}, "id": {"marker"}})
	tests := []struct {
		name string
		s    *clientStream
		want []string
	}{
		{"anonymous", anon, []string{pub, marker}},
		{"claim for the topic", alice, []string{priv, pub, marker}},
		{"claim for another topic", other, []string{pub, marker}},
		{"claim for everything", all, []string{priv, pub, marker}},
		{"cookie", cookie, []string{priv, pub, marker}},
		{"query parameter", query, []string{priv, pub, marker}},
	}
	for _, tt := range tests {
		if got := tt.s.readUntil(t, marker); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// Replay is exact per subscription: every missed matching update once, in
// order, nothing the subscriber may not see, then live.
func TestMercureReplay(t *testing.T) {
	r := startMercure(t)
	ids := []string{
		mustPublish(t, r.plain, url.Values{"topic": {"urn:a"}, "id": {"a1"}}),
		mustPublish(t, r.plain, url.Values{"topic": {"urn:b"}, "id": {"b1"}}),
		mustPublish(t, r.plain, url.Values{"topic": {"urn:a"}, "id": {"a2"}, "private": {""}}),
		mustPublish(t, r.plain, url.Values{"topic": {"urn:a"}, "id": {"a3"}}),
	}
	tests := []struct {
		name     string
		query    url.Values
		header   http.Header
		outcome  replay.Outcome
		replayed []string
	}{
		{"header", url.Values{"topic": {"urn:a"}}, http.Header{"Last-Event-Id": {"a1"}}, replay.Resumed, []string{"a3"}},
		{"query", url.Values{"topic": {"urn:a"}, "lastEventID": {"a1"}}, nil, replay.Resumed, []string{"a3"}},
		{"header wins over query", url.Values{"topic": {"urn:a"}, "lastEventID": {"a1"}}, http.Header{"Last-Event-Id": {"a3"}}, replay.Resumed, nil},
		{"earliest", url.Values{"topic": {"urn:a", "urn:b"}, "lastEventID": {"earliest"}}, nil, replay.Earliest, []string{"a1", "b1", "a3"}},
		{"earliest with a claim", url.Values{"topic": {"*"}, "lastEventID": {"earliest"}, "authorization": {subscriberToken(t, "urn:a")}}, nil, replay.Earliest, []string{"a1", "b1", "a2", "a3"}},
		{"from another topic's id", url.Values{"topic": {"urn:b"}}, http.Header{"Last-Event-Id": {"a1"}}, replay.Resumed, []string{"b1"}},
		{"up to date", url.Values{"topic": {"*"}}, http.Header{"Last-Event-Id": {"a3"}}, replay.Resumed, nil},
		{"unknown id", url.Values{"topic": {"*"}}, http.Header{"Last-Event-Id": {"never-issued"}}, replay.Unknown, nil},
		{"no id", url.Values{"topic": {"*"}}, nil, replay.New, nil},
	}
	subs := make([]*clientStream, len(tests))
	for i, tt := range tests {
		tt.query.Add("topic", "urn:marker")
		subs[i] = subscribe(t, r.plain, tt.query, tt.header)
		if got := subs[i].resp.Header.Get(hubhttp.ReplayOutcomeHeader); got != string(tt.outcome) {
			t.Errorf("%s: outcome %q, want %q", tt.name, got, tt.outcome)
		}
		if got := subs[i].resp.Header.Get("Last-Event-ID"); got != ids[3] {
			t.Errorf("%s: Last-Event-ID %q, want %q", tt.name, got, ids[3])
		}
	}
	marker := mustPublish(t, r.plain, url.Values{"topic": {"urn:marker"}, "id": {"marker"}})
	for i, tt := range tests {
		want := append(slices.Clone(tt.replayed), marker)
		if got := subs[i].readUntil(t, marker); !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", tt.name, got, want)
		}
	}
}

// A publish retried with the same id (after a timeout, say) is stored once.
func TestMercureRetriedPublishStoredOnce(t *testing.T) {
	r := startMercure(t)
	form := url.Values{"topic": {"urn:a"}, "id": {"order-42"}, "data": {"v1"}}
	for range 3 {
		if id := mustPublish(t, r.plain, form); id != "order-42" {
			t.Fatalf("id %q", id)
		}
	}
	// The same id with other content is not a retry: refused, never
	// acknowledged and dropped.
	if res := post(t, r.plain, publisherToken(t, "*"), url.Values{"topic": {"urn:a"}, "id": {"order-42"}, "data": {"v2"}}); res.status != http.StatusConflict {
		t.Fatalf("same id, other data: %d %q, want 409", res.status, res.body)
	}
	marker := mustPublish(t, r.plain, url.Values{"topic": {"urn:a"}, "id": {"marker"}})
	sub := subscribe(t, r.plain, url.Values{"topic": {"urn:a"}, "lastEventID": {"earliest"}}, nil)
	if got := sub.readUntil(t, marker); !slices.Equal(got, []string{"order-42", "marker"}) {
		t.Fatalf("got %q, want the update once", got)
	}
	for result, want := range map[string]string{hubhttp.PublishStored: "2", hubhttp.PublishDuplicate: "2", hubhttp.PublishRefused: "1", hubhttp.PublishFailed: "0"} {
		if got := scrape(t, http.DefaultClient, r.plain, MetricMercurePublishes+`{result="`+result+`"}`); got != want {
			t.Errorf("%s{result=%q} = %s, want %s", MetricMercurePublishes, result, got, want)
		}
	}
	if got := scrape(t, http.DefaultClient, r.plain, MetricMercureReplays+`{outcome="earliest"}`); got != "1" {
		t.Errorf("earliest replays %s, want 1", got)
	}
	if got := scrape(t, http.DefaultClient, r.plain, MetricMercureSubscribers); got != "1" {
		t.Errorf("%s = %s, want 1", MetricMercureSubscribers, got)
	}
}

// Bad input gets a clear 4xx, never a 5xx.
func TestMercureBadInput(t *testing.T) {
	r := startMercure(t)
	pub := publisherToken(t, "urn:allowed/{id}")
	now := time.Now()
	expired := hmacToken(t, pubSecret, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix(), "mercure": map[string]any{"publish": []string{"*"}}})
	future := hmacToken(t, pubSecret, jwt.MapClaims{"nbf": now.Add(time.Hour).Unix(), "mercure": map[string]any{"publish": []string{"*"}}})
	wrongType := hmacToken(t, pubSecret, jwt.MapClaims{"mercure": map[string]any{"publish": "*"}})
	wrongKey := hmacToken(t, []byte("some-other-secret-0123456789abcdef"), jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}})
	algNone := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJtZXJjdXJlIjp7InB1Ymxpc2giOlsiKiJdfX0."
	subToken := subscriberToken(t, "*") // signed with the subscriber key: no use for publishing
	ok := url.Values{"topic": {"urn:allowed/1"}, "data": {"x"}}

	type req struct {
		name        string
		method      string
		query       string
		body        string
		contentType string
		header      http.Header
		status      int
	}
	form := func(v url.Values) string { return v.Encode() }
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
	const ct = "application/x-www-form-urlencoded"
	tests := []req{
		// Publishing.
		{"no token", "POST", "", form(ok), ct, nil, 401},
		{"alg none", "POST", "", form(ok), ct, bearer(algNone), 401},
		{"wrong key", "POST", "", form(ok), ct, bearer(wrongKey), 401},
		{"subscriber key", "POST", "", form(ok), ct, bearer(subToken), 401},
		{"expired", "POST", "", form(ok), ct, bearer(expired), 401},
		{"not yet valid", "POST", "", form(ok), ct, bearer(future), 401},
		{"wrong claim type", "POST", "", form(ok), ct, bearer(wrongType), 401},
		{"basic auth", "POST", "", form(ok), ct, http.Header{"Authorization": {"Basic eDp5"}}, 401},
		{"topic not granted", "POST", "", form(url.Values{"topic": {"urn:other"}}), ct, bearer(pub), 403},
		{"one topic of two not granted", "POST", "", form(url.Values{"topic": {"urn:allowed/1", "urn:other"}}), ct, bearer(pub), 403},
		{"publisher token in the query string", "POST", "authorization=" + pub, form(ok), ct, nil, 400},
		{"cookie without an allowed origin", "POST", "", form(ok), ct, http.Header{"Cookie": {mercure.CookieName + "=" + pub}, "Origin": {"https://evil.example"}}, 403},
		{"not a form", "POST", "", `{"topic":"urn:allowed/1"}`, "application/json", bearer(pub), 415},
		{"malformed form", "POST", "", "topic=%zz", ct, bearer(pub), 400},
		{"missing topic", "POST", "", "data=x", ct, bearer(pub), 400},
		{"empty topic", "POST", "", "topic=&data=x", ct, bearer(pub), 400},
		{"too many topics", "POST", "", "topic=urn:allowed/1&topic=urn:allowed/2&topic=urn:allowed/3&topic=urn:allowed/4&topic=urn:allowed/5", ct, bearer(pub), 400},
		{"oversized data", "POST", "", form(url.Values{"topic": {"urn:allowed/1"}, "data": {strings.Repeat("x", 1025)}}), ct, bearer(pub), 413},
		{"oversized body", "POST", "", form(url.Values{"topic": {"urn:allowed/1"}, "data": {strings.Repeat("x", 200<<10)}}), ct, bearer(pub), 413},
		{"reserved id", "POST", "", form(url.Values{"topic": {"urn:allowed/1"}, "id": {"earliest"}}), ct, bearer(pub), 400},
		{"id with a hash", "POST", "", form(url.Values{"topic": {"urn:allowed/1"}, "id": {"#1"}}), ct, bearer(pub), 400},
		{"bad retry", "POST", "", form(url.Values{"topic": {"urn:allowed/1"}, "retry": {"1s"}}), ct, bearer(pub), 400},
		// Subscribing.
		{"no topic", "GET", "", "", "", nil, 400},
		{"empty topic", "GET", "topic=", "", "", nil, 400},
		{"invalid template", "GET", "topic=" + url.QueryEscape("https://example.com/{id"), "", "", nil, 400},
		{"too many selectors", "GET", "topic=a&topic=b&topic=c&topic=d&topic=e", "", "", nil, 400},
		{"subscriber alg none", "GET", "topic=*", "", "", bearer(algNone), 401},
		{"subscriber wrong key", "GET", "topic=*", "", "", bearer(pub), 401},
		{"subscriber expired", "GET", "topic=*", "", "", bearer(hmacToken(t, subSecret, jwt.MapClaims{"exp": now.Add(-time.Minute).Unix()})), 401},
		{"subscriber wrong claim type", "GET", "topic=*", "", "", bearer(hmacToken(t, subSecret, jwt.MapClaims{"mercure": map[string]any{"subscribe": 1}})), 401},
		{"subscriber bad query token", "GET", "topic=*&authorization=garbage", "", "", nil, 401},
		// Other methods.
		{"PUT", "PUT", "", "", "", nil, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := r.plain + hubhttp.Path
			if tt.query != "" {
				u += "?" + tt.query
			}
			req, err := http.NewRequestWithContext(testContext(t), tt.method, u, strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			got := do(t, req)
			if got.status != tt.status {
				t.Fatalf("status %d (%q), want %d", got.status, got.body, tt.status)
			}
			if got.body == "" && tt.method != "GET" {
				t.Error("no explanation in the body")
			}
		})
	}
	// None of that was stored.
	sub := subscribe(t, r.plain, url.Values{"topic": {"*"}, "lastEventID": {"earliest"}}, nil)
	marker := mustPublish(t, r.plain, url.Values{"topic": {"urn:m"}, "id": {"marker"}})
	if got := sub.readUntil(t, marker); len(got) != 1 {
		t.Fatalf("refused publishes were stored: %q", got)
	}
}

// A subscriber asking for a private topic it has no claim for gets its
// stream, and never the private update.
func TestMercurePrivateTopicWithoutClaim(t *testing.T) {
	r := startMercure(t)
	sub := subscribe(t, r.plain, url.Values{"topic": {"urn:secret", "urn:m"}, "lastEventID": {"earliest"}},
		http.Header{"Authorization": {"Bearer " + subscriberToken(t, "urn:public")}})
	mustPublish(t, r.plain, url.Values{"topic": {"urn:secret"}, "private": {""}, "data": {"top secret"}})
	marker := mustPublish(t, r.plain, url.Values{"topic": {"urn:m"}, "id": {"marker"}})
	if got := sub.readUntil(t, marker); len(got) != 1 {
		t.Fatalf("got %q", got)
	}
	if strings.Contains(sub.raw.buf.String(), "top secret") {
		t.Fatal("the private update leaked")
	}
}

// Private ids stay hidden from subscribers not entitled to them: the
// Last-Event-ID response header leaves them out, and naming one as
// Last-Event-ID is "unknown", as if it did not exist.
func TestMercurePrivateIDsStayHidden(t *testing.T) {
	r := startMercure(t)
	mustPublish(t, r.plain, url.Values{"topic": {"urn:s"}, "id": {"public-1"}})
	mustPublish(t, r.plain, url.Values{"topic": {"urn:s"}, "id": {"secret-2"}, "private": {""}})
	tests := []struct {
		name, token, lastEventID string
		header                   string
		outcome                  replay.Outcome
	}{
		{"anonymous", "", "", "", replay.New},
		{"anonymous naming the private id", "", "secret-2", "", replay.Unknown},
		{"anonymous naming the public id", "", "public-1", "", replay.Resumed},
		{"claim for another topic", subscriberToken(t, "urn:other"), "secret-2", "", replay.Unknown},
		{"entitled", subscriberToken(t, "urn:s"), "secret-2", "secret-2", replay.Resumed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.token != "" {
				h.Set("Authorization", "Bearer "+tt.token)
			}
			if tt.lastEventID != "" {
				h.Set("Last-Event-ID", tt.lastEventID)
			}
			s := subscribe(t, r.plain, url.Values{"topic": {"urn:s"}}, h)
			defer s.resp.Body.Close()
			if got := s.resp.Header.Get("Last-Event-ID"); got != tt.header {
				t.Errorf("Last-Event-ID %q, want %q", got, tt.header)
			}
			if got := s.resp.Header.Get(hubhttp.ReplayOutcomeHeader); got != string(tt.outcome) {
				t.Errorf("outcome %q, want %q", got, tt.outcome)
			}
		})
	}
}

// Data that JSON escaping grows past what NATS accepts is refused with a
// 413, not a failed store.
func TestMercureEncodedTooLarge(t *testing.T) {
	cfg := mercureConfig(t, embeddedLog(t))
	cfg.Mercure.Limits.MaxData = 300 << 10
	r := startServer(t, cfg, nil)
	waitHealthy(t, r.plain)
	res := post(t, r.plain, publisherToken(t, "*"), url.Values{"topic": {"urn:a"}, "data": {strings.Repeat("\x01", 300<<10)}})
	if res.status != http.StatusRequestEntityTooLarge {
		t.Fatalf("got %+v, want 413", res)
	}
}

// A subscription ends when its token expires: what the token granted
// (private updates) does not outlive it.
func TestMercureSubscriptionEndsWithItsToken(t *testing.T) {
	r := startMercure(t)
	tok := hmacToken(t, subSecret, jwt.MapClaims{
		"exp":     time.Now().Add(1500 * time.Millisecond).Unix(),
		"mercure": map[string]any{"subscribe": []string{"*"}},
	})
	s := subscribe(t, r.plain, url.Values{"topic": {"*"}}, http.Header{"Authorization": {"Bearer " + tok}})
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, s.resp.Body)
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the stream ended with %v, want a normal end", err)
		}
	case <-time.After(testTimeout):
		t.Fatal("the stream outlived its token")
	}
	waitFor(t, "the close logged", func() bool {
		for _, rec := range r.logs.records("mercure subscription closed") {
			if rec["end"] == stream.EndTokenExpired {
				return true
			}
		}
		return false
	})
}

// A page on an allowed origin publishes with the cookie; the same cookie
// from elsewhere, or without an Origin, is refused.
func TestMercureCookiePublishing(t *testing.T) {
	cfg := mercureConfig(t, embeddedLog(t))
	cfg.Mercure.CookieOrigins = []string{"https://app.example"}
	r := startServer(t, cfg, nil)
	waitHealthy(t, r.plain)
	tests := []struct {
		origin string
		status int
	}{
		{"https://app.example", http.StatusOK},
		{"https://evil.example", http.StatusForbidden},
		{"", http.StatusForbidden},
	}
	for _, tt := range tests {
		req, _ := http.NewRequestWithContext(testContext(t), http.MethodPost, r.plain+hubhttp.Path, strings.NewReader("topic=urn:a&data=x"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.AddCookie(&http.Cookie{Name: mercure.CookieName, Value: publisherToken(t, "*")})
		if tt.origin != "" {
			req.Header.Set("Origin", tt.origin)
		}
		if got := do(t, req); got.status != tt.status {
			t.Errorf("Origin %q: %+v, want %d", tt.origin, got, tt.status)
		}
	}
}

// A subscription past its budget gets a 400 naming the bound it passed,
// and nothing of it is compiled; a token that does not verify is refused
// first, whatever the selectors.
func TestMercureSubscriptionBudget(t *testing.T) {
	r := startMercure(t)
	q := func(topics ...string) string { return url.Values{"topic": topics}.Encode() }
	long := "https://example.com/" + strings.Repeat("a", 1800)
	tests := []struct {
		name, query string
		header      http.Header
		status      int
		bodyHas     string
	}{
		{"selectors", q("a", "b", "c", "d", "e"), nil, 400, "5 selectors, at most 4"},
		{"selector bytes", q(long, long, long, long+"/x"), nil, 400, "selector bytes, at most 4096"},
		{"template bytes", q("https://example.com/" + strings.Repeat("a", 300) + "/{id}"), nil, 400, "template bytes, at most 256"},
		{"template expressions", q("urn:{a}{b}{c}{d}", "urn:{e}{f}{g}{h}", "urn:{i}"), nil, 400, "9 template expressions, at most 8"},
		{"a bad token before the budget", q("a", "b", "c", "d", "e"), http.Header{"Authorization": {"Bearer garbage"}}, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(testContext(t), http.MethodGet, r.plain+hubhttp.Path+"?"+tt.query, nil)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header[k] = v
			}
			got := do(t, req)
			if got.status != tt.status || !strings.Contains(got.body, tt.bodyHas) {
				t.Fatalf("%d %q, want %d naming %q", got.status, got.body, tt.status, tt.bodyHas)
			}
		})
	}
}
