package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/tools/writeup"
)

// The Mercure hub behind real Envoy (issue 12): publish and subscribe
// through both listeners, private updates, the outage answers, the body
// limit, CORS for browser publishers, and a replica's kill -9.

const (
	mercurePath = "/.well-known/mercure"
	// publishLimit is the buffer filter's max_request_bytes on the Mercure
	// route (the upstream's default body limit).
	publishLimit = 3*256<<10 + 64<<10
	booksTopics  = "https://example.com/books/{id}"
)

// mercureTokens signs tokens with the development keys the stack's
// replicas verify.
func mercureToken(t *testing.T, key string, publish, subscribe []string) string {
	t.Helper()
	tok, err := localstack.MercureToken(key, publish, subscribe, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// subscription is one open Mercure subscription read by the SSE reader.
type subscription struct {
	name   string
	resp   *http.Response
	events chan sse.Event
}

// mercureSubscribe opens a subscription and returns once its response
// headers arrived: the hub registers a subscriber before it answers, so
// every update published from then on reaches it.
func mercureSubscribe(ctx context.Context, t *testing.T, name string, client *http.Client, rawURL string, h http.Header) *subscription {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("content-type"), "text/event-stream") {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		t.Fatalf("%s: %s %q %q", name, resp.Status, resp.Header.Get("content-type"), body)
	}
	s := &subscription{name: name, resp: resp, events: make(chan sse.Event, 1024)}
	go func() {
		defer resp.Body.Close()
		defer close(s.events)
		r := sse.NewReader(resp.Body)
		for {
			e, err := r.Next()
			if err != nil {
				return
			}
			s.events <- e
		}
	}()
	return s
}

// until reads s's updates until one has id last, within d.
func (s *subscription) until(t *testing.T, last string, d time.Duration) []sse.Event {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	var got []sse.Event
	for {
		select {
		case e, ok := <-s.events:
			if !ok {
				t.Fatalf("%s: the stream ended before %s; got %v", s.name, last, got)
			}
			got = append(got, e)
			if e.ID == last {
				return got
			}
		case <-timer.C:
			t.Fatalf("%s: no update %s within %v; got %v", s.name, last, d, got)
		}
	}
}

func ids(events []sse.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.ID)
	}
	return out
}

// publish POSTs a form to the hub with Go's client and returns the status
// and body.
func publish(t *testing.T, client *http.Client, base, token string, form url.Values, h http.Header) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+mercurePath, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", base+mercurePath, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// curlPublish publishes with the real curl, as docs/mercure.md does, and returns
// the status line and the update's id.
func curlPublish(t *testing.T, s *localstack.Stack, base, token string, fields ...string) (string, string) {
	t.Helper()
	args := []string{"--max-time", "10", "--cacert", s.CAFile, "-X", "POST", base + mercurePath, "-H", "Authorization: Bearer " + token}
	for _, f := range fields {
		args = append(args, "--data-urlencode", f)
	}
	status, _, body := writeup.Curl(t, args...)
	return status, strings.TrimSpace(body)
}

func statusIs(line string, code int) bool {
	return strings.HasSuffix(line, " "+strconv.Itoa(code)) || strings.Contains(line, " "+strconv.Itoa(code)+" ")
}

// Publish with curl through both listeners; subscribers on both listeners
// (HTTP/1.1 on 8080, h2 on 8443) get every public update, and a private one
// reaches only the subscribers whose token grants its topic, whether the
// token comes as a header, a cookie or the authorization query parameter.
// No log line anywhere prints the token.
func TestMercureThroughEnvoy(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		h1, h2 := httpClient(t, s, false), httpClient(t, s, true)
		pubTok := mercureToken(t, localstack.DevPublisherKey, []string{"*"}, nil)
		booksTok := mercureToken(t, localstack.DevSubscriberKey, nil, []string{booksTopics})
		usersTok := mercureToken(t, localstack.DevSubscriberKey, nil, []string{"https://example.com/users/{id}"})
		query := "?" + url.Values{"topic": {booksTopics}}.Encode()

		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		subs := map[string]*subscription{
			"anonymous 8080":    mercureSubscribe(ctx, t, "anonymous 8080", h1, s.HTTPURL+mercurePath+query, nil),
			"anonymous 8443":    mercureSubscribe(ctx, t, "anonymous 8443", h2, s.HTTPSURL+mercurePath+query, nil),
			"books header 8080": mercureSubscribe(ctx, t, "books header 8080", h1, s.HTTPURL+mercurePath+query, http.Header{"Authorization": {"Bearer " + booksTok}}),
			"books query 8443":  mercureSubscribe(ctx, t, "books query 8443", h2, s.HTTPSURL+mercurePath+query+"&authorization="+booksTok, nil),
			"books cookie 8443": mercureSubscribe(ctx, t, "books cookie 8443", h2, s.HTTPSURL+mercurePath+query, http.Header{"Cookie": {"mercureAuthorization=" + booksTok}}),
			"users token 8080":  mercureSubscribe(ctx, t, "users token 8080", h1, s.HTTPURL+mercurePath+query, http.Header{"Authorization": {"Bearer " + usersTok}}),
		}
		for name, sub := range subs {
			if got := sub.resp.Header.Get("x-sse-stream"); got != tagOf(a) {
				t.Errorf("%s: x-sse-stream %q, want %q (the adapter sees a stream)", name, got, tagOf(a))
			}
			if want := map[bool]int{true: 2, false: 1}[strings.HasSuffix(name, "8443")]; sub.resp.ProtoMajor != want {
				t.Errorf("%s: HTTP/%d, want HTTP/%d", name, sub.resp.ProtoMajor, want)
			}
			if got := sub.resp.Header.Get("cache-control"); got != "no-cache" {
				t.Errorf("%s: cache-control %q", name, got)
			}
		}

		st1, id1 := curlPublish(t, s, s.HTTPURL, pubTok, "topic=https://example.com/books/1", `data={"title":"Dune"}`, "type=book")
		st2, id2 := curlPublish(t, s, s.HTTPSURL, pubTok, "topic=https://example.com/books/2", `data={"title":"Solaris"}`, "type=book")
		st3, id3 := curlPublish(t, s, s.HTTPSURL, pubTok, "topic=https://example.com/books/3", "data=for readers with a token", "private=on")
		st4, id4 := curlPublish(t, s, s.HTTPURL, pubTok, "topic=https://example.com/books/4", "data=marker")
		if st1 != "HTTP/1.1 200 OK" || st2 != "HTTP/2 200" || st3 != "HTTP/2 200" || st4 != "HTTP/1.1 200 OK" {
			t.Fatalf("publish statuses %q %q %q %q, want 200 on both ports", st1, st2, st3, st4)
		}
		for _, id := range []string{id1, id2, id3, id4} {
			if !strings.HasPrefix(id, "urn:uuid:") {
				t.Fatalf("publish answered %q, want the update's urn:uuid id", id)
			}
		}
		t.Logf("published %s %s %s (private) %s", id1, id2, id3, id4)

		public, all := []string{id1, id2, id4}, []string{id1, id2, id3, id4}
		for name, sub := range subs {
			got := sub.until(t, id4, 15*time.Second)
			want := public
			if strings.HasPrefix(name, "books") {
				want = all
			}
			if !slices.Equal(ids(got), want) {
				t.Errorf("%s: updates %q, want %q", name, ids(got), want)
			}
			if got[0].Type != "book" || got[0].Data != `{"title":"Dune"}` {
				t.Errorf("%s: first update %+v", name, got[0])
			}
		}

		// The subscriptions end; Envoy writes their access log entries.
		cancel()
		entries := waitForAccessLog(t, s, func(e accessLogEntry) bool { return e.str("path") == mercurePath }, len(subs)+4)
		for _, e := range entries {
			if e.str("method") == "GET" && e.str("upstream_cluster") != envoyconfig.ClusterTLS {
				t.Errorf("a subscription went to %q, want %s", e.str("upstream_cluster"), envoyconfig.ClusterTLS)
			}
		}
		for _, p := range s.Processes() {
			if out := p.Output(); strings.Contains(out, booksTok) {
				t.Errorf("%s's output holds a subscriber's token", p.Name)
			}
		}
	})
}

// The hub's CORS: a browser publisher's preflight (POST with Authorization
// and Content-Type) passes on both ports, the POST itself and a credentialed
// subscription get the exact origin with credentials; another origin's
// preflight is refused. And a publish body over the limit gets Envoy's 413,
// one under it goes through.
func TestMercureCORSAndBodyLimit(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		pubTok := mercureToken(t, localstack.DevPublisherKey, []string{"*"}, nil)
		origin := s.DemoURL // the demo page: allowed
		for _, base := range []string{s.HTTPURL, s.HTTPSURL} {
			status, h, _ := writeup.Curl(t, "--max-time", "5", "--cacert", s.CAFile, "-X", "OPTIONS", base+mercurePath,
				"-H", "Origin: "+origin, "-H", "Access-Control-Request-Method: POST",
				"-H", "Access-Control-Request-Headers: authorization,content-type")
			if !statusIs(status, 204) {
				t.Errorf("%s: preflight %q, want 204", base, status)
			}
			if h.Get("access-control-allow-origin") != origin || h.Get("access-control-allow-credentials") != "true" {
				t.Errorf("%s: preflight grant %q credentials %q", base, h.Get("access-control-allow-origin"), h.Get("access-control-allow-credentials"))
			}
			methods := strings.ToLower(h.Get("access-control-allow-methods"))
			headers := strings.ToLower(h.Get("access-control-allow-headers"))
			if !strings.Contains(methods, "post") || !strings.Contains(headers, "authorization") || !strings.Contains(headers, "content-type") {
				t.Errorf("%s: preflight allows methods %q headers %q", base, methods, headers)
			}
			status, h, _ = writeup.Curl(t, "--max-time", "5", "--cacert", s.CAFile, "-X", "OPTIONS", base+mercurePath,
				"-H", "Origin: "+s.DemoURLOtherOrigin, "-H", "Access-Control-Request-Method: POST")
			if !statusIs(status, 403) || h.Get("access-control-allow-origin") != "" {
				t.Errorf("%s: preflight from %s: %q allow-origin %q, want 403 without a grant", base, s.DemoURLOtherOrigin, status, h.Get("access-control-allow-origin"))
			}
		}
		h2 := httpClient(t, s, true)
		resp, body := publish(t, h2, s.HTTPSURL, pubTok, url.Values{"topic": {"https://example.com/cors"}, "data": {"x"}}, http.Header{"Origin": {origin}})
		if resp.StatusCode != 200 || resp.Header.Get("access-control-allow-origin") != origin || resp.Header.Get("access-control-allow-credentials") != "true" {
			t.Errorf("publish from %s: %s %q, allow-origin %q credentials %q", origin, resp.Status, body,
				resp.Header.Get("access-control-allow-origin"), resp.Header.Get("access-control-allow-credentials"))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		sub := mercureSubscribe(ctx, t, "credentialed", h2, s.HTTPSURL+mercurePath+"?topic=*", http.Header{"Origin": {origin}, "Cookie": {"mercureAuthorization=" + mercureToken(t, localstack.DevSubscriberKey, nil, []string{"*"})}})
		if sub.resp.Header.Get("access-control-allow-origin") != origin || sub.resp.Header.Get("access-control-allow-credentials") != "true" {
			t.Errorf("credentialed subscription: allow-origin %q credentials %q, want the exact origin with credentials",
				sub.resp.Header.Get("access-control-allow-origin"), sub.resp.Header.Get("access-control-allow-credentials"))
		}
		cancel()

		// Body limit. Under it: 200 KiB of data in a 600 KiB form (data
		// percent-encoded) goes through, past the listeners' 32 KiB
		// per-connection buffers.
		h1 := httpClient(t, s, false)
		big := strings.Repeat("é", 100<<10) // 200 KiB of data, 600 KiB encoded
		for _, tc := range []struct {
			name   string
			client *http.Client
			base   string
		}{{"8080", h1, s.HTTPURL}, {"8443", h2, s.HTTPSURL}} {
			resp, body := publish(t, tc.client, tc.base, pubTok, url.Values{"topic": {"https://example.com/big"}, "data": {big}}, nil)
			if resp.StatusCode != 200 {
				t.Errorf("%s: a %d-byte publish: %s %q, want 200", tc.name, len(url.Values{"data": {big}}.Encode()), resp.Status, body)
			}
			over := url.Values{"topic": {"https://example.com/big"}, "data": {strings.Repeat("a", publishLimit)}}
			resp, body = publish(t, tc.client, tc.base, pubTok, over, nil)
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("%s: a %d-byte publish: %s %q, want 413", tc.name, len(over.Encode()), resp.Status, body)
			}
		}
		// Envoy's own 413: no upstream host served it.
		entries := waitForAccessLog(t, s, func(e accessLogEntry) bool {
			return e.str("path") == mercurePath && e.str("response_code") == "413"
		}, 2)
		for _, e := range entries {
			if h := e.str("upstream_host"); h != "" && h != "-" {
				t.Errorf("413 from upstream %q (%s), want Envoy's own", h, e.str("response_code_details"))
			}
		}
		t.Logf("413 details: %s", entries[0].str("response_code_details"))
	})
}

// With every replica down, a subscriber gets the outage answer (200, retry,
// EventSource comes back by itself) and a publisher gets a real 503 (it
// retries with the same id). While the hub is up, its 401 passes through
// unchanged: a bad token is final for an EventSource.
func TestMercureOutage(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		pubTok := mercureToken(t, localstack.DevPublisherKey, []string{"*"}, nil)
		form := []string{"topic=https://example.com/books/1", "data=x", "id=urn:e2e:outage"}

		status, h, _ := writeup.Curl(t, "--max-time", "5", s.HTTPURL+mercurePath+"?topic=*&authorization=not-a-token")
		if !statusIs(status, 401) || h.Get(envoyconfig.LocalReplyHeader) != "" {
			t.Errorf("a bad subscriber token: %q %v, want the hub's 401 unchanged", status, h)
		}
		if st, _ := curlPublish(t, s, s.HTTPURL, "not-a-token", form...); !statusIs(st, 401) {
			t.Errorf("a bad publisher token: %q, want 401", st)
		}

		stopUpstreams(t, s)
		for _, when := range []string{"at once", "once health checks failed"} {
			if when != "at once" {
				waitForFailedHealthChecks(t, s, 30*time.Second)
			}
			for _, base := range []string{s.HTTPURL, s.HTTPSURL} {
				st, body := curlPublish(t, s, base, pubTok, form...)
				if !statusIs(st, 503) || strings.Contains(body, "retry:") {
					t.Errorf("%s: publish to %s: %q %q, want 503 (a publisher retries)", when, base, st, body)
				}
				status, h, body := writeup.Curl(t, "--max-time", "5", "--cacert", s.CAFile, base+mercurePath+"?topic=*")
				if !statusIs(status, 200) || h.Get("content-type") != "text/event-stream" || h.Get(envoyconfig.LocalReplyHeader) == "" ||
					!strings.Contains(body, "retry: 2000\n") {
					t.Errorf("%s: subscribe at %s: %q %v %q, want the 200 outage answer", when, base, status, h, body)
				}
				t.Logf("%s %s: publish %q, subscribe %q %s", when, base, st, status, h.Get(envoyconfig.LocalReplyHeader))
			}
		}
	})
}

// kill -9 of a replica under subscribers and a steady publisher: every
// subscriber resumes with Last-Event-ID on the other replica and sees every
// update once, in order. The publisher retries a failed publish with the
// same id (the hub stores it once).
func TestMercureKillReplica(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackOptions(t, localstack.Options{Adapter: a, Replicas: 2})
		pubTok := mercureToken(t, localstack.DevPublisherKey, []string{"*"}, nil)
		h1, h2 := httpClient(t, s, false), httpClient(t, s, true)
		ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
		defer cancel()

		type follower struct {
			mu       sync.Mutex
			ids      []int
			replays  []string
			connects int
		}
		const topic = "urn:e2e:kill"
		var followers []*follower
		for i := range 8 {
			f := &follower{}
			client, base := h1, s.HTTPURL
			if i%2 == 1 {
				client, base = h2, s.HTTPSURL
			}
			c := &sse.Client{HTTP: client, URL: base + mercurePath + "?topic=" + url.QueryEscape(topic), Retry: 300 * time.Millisecond,
				OnConnect: func(r *http.Response) {
					f.mu.Lock()
					defer f.mu.Unlock()
					f.connects++
					f.replays = append(f.replays, r.Header.Get("x-mercure-replay"))
				}}
			go c.Run(ctx, func(e sse.Event) {
				n, err := strconv.Atoi(strings.TrimPrefix(e.ID, "urn:e2e:"))
				if err != nil {
					t.Errorf("update id %q", e.ID)
				}
				f.mu.Lock()
				f.ids = append(f.ids, n)
				f.mu.Unlock()
			})
			followers = append(followers, f)
		}
		all := func(cond func(f *follower) bool) bool {
			for _, f := range followers {
				f.mu.Lock()
				ok := cond(f)
				f.mu.Unlock()
				if !ok {
					return false
				}
			}
			return true
		}
		if !waitFor(20*time.Second, func() bool { return all(func(f *follower) bool { return f.connects > 0 }) }) {
			t.Fatal("the subscribers did not all connect within 20 s")
		}

		retried := 0
		publishN := func(n int) {
			deadline := time.Now().Add(30 * time.Second)
			for {
				form := url.Values{"topic": {topic}, "id": {fmt.Sprintf("urn:e2e:%d", n)}, "data": {strconv.Itoa(n)}}
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.HTTPURL+mercurePath, strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Authorization", "Bearer "+pubTok)
				resp, err := h1.Do(req)
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode == 200 {
						if got := strings.TrimSpace(string(body)); got != form.Get("id") {
							t.Errorf("publish %d answered id %q", n, got)
						}
						return
					}
					err = fmt.Errorf("%s %q", resp.Status, body)
				}
				if time.Now().After(deadline) {
					t.Fatalf("publish %d: still failing after 30 s: %v", n, err)
				}
				retried++
				t.Logf("publish %d: %v; retrying with the same id", n, err)
				time.Sleep(100 * time.Millisecond)
			}
		}
		const before, total = 20, 60
		for n := 1; n <= before; n++ {
			publishN(n)
		}
		if !waitFor(20*time.Second, func() bool {
			return all(func(f *follower) bool { return len(f.ids) > 0 && f.ids[len(f.ids)-1] == before })
		}) {
			t.Fatalf("the subscribers did not all reach update %d within 20 s", before)
		}

		s.Upstreams[0].SetRestart(false) // it stays dead: its subscribers must move
		if err := s.Upstreams[0].Kill(); err != nil {
			t.Fatal(err)
		}
		killed := time.Now()
		for n := before + 1; n <= total; n++ {
			publishN(n)
		}
		ok := waitFor(45*time.Second, func() bool {
			return all(func(f *follower) bool { return len(f.ids) > 0 && f.ids[len(f.ids)-1] >= total })
		})
		cancel()
		moved := 0
		for i, f := range followers {
			f.mu.Lock()
			want := make([]int, total)
			for j := range want {
				want[j] = j + 1
			}
			if !slices.Equal(f.ids, want) {
				t.Errorf("subscriber %d: updates %v, want 1..%d once each, in order", i, f.ids, total)
			}
			if f.connects > 1 {
				moved++
				for _, r := range f.replays[1:] {
					if r != "replayed" {
						t.Errorf("subscriber %d: a reconnection's X-Mercure-Replay %q, want replayed (it sent its Last-Event-ID)", i, r)
					}
				}
			}
			f.mu.Unlock()
		}
		if !ok {
			t.Errorf("not every subscriber reached update %d within 45 s", total)
		}
		if moved == 0 {
			t.Error("no subscriber reconnected: the kill hit none of them")
		}
		t.Logf("%d of %d subscribers resumed on the other replica; all had updates 1..%d %v after the kill -9; %d publishes retried",
			moved, len(followers), total, time.Since(killed).Round(100*time.Millisecond), retried)
	})
}

// mercurePage is what the demo page shows of its Mercure subscriptions.
type mercurePage struct {
	State   string `json:"state"`
	Mode    string `json:"mode"`
	Updates []struct {
		ID   string `json:"id"`
		Data string `json:"data"`
	} `json:"updates"`
}

// The demo page in Chromium subscribes through Envoy (anonymous and with the
// token as the query parameter on 8443, with the token as the cookie on
// 8080), publishes with the
// publisher token (fetch with Authorization: a real CORS preflight) and
// shows the updates arrive: the private one only where a token went along.
func TestMercureDemoPage(t *testing.T) {
	ctx := browser(t)
	s := startStackWith(t, localstack.AdapterModule)
	pub, sub, err := localstack.DevTokens(time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// The hub on 8443 (h2).
	page := fmt.Sprintf("%s/?hub=%s#publisher=%s&subscriber=%s", s.DemoURL, url.QueryEscape(s.HTTPSURL), pub, sub)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	// The cookie goes to Envoy on the page's own host and scheme
	// (http://localhost): to https it would be a cross-site cookie.
	plainHub := strings.Replace(s.HTTPURL, "127.0.0.1", "localhost", 1)
	js := fmt.Sprintf(`mercureSubscribe(%[1]q, "none"); mercureSubscribe(%[1]q, "query"); mercureSubscribe(%[1]q, "cookie", %[2]q); true`, booksTopics, plainHub)
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js)); err != nil {
		t.Fatal(err)
	}
	read := func() []mercurePage {
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]mercurePage](`window.mercure.subscriptions.map(m => ({state: m.state, mode: m.mode, updates: m.updates}))`))
		if err != nil {
			t.Fatalf("reading the page: %v", err)
		}
		return got
	}
	if !waitFor(20*time.Second, func() bool {
		for _, m := range read() {
			if m.State != "open" {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("the page's subscriptions did not open: %+v", read())
	}
	type published struct {
		Status int    `json:"status"`
		Answer string `json:"answer"`
	}
	var ids []string
	for _, js := range []string{
		`mercurePublish("https://example.com/books/1", "public", false)`,
		`mercurePublish("https://example.com/books/2", "private", true)`,
		`mercurePublish("https://example.com/books/3", "marker", false)`,
	} {
		p, err := chromedp.Run(ctx, chromedp.Evaluate[published](js, chromedp.EvalAwaitPromise))
		if err != nil || p.Status != 200 {
			t.Fatalf("%s from the page: %+v %v", js, p, err)
		}
		ids = append(ids, p.Answer)
	}
	want := map[string][]string{"none": {ids[0], ids[2]}, "query": ids, "cookie": ids}
	var got []mercurePage
	ok := waitFor(15*time.Second, func() bool {
		got = read()
		for _, m := range got {
			if len(m.Updates) < len(want[m.Mode]) {
				return false
			}
		}
		return true
	})
	for _, m := range got {
		var seen []string
		for _, u := range m.Updates {
			seen = append(seen, u.ID)
		}
		if !slices.Equal(seen, want[m.Mode]) {
			t.Errorf("%s subscription shows %q, want %q", m.Mode, seen, want[m.Mode])
		}
	}
	if !ok {
		t.Errorf("the page did not show every update within 15 s: %+v", got)
	}
}
