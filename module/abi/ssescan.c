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
  if (s->line == NULL && (s->line = malloc(sse_scan_max_line)) == NULL) {
    // Out of memory: forget the line rather than fail the stream.
    s->line_cut = true;
    return;
  }
  size_t room = sse_scan_max_line - s->line_len;
  if (n > room) {
    n = room;
    if (!s->line_cut) {
      s->line_cut = true;
      s->truncations++;
    }
  }
  memcpy(s->line + s->line_len, p, n);
  s->line_len += (uint16_t)n;
}

static void dispatch(sse_scan* s) {
  size_t n = s->id_len;
  if (n > SSE_SCAN_INLINE_ID && !grow(&s->last_id_heap, s->last_id_inline, 0)) n = SSE_SCAN_INLINE_ID;
  memcpy((char*)sse_scan_last_id(s), id_buf(s), n);
  s->last_id_len = (uint16_t)n;
  if (s->has_data) s->events++;
  s->has_data = false;
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
  } else if (field_is(line, name_len, "id")) {
    // An id holding NUL is ignored (WHATWG); a longer one is cut to the
    // limit, counted once whether it was cut here or while held.
    if (memchr(value, 0, value_len) != NULL) return;
    if (value_len > sse_scan_max_line) {
      if (!s->line_cut) s->truncations++;
      value_len = sse_scan_max_line;
    }
    if (value_len > SSE_SCAN_INLINE_ID && !grow(&s->id_heap, s->id_inline, 0)) value_len = SSE_SCAN_INLINE_ID;
    memcpy((char*)id_buf(s), value, value_len);
    s->id_len = (uint16_t)value_len;
  }
  // event and retry change nothing a proxy counts.
}

static void scan(sse_scan* s, const char* p, size_t n) {
  while (n > 0) {
    size_t i = 0;
    while (i < n && p[i] != '\r' && p[i] != '\n') i++;
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
