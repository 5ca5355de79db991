#include "pace.h"

static void add(sse_pace* p, int64_t gap_ns, uint64_t n) {
  if (n == 0) return;
  uint64_t ms = gap_ns > 0 ? (uint64_t)gap_ns / 1000000 : 0;
  int b = ms == 0 ? 0 : 64 - __builtin_clzll(ms);
  if (b > SSE_PACE_BUCKETS - 1) b = SSE_PACE_BUCKETS - 1;
  uint64_t v = (uint64_t)p->gaps[b] + n;
  p->gaps[b] = v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

void sse_pace_observe(sse_pace* p, int64_t at_ns, uint64_t events) {
  if (!p->seen_byte) {
    p->seen_byte = true;
    p->first_byte_ns = at_ns;
  }
  if (events == 0) return;
  if (!p->seen_event) {
    p->seen_event = true;
    p->first_event_ns = p->last_event_ns = at_ns;
  } else {
    int64_t gap = at_ns - p->last_event_ns;
    if (gap < 0) gap = 0;
    if (gap > p->max_gap_ns) p->max_gap_ns = gap;
    add(p, gap, 1);
    p->last_event_ns = at_ns;
  }
  add(p, 0, events - 1);
}
