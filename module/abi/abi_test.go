package abi_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/extract"
	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
	"example.com/sse-on-envoy/module/abi/fakeenvoy"
	"example.com/sse-on-envoy/module/abiinfo"
)

// settings are the stream settings the tests hand to C, as the module's
// init does: internal/ssestream's names and line limit.
func settings(interval time.Duration) abi.StreamSettings {
	return abi.StreamSettings{Namespace: "sse", Events: "events", Bytes: "bytes", LastEventID: "last_event_id",
		Interval: interval, MaxLineBytes: ssestream.LineLimit}
}

func TestMain(m *testing.M) {
	if err := abi.SetStreamSettings(settings(time.Hour)); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}

// C takes no line limit it cannot hold, nor a change of it.
func TestStreamSettingsRefusesABadLineLimit(t *testing.T) {
	for _, n := range []int{0, -1, 31, 65536, ssestream.LineLimit + 1} {
		s := settings(time.Hour)
		s.MaxLineBytes = n
		if err := abi.SetStreamSettings(s); err == nil {
			t.Errorf("line limit %d accepted", n)
		}
	}
	if got := abi.CStreamSettings(); got != settings(time.Hour) {
		t.Errorf("after refusals C holds %+v, want %+v", got, settings(time.Hour))
	}
}

// testModule does what its fields say, so each test drives the hooks into
// one corner.
type testModule struct {
	configErr     error
	panicIn       string // "config", "filter_new", "headers", "body"
	destroyed     int
	counts        abi.Counts
	upstreamEnded bool
	// rules: the C body hook hands matched events to read.
	rules *abi.Rules
	read  []string
}

func (m *testModule) NewFilterConfig(c abi.Config, name string, config []byte) (abi.FilterConfig, error) {
	if m.panicIn == "config" {
		panic("config boom")
	}
	if m.configErr != nil {
		return nil, m.configErr
	}
	if _, err := c.DefineCounter("test.counter"); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *testModule) NewPerRouteConfig(string, []byte) (any, error) { return m, nil }

func (m *testModule) NewFilter(f abi.Filter) abi.HTTPFilter {
	if m.panicIn == "filter_new" {
		panic("filter_new boom")
	}
	return &testFilter{m: m, f: f}
}

type testFilter struct {
	abi.PassThrough
	m *testModule
	f abi.Filter
}

func (t *testFilter) OnRequestHeaders(bool) abi.Status {
	if t.m.panicIn == "headers" {
		panic("headers boom")
	}
	if method, _ := t.f.Header(abi.RequestHeaders, ":method"); method == "OPTIONS" {
		t.f.SendResponse(204, []abi.Header{{Key: "x-a", Value: "b"}}, "", "preflight")
		return abi.StopIteration
	}
	return abi.Continue
}

// OnResponseHeaders edits the headers as the policy would (a set that
// reads back, a removal) and hands every response to the C body hook.
func (t *testFilter) OnResponseHeaders(bool) abi.Status {
	if t.m.panicIn == "response_headers" {
		panic("response_headers boom")
	}
	t.f.SetHeader(abi.ResponseHeaders, "cache-control", "no-cache")
	t.f.SetHeader(abi.ResponseHeaders, "cache-control", "no-store")
	if v, _ := t.f.Header(abi.ResponseHeaders, "cache-control"); v != "no-store" {
		panic("cache-control reads back " + v)
	}
	t.f.RemoveHeader(abi.ResponseHeaders, "content-length")
	t.f.CountBody(0, true)
	t.f.ReadEvents(t.m.rules)
	return abi.Continue
}

func (t *testFilter) OnEventData(mask uint32, data []byte, cut bool) {
	t.m.read = append(t.m.read, fmt.Sprintf("%b %s cut=%v", mask, data, cut))
}

func (t *testFilter) OnStreamComplete() {
	t.m.counts = t.f.BodyCounts()
	t.m.upstreamEnded = t.f.UpstreamEnded()
	t.f.SetMetadataNumber("sse", "events", float64(t.m.counts.Events))
	t.f.SetMetadataNumber("sse", "bytes", float64(t.m.counts.Bytes))
	t.f.SetMetadataString("sse", "last_event_id", t.m.counts.LastEventID)
}

func (t *testFilter) OnDestroy() { t.m.destroyed++ }

func TestProgramInitReturnsTheABIVersion(t *testing.T) {
	if got := fakeenvoy.ProgramInit(); got != abi.Version {
		t.Errorf("program init returned %q, want %q", got, abi.Version)
	}
}

// The hooks, called from C as Envoy calls them: handles in, statuses out,
// the body counted by the C hook in Envoy's own memory, every object
// released at its destroy.
func TestHooksFromC(t *testing.T) {
	fakeenvoy.Reset()
	m := &testModule{}
	abi.Register(m)
	if err := abi.SetStreamSettings(settings(time.Hour)); err != nil {
		t.Fatal(err)
	}
	cfg := fakeenvoy.ConfigNew("")
	if cfg == 0 {
		t.Fatalf("config refused: %s", fakeenvoy.LastLog())
	}
	h := fakeenvoy.FilterNew(cfg)
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":method", "GET")
	if s := fakeenvoy.RequestHeadersHook(h, true); s != int(abi.Continue) {
		t.Errorf("request headers: %d", s)
	}
	// Before the response headers nothing is counted.
	fakeenvoy.AddBody("data: early\n\n")
	fakeenvoy.ResponseBodyHook(h, false)
	fakeenvoy.ClearBody()
	fakeenvoy.SetHeader(fakeenvoy.ResponseHeaders, "content-length", "5")
	if s := fakeenvoy.ResponseHeadersHook(h, false); s != int(abi.Continue) {
		t.Errorf("response headers: %d", s)
	}
	if got, want := fakeenvoy.HeaderEdits(), "2 set cache-control=no-cache\n2 set cache-control=no-store\n2 remove content-length\n"; got != want {
		t.Errorf("header edits\n%s\nwant\n%s", got, want)
	}
	fakeenvoy.AddBody("id: 1\ndata: a\n\nid: 2\nda")
	fakeenvoy.AddBody("ta: b\n\n: hb\n\nid: 3\n")
	if s := fakeenvoy.ResponseBodyHook(h, false); s != int(abi.Continue) {
		t.Errorf("response body: %d", s)
	}
	if got := fakeenvoy.Stat(0); got != 2 {
		t.Errorf("events counter = %d, want 2", got)
	}
	if n := fakeenvoy.MetadataSets(); n != 0 {
		t.Errorf("metadata set %d times within the interval:\n%s", n, fakeenvoy.Metadata())
	}
	fakeenvoy.ClearBody()
	fakeenvoy.AddBody("data: c\n\n")
	fakeenvoy.ResponseBodyHook(h, true)
	fakeenvoy.StreamComplete(h)
	want := abi.Counts{Events: 3, Bytes: uint64(len("id: 1\ndata: a\n\nid: 2\nda" + "ta: b\n\n: hb\n\nid: 3\n" + "data: c\n\n")), LastEventID: "3"}
	timing := m.counts.Timing
	m.counts.Timing = sse.Timing{}
	if m.counts != want || !m.upstreamEnded {
		t.Errorf("counts %+v, upstream ended %v; want %+v and true", m.counts, m.upstreamEnded, want)
	}
	// The C pace saw two chunks: two events in the first, one in the
	// second, on the real clock.
	var gaps uint32
	for _, n := range timing.Gaps {
		gaps += n
	}
	if !timing.HasFirstByte || !timing.HasFirstEvent || timing.FirstByte != timing.FirstEvent ||
		timing.LastEvent < timing.FirstEvent || timing.MaxGap != timing.LastEvent-timing.FirstEvent || gaps != 2 {
		t.Errorf("timing %+v", timing)
	}
	if got, want := fakeenvoy.Metadata(), fmt.Sprintf("sse:events=3\nsse:bytes=%d\nsse:last_event_id=3\n", want.Bytes); got != want {
		t.Errorf("metadata\n%s\nwant\n%s", got, want)
	}
	fakeenvoy.Destroy(h)
	fakeenvoy.Destroy(0) // NULL finds nothing
	if m.destroyed != 1 {
		t.Errorf("OnDestroy ran %d times", m.destroyed)
	}
	fakeenvoy.ConfigDestroy(cfg)
	if c, r, s := abi.LiveHandles(); c != 0 || r != 0 || s != 0 {
		t.Errorf("live handles after destroy: configs %d, routes %d, streams %d", c, r, s)
	}
}

// A long stream's counts reach its metadata from the C hook once the
// interval has passed, so periodic access-log entries see them.
func TestBodyHookRefreshesMetadataEachInterval(t *testing.T) {
	for _, tc := range []struct {
		interval time.Duration
		wantSets int
	}{
		{time.Hour, 0},
		{0, 3 * 2}, // every chunk: events, bytes, last_event_id
	} {
		fakeenvoy.Reset()
		abi.Register(&testModule{})
		if err := abi.SetStreamSettings(settings(tc.interval)); err != nil {
			t.Fatal(err)
		}
		cfg := fakeenvoy.ConfigNew("")
		h := fakeenvoy.FilterNew(cfg)
		fakeenvoy.ResponseHeadersHook(h, false)
		fakeenvoy.AddBody("data: x\n\n")
		fakeenvoy.ResponseBodyHook(h, false)
		fakeenvoy.ResponseBodyHook(h, false)
		if got := fakeenvoy.MetadataSets(); got != tc.wantSets {
			t.Errorf("interval %v: metadata set %d times, want %d:\n%s", tc.interval, got, tc.wantSets, fakeenvoy.Metadata())
		}
		fakeenvoy.Destroy(h)
		fakeenvoy.ConfigDestroy(cfg)
	}
}

func TestLocalReplyFromC(t *testing.T) {
	fakeenvoy.Reset()
	abi.Register(&testModule{})
	cfg := fakeenvoy.ConfigNew("")
	defer fakeenvoy.ConfigDestroy(cfg)
	h := fakeenvoy.FilterNew(cfg)
	defer fakeenvoy.Destroy(h)
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":method", "OPTIONS")
	if s := fakeenvoy.RequestHeadersHook(h, true); s != int(abi.StopIteration) || fakeenvoy.ReplyStatus() != 204 {
		t.Errorf("status %d, reply %d; want a 204 local reply", s, fakeenvoy.ReplyStatus())
	}
}

func TestRefusedConfigIsLoggedAndReturnsNull(t *testing.T) {
	fakeenvoy.Reset()
	abi.Register(&testModule{configErr: errors.New("max_age: bad")})
	if h := fakeenvoy.ConfigNew("x"); h != 0 {
		t.Errorf("config handle %d, want 0 (refused)", h)
	}
	if log := fakeenvoy.LastLog(); !strings.Contains(log, "refusing the configuration: max_age: bad") {
		t.Errorf("log %q", log)
	}
}

// A panic never reaches Envoy: the hook logs it and fails open.
func TestPanicsFailOpen(t *testing.T) {
	for _, where := range []string{"config", "filter_new", "headers", "response_headers"} {
		t.Run(where, func(t *testing.T) {
			fakeenvoy.Reset()
			abi.Register(&testModule{panicIn: where})
			cfg := fakeenvoy.ConfigNew("")
			if where == "config" {
				if cfg != 0 || !strings.Contains(fakeenvoy.LastLog(), "panic in http_filter_config_new") {
					t.Errorf("config handle %d, log %q", cfg, fakeenvoy.LastLog())
				}
				return
			}
			defer fakeenvoy.ConfigDestroy(cfg)
			h := fakeenvoy.FilterNew(cfg)
			if h == 0 {
				t.Fatal("filter new returned NULL: Envoy would close the stream")
			}
			if s := fakeenvoy.RequestHeadersHook(h, true); s != int(abi.Continue) {
				t.Errorf("request headers: %d", s)
			}
			if s := fakeenvoy.ResponseHeadersHook(h, false); s != int(abi.Continue) {
				t.Errorf("response headers: %d", s)
			}
			fakeenvoy.AddBody("data: a\n\n")
			if s := fakeenvoy.ResponseBodyHook(h, false); s != int(abi.Continue) {
				t.Errorf("response body: %d", s)
			}
			fakeenvoy.Destroy(h)
			if fakeenvoy.Logs() != 1 || !strings.Contains(fakeenvoy.LastLog(), where+" boom") {
				t.Errorf("%d log lines, last %q; want the one panic logged", fakeenvoy.Logs(), fakeenvoy.LastLog())
			}
		})
	}
}

// The C body hook hands Go only the events that pass the rules' cheap test
// (type and needle), whole even when split across chunks past the line
// limit, [DONE] never, and a long one marked cut.
func TestBodyHookHandsMatchedEventsToGo(t *testing.T) {
	fakeenvoy.Reset()
	rules, errs := extract.Compile(&extract.Config{MaxEventBytes: ptr(400), Rules: []extract.Rule{
		{Path: "usage.total_tokens", Key: "total_tokens"},
		{Event: "message_delta", Path: "usage.output_tokens", Key: "output_tokens"},
	}}, nil)
	if errs != nil {
		t.Fatal(errs)
	}
	m := &testModule{rules: abi.NewRules(rules)}
	abi.Register(m)
	h := fakeenvoy.FilterNew(fakeenvoy.ConfigNew(""))
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":method", "GET")
	fakeenvoy.RequestHeadersHook(h, true)
	fakeenvoy.ResponseHeadersHook(h, false)
	long := strings.Repeat("x", 300)
	for _, chunk := range []string{
		`data: {"usage":null}` + "\n\n",
		`data: {"pad":"` + long + `","usage":{"total_tok`, `ens":21}}` + "\n\n",
		"event: message_delta\n" + `data: {"usage":{"output_tokens":15,"total_tokens":3}}` + "\n\n",
		"event: other\n" + `data: {"usage":{"output_tokens":1}}` + "\n\n",
		`data: {"total_tokens":"` + long + long + `"}` + "\n\n",
		"data: [DONE]\n\n",
	} {
		fakeenvoy.ClearBody()
		fakeenvoy.AddBody(chunk)
		fakeenvoy.ResponseBodyHook(h, false)
	}
	fakeenvoy.StreamComplete(h)
	fakeenvoy.Destroy(h)
	// What Go's cheap test (extract.Rules.Match) says of the same events:
	// the C hook must hand over exactly those, with the same masks.
	var goRead []string
	for _, ev := range []struct{ typ, data string }{
		{"message", `{"usage":null}`},
		{"message", `{"pad":"` + long + `","usage":{"total_tokens":21}}`},
		{"message_delta", `{"usage":{"output_tokens":15,"total_tokens":3}}`},
		{"other", `{"usage":{"output_tokens":1}}`},
		{"message", `{"total_tokens":"` + (long + long)[:400-len(`{"total_tokens":"`)]},
		{"message", "[DONE]"},
	} {
		if mask := rules.Match([]byte(ev.typ), []byte(ev.data)); mask != 0 {
			goRead = append(goRead, fmt.Sprintf("%b %s", mask, ev.data))
		}
	}
	var cRead []string
	for _, r := range m.read {
		cRead = append(cRead, strings.TrimSuffix(strings.TrimSuffix(r, " cut=false"), " cut=true"))
	}
	if strings.Join(cRead, "\n") != strings.Join(goRead, "\n") {
		t.Errorf("the C hook's cheap test read\n%s\nGo's\n%s", strings.Join(cRead, "\n"), strings.Join(goRead, "\n"))
	}
	want := []string{
		`1 {"pad":"` + long + `","usage":{"total_tokens":21}} cut=false`,
		`11 {"usage":{"output_tokens":15,"total_tokens":3}} cut=false`,
		`1 {"total_tokens":"` + (long + long)[:400-len(`{"total_tokens":"`)] + ` cut=true`,
	}
	if strings.Join(m.read, "\n") != strings.Join(want, "\n") {
		t.Errorf("read\n%s\nwant\n%s", strings.Join(m.read, "\n"), strings.Join(want, "\n"))
	}
}

func ptr[T any](v T) *T { return &v }

// slack.c's constructor raises the Go runtime's timer slack to the value
// module/abiinfo names.
func TestGoTimerSlackIsAbiinfos(t *testing.T) {
	if got := abi.GoTimerSlack(); got != abiinfo.GoTimerSlack {
		t.Errorf("slack.c raises Go's timer slack to %v, module/abiinfo says %v", got, abiinfo.GoTimerSlack)
	}
}
