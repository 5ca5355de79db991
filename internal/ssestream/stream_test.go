package ssestream

import (
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/extract"
	"example.com/sse-on-envoy/internal/policy"
)

type lines []string

func (l *lines) Log(level policy.Level, msg string) { *l = append(*l, level.String()+" "+msg) }
func (l *lines) SetMetadata(string, any)            {}
func (l *lines) End() End                           { return End{} }

// ended is a Host whose Envoy says end.
type ended struct {
	*lines
	end End
}

func (e ended) End() End { return e.end }

type headers map[string]string

func (h headers) Get(k string) (string, bool) { v, ok := h[k]; return v, ok }
func (h headers) Set(k, v string)             { h[k] = v }
func (h headers) Del(k string)                { delete(h, k) }

type counter struct{ n int64 }

func (c *counter) Increment(d int64) { c.n += d }

func TestStreamLinesStayOneLineAndUseTheConfiguredLevel(t *testing.T) {
	level := "debug"
	p, err := policy.New(&policy.Config{StreamLogLevel: &level})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(0, 0)
	s := New(p, nil, "test", func() time.Time { return clock })
	s.OnRequestHeaders(headers{":method": "GET", "origin": "https://x\r\ninjected", ":path": "/sse/events?a=b c"}, true)
	var log lines
	if s.OnResponseHeaders(headers{"content-type": "text/event-stream"}, false) {
		s.Open(Info{Route: "r", Protocol: "HTTP/2"}, &log)
	}
	s.OnResponseData([]byte("id: a b\ndata: x\n\n"), true)
	clock = clock.Add(1500 * time.Millisecond)
	s.Finish(&log)
	s.Finish(&log)
	if len(log) != 2 {
		t.Fatalf("log = %q", log)
	}
	for _, l := range log {
		if !strings.HasPrefix(l, "DEBUG ") || strings.ContainsAny(l, "\r\n") {
			t.Errorf("line %q", l)
		}
	}
	if !strings.Contains(log[0], `origin="https://x\r\ninjected"`) || !strings.Contains(log[0], `path="/sse/events?a=b c"`) {
		t.Errorf("opened line %q", log[0])
	}
	if want := `duration=1.5s events=1 bytes=17 last_event_id="a b" first_event=0s end=upstream_end`; !strings.Contains(log[1], want) {
		t.Errorf("closed line %q lacks %q", log[1], want)
	}
}

func TestActiveGaugeReturnsToZero(t *testing.T) {
	p, _ := policy.New(nil)
	opened, active, events := &counter{}, &counter{}, &counter{}
	m := &Metrics{StreamsOpened: opened, StreamsActive: active, Events: events}
	var log lines
	streams := make([]*Stream, 3)
	for i := range streams {
		streams[i] = New(p, m, "test", nil)
		streams[i].OnRequestHeaders(headers{":method": "GET", ":path": "/"}, true)
		streams[i].Open(Info{}, &log)
		streams[i].Open(Info{}, &log)
		streams[i].OnResponseData([]byte("data: 1\n\ndata: 2\n\n"), false)
	}
	if active.n != 3 || opened.n != 3 || events.n != 6 {
		t.Fatalf("active=%d opened=%d events=%d", active.n, opened.n, events.n)
	}
	for _, s := range streams {
		s.Finish(&log)
		s.Finish(&log)
	}
	if active.n != 0 {
		t.Errorf("active = %d after all streams ended", active.n)
	}
}

// Whatever the upstream sends, a stream holds a bounded number of bytes: a
// 10 MB line in 64 KiB chunks leaves the line buffer at the id limit.
func TestStreamMemoryIsBoundedByTheIDLimit(t *testing.T) {
	p, _ := policy.New(nil)
	s := New(p, nil, "test", nil)
	var log lines
	s.Open(Info{}, &log)
	s.OnResponseData([]byte("id: 1\ndata: "), false)
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = 'x'
	}
	for range 160 {
		s.OnResponseData(chunk, false)
	}
	s.OnResponseData([]byte("\n\n"), false)
	if held := s.scanner.BufferedBytes(); held > 4*LineLimit {
		t.Errorf("the stream holds %d bytes after a 10 MB line", held)
	}
	if sum := s.Summary(); sum.Events != 1 || sum.LastEventID != "1" || sum.Bytes != uint64(160*64<<10+len("id: 1\ndata: \n\n")) {
		t.Errorf("summary %+v", sum)
	}
}

func TestClosedLineNamesTheEnd(t *testing.T) {
	p, _ := policy.New(nil)
	for _, tc := range []struct {
		end  End
		want string
	}{
		{End{UpstreamEnded: true, Details: "via_upstream"}, "end=upstream_end"},
		{End{Details: "downstream_remote_disconnect"}, "end=client_gone details=downstream_remote_disconnect"},
		{End{Details: "stream_idle_timeout"}, "end=idle_timeout details=stream_idle_timeout"},
		{End{Details: "upstream_reset_after_response_started{remote reset}"},
			`end=upstream_reset details="upstream_reset_after_response_started{remote reset}"`},
		{End{}, "end=reset"},
	} {
		s := New(p, nil, "test", nil)
		var log lines
		s.Open(Info{Route: "r"}, &log)
		s.Finish(ended{&log, tc.end})
		if len(log) != 2 || !strings.HasSuffix(log[1], " "+tc.want) {
			t.Errorf("%+v: closed line %q, want it to end with %q", tc.end, log, tc.want)
		}
	}
}

// Envoy's own 200 + retry answer gets the policy's headers but is no stream:
// an outage must not count (or log) every browser retry as a stream.
func TestUnavailableAnswerIsNoStream(t *testing.T) {
	p, _ := policy.New(nil)
	opened := &counter{}
	for _, tc := range []struct {
		name    string
		headers headers
		stream  bool
	}{
		{"event stream", headers{"content-type": "text/event-stream"}, true},
		{"Envoy's unavailable answer", headers{"content-type": "text/event-stream", UnavailableHeader: "UF,URX"}, false},
		{"other content", headers{"content-type": "text/plain"}, false},
	} {
		s := New(p, &Metrics{StreamsOpened: opened}, "test", nil)
		s.OnRequestHeaders(headers{":method": "GET", "origin": "https://localhost:8080", ":path": "/sse/events"}, true)
		before := opened.n
		var log lines
		if got := s.OnResponseHeaders(tc.headers, false); got != tc.stream {
			t.Errorf("%s: OnResponseHeaders = %v, want %v", tc.name, got, tc.stream)
		} else if got {
			s.Open(Info{}, &log)
		}
		if tc.headers["access-control-allow-origin"] != "https://localhost:8080" {
			t.Errorf("%s: headers %v lack CORS: a cross-origin page could not read the answer", tc.name, tc.headers)
		}
		if tc.stream != (opened.n == before+1) || (len(log) == 1) != tc.stream {
			t.Errorf("%s: opened %d -> %d, log %q", tc.name, before, opened.n, log)
		}
	}
}

// A token stream's timing and values, as an access log reads them: the
// clock moves between chunks, so the first event, the gaps, their
// quantiles and the rate are the ones the chunks' arrival gives.
func TestTokenStreamTimingAndExtraction(t *testing.T) {
	p, err := policy.New(&policy.Config{Extract: &extract.Config{
		MaxEventBytes: ptr(64),
		Rules:         []extract.Rule{{Path: "usage.total_tokens", Key: "total_tokens"}, {Path: "model", Key: "model", Type: "string", Wins: "first"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Unix(0, 0)
	s := New(p, nil, "test", func() time.Time { return clock })
	s.OnRequestHeaders(headers{":method": "POST", ":path": "/v1/chat/completions"}, true)
	var log lines
	if !s.OnResponseHeaders(headers{"content-type": "text/event-stream"}, false) {
		t.Fatal("not a stream")
	}
	s.Open(Info{Route: "r", Protocol: "HTTP/2"}, &log)
	at := func(d time.Duration, chunk string) {
		clock = time.Unix(0, 0).Add(d)
		s.OnResponseData([]byte(chunk), false)
	}
	at(100*time.Millisecond, ": waiting\n\n")                         // first byte, no event
	at(250*time.Millisecond, `data: {"model":"a","x":1}`+"\n\n")      // first event
	at(270*time.Millisecond, `data: {"model":"b"}`+"\n\ndata: 2\n\n") // gap 20 ms, and 0
	at(1270*time.Millisecond, `data: {"usage":{"total_tokens":7}}`+"\n\n")
	at(1300*time.Millisecond, `data: {"usage":{"total_tokens":`+strings.Repeat(" ", 64)+"8}}\n\n") // too long: skipped
	at(1310*time.Millisecond, "data: [DONE]\n\n")
	s.Finish(&log)

	md := map[string]any{}
	s.PublishMetadata(metadataRecorder(md))
	want := map[string]any{
		policy.MetadataFirstByteMS: 100.0, policy.MetadataFirstEventMS: 250.0, policy.MetadataMaxGapMS: 1000.0,
		// Gaps 20, 0, 1000, 30, 10 ms: buckets [16,32), [0,1), [512,1024), [16,32), [8,16).
		policy.MetadataGapP50MS: 32.0, policy.MetadataGapP99MS: 1024.0,
		policy.MetadataEventsPerSec: 5 / 1.06, policy.MetadataExtractErrors: 1.0,
		"total_tokens": 7.0, "model": "a",
	}
	for k, v := range want {
		got := md[k]
		if f, ok := v.(float64); ok && k == policy.MetadataEventsPerSec {
			if g, _ := got.(float64); g < f-0.01 || g > f+0.01 {
				t.Errorf("%s = %v, want %v", k, got, v)
			}
			continue
		}
		if got != v {
			t.Errorf("%s = %v (%T), want %v", k, got, got, v)
		}
	}
	if want := "first_event=250ms max_gap=1s total_tokens=7 model=a extract_errors=1"; !strings.Contains(log[1], want) {
		t.Errorf("closed line %q lacks %q", log[1], want)
	}
}

type metadataRecorder map[string]any

func (m metadataRecorder) Log(policy.Level, string)    {}
func (m metadataRecorder) SetMetadata(k string, v any) { m[k] = v }
func (m metadataRecorder) End() End                    { return End{} }
func ptr[T any](v T) *T                                { return &v }

// Rules scoped to paths read only those streams: another stream keeps
// nothing of its events and its closed line says nothing of rules.
func TestExtractPathsScopeTheRules(t *testing.T) {
	p, err := policy.New(&policy.Config{Extract: &extract.Config{
		Paths: []string{"/v1/"},
		Rules: []extract.Rule{{Path: "usage.total_tokens", Key: "total_tokens"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		read bool
	}{{"/v1/chat/completions", true}, {"/sse/events", false}} {
		s := New(p, nil, "test", nil)
		s.OnRequestHeaders(headers{":method": "POST", ":path": tc.path}, true)
		var log lines
		s.OnResponseHeaders(headers{"content-type": "text/event-stream"}, false)
		s.Open(Info{}, &log)
		s.OnResponseData([]byte(`data: {"usage":{"total_tokens":7}}`+"\n\n"), true)
		s.Finish(&log)
		md := map[string]any{}
		s.PublishMetadata(metadataRecorder(md))
		if got := md["total_tokens"] != nil; got != tc.read || (s.Extract() != nil) != tc.read ||
			strings.Contains(log[1], "extract_errors") != tc.read || (s.scanner.OnEventData != nil) != tc.read {
			t.Errorf("%s: read %v, metadata %v, line %q", tc.path, tc.read, md, log[1])
		}
	}
	if _, err := policy.New(&policy.Config{Extract: &extract.Config{Paths: []string{"v1"}, Rules: []extract.Rule{{Path: "a", Key: "a"}}}}); err == nil ||
		!strings.Contains(err.Error(), "extract.paths[0]") {
		t.Errorf("a path without / accepted: %v", err)
	}
}
