//go:build !race

// The race detector grows every goroutine's stack: memory bounds hold
// without it (make test runs these before its -race pass).

package server

import (
	"testing"

	"example.com/sse-on-envoy/upstream/seed"
)

// A detached HTTP/1.1 stream keeps about 10 KiB (heap and stacks, after a
// GC); on net/http's goroutine the same stream keeps about 28. The bound
// sits between, so that a change which leaves streams on net/http, or
// gives each a buffer again, fails here and not only in a benchmark.
func TestDetachedStreamsStaySmall(t *testing.T) {
	const streams, bound = 400, 16 << 10
	m := openIdleStreams(t, Config{Interval: -1}, nil, seed.EventsPath, streams)
	if m.kept() > bound {
		t.Errorf("each idle stream keeps %.0f bytes (heap %.0f, stacks %.0f), over %d", m.kept(), m.heap, m.stack, bound)
	}
}

// An idle HTTP/2 stream, detached from h2server, keeps about 7 KiB (heap
// and stacks, after a GC); on net/http's HTTP/2 server the same stream
// kept about 15. The bound sits between.
func TestDetachedH2StreamsStaySmall(t *testing.T) {
	const streams, bound = 400, 10 << 10
	m := openIdleH2Streams(t, Config{Interval: -1}, seed.EventsPath, streams)
	t.Logf("each idle HTTP/2 stream keeps %.0f bytes (heap %.0f, stacks %.0f)", m.kept(), m.heap, m.stack)
	if m.kept() > bound {
		t.Errorf("each idle HTTP/2 stream keeps %.0f bytes (heap %.0f, stacks %.0f), over %d", m.kept(), m.heap, m.stack, bound)
	}
}
