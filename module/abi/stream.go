package abi

/*
#include <stdlib.h>
#include "stream.h"

// Envoy hands module pointers back as integers; converting in C keeps Go
// from doing pointer arithmetic on them.
static inline sse_stream* sse_stream_at(uintptr_t p) { return (sse_stream*)p; }
static inline uintptr_t sse_stream_addr(sse_stream* s) { return (uintptr_t)s; }
static inline sse_stream* sse_stream_new(uintptr_t go_handle) {
  sse_stream* s = calloc(1, sizeof(sse_stream));
  if (s != NULL) s->go_handle = go_handle;
  return s;
}
*/
import "C"

import (
	"time"
)

// MetadataKeys names the dynamic metadata the C body hook refreshes.
type MetadataKeys struct {
	Namespace, Events, Bytes, LastEventID string
	// Interval bounds how often a long stream refreshes them.
	Interval time.Duration
}

// SetMetadataKeys hands the names to the C side, once, before Envoy calls a
// hook (from the module's init). The strings are copied into C memory that
// lives as long as the process.
func SetMetadataKeys(k MetadataKeys) {
	cbuf := func(s string) C.sse_buffer { return C.sse_buffer{ptr: C.CString(s), length: C.size_t(len(s))} }
	C.sse_stream_set_metadata_keys(C.sse_metadata_keys{
		ns: cbuf(k.Namespace), events: cbuf(k.Events), bytes: cbuf(k.Bytes), last_event_id: cbuf(k.LastEventID),
		interval_ns: C.int64_t(k.Interval.Nanoseconds()),
	})
}

// streamStateBytes is what every stream costs in C until a line spans
// chunks or an id outgrows the inline buffer.
const streamStateBytes = C.sizeof_sse_stream

// newStream allocates a stream's C state for the Go filter behind handle h;
// Envoy keeps its address as the module pointer. nil when out of memory.
func newStream(h uintptr) *C.sse_stream { return C.sse_stream_new(C.uintptr_t(h)) }

func streamAt(p C.uintptr_t) *C.sse_stream { return C.sse_stream_at(p) }

func streamAddr(s *C.sse_stream) C.uintptr_t { return C.sse_stream_addr(s) }

func freeStream(s *C.sse_stream) { C.sse_stream_free(s) }

// Counts is what the C body hook has seen of an SSE response.
type Counts struct {
	Events, Bytes uint64
	LastEventID   string
}

// CountBody makes the C body hook scan this stream's response chunks from
// now on, adding the events to the counter with Envoy id eventsCounter
// (ok false: no counter).
func (f Filter) CountBody(eventsCounter uint64, ok bool) {
	if f.stream == nil {
		return
	}
	f.stream.counting = true
	f.stream.has_events_stat = C.bool(ok)
	f.stream.events_stat = C.size_t(eventsCounter)
	f.stream.published_ns = C.sse_monotonic_ns()
}

// BodyCounts reads what the C body hook counted so far.
func (f Filter) BodyCounts() Counts {
	if f.stream == nil {
		return Counts{}
	}
	sc := &f.stream.scan
	return Counts{
		Events:      uint64(sc.events),
		Bytes:       uint64(sc.bytes),
		LastEventID: C.GoStringN(C.sse_scan_last_id(sc), C.int(sc.last_id_len)),
	}
}

// UpstreamEnded reports whether a body hook saw the end of the response.
func (f Filter) UpstreamEnded() bool { return f.stream != nil && bool(f.stream.upstream_ended) }
