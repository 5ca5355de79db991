// When a stream's bytes and events came, per body chunk, from the request:
// internal/sse.Pace in C, under the same rules (TestCPaceMatchesGo and
// FuzzCScannerMatchesGo hold the two to one behaviour). The body hook
// observes every chunk of an SSE response; Go reads the result at the
// stream's close.
#ifndef SSE_PACE_H
#define SSE_PACE_H
#include <stdbool.h>
#include <stdint.h>

// SSE_PACE_BUCKETS is internal/sse.GapBuckets: package abi fails to build
// when they differ. Bucket 0 holds gaps under a millisecond, bucket i gaps
// of [2^(i-1), 2^i) ms, the last everything longer.
#define SSE_PACE_BUCKETS 20

typedef struct {
  int64_t first_byte_ns, first_event_ns, last_event_ns, max_gap_ns;
  bool seen_byte, seen_event;
  uint32_t gaps[SSE_PACE_BUCKETS];
} sse_pace;

// sse_pace_observe records a chunk of at least one byte that arrived at_ns
// after the request and completed events events.
__attribute__((visibility("hidden"))) void sse_pace_observe(sse_pace* p, int64_t at_ns, uint64_t events);
#endif
