package ssemodule_test

import (
	"strings"
	"testing"

	"example.com/sse-on-envoy/module/abi"
	"example.com/sse-on-envoy/module/abi/fakeenvoy"
	"example.com/sse-on-envoy/module/ssemodule"
)

// The module through the real cgo path (hooks called from C, header edits
// made through the ABI's callbacks): an upstream's own grant to a refused
// origin is removed, and the stream headers are set.
func TestResponseHeaderEditsThroughTheABI(t *testing.T) {
	h := newCStream(t, `allowed_origins: ["https://localhost:8080"]`)
	for _, kv := range [][2]string{{":method", "GET"}, {":path", "/sse/events"}, {"origin", "https://evil.example"}} {
		fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, kv[0], kv[1])
	}
	if s := fakeenvoy.RequestHeadersHook(h, true); s != int(abi.Continue) {
		t.Fatalf("request headers: %d", s)
	}
	for _, kv := range [][2]string{
		{":status", "200"}, {"content-type", "text/event-stream"}, {"content-length", "10"},
		{"access-control-allow-origin", "*"}, {"access-control-allow-credentials", "true"},
	} {
		fakeenvoy.SetHeader(fakeenvoy.ResponseHeaders, kv[0], kv[1])
	}
	if s := fakeenvoy.ResponseHeadersHook(h, false); s != int(abi.Continue) {
		t.Fatalf("response headers: %d", s)
	}
	edits := fakeenvoy.HeaderEdits()
	for _, want := range []string{
		"2 remove access-control-allow-origin\n", "2 remove access-control-allow-credentials\n",
		"2 set vary=Origin\n", "2 set cache-control=no-cache\n", "2 remove content-length\n",
		"2 set x-sse-stream=dynamic_module\n",
	} {
		if !strings.Contains(edits, want) {
			t.Errorf("header edits lack %q:\n%s", want, edits)
		}
	}
	if strings.Contains(edits, "set access-control-allow") {
		t.Errorf("a grant was set for a refused origin:\n%s", edits)
	}
	fakeenvoy.StreamComplete(h)
}

// newCStream registers the module with the fake Envoy, as libsse.so's init
// does, makes a filter configuration from config and one stream under it,
// all through the C hooks, and returns the stream's handle; both go at the
// end of the test.
func newCStream(tb testing.TB, config string) uintptr {
	tb.Helper()
	fakeenvoy.Reset()
	abi.Register(ssemodule.Module{})
	setStreamSettings(tb)
	cfg := fakeenvoy.ConfigNew(config)
	if cfg == 0 {
		tb.Fatalf("config refused: %s", fakeenvoy.LastLog())
	}
	h := fakeenvoy.FilterNew(cfg)
	tb.Cleanup(func() {
		fakeenvoy.Destroy(h)
		fakeenvoy.ConfigDestroy(cfg)
	})
	return h
}
