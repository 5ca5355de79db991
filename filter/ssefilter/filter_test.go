package ssefilter

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	xdstype "github.com/cncf/xds/go/xds/type/v3"
	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/policy/policytest"
	"example.com/sse-on-envoy/internal/ssestream"
)

func typedStruct(t *testing.T, value map[string]any) *anypb.Any {
	t.Helper()
	s, err := structpb.NewStruct(value)
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(&xdstype.TypedStruct{TypeUrl: "type.googleapis.com/sse.FilterConfig", Value: s})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func bareStruct(t *testing.T, value map[string]any) *anypb.Any {
	t.Helper()
	s, err := structpb.NewStruct(value)
	if err != nil {
		t.Fatal(err)
	}
	a, err := anypb.New(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var demoConfig = func() map[string]any {
	var m map[string]any
	if err := json.Unmarshal([]byte(policytest.ConfigJSON), &m); err != nil {
		panic(err)
	}
	return m
}()

func anySlice(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}

// newTestFilter parses cfg as Envoy would and returns a filter for one stream.
func newTestFilter(t *testing.T, cfg map[string]any) (*filter, *fakeCallbacks, *fakeConfigCallbacks) {
	t.Helper()
	cc := newConfigCallbacks()
	parsed, err := ConfigParser{}.Parse(typedStruct(t, cfg), cc)
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	cb := newCallbacks()
	f, ok := Factory(parsed, cb).(*filter)
	if !ok {
		t.Fatal("Factory did not return the sse filter")
	}
	return f, cb, cc
}

func TestParseRejectsBadConfigNamingTheField(t *testing.T) {
	tests := []struct {
		name      string
		config    *anypb.Any
		wantField string
	}{
		{"unknown field", nil, `unknown field "allowed_origin"`},
		{"wrong type", nil, "allow_credentials"},
		{"star with credentials", nil, "allowed_origins[0]"},
		{"malformed origin", nil, "allowed_origins[1]"},
		{"origin with path", nil, "allowed_origins[0]"},
		{"wildcard in the middle", nil, "allowed_origins[0]"},
		{"bad max_age", nil, "max_age"},
		{"bad log level", nil, "stream_log_level"},
		{"bad header token", nil, "allowed_headers[0]"},
		{"fallback not allowed", nil, "fallback_origin"},
		{"unsupported type", &anypb.Any{TypeUrl: "type.googleapis.com/google.protobuf.StringValue"}, "plugin_config: unsupported type"},
	}
	configs := map[string]map[string]any{
		"unknown field":          {"allowed_origin": []any{"https://a.example"}},
		"wrong type":             {"allow_credentials": "yes"},
		"star with credentials":  {"allowed_origins": []any{"*"}},
		"malformed origin":       {"allowed_origins": []any{"https://ok.example", "ftp://x.example"}},
		"origin with path":       {"allowed_origins": []any{"https://a.example/"}},
		"wildcard in the middle": {"allowed_origins": []any{"https://a.*.example.com"}},
		"bad max_age":            {"max_age": "forever"},
		"bad log level":          {"stream_log_level": "loud"},
		"bad header token":       {"allowed_headers": []any{"Bad Header"}},
		"fallback not allowed":   {"fallback_origin": "https://other.example"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.config
			if cfg == nil {
				cfg = typedStruct(t, configs[tc.name])
			}
			_, err := ConfigParser{}.Parse(cfg, newConfigCallbacks())
			if err == nil {
				t.Fatal("Parse accepted a bad config")
			}
			if !strings.Contains(err.Error(), tc.wantField) {
				t.Errorf("error %q does not name %q", err, tc.wantField)
			}
		})
	}
}

func TestParseAcceptsEveryEnvelope(t *testing.T) {
	for name, a := range map[string]*anypb.Any{
		"TypedStruct": typedStruct(t, demoConfig),
		"Struct":      bareStruct(t, demoConfig),
		"absent":      nil,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := (ConfigParser{}).Parse(a, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseDefinesStats(t *testing.T) {
	_, _, cc := newTestFilter(t, demoConfig)
	for _, s := range ssestream.Stats() {
		switch got := cc.stats[s.Name]; {
		case s.Kind == ssestream.KindHistogram:
			if got != nil {
				t.Errorf("histogram %s defined: the golang filter API has none", s.Name)
			}
		case got == nil:
			t.Errorf("stat %s not defined", s.Name)
		case got.kind != s.Kind:
			t.Errorf("stat %s defined as a %s, want a %s", s.Name, got.kind, s.Kind)
		}
	}
}

func TestMergeKeepsFilterLevelStats(t *testing.T) {
	parent, err := ConfigParser{}.Parse(typedStruct(t, demoConfig), newConfigCallbacks())
	if err != nil {
		t.Fatal(err)
	}
	child, err := ConfigParser{}.Parse(typedStruct(t, map[string]any{"allowed_origins": []any{"https://route.example"}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	merged := ConfigParser{}.Merge(parent, child).(*config)
	if merged.policy != child.(*config).policy || merged.metrics != parent.(*config).metrics {
		t.Error("Merge must take the route's policy and the filter's stats")
	}
}

func TestCORS(t *testing.T) {
	for _, tc := range policytest.CORSCases {
		t.Run(tc.Name, func(t *testing.T) {
			f, cb, _ := newTestFilter(t, demoConfig)
			status := f.DecodeHeaders(newHeaders(tc.Request...), true)
			var resp *fakeHeaders
			if tc.Reply != 0 {
				if status != api.LocalReply || cb.reply == nil || cb.reply.status != tc.Reply {
					t.Fatalf("DecodeHeaders = %v, reply %+v; want a local reply %d", status, cb.reply, tc.Reply)
				}
				// Envoy runs the local reply through this filter's EncodeHeaders.
				resp = newHeaders(":status", "204")
				for k, vs := range cb.reply.headers {
					for _, v := range vs {
						resp.Add(k, v)
					}
				}
				before := clone(resp.m)
				f.EncodeHeaders(resp, true)
				if !equalHeaders(before, resp.m) {
					t.Errorf("EncodeHeaders changed the local reply: %v -> %v", before, resp.m)
				}
			} else {
				if status != api.Continue || cb.reply != nil {
					t.Fatalf("DecodeHeaders = %v, reply %+v; want the request forwarded", status, cb.reply)
				}
				resp = newHeaders(policytest.UpstreamHeaders...)
				f.EncodeHeaders(resp, false)
			}
			tc.Check(t, resp.m)
		})
	}
}

func TestUpstreamGrantIsRemovedForRefusedOrigins(t *testing.T) {
	f, _, _ := newTestFilter(t, demoConfig)
	f.DecodeHeaders(newHeaders(":method", "GET", ":path", "/x", "origin", "https://evil.example"), true)
	resp := newHeaders(":status", "200", "access-control-allow-origin", "*", "vary", "Accept-Encoding")
	f.EncodeHeaders(resp, true)
	if v, ok := resp.Get("access-control-allow-origin"); ok {
		t.Errorf("upstream's allow-origin %q survived", v)
	}
	if v := resp.GetRaw("vary"); v != "Accept-Encoding, Origin" {
		t.Errorf("vary = %q", v)
	}
}

func TestSSEStreamLifecycle(t *testing.T) {
	f, cb, cc := newTestFilter(t, demoConfig)
	f.DecodeHeaders(newHeaders(":method", "GET", ":path", "/sse/events", "origin", "http://localhost:3000"), true)
	resp := newHeaders(":status", "200", "content-type", "Text/Event-Stream; charset=utf-8", "content-length", "999", "cache-control", "max-age=60")
	if status := f.EncodeHeaders(resp, false); status != api.Continue {
		t.Fatalf("EncodeHeaders = %v", status)
	}
	for k, want := range map[string]string{"cache-control": "no-cache", "x-sse-stream": "golang", "access-control-allow-origin": "http://localhost:3000"} {
		if got := resp.GetRaw(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := resp.Get("content-length"); ok {
		t.Error("content-length kept on a stream")
	}
	if !slices.ContainsFunc(cb.logs, func(l string) bool {
		return strings.Contains(l, "sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=http://localhost:3000")
	}) {
		t.Errorf("no opened line in %q", cb.logs)
	}

	chunks := []string{"retry: 3000\n\nid: 7\nevent: DAD_JOKE\nda", "ta: one\n\n: heartbeat\n\nid: 8\r\n", "data: two\r\n\r", "\nid: 9\ndata: cut"}
	total := 0
	for _, c := range chunks {
		total += len(c)
		if status := f.EncodeData(&fakeBuffer{data: []byte(c)}, false); status != api.Continue {
			t.Fatalf("EncodeData = %v; an SSE body must never be buffered", status)
		}
	}
	cb.info.details = "downstream_remote_disconnect"
	f.OnStreamComplete()
	f.OnLog(nil, nil, nil, nil)

	md := cb.info.metadata["sse"]
	if md["events"] != float64(2) || md["last_event_id"] != "8" || md["bytes"] != float64(total) || md["protocol"] != "HTTP/1.1" {
		t.Errorf("metadata = %v", md)
	}
	for name, want := range map[string]int64{ssestream.StatStreamsOpened: 1, ssestream.StatStreamsActive: 0, ssestream.StatEvents: 2} {
		if got := cc.stats[name].v; got != want {
			t.Errorf("stat %s = %d, want %d", name, got, want)
		}
	}
	closed := 0
	for _, l := range cb.logs {
		if strings.Contains(l, "sse stream closed:") {
			closed++
			if !strings.Contains(l, "events=2") || !strings.Contains(l, "last_event_id=8") || !strings.Contains(l, "end=client_gone") {
				t.Errorf("closed line = %q", l)
			}
		}
	}
	if closed != 1 {
		t.Errorf("%d closed lines, want 1: %q", closed, cb.logs)
	}
}

func TestStreamEndReasons(t *testing.T) {
	tests := []struct {
		name       string
		upstreamOK bool
		details    string
		flags      string
		want       string
	}{
		{"upstream ended the stream", true, "via_upstream", "0", "end=upstream_end"},
		{"client went away (flag DC)", false, "via_upstream", "16384", "end=client_gone"},
		{"upstream reset", false, "upstream_reset_after_response_started{remote_reset}", "", "end=upstream_reset"},
		{"idle timeout", false, "stream_idle_timeout", "", "end=idle_timeout"},
		{"unknown", false, "", "", "end=reset"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, cb, _ := newTestFilter(t, demoConfig)
			f.DecodeHeaders(newHeaders(":method", "GET", ":path", "/sse/events"), true)
			f.EncodeHeaders(newHeaders(":status", "200", "content-type", "text/event-stream"), false)
			f.EncodeData(&fakeBuffer{data: []byte("data: x\n\n")}, tc.upstreamOK)
			cb.info.details = tc.details
			if tc.flags != "" {
				cb.properties["response.flags"] = tc.flags
			}
			f.OnStreamComplete()
			if last := cb.logs[len(cb.logs)-1]; !strings.Contains(last, tc.want) {
				t.Errorf("closed line %q lacks %q", last, tc.want)
			}
		})
	}
}

func TestNonSSEResponsesAreNotCopied(t *testing.T) {
	f, cb, cc := newTestFilter(t, demoConfig)
	f.DecodeHeaders(newHeaders(":method", "GET", ":path", "/healthz"), true)
	resp := newHeaders(":status", "200", "content-type", "application/json", "content-length", "2")
	f.EncodeHeaders(resp, false)
	buf := &fakeBuffer{data: []byte("{}")}
	f.EncodeData(buf, true)
	f.OnStreamComplete()
	if buf.bytesCopied != 0 {
		t.Error("a non-SSE body was copied into Go")
	}
	if resp.GetRaw("content-length") != "2" || resp.GetRaw("x-sse-stream") != "" || resp.GetRaw("cache-control") != "" {
		t.Errorf("non-SSE response edited: %v", resp.m)
	}
	if len(cb.info.metadata) != 0 || cc.stats[ssestream.StatStreamsOpened].v != 0 || len(cb.logs) != 0 {
		t.Errorf("non-SSE response tagged: metadata %v logs %q", cb.info.metadata, cb.logs)
	}
}

func TestPeriodicLogPublishesCounts(t *testing.T) {
	f, cb, _ := newTestFilter(t, demoConfig)
	f.DecodeHeaders(newHeaders(":method", "GET", ":path", "/sse/events"), true)
	f.EncodeHeaders(newHeaders(":status", "200", "content-type", "text/event-stream"), false)
	f.EncodeData(&fakeBuffer{data: []byte("id: 1\ndata: x\n\n")}, false)
	f.OnLogDownstreamPeriodic(nil, nil, nil, nil)
	if got := cb.info.metadata["sse"]["events"]; got != float64(1) {
		t.Errorf("periodic events = %v, want 1", got)
	}
}

func TestStatsCountPreflightsAndRejections(t *testing.T) {
	cc := newConfigCallbacks()
	parsed, err := ConfigParser{}.Parse(typedStruct(t, demoConfig), cc)
	if err != nil {
		t.Fatal(err)
	}
	requests := [][]string{
		{":method", "OPTIONS", ":path", "/", "origin", "http://localhost:3000", "access-control-request-method", "GET"},
		{":method", "OPTIONS", ":path", "/", "origin", "https://evil.example", "access-control-request-method", "GET"},
		{":method", "GET", ":path", "/", "origin", "https://evil.example"},
	}
	for _, r := range requests {
		Factory(parsed, newCallbacks()).DecodeHeaders(newHeaders(r...), true)
	}
	if cc.stats[ssestream.StatPreflights].v != 2 || cc.stats[ssestream.StatRejectedOrigins].v != 2 {
		t.Errorf("preflights=%d rejected=%d, want 2 and 2", cc.stats[ssestream.StatPreflights].v, cc.stats[ssestream.StatRejectedOrigins].v)
	}
}

func clone(m map[string][]string) map[string][]string {
	c := make(map[string][]string, len(m))
	for k, v := range m {
		c[k] = slices.Clone(v)
	}
	return c
}

func equalHeaders(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// A preflight with a body is answered only once the body has arrived
// (envoyproxy/envoy#44320); without one it is answered at once.
func TestPreflightWithBodyWaitsForTheEndOfTheRequest(t *testing.T) {
	f, cb, _ := newTestFilter(t, demoConfig)
	preflight := newHeaders(":method", "OPTIONS", ":path", "/sse/events", "origin", "http://localhost:3000", "access-control-request-method", "GET")
	if status := f.DecodeHeaders(preflight, false); status != api.StopAndBuffer || cb.reply != nil {
		t.Fatalf("DecodeHeaders = %v, reply %+v; want to wait for the body", status, cb.reply)
	}
	if status := f.DecodeData(&fakeBuffer{data: []byte("x")}, false); status != api.StopAndBuffer || cb.reply != nil {
		t.Fatalf("DecodeData(more) = %v, reply %+v", status, cb.reply)
	}
	if status := f.DecodeData(&fakeBuffer{data: []byte("y")}, true); status != api.LocalReply || cb.reply == nil || cb.reply.status != 204 {
		t.Fatalf("DecodeData(end) = %v, reply %+v; want the 204 now", status, cb.reply)
	}

	g, cb2, _ := newTestFilter(t, demoConfig)
	g.DecodeHeaders(newHeaders(":method", "GET", ":path", "/sse/events"), false)
	if status := g.DecodeData(&fakeBuffer{data: []byte("body")}, true); status != api.Continue || cb2.reply != nil {
		t.Errorf("an ordinary request body: %v, reply %+v", status, cb2.reply)
	}
}

// A bad per-route config may be parsed on a worker at the route's first
// request, where an error from Parse would abort Envoy: it must parse, and
// the route's requests get a 500 and one log line naming the field.
func TestBadPerRouteConfigFailsTheRouteNotEnvoy(t *testing.T) {
	parent, err := ConfigParser{}.Parse(typedStruct(t, demoConfig), newConfigCallbacks())
	if err != nil {
		t.Fatal(err)
	}
	child, err := ConfigParser{}.Parse(typedStruct(t, map[string]any{"max_age": "forever"}), nil)
	if err != nil {
		t.Fatalf("per-route Parse returned an error, which Envoy turns into an abort: %v", err)
	}
	merged := ConfigParser{}.Merge(parent, child)
	for i := range 2 {
		cb := newCallbacks()
		f := Factory(merged, cb)
		h := newHeaders(":method", "GET", ":path", "/sse/events", "origin", "https://localhost:8080")
		if got := f.DecodeHeaders(h, true); got != api.LocalReply {
			t.Fatalf("request %d: DecodeHeaders = %v, want LocalReply", i, got)
		}
		if cb.reply == nil || cb.reply.status != 500 || cb.reply.details != InvalidRouteConfigDetails {
			t.Fatalf("request %d: reply %+v, want 500 %s", i, cb.reply, InvalidRouteConfigDetails)
		}
		wantLogs := 0
		if i == 0 {
			wantLogs = 1
		}
		if len(cb.logs) != wantLogs {
			t.Fatalf("request %d: %d log lines %q, want %d", i, len(cb.logs), cb.logs, wantLogs)
		}
		if wantLogs == 1 && !strings.Contains(cb.logs[0], "max_age") {
			t.Errorf("log line %q does not name the field", cb.logs[0])
		}
	}
	if _, err := (ConfigParser{}).Parse(typedStruct(t, map[string]any{"max_age": "forever"}), newConfigCallbacks()); err == nil {
		t.Error("a bad filter-level config must still be refused")
	}
}

// brokenHeaders is a header map whose writes panic, as Envoy's shim does
// when Envoy answers a header call with an error (invalid phase...).
type brokenHeaders struct {
	*fakeHeaders
	setPanics, delPanics bool
}

func (h *brokenHeaders) Set(k, v string) {
	if h.setPanics {
		panic("fake: header write refused")
	}
	h.fakeHeaders.Set(k, v)
}

func (h *brokenHeaders) Del(k string) {
	if h.delPanics {
		panic("fake: header removal refused")
	}
	h.fakeHeaders.Del(k)
}

// A panic under a callback would reach Envoy's shim, whose 500 an
// EventSource takes as final: the filter fails open, logs it, and for the
// response headers removes the upstream's CORS grant first. Only a header
// map that cannot even remove a header lets the panic through (the 500 is
// then the answer that cannot leak a grant).
func TestPanicsFailOpenAndClosedForCORS(t *testing.T) {
	tests := []struct {
		name                 string
		origin               string
		setPanics, delPanics bool
		wantPanic            bool
	}{
		{"refused origin, a header write panics", "https://evil.example", true, false, false},
		{"allowed origin, a header write panics", "http://localhost:3000", true, false, false},
		{"the header map refuses removals too", "http://localhost:3000", true, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, cb, _ := newTestFilter(t, demoConfig)
			f.DecodeHeaders(newHeaders(":method", "GET", ":path", "/sse/events", "origin", tt.origin), true)
			resp := &brokenHeaders{
				fakeHeaders: newHeaders(":status", "200", "content-type", "text/event-stream",
					"access-control-allow-origin", "*", "access-control-allow-credentials", "true"),
				setPanics: tt.setPanics, delPanics: tt.delPanics,
			}
			var status api.StatusType
			recovered := func() (r any) {
				defer func() { r = recover() }()
				status = f.EncodeHeaders(resp, false)
				return nil
			}()
			if tt.wantPanic {
				if recovered == nil {
					t.Fatal("EncodeHeaders returned; want the panic passed on to Envoy's shim")
				}
				return
			}
			if recovered != nil || status != api.Continue {
				t.Fatalf("EncodeHeaders = %v, panic %v; want Continue", status, recovered)
			}
			for _, k := range policy.GrantHeaders {
				if v, ok := resp.Get(k); ok {
					t.Errorf("%s = %q survived the panic", k, v)
				}
			}
			if !slices.ContainsFunc(cb.lines, func(l string) bool {
				return strings.HasPrefix(l, "ERROR sse: panic in EncodeHeaders, failing open (CORS grant headers removed): fake: header write refused")
			}) {
				t.Errorf("no error line for the panic: %q", cb.lines)
			}
			// The stream goes on: its body passes, its end runs.
			if s := f.EncodeData(&fakeBuffer{data: []byte("data: x\n\n")}, false); s != api.Continue {
				t.Errorf("EncodeData = %v", s)
			}
			f.OnStreamComplete()
		})
	}
}

func TestPanicInRequestHeadersFailsOpen(t *testing.T) {
	f, cb, _ := newTestFilter(t, demoConfig)
	// A header map missing every method: the first read panics.
	if s := f.DecodeHeaders(struct{ api.RequestHeaderMap }{}, true); s != api.Continue {
		t.Errorf("DecodeHeaders = %v, want Continue", s)
	}
	if cb.reply != nil {
		t.Errorf("a local reply was sent: %+v", cb.reply)
	}
	if len(cb.lines) != 1 || !strings.HasPrefix(cb.lines[0], "ERROR sse: panic in DecodeHeaders, failing open: ") {
		t.Errorf("log %q, want one error line for the panic", cb.lines)
	}
}
