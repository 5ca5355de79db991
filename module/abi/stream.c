#define _GNU_SOURCE  // memmem
#include "stream.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "_cgo_export.h"

static sse_stream_settings settings;

void sse_stream_free(sse_stream* s) {
  if (s == NULL) return;
  sse_scan_free(&s->scan);
  free(s);
}

bool sse_stream_set_settings(sse_stream_settings s) {
  if (!sse_scan_set_max_line(s.max_line)) return false;
  settings = s;
  return true;
}

sse_stream_settings sse_stream_get_settings(void) {
  sse_stream_settings s = settings;
  s.max_line = sse_scan_max_line;
  return s;
}

int64_t sse_monotonic_ns(void) {
  struct timespec ts;
  // A vDSO read, no system call: the body hook reads it once per chunk, for
  // the stream's timing (so not the coarse clock, whose ticks are 4 ms) and
  // to decide whether a second has passed since the metadata was written.
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void sse_stream_publish(void* env, sse_stream* s) {
  if (settings.ns.ptr == NULL || envoy_dynamic_module_callback_http_set_dynamic_metadata_number == NULL) return;
  s->published_ns = sse_monotonic_ns();
  envoy_dynamic_module_callback_http_set_dynamic_metadata_number(env, settings.ns, settings.events,
                                                                 (double)s->scan.events);
  envoy_dynamic_module_callback_http_set_dynamic_metadata_number(env, settings.ns, settings.bytes,
                                                                 (double)s->scan.bytes);
  sse_buffer id = {sse_scan_last_id(&s->scan), s->scan.last_id_len};
  envoy_dynamic_module_callback_http_set_dynamic_metadata_string(env, settings.ns, settings.last_event_id,
                                                                 id);
}

// on_event is the scanner's event callback when the stream has extract
// rules: internal/extract.Rules.Match, then Go with the rules that matched.
static void on_event(void* ctx, const char* type, size_t type_len, const char* data, size_t data_len, bool cut) {
  sse_stream* s = (sse_stream*)ctx;
  const sse_rules* r = s->rules;
  if (r == NULL) return;
  if (data_len == r->done.length && memcmp(data, r->done.ptr, data_len) == 0) return;
  uint32_t mask = 0;
  for (uint32_t i = 0; i < r->n; i++) {
    if (r->event[i].length > 0 && (r->event[i].length != type_len || memcmp(r->event[i].ptr, type, type_len) != 0)) {
      continue;
    }
    if (memmem(data, data_len, r->needle[i].ptr, r->needle[i].length) != NULL) mask |= 1u << i;
  }
  if (mask != 0) sse_module_on_event(s->go_handle, mask, (char*)data, data_len, cut);
}

bool sse_stream_read_events(sse_stream* s, const sse_rules* rules) {
  s->rules = rules;
  return sse_scan_collect_events(&s->scan, rules->max_event_bytes, rules->max_event_bytes, on_event, s);
}

// The inline array covers the usual chunk (one or a few slices) without
// allocating.
#define SSE_INLINE_SLICES 8

// The hook never holds a chunk: it always answers Continue.
#define SSE_BODY_CONTINUE envoy_dynamic_module_type_on_http_filter_response_body_status_Continue
// The chunk the current response-body hook received.
#define SSE_BODY_RECEIVED envoy_dynamic_module_type_http_body_type_ReceivedResponseBody

int envoy_dynamic_module_on_http_filter_response_body(void* env, uintptr_t module_ptr, bool end_of_stream) {
  sse_stream* s = (sse_stream*)module_ptr;
  if (s == NULL) return SSE_BODY_CONTINUE;
  if (end_of_stream) s->upstream_ended = true;
  if (!s->counting) return SSE_BODY_CONTINUE;
  uint64_t events = s->scan.events, bytes = s->scan.bytes;
  size_t n = envoy_dynamic_module_callback_http_get_body_chunks_size(env, SSE_BODY_RECEIVED);
  if (n > 0) {
    sse_buffer inline_slices[SSE_INLINE_SLICES];
    sse_buffer* slices = inline_slices;
    if (n > SSE_INLINE_SLICES) slices = malloc(n * sizeof(sse_buffer));
    // Out of memory, a chunk goes uncounted rather than held or failed.
    if (slices != NULL && envoy_dynamic_module_callback_http_get_body_chunks(env, SSE_BODY_RECEIVED, slices)) {
      for (size_t i = 0; i < n; i++) {
        if (slices[i].ptr != NULL && slices[i].length > 0) sse_scan_write(&s->scan, slices[i].ptr, slices[i].length);
      }
    }
    if (slices != inline_slices) free(slices);
  }
  if (s->has_events_stat && s->scan.events != s->counted) {
    envoy_dynamic_module_callback_http_filter_increment_counter(env, s->events_stat, NULL, 0,
                                                                s->scan.events - s->counted);
    s->counted = s->scan.events;
  }
  int64_t now = sse_monotonic_ns();
  if (s->scan.bytes != bytes) sse_pace_observe(&s->pace, now - s->start_ns, s->scan.events - events);
  // The ABI has no access-log hook for HTTP filters: refreshing the metadata at most once per
  // interval keeps periodic access-log entries close to the truth without
  // three callbacks on every chunk.
  if (now - s->published_ns >= settings.interval_ns) sse_stream_publish(env, s);
  return SSE_BODY_CONTINUE;
}
