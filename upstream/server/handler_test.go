package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/seed"
	"example.com/sse-on-envoy/upstream/stream"
)

func TestRoutes(t *testing.T) {
	h := hub.New(hub.Options{})
	defer h.Close()
	ts, c := newH1(t, NewHandler(h, HandlerOptions{}))
	tests := []struct {
		method, path string
		status       int
		allow, body  string
	}{
		{"GET", "/healthz", 200, "", "ok\n"},
		{"POST", "/sse/events", 405, "GET", ""},
		{"PUT", "/sse/events", 405, "GET", ""},
		{"HEAD", "/sse/events", 405, "GET", ""},
		{"GET", "/nope", 404, "", ""},
		{"GET", "/", 404, "", ""},
		{"GET", "/sse/events/more", 404, "", ""},
		// The token stream is served, and only for POST.
		{"GET", "/v1/chat/completions", 405, "POST", ""},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(testContext(t), tc.method, ts.URL+tc.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if got := resp.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if tc.body != "" && string(body) != tc.body {
				t.Errorf("body %q, want %q", body, tc.body)
			}
		})
	}
}

// A new client sees the headers curl users expect, the retry hint once, and
// the newest event at once (not the history), then live events; on HTTP/1.1
// and on HTTP/2 over TLS.
func TestNewClientStream(t *testing.T) {
	for _, proto := range []struct {
		name  string
		major int
		serve func(*testing.T, http.Handler) (*httptest.Server, *http.Client)
	}{
		{"HTTP/1.1", 1, newH1},
		{"HTTP/2", 2, newH2},
	} {
		t.Run(proto.name, func(t *testing.T) {
			h := hub.New(hub.Options{})
			defer h.Close()
			publish(t, h, 3)
			ts, c := proto.serve(t, NewHandler(h, HandlerOptions{Stream: stream.Options{Retry: 1500 * time.Millisecond}}))
			ctx := testContext(t)
			s := openStream(ctx, t, c, ts.URL+seed.EventsPath, nil)
			if s.resp.ProtoMajor != proto.major {
				t.Errorf("proto %s, want major %d", s.resp.Proto, proto.major)
			}
			for k, want := range map[string]string{
				"Content-Type":  "text/event-stream",
				"Cache-Control": "no-cache",
				"X-Sse-Replay":  "none",
			} {
				if got := s.resp.Header.Get(k); got != want {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if e := s.next(t); e.ID != "3" || e.Type != "DAD_JOKE" || e.Data != "joke 2" {
				t.Errorf("first event %+v, want the newest (id 3)", e)
			}
			publish(t, h, 2)
			if got := fmt.Sprint(s.readIDs(t, 2)); got != "[4 5]" {
				t.Errorf("live ids %s, want [4 5]", got)
			}
			raw := s.raw.buf.String()
			wantStart := "retry: 1500\n\nid: 3\nevent: DAD_JOKE\ndata: joke 2\n\n"
			if !strings.HasPrefix(raw, wantStart) {
				t.Errorf("stream starts %q, want %q", raw, wantStart)
			}
			if n := strings.Count(raw, "retry:"); n != 1 {
				t.Errorf("%d retry lines, want 1", n)
			}
		})
	}
}

func TestResume(t *testing.T) {
	// History 10 after 20 events holds ids 11..20.
	tests := []struct {
		name   string
		header string   // Last-Event-ID header; "" for none
		query  string   // lastEventId parameter; "" for none
		replay string   // x-sse-replay
		first  []uint64 // before live events
	}{
		{"header", "15", "", "replayed 5", span(16, 20)},
		{"query parameter", "", "17", "replayed 3", span(18, 20)},
		{"header wins over query", "18", "12", "replayed 2", span(19, 20)},
		{"up to date", "20", "", "replayed 0", []uint64{}},
		{"older than history", "4", "", "gap 10", span(11, 20)},
		{"malformed", "not-an-id", "", "invalid-last-event-id", []uint64{20}},
		{"malformed query", "", "1e3", "invalid-last-event-id", []uint64{20}},
		{"from the future", "999", "", "future-last-event-id", []uint64{20}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hub.New(hub.Options{History: 10})
			defer h.Close()
			publish(t, h, 20)
			ts, c := newH1(t, NewHandler(h, HandlerOptions{}))
			ctx := testContext(t)
			url := ts.URL + seed.EventsPath
			if tc.query != "" {
				url += "?lastEventId=" + tc.query
			}
			hdr := http.Header{}
			if tc.header != "" {
				hdr.Set("Last-Event-ID", tc.header)
			}
			s := openStream(ctx, t, c, url, hdr) // fails the test on non-200
			if got := s.resp.Header.Get("X-Sse-Replay"); got != tc.replay {
				t.Errorf("x-sse-replay %q, want %q", got, tc.replay)
			}
			got := s.readIDs(t, len(tc.first))
			if fmt.Sprint(got) != fmt.Sprint(tc.first) {
				t.Errorf("replayed %v, want %v", got, tc.first)
			}
			// Live events follow the replay with no gap and no duplicate.
			last := h.Stats().LastID
			publish(t, h, 3)
			if live := s.readIDs(t, 3); fmt.Sprint(live) != fmt.Sprint(span(last+1, last+3)) {
				t.Errorf("live %v after replay, want %v", live, span(last+1, last+3))
			}
			s.resp.Body.Close()
		})
	}
}

// Events published while clients connect and resume must reach each client
// exactly once, in order, whatever the interleaving.
func TestResumeUnderConcurrentPublishing(t *testing.T) {
	h := hub.New(hub.Options{History: 4096, Queue: 4096})
	defer h.Close()
	publish(t, h, 50)
	ts, c := newH1(t, NewHandler(h, HandlerOptions{}))
	ctx := testContext(t)

	stop := make(chan struct{})
	published := make(chan struct{})
	go func() {
		defer close(published)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := h.Publish(seed.EventType, "x"); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	var streams []*clientStream
	var starts []uint64
	for i := range 5 {
		from := uint64(10 * i)
		hdr := http.Header{"Last-Event-Id": {fmt.Sprint(from)}}
		streams = append(streams, openStream(ctx, t, c, ts.URL+seed.EventsPath, hdr))
		starts = append(starts, from)
	}
	time.Sleep(50 * time.Millisecond)
	close(stop)
	<-published
	last := h.Stats().LastID
	for i, s := range streams {
		got := s.readIDs(t, int(last-starts[i]))
		if fmt.Sprint(got) != fmt.Sprint(span(starts[i]+1, last)) {
			t.Errorf("client after %d got %v, want %d..%d", starts[i], got, starts[i]+1, last)
		}
	}
}

func TestHeartbeat(t *testing.T) {
	h := hub.New(hub.Options{})
	defer h.Close()
	ts, c := newH1(t, NewHandler(h, HandlerOptions{Stream: stream.Options{Heartbeat: 20 * time.Millisecond}}))
	ctx := testContext(t)
	s := openStream(ctx, t, c, ts.URL+seed.EventsPath, nil)
	// No events are published: only heartbeats can arrive.
	err := countLines(ctx, s.resp.Body, func(l string) bool { return l == ": heartbeat" }, 3)
	if err != nil {
		t.Fatalf("waiting for 3 heartbeats: %v", err)
	}
}

func TestMultiLineDataRoundTrip(t *testing.T) {
	tests := []struct{ name, data, want string }{
		{"single line", "one line", "one line"},
		{"LF", "setup\npunchline", "setup\npunchline"},
		{"CRLF and CR", "a\r\nb\rc", "a\nb\nc"},
		{"trailing newline", "ends\n", "ends\n"},
		{"blank line inside", "before\n\nafter", "before\n\nafter"},
		{"leading spaces kept", "  indented", "  indented"},
		{"looks like a field", "id: 99\nevent: x\n: not a comment", "id: 99\nevent: x\n: not a comment"},
		{"empty", "", ""},
	}
	h := hub.New(hub.Options{})
	defer h.Close()
	ts, c := newH2(t, NewHandler(h, HandlerOptions{}))
	ctx := testContext(t)
	s := openStream(ctx, t, c, ts.URL+seed.EventsPath, nil)
	for _, tc := range tests {
		if _, err := h.Publish(seed.EventType, tc.data); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range tests {
		e := s.next(t)
		if e.Data != tc.want || e.Type != seed.EventType {
			t.Errorf("%s: got type %q data %q, want %q", tc.name, e.Type, e.Data, tc.want)
		}
	}
}

// Every client that goes away is unsubscribed and its handler returns, and
// nothing is left running once the server is closed.
func TestClientDisconnectFreesEverything(t *testing.T) {
	// On the handler's goroutine, and detached (HTTP/1.1 taken from
	// net/http, whose request context then tells nothing).
	for _, detached := range []*stream.Detached{nil, stream.NewDetached()} {
		t.Run(fmt.Sprintf("detached=%t", detached != nil), func(t *testing.T) { testClientDisconnect(t, detached) })
	}
}

func testClientDisconnect(t *testing.T, detached *stream.Detached) {
	logs := &logBuffer{}
	h := hub.New(hub.Options{})
	publish(t, h, 1)
	handler := NewHandler(h, HandlerOptions{Logger: logs.logger(), Stream: stream.Options{Heartbeat: time.Minute, Detached: detached}})
	ts1, c1 := newH1(t, handler)
	ts2, c2 := newH2(t, handler)

	for i := range 6 {
		ts, c := ts1, c1
		if i%2 == 1 {
			ts, c = ts2, c2
		}
		ctx, cancel := context.WithCancel(testContext(t))
		s := openStream(ctx, t, c, ts.URL+seed.EventsPath, nil)
		s.next(t)
		cancel()
	}
	// Heartbeats are a minute apart: the end is noticed from the
	// connection, not from a failed write.
	waitFor(t, "all subscribers gone", func() bool { return h.Stats().Subscribers == 0 })
	if detached != nil {
		waitFor(t, "no detached stream left", func() bool { return detached.Len() == 0 })
	}
	waitFor(t, "6 closed streams logged", func() bool { return len(logs.records("sse stream closed")) == 6 })
	for _, rec := range logs.records("sse stream closed") {
		if rec["end"] != stream.EndClientGone {
			t.Errorf("stream ended %v, want %s", rec["end"], stream.EndClientGone)
		}
		for _, k := range []string{"proto", "remote", "last_event_id", "replay", "events", "duration"} {
			if _, ok := rec[k]; !ok {
				t.Errorf("close log lacks %s: %v", k, rec)
			}
		}
	}
	h.Close()
	c1.CloseIdleConnections()
	c2.CloseIdleConnections()
	ts1.Close()
	ts2.Close()
	goleak.VerifyNone(t)
}
