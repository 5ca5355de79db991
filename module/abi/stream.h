// The per-stream state Envoy's module pointer points at. The response-body
// hook (stream.c) reads and updates it in C; the Go hooks find their filter
// through go_handle. Body chunks of an SSE stream are the only events that
// come dozens of times a second, and entering the Go runtime for each costs
// Envoy more than the router does for the chunk (docs/adapters.md, "What the profile
// showed"): so Go sees a stream at its start and end, C sees every chunk.
#ifndef SSE_STREAM_H
#define SSE_STREAM_H
#include "pace.h"
#include "sse_abi.h"
#include "ssescan.h"

// SSE_MAX_RULES is internal/extract.MaxRules: package abi fails to build
// when they differ.
#define SSE_MAX_RULES 8

// A configuration's extract rules as the body hook tests them: an event
// goes to Go (sse_module_on_event) only if its type matches a rule's event
// (empty: any) and its data contains the rule's needle (internal/extract's
// cheap test). Built in Go from extract.Rules, owned by the Go filter
// configuration, read-only in C.
typedef struct {
  uint32_t n;
  uint32_t max_event_bytes;
  sse_buffer done;  // internal/extract.Done: an end marker, never read
  sse_buffer event[SSE_MAX_RULES];
  sse_buffer needle[SSE_MAX_RULES];
} sse_rules;

typedef struct {
  uintptr_t go_handle;  // the Go HTTPFilter, in package abi's handle table
  bool counting;        // an SSE response: the body hook scans its chunks
  bool upstream_ended;  // a body or trailers hook saw the end of the response
  bool has_events_stat;
  size_t events_stat;  // Envoy's id of the events counter
  uint64_t counted;    // events already added to that counter
  int64_t published_ns;
  int64_t start_ns;          // when the filter was made: the request
  const sse_rules* rules;    // NULL: no extract rules
  sse_pace pace;
  sse_scan scan;
} sse_stream;

// What the body hook and the scanner take from Go, set once before Envoy can
// call a hook (from the module's init): the dynamic metadata the body hook
// refreshes, how often, and the scanner's line limit. Every value is
// defined in Go (internal/ssestream), never here.
typedef struct {
  sse_buffer ns, events, bytes, last_event_id;
  int64_t interval_ns;
  size_t max_line;  // sse_scan_max_line
} sse_stream_settings;

// sse_stream_set_settings keeps s (its buffers must live as long as the
// process) and sets the scanner's line limit; false, and nothing set, when
// sse_scan_set_max_line refuses the limit.
SSE_HIDDEN bool sse_stream_set_settings(sse_stream_settings s);
// sse_stream_get_settings is what the C side holds: all zero until set.
SSE_HIDDEN sse_stream_settings sse_stream_get_settings(void);
SSE_HIDDEN void sse_stream_free(sse_stream* s);
SSE_HIDDEN void sse_stream_publish(void* filter_envoy_ptr, sse_stream* s);
SSE_HIDDEN int64_t sse_monotonic_ns(void);
// sse_stream_read_events makes the body hook hand events that pass the
// rules' cheap test to Go; false when out of memory (the stream is then
// only counted).
SSE_HIDDEN bool sse_stream_read_events(sse_stream* s, const sse_rules* rules);
#endif
