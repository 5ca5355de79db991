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
  uint16_t line_len;
  uint16_t id_len;
  uint16_t last_id_len;
  char* line;     // NULL until a line spans chunks
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
// sse_scan_free releases what the scanner allocated (not s itself).
SSE_HIDDEN void sse_scan_free(sse_scan* s);
#endif
