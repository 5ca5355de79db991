package ssemodule

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/policy/policytest"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
)

// demoConfig is envoy-module.yaml's filter_config in spirit: YAML text.
var demoConfig = policytest.ConfigJSON

func newTestConfig(t *testing.T, raw string) (*filterConfig, *fakeDefiner, *logLines) {
	t.Helper()
	d, logs := &fakeDefiner{}, &logLines{}
	c, err := newFilterConfig(d, []byte(raw), logs.log)
	if err != nil {
		t.Fatal(err)
	}
	return c, d, logs
}

func TestConfigIsRefusedNamingTheField(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"bad duration", "max_age: 10x", `filter_config: invalid sse config: max_age: "10x" is not a duration`},
		{"origin with a path", `allowed_origins: ["https://b.example/"]`, `allowed_origins[0]: "https://b.example/": an origin has no user, path`},
		{"unknown field", "allowed_origin: [https://a.example]", `unknown field "allowed_origin"`},
		{"wrong type", "max_age: 600", "field max_age: got a JSON number, want a string"},
		{"not an object", "[1]", "want an object of settings"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newFilterConfig(&fakeDefiner{}, []byte(tc.raw), (&logLines{}).log)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
			if _, err := (Module{}).NewPerRouteConfig("r", []byte(tc.raw)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("per-route error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestConfigAcceptsYAMLJSONAndNothing(t *testing.T) {
	for _, raw := range []string{"", "  \n", "{}", `{"max_age": "1m"}`, "max_age: 1m\nstream_log_level: debug\n"} {
		if _, err := newFilterConfig(&fakeDefiner{}, []byte(raw), (&logLines{}).log); err != nil {
			t.Errorf("%q: %v", raw, err)
		}
	}
}

func TestConfigDefinesEveryStatWithItsKind(t *testing.T) {
	_, d, _ := newTestConfig(t, demoConfig)
	for _, s := range ssestream.Stats() {
		if s.Kind == ssestream.KindHistogram && !abi.Histograms {
			// The 1.37 build leaves them out (module/abiinfo).
			if _, ok := d.ids[StatName(s.Name)]; ok {
				t.Errorf("%s defined on an ABI without histograms", s.Name)
			}
			continue
		}
		if _, ok := d.ids[StatName(s.Name)]; !ok {
			t.Errorf("%s not defined", s.Name)
		}
		if d.kinds[StatName(s.Name)] != s.Kind {
			t.Errorf("%s defined as a %s, want a %s", s.Name, d.kinds[StatName(s.Name)], s.Kind)
		}
	}
	if _, err := newFilterConfig(&fakeDefiner{err: errors.New("frozen")}, nil, (&logLines{}).log); err == nil {
		t.Error("a stat Envoy refuses must refuse the config")
	}
}

func TestCORS(t *testing.T) {
	for _, tc := range policytest.CORSCases {
		t.Run(tc.Name, func(t *testing.T) {
			c, d, _ := newTestConfig(t, demoConfig)
			env := newFakeEnvoy(tc.Request...)
			f := c.newFilter(env)
			// A preflight carries no body: the headers end the request.
			status := f.OnRequestHeaders(tc.Reply != 0)
			var got map[string][]string
			if tc.Reply != 0 {
				if status != abi.StopIteration || env.reply == nil || env.reply.status != tc.Reply {
					t.Fatalf("request headers: %v, reply %+v; want a local reply %d", status, env.reply, tc.Reply)
				}
				got = map[string][]string{}
				for _, h := range env.reply.headers {
					got[h.Key] = append(got[h.Key], h.Value)
				}
				if env.stats[d.ids[StatName(ssestream.StatPreflights)]] != 1 {
					t.Errorf("preflights = %d, want 1", env.stats[d.ids[StatName(ssestream.StatPreflights)]])
				}
			} else {
				if status != abi.Continue || env.reply != nil {
					t.Fatalf("request headers: %v, reply %+v; want the request forwarded", status, env.reply)
				}
				env.setHeaders(abi.ResponseHeaders, policytest.UpstreamHeaders...)
				if s := f.OnResponseHeaders(false); s != abi.Continue {
					t.Fatalf("response headers: %v", s)
				}
				got = env.headers[abi.ResponseHeaders]
			}
			tc.Check(t, got)
		})
	}
}

// A preflight that carries a body is answered once the body has ended, and
// the body is not forwarded meanwhile.
func TestPreflightWithABodyWaitsForItsEnd(t *testing.T) {
	for _, end := range []string{"body", "trailers"} {
		t.Run(end, func(t *testing.T) {
			c, _, _ := newTestConfig(t, demoConfig)
			env := newFakeEnvoy(":method", "OPTIONS", ":path", "/x", "origin", "http://localhost:3000", "access-control-request-method", "GET")
			f := c.newFilter(env)
			if s := f.OnRequestHeaders(false); s != abi.StopIteration || env.reply != nil {
				t.Fatalf("headers: %v, reply %+v", s, env.reply)
			}
			if s := f.OnRequestBody(false); s != abi.StopAndBuffer || env.reply != nil {
				t.Fatalf("body: %v, reply %+v", s, env.reply)
			}
			var s, want abi.Status
			if end == "body" {
				s, want = f.OnRequestBody(true), abi.StopNoBuffer
			} else {
				s, want = f.OnRequestTrailers(), abi.StopIteration
			}
			if env.reply == nil || env.reply.status != 204 || s != want {
				t.Fatalf("reply %+v, status %v; want 204 once the body ended, and %v", env.reply, s, want)
			}
		})
	}
}

func TestSSEStreamLifecycle(t *testing.T) {
	c, d, logs := newTestConfig(t, demoConfig)
	clock := time.Unix(1000, 0)
	c.now = func() time.Time { return clock }
	env := newFakeEnvoy(":method", "GET", ":path", "/sse/events", "origin", "http://localhost:3000")
	f := c.newFilter(env)
	f.OnRequestHeaders(true)
	env.setHeaders(abi.ResponseHeaders, ":status", "200", "content-type", "Text/Event-Stream; charset=utf-8",
		"content-length", "999", "cache-control", "max-age=60")
	if s := f.OnResponseHeaders(false); s != abi.Continue {
		t.Fatalf("response headers: %v", s)
	}
	resp := env.headers[abi.ResponseHeaders]
	for k, want := range map[string]string{"cache-control": "no-cache", "x-sse-stream": "dynamic_module", "access-control-allow-origin": "http://localhost:3000"} {
		if got := resp[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if _, ok := resp["content-length"]; ok {
		t.Error("content-length kept on a stream")
	}

	// One hook's chunk can span several of Envoy's slices, and lines and
	// CRLFs split anywhere.
	chunks := [][]string{
		{"retry: 3000\n\nid: 7\nevent: DAD_JOKE\nda", "ta: one\n\n"},
		{": heartbeat\n\nid: 8\r\n", "data: two\r\n\r"},
		{"\nid: 9\ndata: cut"},
	}
	total := 0
	for _, c := range chunks {
		for _, s := range c {
			total += len(s)
		}
		env.deliver(false, c...)
	}
	// The body ends without a last chunk: the upstream finished the stream.
	env.deliver(true)
	f.OnStreamComplete()
	f.OnDestroy() // after OnStreamComplete: nothing more

	wantMeta := map[string]any{"sse:events": 2.0, "sse:bytes": float64(total), "sse:last_event_id": "8", "sse:protocol": "HTTP/1.1"}
	for k, want := range wantMeta {
		if env.metadata[k] != want {
			t.Errorf("metadata %s = %v, want %v", k, env.metadata[k], want)
		}
	}
	for name, want := range map[string]int64{ssestream.StatStreamsOpened: 1, ssestream.StatStreamsActive: 0, ssestream.StatEvents: 2, ssestream.StatPreflights: 0} {
		if got := env.stats[d.ids[StatName(name)]]; got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	if len(*logs) != 2 {
		t.Fatalf("log lines %q, want opened and closed", *logs)
	}
	if want := "2 sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=http://localhost:3000 adapter=dynamic_module"; (*logs)[0] != want {
		t.Errorf("opened line %q, want %q", (*logs)[0], want)
	}
	if want := "events=2 bytes=" + strconv.Itoa(total) + " last_event_id=8 first_event=0s max_gap=0s end=upstream_end"; !strings.Contains((*logs)[1], want) {
		t.Errorf("closed line %q lacks %q", (*logs)[1], want)
	}
}

func TestEndReasons(t *testing.T) {
	const (
		flagDC = 0x4000 // DownstreamConnectionTermination
		flagUR = 0x10   // UpstreamRemoteReset
	)
	tests := []struct {
		name    string
		end     func(f *filter, env *fakeEnvoy)
		wantEnd string
		// needsFlags: only an ABI that gives response flags and details
		// (1.40) can tell these apart; 1.37 says end=reset.
		needsFlags bool
	}{
		{"last body chunk", func(_ *filter, env *fakeEnvoy) { env.deliver(true) }, "end=upstream_end", false},
		{"trailers", func(f *filter, _ *fakeEnvoy) { f.OnResponseTrailers() }, "end=upstream_end", false},
		{"client gone", func(_ *filter, env *fakeEnvoy) {
			env.intAttrs = map[abi.Attribute]uint64{abi.AttributeResponseFlags: flagDC}
			env.attrs[abi.AttributeResponseCodeDetails] = "downstream_remote_disconnect"
		}, "end=client_gone details=downstream_remote_disconnect", true},
		{"upstream reset", func(_ *filter, env *fakeEnvoy) {
			env.intAttrs = map[abi.Attribute]uint64{abi.AttributeResponseFlags: flagUR}
			env.attrs[abi.AttributeResponseCodeDetails] = "upstream_reset_after_response_started{remote_reset}"
		}, "end=upstream_reset details=upstream_reset_after_response_started{remote_reset}", true},
		{"neither", func(*filter, *fakeEnvoy) {}, "end=reset", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, d, logs := newTestConfig(t, "")
			env := newFakeEnvoy(":method", "GET", ":path", "/sse/events")
			f := c.newFilter(env)
			f.OnRequestHeaders(true)
			env.setHeaders(abi.ResponseHeaders, ":status", "200", "content-type", "text/event-stream")
			f.OnResponseHeaders(false)
			tc.end(f, env)
			f.OnStreamComplete()
			f.OnDestroy() // after OnStreamComplete: nothing more
			want := tc.wantEnd
			if tc.needsFlags && !abi.EndKnown {
				want = "end=reset"
			}
			if len(*logs) != 2 || !strings.HasSuffix((*logs)[1], want) {
				t.Errorf("lines %q, want the closed one to end with %q", *logs, want)
			}
			if got := env.stats[d.ids[StatName(ssestream.StatStreamsActive)]]; got != 0 {
				t.Errorf("active = %d after the end", got)
			}
		})
	}
}

// Should Envoy destroy a stream without stream-complete, the closed line is
// still written, and Envoy's side of the stream is not touched.
func TestDestroyWithoutStreamCompleteDoesNotCallEnvoy(t *testing.T) {
	c, _, logs := newTestConfig(t, "")
	env := newFakeEnvoy(":method", "GET", ":path", "/sse/events")
	f := c.newFilter(env)
	f.OnRequestHeaders(true)
	env.setHeaders(abi.ResponseHeaders, ":status", "200", "content-type", "text/event-stream")
	f.OnResponseHeaders(false)
	before := maps.Clone(env.stats)
	env.panicOnGet = true
	f.OnDestroy()
	if len(*logs) != 2 || !strings.Contains((*logs)[1], "sse stream closed:") {
		t.Errorf("lines %q, want a closed line", *logs)
	}
	if !maps.Equal(before, env.stats) {
		t.Errorf("stats changed after destroy: %v to %v", before, env.stats)
	}
}

// Other responses cost no body read, no metadata and no lines.
func TestNonSSEResponsesAreLeftAlone(t *testing.T) {
	c, d, logs := newTestConfig(t, demoConfig)
	env := newFakeEnvoy(":method", "GET", ":path", "/healthz")
	f := c.newFilter(env)
	f.OnRequestHeaders(true)
	env.setHeaders(abi.ResponseHeaders, ":status", "200", "content-type", "application/json", "content-length", "2")
	f.OnResponseHeaders(false)
	env.deliver(true, "{}")
	f.OnStreamComplete()
	f.OnDestroy()
	if env.counting || len(env.metadata) != 0 || len(*logs) != 0 || env.stats[d.ids[StatName(ssestream.StatStreamsOpened)]] != 0 {
		t.Errorf("counting %v, metadata %v, lines %q", env.counting, env.metadata, *logs)
	}
	if got := env.headers[abi.ResponseHeaders]["content-length"]; !slices.Equal(got, []string{"2"}) {
		t.Errorf("content-length %q, want it kept", got)
	}
}

// A route's own config replaces the filter-level policy for its streams.
func TestPerRouteConfigReplacesThePolicy(t *testing.T) {
	c, _, _ := newTestConfig(t, demoConfig)
	rc, err := (Module{}).NewPerRouteConfig("route", []byte("allowed_origins: [https://route.example]\ntag_header: x-route-tag\n"))
	if err != nil {
		t.Fatal(err)
	}
	env := newFakeEnvoy(":method", "GET", ":path", "/sse/events", "origin", "https://route.example")
	env.route = rc
	f := c.newFilter(env)
	f.OnRequestHeaders(true)
	env.setHeaders(abi.ResponseHeaders, ":status", "200", "content-type", "text/event-stream")
	f.OnResponseHeaders(false)
	resp := env.headers[abi.ResponseHeaders]
	if got := resp["access-control-allow-origin"]; !slices.Equal(got, []string{"https://route.example"}) {
		t.Errorf("allow-origin %q, want the route's origin", got)
	}
	if got := resp["x-route-tag"]; !slices.Equal(got, []string{"dynamic_module"}) {
		t.Errorf("route tag %q", got)
	}
}

// A panic half way through the response headers must not leave the
// upstream's own grant in place for an origin the allow-list refuses: the
// hook removes the grant headers, then lets package abi log the panic and
// fail open for the rest.
func TestPanicInResponseHeadersRemovesTheGrant(t *testing.T) {
	for _, origin := range []string{"https://evil.example", "http://localhost:3000"} {
		t.Run(origin, func(t *testing.T) {
			c, _, _ := newTestConfig(t, demoConfig)
			env := newFakeEnvoy(":method", "GET", ":path", "/sse/events", "origin", origin)
			f := c.newFilter(env)
			f.OnRequestHeaders(true)
			env.setHeaders(abi.ResponseHeaders, ":status", "200", "content-type", "text/event-stream",
				"access-control-allow-origin", "*", "access-control-allow-credentials", "true")
			env.panicOnSet = 1 // the first header the policy sets
			func() {
				defer func() {
					if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "fake: header write") {
						t.Errorf("recovered %v, want the fake's panic passed on for package abi to log", r)
					}
				}()
				f.OnResponseHeaders(false)
			}()
			resp := env.headers[abi.ResponseHeaders]
			for _, k := range []string{"access-control-allow-origin", "access-control-allow-credentials"} {
				if v, ok := resp[k]; ok {
					t.Errorf("%s = %q survived the panic", k, v)
				}
			}
		})
	}
}

// The C body hook reads events only for the streams the extract rules'
// paths cover; the others are only counted.
func TestBodyHookReadsEventsOnlyUnderTheRulesPaths(t *testing.T) {
	c, _, _ := newTestConfig(t, "extract: {paths: [/v1/], rules: [{path: usage.total_tokens, key: total_tokens}]}")
	for path, read := range map[string]bool{"/v1/chat/completions": true, "/sse/events": false} {
		env := newFakeEnvoy(":method", "GET", ":path", path)
		f := c.newFilter(env)
		f.OnRequestHeaders(true)
		env.setHeaders(abi.ResponseHeaders, ":status", "200", "content-type", "text/event-stream")
		f.OnResponseHeaders(false)
		if got := env.scanner.OnEventData != nil; got != read {
			t.Errorf("%s: events read %v, want %v", path, got, read)
		}
	}
}
