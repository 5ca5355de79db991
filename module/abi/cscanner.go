package abi

/*
#include <stdlib.h>
#include <string.h>
#include "pace.h"
#include "ssescan.h"

// A record of the events a collecting C scanner dispatched, for the tests
// that hold it equal to internal/sse.Scanner: per event, the type's and
// the data's lengths, both, and the cut flag.
typedef struct {
  char* buf;
  size_t len, cap;
} sse_test_events;

static void sse_test_append(sse_test_events* e, const void* p, size_t n) {
  if (e->len + n > e->cap) {
    size_t c = e->cap ? e->cap : 256;
    while (c < e->len + n) c *= 2;
    char* b = realloc(e->buf, c);
    if (b == NULL) abort();
    e->buf = b;
    e->cap = c;
  }
  memcpy(e->buf + e->len, p, n);
  e->len += n;
}

static void sse_test_on_event(void* ctx, const char* type, size_t type_len, const char* data, size_t data_len, bool cut) {
  sse_test_events* e = ctx;
  uint32_t n[2] = {(uint32_t)type_len, (uint32_t)data_len};
  sse_test_append(e, n, sizeof(n));
  sse_test_append(e, type, type_len);
  sse_test_append(e, data, data_len);
  char c = cut;
  sse_test_append(e, &c, 1);
}

static bool sse_test_collect(sse_scan* s, sse_test_events* e, uint32_t max_line, uint32_t max_data) {
  return sse_scan_collect_events(s, max_line, max_data, sse_test_on_event, e);
}
*/
import "C"

import (
	"encoding/binary"
	"time"
	"unsafe"

	"example.com/sse-on-envoy/internal/sse"
)

// cScanner is ssescan.c's scanner driven from Go: what the tests that hold
// it equal to internal/sse.Scanner feed.
type cScanner struct {
	s      *C.sse_scan
	events *C.sse_test_events
	pace   *C.sse_pace
}

func newCScanner() *cScanner {
	return &cScanner{
		s:    (*C.sse_scan)(C.calloc(1, C.size_t(unsafe.Sizeof(C.sse_scan{})))),
		pace: (*C.sse_pace)(C.calloc(1, C.size_t(unsafe.Sizeof(C.sse_pace{})))),
	}
}

// collect makes the scanner record its events, as a stream with extract
// rules does (maxLine bytes of a line held, maxData of an event's data).
func (c *cScanner) collect(maxLine, maxData int) {
	c.events = (*C.sse_test_events)(C.calloc(1, C.size_t(unsafe.Sizeof(C.sse_test_events{}))))
	if !C.sse_test_collect(c.s, c.events, C.uint32_t(maxLine), C.uint32_t(maxData)) {
		panic("out of memory")
	}
}

// CEvent is an event a collecting C scanner dispatched.
type CEvent struct {
	Type, Data string
	Cut        bool
}

// takeEvents returns the events recorded since the last call.
func (c *cScanner) takeEvents() []CEvent {
	if c.events == nil || c.events.len == 0 {
		return nil
	}
	b := C.GoBytes(unsafe.Pointer(c.events.buf), C.int(c.events.len))
	c.events.len = 0
	var out []CEvent
	for len(b) > 0 {
		tl, dl := int(binary.NativeEndian.Uint32(b)), int(binary.NativeEndian.Uint32(b[4:]))
		b = b[8:]
		out = append(out, CEvent{Type: string(b[:tl]), Data: string(b[tl : tl+dl]), Cut: b[tl+dl] != 0})
		b = b[tl+dl+1:]
	}
	return out
}

func (c *cScanner) write(p []byte) {
	if len(p) == 0 {
		C.sse_scan_write(c.s, nil, 0)
		return
	}
	C.sse_scan_write(c.s, (*C.char)(unsafe.Pointer(unsafe.SliceData(p))), C.size_t(len(p)))
}

// observe is the body hook's pace update for a chunk that came at `at`.
func (c *cScanner) observe(at time.Duration, events uint64) {
	C.sse_pace_observe(c.pace, C.int64_t(at), C.uint64_t(events))
}

func (c *cScanner) timing() sse.Timing { return paceTiming(c.pace) }

func (c *cScanner) free() {
	C.sse_scan_free(c.s)
	C.free(unsafe.Pointer(c.s))
	C.free(unsafe.Pointer(c.pace))
	if c.events != nil {
		C.free(unsafe.Pointer(c.events.buf))
		C.free(unsafe.Pointer(c.events))
	}
}

func (c *cScanner) eventCount() uint64  { return uint64(c.s.events) }
func (c *cScanner) comments() uint64    { return uint64(c.s.comments) }
func (c *cScanner) bytes() uint64       { return uint64(c.s.bytes) }
func (c *cScanner) truncations() uint64 { return uint64(c.s.truncations) }
func (c *cScanner) lastEventID() string {
	return C.GoStringN(C.sse_scan_last_id(c.s), C.int(c.s.last_id_len))
}

// cScanMaxLine is the C scanner's line and id limit, as it reads it.
func cScanMaxLine() int { return int(C.sse_scan_max_line) }
