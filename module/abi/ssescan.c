#define _GNU_SOURCE  // memmem
#include "ssescan.h"

#include <stdlib.h>
#include <string.h>

static const unsigned char utf8_bom[3] = {0xEF, 0xBB, 0xBF};

size_t sse_scan_max_line;

bool sse_scan_set_max_line(size_t n) {
  if (n < SSE_SCAN_INLINE_ID || n > UINT16_MAX) return false;
  if (sse_scan_max_line != 0 && sse_scan_max_line != n) return false;
  sse_scan_max_line = n;
  return true;
}

static const char* id_buf(const sse_scan* s) { return s->id_heap != NULL ? s->id_heap : s->id_inline; }

const char* sse_scan_last_id(const sse_scan* s) {
  return s->last_id_heap != NULL ? s->last_id_heap : s->last_id_inline;
}

void sse_scan_free(sse_scan* s) {
  free(s->line);
  free(s->id_heap);
  free(s->last_id_heap);
  s->line = s->id_heap = s->last_id_heap = NULL;
  if (s->collect != NULL) {
    free(s->collect->data);
    free(s->collect->type);
    free(s->collect);
    s->collect = NULL;
  }
}

bool sse_scan_collect_events(sse_scan* s, uint32_t max_line, uint32_t max_data,
                             void (*on_event)(void*, const char*, size_t, const char*, size_t, bool),
                             void* ctx) {
  if (s->collect == NULL && (s->collect = calloc(1, sizeof(sse_scan_collect))) == NULL) return false;
  s->collect->max_line = max_line > sse_scan_max_line ? max_line : (uint32_t)sse_scan_max_line;
  s->collect->max_data = max_data;
  s->collect->on_event = on_event;
  s->collect->ctx = ctx;
  return true;
}

static size_t line_limit(const sse_scan* s) { return s->collect != NULL ? s->collect->max_line : sse_scan_max_line; }

// reserve makes room for n bytes in *buf (holding len of *cap), growing it
// by doubling from 256 bytes up to limit (len + n never exceeds it); false
// when out of memory.
static bool reserve(char** buf, uint32_t* cap, uint32_t len, size_t n, size_t limit) {
  if (len + n <= *cap) return true;
  size_t c = *cap > 0 ? *cap : 256;
  while (c < len + n) c *= 2;
  if (c > limit) c = limit > len + n ? limit : len + n;
  char* b = realloc(*buf, c);
  if (b == NULL) return false;
  *buf = b;
  *cap = (uint32_t)c;
  return true;
}

// grow gives *heap a sse_scan_max_line buffer, keeping the n bytes of
// inline it held; false when out of memory.
static bool grow(char** heap, const char* inline_buf, size_t n) {
  if (*heap != NULL) return true;
  char* b = malloc(sse_scan_max_line);
  if (b == NULL) return false;
  memcpy(b, inline_buf, n);
  *heap = b;
  return true;
}

static void hold_partial_line(sse_scan* s, const char* p, size_t n) {
  size_t room = line_limit(s) - s->line_len;
  if (n > room) {
    n = room;
    if (!s->line_cut) {
      s->line_cut = true;
      s->truncations++;
    }
  }
  if (!reserve(&s->line, &s->line_cap, s->line_len, n > 0 ? n : 1, line_limit(s))) {
    // Out of memory: forget the line rather than fail the stream.
    free(s->line);
    s->line = NULL;
    s->line_cap = s->line_len = 0;
    s->line_cut = true;
    return;
  }
  memcpy(s->line + s->line_len, p, n);
  s->line_len += (uint32_t)n;
}

// bounded cuts an id or event type to sse_scan_max_line, counting a cut
// once, here or where the line was held.
static size_t bounded(sse_scan* s, size_t n) {
  if (n > sse_scan_max_line) {
    if (!s->line_cut) s->truncations++;
    n = sse_scan_max_line;
  }
  return n;
}

static void append_data(sse_scan_collect* c, sse_scan* s, const char* value, size_t n) {
  size_t room = c->data_len < c->max_data ? c->max_data - c->data_len : 0;
  bool cut = n + 1 > room;
  size_t keep = cut ? room : n + 1;
  if (cut && !c->data_cut) s->truncations++;
  if (cut) c->data_cut = true;
  if (keep == 0) return;
  if (!reserve(&c->data, &c->data_cap, c->data_len, keep, c->max_data)) {
    c->data_cut = true;
    return;
  }
  memcpy(c->data + c->data_len, value, cut ? keep : n);
  if (!cut) c->data[c->data_len + n] = '\n';
  c->data_len += (uint32_t)keep;
}

static const char message_type[] = "message";

static void reset_event(sse_scan* s) {
  s->has_data = false;
  if (s->collect != NULL) {
    s->collect->data_len = 0;
    s->collect->type_len = 0;
    s->collect->data_cut = false;
  }
}

static void dispatch(sse_scan* s) {
  size_t n = s->id_len;
  if (n > SSE_SCAN_INLINE_ID && !grow(&s->last_id_heap, s->last_id_inline, 0)) n = SSE_SCAN_INLINE_ID;
  memcpy((char*)sse_scan_last_id(s), id_buf(s), n);
  s->last_id_len = (uint16_t)n;
  if (s->has_data) {
    s->events++;
    sse_scan_collect* c = s->collect;
    if (c != NULL && c->on_event != NULL) {
      size_t len = c->data_len;
      if (len > 0 && c->data[len - 1] == '\n') len--;
      const char* type = c->type_len > 0 ? c->type : message_type;
      size_t type_len = c->type_len > 0 ? c->type_len : sizeof(message_type) - 1;
      c->on_event(c->ctx, type, type_len, c->data != NULL ? c->data : "", len, c->data_cut);
    }
  }
  reset_event(s);
}

static bool field_is(const char* name, size_t n, const char* want) {
  size_t w = strlen(want);
  return n == w && memcmp(name, want, n) == 0;
}

static void process_line(sse_scan* s, const char* line, size_t n) {
  if (n == 0) {
    dispatch(s);
    return;
  }
  if (line[0] == ':') {
    s->comments++;
    return;
  }
  const char* colon = memchr(line, ':', n);
  size_t name_len = n;
  const char* value = line + n;
  size_t value_len = 0;
  if (colon != NULL) {
    name_len = (size_t)(colon - line);
    value = colon + 1;
    value_len = n - name_len - 1;
    if (value_len > 0 && value[0] == ' ') {
      value++;
      value_len--;
    }
  }
  if (field_is(line, name_len, "data")) {
    s->has_data = true;
    if (s->collect != NULL) append_data(s->collect, s, value, value_len);
  } else if (field_is(line, name_len, "event")) {
    sse_scan_collect* c = s->collect;
    if (c == NULL) return;
    value_len = bounded(s, value_len);
    if (c->type == NULL && (c->type = malloc(sse_scan_max_line)) == NULL) return;
    memcpy(c->type, value, value_len);
    c->type_len = (uint16_t)value_len;
  } else if (field_is(line, name_len, "id")) {
    // An id holding NUL is ignored (WHATWG); a longer one is cut to the
    // limit, counted once whether it was cut here or while held.
    if (memchr(value, 0, value_len) != NULL) return;
    value_len = bounded(s, value_len);
    if (value_len > SSE_SCAN_INLINE_ID && !grow(&s->id_heap, s->id_inline, 0)) value_len = SSE_SCAN_INLINE_ID;
    memcpy((char*)id_buf(s), value, value_len);
    s->id_len = (uint16_t)value_len;
  }
  // retry changes nothing a proxy counts.
}

// line_end is the index of the first CR or LF in p[0:n], n if none: two
// memchr scans (vectorized in libc) instead of a loop over every byte, as
// token chunks are one long data line each.
static size_t line_end(const char* p, size_t n) {
  const char* lf = memchr(p, '\n', n);
  size_t i = lf != NULL ? (size_t)(lf - p) : n;
  const char* cr = memchr(p, '\r', i);
  return cr != NULL ? (size_t)(cr - p) : i;
}

static void scan(sse_scan* s, const char* p, size_t n) {
  while (n > 0) {
    size_t i = line_end(p, n);
    if (i == n) {
      hold_partial_line(s, p, n);
      return;
    }
    if (s->line_len > 0 || s->line_cut) {
      hold_partial_line(s, p, i);
      if (s->line != NULL) process_line(s, s->line, s->line_len);
    } else {
      process_line(s, p, i);
    }
    s->line_len = 0;
    s->line_cut = false;
    if (p[i] == '\r') {
      if (i + 1 == n) {
        s->pending_cr = true;
      } else if (p[i + 1] == '\n') {
        i++;
      }
    }
    p += i + 1;
    n -= i + 1;
  }
}

void sse_scan_write(sse_scan* s, const char* p, size_t n) {
  s->bytes += n;
  if (!s->bom_done) {
    while (n > 0) {
      if ((unsigned char)p[0] != utf8_bom[s->bom_matched]) {
        s->bom_done = true;
        // The bytes that looked like a BOM were content after all.
        scan(s, (const char*)utf8_bom, s->bom_matched);
        break;
      }
      s->bom_matched++;
      p++;
      n--;
      if (s->bom_matched == sizeof(utf8_bom)) {
        s->bom_done = true;
        break;
      }
    }
  }
  if (s->pending_cr && n > 0) {
    s->pending_cr = false;
    if (p[0] == '\n') {
      p++;
      n--;
    }
  }
  scan(s, p, n);
}
