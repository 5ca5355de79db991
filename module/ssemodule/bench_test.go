package ssemodule_test

import (
	"testing"

	"example.com/sse-on-envoy/module/abi"
	"example.com/sse-on-envoy/module/abi/fakeenvoy"
)

// BenchmarkResponseBodyHook is the per-chunk cost of an SSE stream in the
// module: a C caller (standing in for Envoy) calls the exported body hook,
// which is C (the Go runtime is not entered), reads the chunk through the
// ABI in place, counts the event and bumps the events counter through the
// ABI. One op is one chunk with one event.
func BenchmarkResponseBodyHook(b *testing.B) {
	h := newCStream(b, "")
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":method", "GET")
	fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":path", "/sse/events")
	fakeenvoy.RequestHeadersHook(h, true)
	fakeenvoy.SetHeader(fakeenvoy.ResponseHeaders, "content-type", "text/event-stream")
	fakeenvoy.ResponseHeadersHook(h, false)
	fakeenvoy.AddBody("id: 42\nevent: DAD_JOKE\ndata: What do you call a fish with no eyes? A fsh.\n\n")
	b.ReportAllocs()
	b.ResetTimer()
	if s := fakeenvoy.ResponseBodyHookN(h, b.N); s != int(abi.Continue) {
		b.Fatalf("status %d", s)
	}
	b.StopTimer()
	// Stat ids follow ssestream.Stats(): events is the third.
	if got := fakeenvoy.Stat(2); got != int64(b.N) {
		b.Fatalf("events counter %d after %d chunks", got, b.N)
	}
}
