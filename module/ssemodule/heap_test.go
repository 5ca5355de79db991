package ssemodule_test

import (
	"runtime"
	"testing"

	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
	"example.com/sse-on-envoy/module/abi/fakeenvoy"
	"example.com/sse-on-envoy/module/ssemodule"
)

// goHeapPerStreamLimit bounds what an open SSE stream keeps on the Go heap
// inside Envoy (docs/performance.md's memory breakdown says about 460 bytes): every
// byte is multiplied by the streams Envoy holds, and the module's memory per
// stream is what bench-load compares with the router's.
const goHeapPerStreamLimit = 512

func TestGoHeapPerOpenStreamStaysSmall(t *testing.T) {
	fakeenvoy.Reset()
	abi.Register(ssemodule.Module{})
	setStreamSettings(t)
	cfg := fakeenvoy.ConfigNew("")
	if cfg == 0 {
		t.Fatalf("config refused: %s", fakeenvoy.LastLog())
	}
	defer fakeenvoy.ConfigDestroy(cfg)
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":method", "GET")
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":path", "/sse/events")
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, "origin", "https://localhost:8080")
	fakeenvoy.SetHeader(fakeenvoy.ResponseHeaders, "content-type", "text/event-stream")

	const n = 2000
	open := func() []uintptr {
		streams := make([]uintptr, n)
		for i := range streams {
			streams[i] = fakeenvoy.FilterNew(cfg)
			fakeenvoy.RequestHeadersHook(streams[i], true)
			fakeenvoy.ResponseHeadersHook(streams[i], false)
		}
		return streams
	}
	closeAll := func(streams []uintptr) {
		for _, h := range streams {
			fakeenvoy.StreamComplete(h)
			fakeenvoy.Destroy(h)
		}
	}
	// A first round pays what is paid once per process, not per stream (the
	// first cgo callbacks, the handle table growing to its working size):
	// counted, it moved the figure by 30 to 80 bytes from one run to the next.
	closeAll(open())

	var before, opened runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	streams := open()
	runtime.GC()
	runtime.ReadMemStats(&opened)
	// Envoy's stat ids are the StatIDs, in definition order.
	if got := fakeenvoy.Stat(int(ssestream.StreamsActive)); got != n {
		t.Fatalf("active streams gauge %d with %d streams open: they did not open as SSE streams", got, n)
	}
	closeAll(streams)
	if got := fakeenvoy.Stat(int(ssestream.StreamsActive)); got != 0 {
		t.Errorf("active streams gauge %d after every stream ended", got)
	}
	perStream := (int64(opened.HeapAlloc) - int64(before.HeapAlloc)) / n
	t.Logf("Go heap per open stream: %d bytes", perStream)
	if perStream > goHeapPerStreamLimit {
		t.Errorf("an open stream keeps %d bytes on the Go heap, want at most %d", perStream, goHeapPerStreamLimit)
	}
}
