package abi

/*
#include <stdlib.h>
#include "slack.h"
#include "stream.h"

// Envoy hands module pointers back as integers; converting in C keeps Go
// from doing pointer arithmetic on them.
static inline sse_stream* sse_stream_at(uintptr_t p) { return (sse_stream*)p; }
static inline uintptr_t sse_stream_addr(sse_stream* s) { return (uintptr_t)s; }
static inline sse_stream* sse_stream_new(uintptr_t go_handle) {
  sse_stream* s = calloc(1, sizeof(sse_stream));
  if (s != NULL) {
    s->go_handle = go_handle;
    s->start_ns = sse_monotonic_ns();
  }
  return s;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"time"
	"unsafe"

	"example.com/sse-on-envoy/internal/extract"
	"example.com/sse-on-envoy/internal/sse"
)

// The C arrays are sized by Go's limits: a difference fails the build.
const (
	_ = uint(C.SSE_PACE_BUCKETS - sse.GapBuckets)
	_ = uint(sse.GapBuckets - C.SSE_PACE_BUCKETS)
	_ = uint(C.SSE_MAX_RULES - extract.MaxRules)
	_ = uint(extract.MaxRules - C.SSE_MAX_RULES)
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
	old := C.sse_stream_get_settings()
	set := C.sse_stream_settings{
		ns: cbuf(s.Namespace), events: cbuf(s.Events), bytes: cbuf(s.Bytes), last_event_id: cbuf(s.LastEventID),
		interval_ns: C.int64_t(s.Interval.Nanoseconds()), max_line: C.size_t(s.MaxLineBytes),
	}
	ok := C.sse_stream_set_settings(set)
	// The names no longer held: the new ones if refused, else the ones
	// they replace (only tests set them twice, between streams).
	drop := old
	if !ok {
		drop = set
	}
	for _, b := range []C.sse_buffer{drop.ns, drop.events, drop.bytes, drop.last_event_id} {
		C.free(unsafe.Pointer(b.ptr))
	}
	if !ok {
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
	Timing        sse.Timing
}

// Rules are a configuration's extract rules in C memory, for the body
// hook's cheap test; freed when the Go value is no longer reachable (every
// stream's filter holds its configuration, so never while a stream can
// read them).
type Rules struct {
	c     *C.sse_rules
	rules *extract.Rules
}

// Extract is the rules the C copy was made of.
func (r *Rules) Extract() *extract.Rules { return r.rules }

// NewRules copies r into C memory; nil when r has no rules.
func NewRules(r *extract.Rules) *Rules {
	if r.Len() == 0 {
		return nil
	}
	c := (*C.sse_rules)(C.calloc(1, C.size_t(unsafe.Sizeof(C.sse_rules{}))))
	if c == nil {
		return nil
	}
	c.n = C.uint32_t(r.Len())
	c.max_event_bytes = C.uint32_t(r.MaxEventBytes())
	cbuf := func(b []byte) C.sse_buffer {
		if len(b) == 0 {
			return C.sse_buffer{}
		}
		return C.sse_buffer{ptr: (*C.char)(C.CBytes(b)), length: C.size_t(len(b))}
	}
	c.done = cbuf(extract.Done)
	for i := range r.Len() {
		c.event[i] = cbuf(r.Event(i))
		c.needle[i] = cbuf(r.Needle(i))
	}
	rules := &Rules{c, r}
	runtime.AddCleanup(rules, func(c *C.sse_rules) {
		C.free(unsafe.Pointer(c.done.ptr))
		for i := range int(c.n) {
			C.free(unsafe.Pointer(c.event[i].ptr))
			C.free(unsafe.Pointer(c.needle[i].ptr))
		}
		C.free(unsafe.Pointer(c))
	}, c)
	return rules
}

// ReadEvents makes the C body hook hand this stream's events that pass the
// rules' cheap test to the filter's OnEventData (an EventReader). rules
// must be reachable for as long as the stream (held by its filter).
func (f Filter) ReadEvents(rules *Rules) {
	if f.stream == nil || rules == nil {
		return
	}
	if !C.sse_stream_read_events(f.stream, rules.c) {
		Log(LogError, "sse: out of memory: a stream's events are counted, not read")
	}
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
		Timing:      paceTiming(&f.stream.pace),
	}
}

// paceTiming is a C pace as internal/sse reports one.
func paceTiming(p *C.sse_pace) sse.Timing {
	t := sse.Timing{
		FirstByte: time.Duration(p.first_byte_ns), FirstEvent: time.Duration(p.first_event_ns),
		HasFirstByte: bool(p.seen_byte), HasFirstEvent: bool(p.seen_event),
		LastEvent: time.Duration(p.last_event_ns), MaxGap: time.Duration(p.max_gap_ns),
	}
	for i := range t.Gaps {
		t.Gaps[i] = uint32(p.gaps[i])
	}
	return t
}

// UpstreamEnded reports whether a body hook saw the end of the response.
func (f Filter) UpstreamEnded() bool { return f.stream != nil && bool(f.stream.upstream_ended) }

// goTimerSlack is the timer slack slack.c gives the Go runtime's threads.
func goTimerSlack() time.Duration { return time.Duration(C.sse_go_timer_slack_ns()) }
