// The event-stream scanner the response-body hook runs in C, so that a chunk
// of an SSE stream never enters the Go runtime. It counts what
// internal/sse.Scanner counts (events, bytes, the last event id, comments,
// truncations) under the same WHATWG rules and the same limits;
// FuzzCScannerMatchesGo feeds both the same chunks and fails on any
// difference, so the rules stay one behaviour.
#ifndef SSE_SCAN_H
#define SSE_SCAN_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SSE_HIDDEN __attribute__((visibility("hidden")))

// Ids up to this length are kept inside the struct; a longer one, and a line
// split across chunks, get a sse_scan_max_line buffer the first time they
// occur, so a stream costs about 150 bytes until it needs more.
#define SSE_SCAN_INLINE_ID 32

// sse_scan_max_line bounds the bytes of a line kept across chunks and the
// longest last event id kept, so per-stream memory is fixed whatever the
// stream sends. It is Go's value (internal/ssestream.LineLimit), never
// defined here: sse_scan_set_max_line sets it once, before any stream is
// scanned (the module's init); it is 0 until then.
SSE_HIDDEN extern size_t sse_scan_max_line;

// sse_scan_set_max_line sets sse_scan_max_line. It refuses (false) a limit
// below SSE_SCAN_INLINE_ID or past what the uint16_t lengths below hold,
// and a change once set: buffers already allocated have the old size.
SSE_HIDDEN bool sse_scan_set_max_line(size_t n);

// sse_scan_collect is what a scanner that reads event data keeps (the
// module's extract rules, internal/extract): whole data lines up to
// max_line, an event's data up to max_data, its type, and on_event, called
// with each dispatched event. internal/sse.Scanner's MaxLineBytes,
// MaxDataBytes and OnEventData, with the same rules.
typedef struct {
  uint32_t max_line;
  uint32_t max_data;
  void (*on_event)(void* ctx, const char* type, size_t type_len, const char* data, size_t data_len, bool cut);
  void* ctx;
  bool data_cut;
  uint16_t type_len;
  uint32_t data_len, data_cap;
  char* data;
  char* type;  // sse_scan_max_line bytes, allocated with the first type
} sse_scan_collect;

typedef struct {
  uint64_t events;
  uint64_t comments;
  uint64_t bytes;
  uint64_t truncations;
  bool bom_done;
  uint8_t bom_matched;
  bool pending_cr;  // the previous chunk ended in CR: a leading LF completes it
  bool line_cut;
  bool has_data;
  uint16_t id_len;
  uint16_t last_id_len;
  uint32_t line_len;
  uint32_t line_cap;
  char* line;     // NULL until a line spans chunks
  sse_scan_collect* collect;  // NULL: events are only counted
  char* id_heap;  // NULL until an id is longer than the inline buffer
  char* last_id_heap;
  char id_inline[SSE_SCAN_INLINE_ID];  // the WHATWG "last event ID buffer"
  char last_id_inline[SSE_SCAN_INLINE_ID];
} sse_scan;

// sse_scan_write feeds the next chunk. Out of memory, a line that spans
// chunks is dropped and a long id is cut to the inline length: the counts
// stay bounded and the stream is never held.
SSE_HIDDEN void sse_scan_write(sse_scan* s, const char* p, size_t n);
// sse_scan_last_id is the id a reconnecting client would send.
SSE_HIDDEN const char* sse_scan_last_id(const sse_scan* s);
// sse_scan_collect_events makes s hand each event's type and data to
// on_event from now on, keeping data lines up to max_line bytes and an
// event's data up to max_data; false when out of memory (s only counts).
SSE_HIDDEN bool sse_scan_collect_events(sse_scan* s, uint32_t max_line, uint32_t max_data,
                                        void (*on_event)(void*, const char*, size_t, const char*, size_t, bool),
                                        void* ctx);
// sse_scan_free releases what the scanner allocated (not s itself).
SSE_HIDDEN void sse_scan_free(sse_scan* s);
#endif
