package abi_test

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"example.com/sse-on-envoy/module/abi"
	"example.com/sse-on-envoy/module/abi/fakeenvoy"
)

// testModule does what its fields say, so each test drives the hooks into
// one corner.
type testModule struct {
	configErr   error
	panicIn     string // "config", "filter_new", "headers", "body"
	sawBody     []uintptr
	sawBodyText []string
	destroyed   int
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

func (t *testFilter) OnResponseBody(bool) abi.Status {
	if t.m.panicIn == "body" {
		panic("body boom")
	}
	t.f.BodyChunks(abi.ReceivedResponseBody, func(b []byte) {
		t.m.sawBody = append(t.m.sawBody, uintptr(unsafe.Pointer(unsafe.SliceData(b))))
		t.m.sawBodyText = append(t.m.sawBodyText, string(b))
	})
	t.f.IncrementCounter(0, 2)
	return abi.Continue
}

func (t *testFilter) OnDestroy() { t.m.destroyed++ }

func TestProgramInitReturnsTheABIVersion(t *testing.T) {
	if got := fakeenvoy.ProgramInit(); got != abi.Version || len(got) != 64 {
		t.Errorf("program init returned %q, want %q", got, abi.Version)
	}
}

// The hooks, called from C as Envoy calls them: handles in, statuses out,
// Envoy's body memory seen in place, every object released at its destroy.
func TestHooksFromC(t *testing.T) {
	fakeenvoy.Reset()
	m := &testModule{}
	abi.Register(m)
	cfg := fakeenvoy.ConfigNew("")
	if cfg == 0 {
		t.Fatalf("config refused: %s", fakeenvoy.LastLog())
	}
	h := fakeenvoy.FilterNew(cfg)
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":method", "GET")
	if s := fakeenvoy.RequestHeadersHook(h, true); s != int(abi.Continue) {
		t.Errorf("request headers: %d", s)
	}
	fakeenvoy.AddBody("data: a\n\n")
	fakeenvoy.AddBody("data: b\n\n")
	if s := fakeenvoy.ResponseBodyHook(h, false); s != int(abi.Continue) {
		t.Errorf("response body: %d", s)
	}
	if len(m.sawBody) != 2 || m.sawBody[0] != fakeenvoy.BodyPointer(0) || m.sawBody[1] != fakeenvoy.BodyPointer(1) {
		t.Errorf("body slices at %x, want Envoy's own memory at %x and %x", m.sawBody, fakeenvoy.BodyPointer(0), fakeenvoy.BodyPointer(1))
	}
	if strings.Join(m.sawBodyText, "") != "data: a\n\ndata: b\n\n" {
		t.Errorf("body %q", m.sawBodyText)
	}
	if got := fakeenvoy.Stat(0); got != 2 {
		t.Errorf("counter = %d, want 2", got)
	}
	fakeenvoy.StreamComplete(h)
	fakeenvoy.Destroy(h)
	fakeenvoy.Destroy(h) // a second destroy finds nothing
	if m.destroyed != 1 {
		t.Errorf("OnDestroy ran %d times", m.destroyed)
	}
	fakeenvoy.ConfigDestroy(cfg)
	if c, r, s := abi.LiveHandles(); c != 0 || r != 0 || s != 0 {
		t.Errorf("live handles after destroy: configs %d, routes %d, streams %d", c, r, s)
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
	for _, where := range []string{"config", "filter_new", "headers", "body"} {
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
