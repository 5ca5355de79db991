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
	"fmt"
	"time"
)

// StreamSettings are the values the C body hook and scanner work with. Go
// defines every one (internal/ssestream) and hands them to C once, before
// Envoy can call a hook (SetStreamSettings, from the module's init): C has
// no copy of its own.
type StreamSettings struct {
	// Namespace, Events, Bytes and LastEventID name the dynamic metadata the
	// C body hook refreshes.
	Namespace, Events, Bytes, LastEventID string
	// Interval bounds how often a long stream refreshes them.
	Interval time.Duration
	// MaxLineBytes bounds the bytes of a line the C scanner holds across
	// chunks and the longest last event id it keeps. It cannot change once
	// set.
	MaxLineBytes int
}

// SetStreamSettings hands s to the C side. The strings are copied into C
// memory that lives as long as the process. An error means nothing was set:
// a line limit C cannot hold (below 32 bytes or above 65535), or another
// than the one set before.
func SetStreamSettings(s StreamSettings) error {
	if s.MaxLineBytes <= 0 || !C.sse_scan_set_max_line(C.size_t(s.MaxLineBytes)) {
		return fmt.Errorf("the C scanner refuses a line limit of %d bytes (at least %d, at most 65535, and never another than %d once set)",
			s.MaxLineBytes, C.SSE_SCAN_INLINE_ID, C.sse_scan_max_line)
	}
	cbuf := func(s string) C.sse_buffer { return C.sse_buffer{ptr: C.CString(s), length: C.size_t(len(s))} }
	if !C.sse_stream_set_settings(C.sse_stream_settings{
		ns: cbuf(s.Namespace), events: cbuf(s.Events), bytes: cbuf(s.Bytes), last_event_id: cbuf(s.LastEventID),
		interval_ns: C.int64_t(s.Interval.Nanoseconds()), max_line: C.size_t(s.MaxLineBytes),
	}) {
		return fmt.Errorf("the C side refused the stream settings")
	}
	return nil
}

// CStreamSettings reads back what the C side holds (the zero value until
// SetStreamSettings).
func CStreamSettings() StreamSettings {
	c := C.sse_stream_get_settings()
	str := func(b C.sse_buffer) string {
		if b.ptr == nil {
			return ""
		}
		return C.GoStringN(b.ptr, C.int(b.length))
	}
	return StreamSettings{
		Namespace: str(c.ns), Events: str(c.events), Bytes: str(c.bytes), LastEventID: str(c.last_event_id),
		Interval: time.Duration(c.interval_ns), MaxLineBytes: int(c.max_line),
	}
}

// streamSettingsSet reports whether SetStreamSettings has run.
func streamSettingsSet() bool { return C.sse_scan_max_line != 0 }

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
