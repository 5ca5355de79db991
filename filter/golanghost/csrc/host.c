// host stands in for Envoy v1.37.1's side of the golang HTTP filter ABI: it
// loads the filter's .so as Envoy does, defines the C callbacks the .so
// imports (declared in Envoy's own api.h, included from the Go module cache
// so the compiler holds every definition here to Envoy's prototypes), and
// drives the .so's exported entry points through a few HTTP streams.
//
// Paths in comments are inside github.com/envoyproxy/envoy@v1.37.1:
//   S = contrib/golang/filters/http/source (the filter's C++ side),
//   H = S/go/pkg/http (Envoy's Go shim, linked into the .so),
//   D = contrib/golang/common/dso.
//
// It is not Envoy: it has no codec, filter manager, router or access log.
// It models what S does at the boundary (which entry point runs when, what
// each callback returns in which state, how header maps and buffers are
// handed over, when a local reply runs) and records everything the .so asks
// for. stdout gets one JSON object per scenario; with -v, stderr gets every
// call into the .so (->) and every call back out of it (<-).
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api.h"

// Go's string header, as cgo lays it out (S/cgo.cc reads header arrays as
// GoString pairs; D/libgolang.h defines it the same way).
typedef struct {
  const char* p;
  ptrdiff_t n;
} GoString;

// ---- the .so's exported entry points (prototypes from D/libgolang.h) ----

typedef uint64_t (*new_config_fn)(httpConfig*);
typedef void (*destroy_config_fn)(uint64_t, int64_t);
typedef uint64_t (*merge_config_fn)(uint64_t, uint64_t, uint64_t, uint64_t);
typedef uint64_t (*on_header_fn)(processState*, uint64_t, uint64_t, uint64_t);
typedef uint64_t (*on_data_fn)(processState*, uint64_t, uint64_t, uint64_t);
typedef void (*on_log_fn)(httpRequest*, uint64_t, processState*, processState*, uint64_t, uint64_t,
                          uint64_t, uint64_t, uint64_t, uint64_t, uint64_t, uint64_t);
typedef void (*on_request_fn)(httpRequest*);
typedef void (*on_destroy_fn)(httpRequest*, uint64_t);
typedef void (*cleanup_fn)(void);

static struct {
  new_config_fn new_config;
  merge_config_fn merge_config;
  destroy_config_fn destroy_config;
  on_header_fn on_header;
  on_data_fn on_data;
  on_log_fn on_log;
  on_request_fn on_stream_complete;
  on_destroy_fn on_destroy;
  on_request_fn sema_dec;
  cleanup_fn cleanup;
} so;

// ---- small helpers ----

static int verbose;
static pthread_t worker;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static void trace(const char* fmt, ...) {
  if (!verbose) return;
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&mu);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  pthread_mutex_unlock(&mu);
  va_end(ap);
}

static void* xmalloc(size_t n) {
  void* p = malloc(n ? n : 1);
  if (!p) {
    perror("malloc");
    exit(2);
  }
  return p;
}

static char* dupn(const char* s, size_t n) {
  char* d = xmalloc(n + 1);
  if (n) memcpy(d, s, n);
  d[n] = 0;
  return d;
}

static char* lowern(const char* s, size_t n) {
  char* d = dupn(s, n);
  for (size_t i = 0; i < n; i++)
    if (d[i] >= 'A' && d[i] <= 'Z') d[i] = (char)(d[i] - 'A' + 'a');
  return d;
}

// A printable copy of at most 200 bytes, for the trace.
static const char* show(const char* s, size_t n) {
  static __thread char buf[256];
  size_t j = 0;
  for (size_t i = 0; i < n && j < 200; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '\n') {
      buf[j++] = '\\';
      buf[j++] = 'n';
    } else if (c == '\r') {
      buf[j++] = '\\';
      buf[j++] = 'r';
    } else if (c < 0x20 || c >= 0x7f) {
      buf[j++] = '?';
    } else {
      buf[j++] = (char)c;
    }
  }
  if (n > 200) j += (size_t)snprintf(buf + j, sizeof buf - j, "...");
  buf[j] = 0;
  return buf;
}

static const char* status_name(uint64_t s) {
  // api.StatusType, contrib/golang/common/go/api/type.go
  static const char* names[] = {"Running", "LocalReply", "Continue", "StopAndBuffer",
                                "StopAndBufferWatermark", "StopNoBuffer"};
  return s < 6 ? names[s] : "unknown";
}

#define NOT_CALLED 99  // the host did not call into Go (Envoy buffered or dropped the data)

static const char* capi_name(CAPIStatus s) {
  switch (s) {
  case CAPIOK: return "CAPIOK";
  case CAPIFilterIsGone: return "CAPIFilterIsGone";
  case CAPIFilterIsDestroy: return "CAPIFilterIsDestroy";
  case CAPINotInGo: return "CAPINotInGo";
  case CAPIInvalidPhase: return "CAPIInvalidPhase";
  case CAPIValueNotFound: return "CAPIValueNotFound";
  case CAPIYield: return "CAPIYield";
  case CAPIInternalFailure: return "CAPIInternalFailure";
  case CAPISerializationFailure: return "CAPISerializationFailure";
  case CAPIInvalidScene: return "CAPIInvalidScene";
  case CAPIInvalidIPAddress: return "CAPIInvalidIPAddress";
  }
  return "?";
}

// ---- header maps: Envoy keeps keys lower case (Http::LowerCaseString) ----

typedef struct {
  char* key;
  char* value;
} header;

typedef struct {
  header* h;
  size_t n, cap;
} headermap;

static void hm_add(headermap* m, const char* k, size_t kn, const char* v, size_t vn) {
  if (m->n == m->cap) {
    m->cap = m->cap ? 2 * m->cap : 16;
    header* h = xmalloc(m->cap * sizeof *h);
    if (m->n) memcpy(h, m->h, m->n * sizeof *h);
    // The old array is kept: GetHeader hands Go pointers into the values,
    // which Envoy keeps valid for the duration of the call.
    m->h = h;
  }
  m->h[m->n].key = lowern(k, kn);
  m->h[m->n].value = dupn(v, vn);
  m->n++;
}

static void hm_addz(headermap* m, const char* k, const char* v) { hm_add(m, k, strlen(k), v, strlen(v)); }

static void hm_remove(headermap* m, const char* k) {
  size_t j = 0;
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->h[i].key, k) != 0) m->h[j++] = m->h[i];
  m->n = j;
}

static const char* hm_get(const headermap* m, const char* k) {
  for (size_t i = 0; i < m->n; i++)
    if (strcmp(m->h[i].key, k) == 0) return m->h[i].value;
  return NULL;
}

static void hm_set(headermap* m, const char* k, size_t kn, const char* v, size_t vn) {
  char* key = lowern(k, kn);
  hm_remove(m, key);
  hm_add(m, key, kn, v, vn);
  free(key);
}

// Envoy passes a map to Go as its entry count and byteSize(): the sum of
// key and value lengths (S/golang_filter.cc, doHeadersGo), which Go uses to
// size the buffer it hands to CopyHeaders.
static uint64_t hm_bytes(const headermap* m) {
  uint64_t b = 0;
  for (size_t i = 0; i < m->n; i++) b += strlen(m->h[i].key) + strlen(m->h[i].value);
  return b;
}

static void hm_copy(const headermap* from, headermap* to) {
  for (size_t i = 0; i < from->n; i++) hm_addz(to, from->h[i].key, from->h[i].value);
}

// ---- buffers: Envoy hands Go a Buffer::Instance* as a uint64 id ----

typedef struct {
  char* data;
  size_t len, cap;
} buffer;

static void buf_append(buffer* b, const char* p, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n) cap *= 2;
    char* d = xmalloc(cap);
    if (b->len) memcpy(d, b->data, b->len);
    free(b->data);
    b->data = d;
    b->cap = cap;
  }
  if (n) memcpy(b->data + b->len, p, n);
  b->len += n;
}

// ---- per-stream state, laid out as S/golang_filter.h's HttpRequestInternal:
// the C httpRequest first, then the two ProcessorStates, each a C
// processState first. Go only touches the C parts. ----

// S/processor_state.h, enum class FilterState.
enum {
  WaitingHeader,
  ProcessingHeader,
  WaitingData,
  WaitingAllData,
  ProcessingData,
  WaitingTrailer,
  ProcessingTrailer,
  Done
};

#define MAX_BUFS 16

struct stream;

typedef struct {
  processState ps;  // what Go sees; ps.req points at the stream's httpRequest
  struct stream* st;
  headermap* headers;  // NULL outside header processing: CAPIInvalidPhase
  headermap* trailers;
  buffer* bufs[MAX_BUFS];  // the do-data list: only these ids are valid
  int nbufs;
  buffer waiting;  // data held while Go asked for the whole body
  int do_end_stream;
} pstate;

typedef struct {
  char ns[64], key[64], value[512];
} mdentry;

typedef struct {
  int pending, from_encoding, code, is_panic;
  char* body;
  size_t body_len;
  headermap headers;
  char details[256];
} local_reply;

typedef struct {
  char name[128];
  uint32_t type;  // api.MetricType: 0 counter, 1 gauge, 2 histogram
  uint32_t id;
  int64_t value;
} metric;

typedef struct hconfig {
  httpConfig c;  // what Go sees
  int finalized;
} hconfig;

#define MAX_METRICS 32
static metric metrics[MAX_METRICS];
static int nmetrics;
static uint32_t next_metric_id[3] = {0, 1, 2};  // S/golang_filter.h, MetricStore
static hconfig* filter_config;                  // the one whose metrics Go defines
static int filter_config_gone;
static int64_t panic_error;  // S/stats.h: http.<stat_prefix>.golang.panic_error

typedef struct {
  uint64_t statuses[16];
  const char* phases[16];
  int n;
} statuses;

static void st_add(statuses* s, const char* phase, uint64_t v) {
  if (v != NOT_CALLED && s->n < 16) {
    s->phases[s->n] = phase;
    s->statuses[s->n++] = v;
  }
}

typedef struct stream {
  httpRequest req;
  pstate dec, enc;
  const char* name;
  int destroyed, finalized, finalized_before_destroy, destroy_reason;
  headermap request_headers, response_headers, downstream_headers;
  int response_started;  // response headers exist in the filter manager
  int headers_sent;      // non-1xx response headers went downstream
  int direct_reply;      // a local reply went straight to the codec
  buffer upstream_body, downstream_body;
  int downstream_ended;
  char details[256];
  int has_details;
  int protocol;  // Http::Protocol: 0 HTTP/1.0, 1 HTTP/1.1, 2 HTTP/2, 3 HTTP/3
  const char* response_flags;
  mdentry md[16];
  int nmd;
  char fs_key[64], fs_value[256];
  local_reply reply;
  int continue_calls, panic_replies, route_cache_clears;
  char off_thread[512];
  // faults: a callback returning what Envoy returns in another situation
  int fault_protocol;
  CAPIStatus fault_set_header;
  char periodic_events[64];
  statuses ss;  // what Go returned from each header and data call, in order
} stream;

// ---- recording ----

typedef struct {
  int level;
  char* msg;
} logline;

#define MAX_LOGS 256
static logline logs[MAX_LOGS];
static int nlogs;
static stream* current;  // the stream whose call into Go is running (worker thread only)

static void note_off_thread(stream* st, const char* fn) {
  // Envoy posts such calls to the worker's dispatcher (S/golang_filter.cc:
  // "isThreadSafe()" branches) and answers CAPIYield for reads: a
  // synchronous filter never gets there. The host records them as findings.
  if (pthread_equal(pthread_self(), worker)) return;
  if (!st) return;
  size_t n = strlen(st->off_thread);
  snprintf(st->off_thread + n, sizeof st->off_thread - n, "%s%s", n ? "," : "", fn);
}

static pstate* as_state(void* s) { return (pstate*)((char*)s - offsetof(pstate, ps)); }
static stream* as_stream(void* r) { return (stream*)r; }

static int processing(const pstate* p) {
  return p->ps.state == ProcessingHeader || p->ps.state == ProcessingData ||
         p->ps.state == ProcessingTrailer || p->st->req.is_golang_processing_log;
}

// S/cgo.cc, envoyGoFilterProcessStateHandlerWrapper, then the filter's own
// has_destroyed_ check (S/golang_filter.cc).
static CAPIStatus check_state(pstate* p, const char* fn) {
  note_off_thread(p->st, fn);
  if (!processing(p)) return CAPINotInGo;
  if (p->st->destroyed) return CAPIFilterIsDestroy;
  return CAPIOK;
}

// S/cgo.cc, envoyGoFilterHandlerWrapper: the filter must be in Go; then
// the filter's own has_destroyed_ check.
static CAPIStatus check_request(stream* st, const char* fn) {
  note_off_thread(st, fn);
  if (!processing(&st->dec) && !processing(&st->enc)) return CAPINotInGo;
  if (st->destroyed) return CAPIFilterIsDestroy;
  return CAPIOK;
}

static const char* side(const pstate* p) { return p->ps.is_encoding ? "encode" : "decode"; }

static CAPIStatus ret(const char* fn, CAPIStatus s) {
  trace("   <- %s = %s", fn, capi_name(s));
  return s;
}

// ---- callbacks: logging (contrib/golang/common/log/cgo.cc) ----

static uint32_t log_level = 2;  // spdlog info, Envoy's default

void envoyGoFilterLog(uint32_t level, void* data, int len) {
  pthread_mutex_lock(&mu);
  if (nlogs < MAX_LOGS) {
    logs[nlogs].level = (int)level;
    logs[nlogs].msg = dupn(data, (size_t)len);
    nlogs++;
  }
  pthread_mutex_unlock(&mu);
  static const char* lv[] = {"trace", "debug", "info", "warning", "error", "critical", "off"};
  // The shim's panic lines carry a stack: the first line is enough here.
  const char* nl = memchr(data, '\n', (size_t)len);
  int shown = nl ? (int)(nl - (const char*)data) : len;
  trace("   <- envoyGoFilterLog [%s][golang] %.*s%s", level < 7 ? lv[level] : "?", shown,
        (const char*)data, nl ? " [stack omitted]" : "");
}

// Lines are appended under mu from any thread and never changed after, so
// the first log_count() are safe to read without it.
static int log_count(void) {
  pthread_mutex_lock(&mu);
  int n = nlogs;
  pthread_mutex_unlock(&mu);
  return n;
}

// Called at .so load and every second from a Go goroutine
// (contrib/golang/common/go/api_impl/capi_impl.go): any thread.
uint32_t envoyGoFilterLogLevel(void) { return log_level; }

// ---- callbacks: config and metrics (S/golang_filter.cc, FilterConfig) ----

void envoyGoConfigHttpFinalize(void* c) {
  // Envoy deletes the httpConfigInternal here; the host keeps the memory so
  // a late metric call would read a flag, not freed memory.
  ((hconfig*)c)->finalized = 1;
  trace("   <- envoyGoConfigHttpFinalize(%p)", c);
}

static CAPIStatus check_config(void* c, const char* fn) {
  // S/cgo.cc, envoyGoConfigHandlerWrapper: the FilterConfig must still exist.
  note_off_thread(current, fn);
  if (c != filter_config || filter_config_gone) return CAPIFilterIsGone;
  return CAPIOK;
}

CAPIStatus envoyGoFilterHttpDefineMetric(void* c, uint32_t type, void* name, int len, uint32_t* id) {
  CAPIStatus s = check_config(c, "DefineMetric");
  if (s != CAPIOK) return ret("envoyGoFilterHttpDefineMetric", s);
  if (type > 2) return ret("envoyGoFilterHttpDefineMetric", CAPIValueNotFound);
  if (nmetrics == MAX_METRICS) return ret("envoyGoFilterHttpDefineMetric", CAPIInternalFailure);
  metric* m = &metrics[nmetrics++];
  snprintf(m->name, sizeof m->name, "%.*s", len, (const char*)name);
  m->type = type;
  next_metric_id[type] += 4;  // MetricStore: kMetricIdIncrement, the type in the low 2 bits
  m->id = next_metric_id[type];
  *id = m->id;
  trace("   <- envoyGoFilterHttpDefineMetric(%s, %s) id=%u", m->name,
        type == 0 ? "counter" : type == 1 ? "gauge" : "histogram", m->id);
  return CAPIOK;
}

static metric* find_metric(uint32_t id) {
  for (int i = 0; i < nmetrics; i++)
    if (metrics[i].id == id) return &metrics[i];
  return NULL;
}

CAPIStatus envoyGoFilterHttpIncrementMetric(void* c, uint32_t id, int64_t offset) {
  CAPIStatus s = check_config(c, "IncrementMetric");
  if (s != CAPIOK) return ret("envoyGoFilterHttpIncrementMetric", s);
  metric* m = find_metric(id);
  // FilterConfig::incrementMetric: a counter only goes up; unknown ids are ignored.
  if (m && (m->type == 1 || offset > 0)) m->value += offset;
  trace("   <- envoyGoFilterHttpIncrementMetric(%s, %+lld) = %lld", m ? m->name : "?",
        (long long)offset, m ? (long long)m->value : 0LL);
  return CAPIOK;
}

CAPIStatus envoyGoFilterHttpGetMetric(void* c, uint32_t id, uint64_t* value) {
  CAPIStatus s = check_config(c, "GetMetric");
  if (s != CAPIOK) return ret("envoyGoFilterHttpGetMetric", s);
  metric* m = find_metric(id);
  if (m) *value = (uint64_t)m->value;
  return ret("envoyGoFilterHttpGetMetric", CAPIOK);
}

CAPIStatus envoyGoFilterHttpRecordMetric(void* c, uint32_t id, uint64_t value) {
  CAPIStatus s = check_config(c, "RecordMetric");
  if (s != CAPIOK) return ret("envoyGoFilterHttpRecordMetric", s);
  metric* m = find_metric(id);
  if (m) m->value = m->type == 0 ? m->value + (int64_t)value : (int64_t)value;
  return ret("envoyGoFilterHttpRecordMetric", CAPIOK);
}

// ---- callbacks: the processing state (S/golang_filter.cc, S/cgo.cc) ----

CAPIStatus envoyGoFilterHttpContinue(void* s, int status) {
  pstate* p = as_state(s);
  CAPIStatus c = check_state(p, "Continue");
  trace("   <- envoyGoFilterHttpContinue(%s, %s)", side(p), status_name((uint64_t)status));
  // Envoy posts continueStatusInternal to the dispatcher. The sse filter
  // answers every callback synchronously, so a Continue is a finding.
  if (c == CAPIOK) p->st->continue_calls++;
  return ret("envoyGoFilterHttpContinue", c);
}

static CAPIStatus post_local_reply(pstate* p, int code, const char* body, size_t body_len,
                                   GoString* hs, int nhs, const char* details, size_t dlen,
                                   int is_panic) {
  // Filter::sendLocalReply: checked here, run later from the dispatcher,
  // after the Go call returned.
  local_reply* r = &p->st->reply;
  if (r->pending) return CAPIOK;  // Envoy would post a second one; the first wins
  memset(r, 0, sizeof *r);
  r->pending = 1;
  r->from_encoding = p->ps.is_encoding;
  r->code = code;
  r->is_panic = is_panic;
  r->body = dupn(body, body_len);
  r->body_len = body_len;
  for (int i = 0; i + 1 < nhs; i += 2)
    hm_add(&r->headers, hs[i].p, (size_t)hs[i].n, hs[i + 1].p, (size_t)hs[i + 1].n);
  snprintf(r->details, sizeof r->details, "%.*s", (int)dlen, details);
  return CAPIOK;
}

CAPIStatus envoyGoFilterHttpSendLocalReply(void* s, int code, void* body, int body_len,
                                           void* headers, int headers_num, long long grpc,
                                           void* details, int details_len) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpSendLocalReply(%s, %d, body=\"%s\", %d header strings, grpc=%lld, "
        "details=%.*s)",
        side(p), code, show(body, (size_t)body_len), headers_num, grpc, details_len,
        (const char*)details);
  CAPIStatus c = check_state(p, "SendLocalReply");
  if (c != CAPIOK) return ret("envoyGoFilterHttpSendLocalReply", c);
  return ret("envoyGoFilterHttpSendLocalReply",
             post_local_reply(p, code, body, (size_t)body_len, headers, headers_num, details,
                              (size_t)details_len, 0));
}

CAPIStatus envoyGoFilterHttpSendPanicReply(void* s, void* details, int len) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpSendPanicReply(%s, %s)", side(p), show(details, (size_t)len));
  // Filter::sendPanicReply: count, log, then a 500 through sendLocalReply.
  panic_error++;
  CAPIStatus c = check_state(p, "SendPanicReply");
  if (c != CAPIOK) return ret("envoyGoFilterHttpSendPanicReply", c);
  p->st->panic_replies++;
  static const char body[] = "error happened in filter\r\n";
  return ret("envoyGoFilterHttpSendPanicReply",
             post_local_reply(p, 500, body, sizeof body - 1, NULL, 0, "", 0, 1));
}

CAPIStatus envoyGoFilterHttpAddData(void* s, void* data, int len, bool streaming) {
  pstate* p = as_state(s);
  (void)data;
  trace("   <- envoyGoFilterHttpAddData(%s, %d bytes, streaming=%d)", side(p), len, streaming);
  if (p->ps.state == ProcessingData) return ret("envoyGoFilterHttpAddData", CAPIInvalidPhase);
  return ret("envoyGoFilterHttpAddData", check_state(p, "AddData"));
}

CAPIStatus envoyGoFilterHttpInjectData(void* s, void* data, int len) {
  pstate* p = as_state(s);
  (void)data;
  trace("   <- envoyGoFilterHttpInjectData(%s, %d bytes)", side(p), len);
  CAPIStatus c = check_state(p, "InjectData");
  if (c == CAPIOK && p->ps.state != ProcessingData) c = CAPIInvalidPhase;
  // Filter::injectData refuses to run inside the callback context.
  if (c == CAPIOK && pthread_equal(pthread_self(), worker)) c = CAPIInvalidScene;
  return ret("envoyGoFilterHttpInjectData", c);
}

CAPIStatus envoyGoFilterHttpGetHeader(void* s, void* key, int klen, uint64_t* value, int* vlen) {
  pstate* p = as_state(s);
  CAPIStatus c = check_state(p, "GetHeader");
  if (c == CAPIOK && !p->headers) c = CAPIInvalidPhase;
  if (c == CAPIOK) {
    char* k = lowern(key, (size_t)klen);
    const char* v = hm_get(p->headers, k);
    free(k);
    // Unsafe by design in Envoy too: Go reads the header map's own memory.
    if (v) {
      *value = (uint64_t)(uintptr_t)v;
      *vlen = (int)strlen(v);
    }
  }
  trace("   <- envoyGoFilterHttpGetHeader(%s, %.*s)", side(p), klen, (const char*)key);
  return ret("envoyGoFilterHttpGetHeader", c);
}

CAPIStatus envoyGoFilterHttpCopyHeaders(void* s, void* strs, void* buf) {
  pstate* p = as_state(s);
  CAPIStatus c = check_state(p, "CopyHeaders");
  if (c == CAPIOK && !p->headers) c = CAPIInvalidPhase;
  if (c == CAPIOK) {
    // copyHeaderMapToGo: key, value, key, value... into Go's string array,
    // the bytes into Go's buffer of byteSize() bytes.
    GoString* out = strs;
    char* b = buf;
    for (size_t i = 0; i < p->headers->n; i++) {
      const header* h = &p->headers->h[i];
      size_t kn = strlen(h->key), vn = strlen(h->value);
      memcpy(b, h->key, kn);
      out[2 * i].p = b;
      out[2 * i].n = (ptrdiff_t)kn;
      b += kn;
      out[2 * i + 1].n = (ptrdiff_t)vn;
      if (vn) {
        memcpy(b, h->value, vn);
        out[2 * i + 1].p = b;
        b += vn;
      }
    }
  }
  trace("   <- envoyGoFilterHttpCopyHeaders(%s, %zu headers)", side(p), p->headers ? p->headers->n : 0);
  return ret("envoyGoFilterHttpCopyHeaders", c);
}

CAPIStatus envoyGoFilterHttpSetHeaderHelper(void* s, void* key, int klen, void* value, int vlen,
                                            headerAction act) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpSetHeaderHelper(%s, %.*s: %s, %s)", side(p), klen, (const char*)key,
        show(value, (size_t)vlen), act == HeaderSet ? "set" : "add");
  CAPIStatus c = check_state(p, "SetHeaderHelper");
  if (c == CAPIOK && !p->headers) c = CAPIInvalidPhase;
  if (c == CAPIOK && p->st->fault_set_header != CAPIOK) {
    trace("   !! fault: SetHeaderHelper answers %s", capi_name(p->st->fault_set_header));
    c = p->st->fault_set_header;
  }
  if (c == CAPIOK) {
    if (act == HeaderSet)
      hm_set(p->headers, key, (size_t)klen, value, (size_t)vlen);
    else
      hm_add(p->headers, key, (size_t)klen, value, (size_t)vlen);
  }
  return ret("envoyGoFilterHttpSetHeaderHelper", c);
}

CAPIStatus envoyGoFilterHttpRemoveHeader(void* s, void* key, int klen) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpRemoveHeader(%s, %.*s)", side(p), klen, (const char*)key);
  CAPIStatus c = check_state(p, "RemoveHeader");
  if (c == CAPIOK && !p->headers) c = CAPIInvalidPhase;
  if (c == CAPIOK) {
    char* k = lowern(key, (size_t)klen);
    hm_remove(p->headers, k);
    free(k);
  }
  return ret("envoyGoFilterHttpRemoveHeader", c);
}

// Filter::copyBuffer and friends: the id must be a buffer of this state's
// do-data list, else CAPIInvalidPhase.
static buffer* find_buffer(pstate* p, uint64_t id) {
  for (int i = 0; i < p->nbufs; i++)
    if ((uint64_t)(uintptr_t)p->bufs[i] == id) return p->bufs[i];
  return NULL;
}

CAPIStatus envoyGoFilterHttpGetBuffer(void* s, uint64_t id, void* out) {
  pstate* p = as_state(s);
  CAPIStatus c = check_state(p, "GetBuffer");
  buffer* b = c == CAPIOK ? find_buffer(p, id) : NULL;
  if (c == CAPIOK && !b) c = CAPIInvalidPhase;
  if (b && b->len) memcpy(out, b->data, b->len);
  trace("   <- envoyGoFilterHttpGetBuffer(%s, %zu bytes)", side(p), b ? b->len : 0);
  return ret("envoyGoFilterHttpGetBuffer", c);
}

CAPIStatus envoyGoFilterHttpDrainBuffer(void* s, uint64_t id, uint64_t length) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpDrainBuffer(%s, %llu)", side(p), (unsigned long long)length);
  CAPIStatus c = check_state(p, "DrainBuffer");
  buffer* b = c == CAPIOK ? find_buffer(p, id) : NULL;
  if (c == CAPIOK && !b) c = CAPIInvalidPhase;
  if (b) {
    size_t n = length < b->len ? (size_t)length : b->len;
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
  }
  return ret("envoyGoFilterHttpDrainBuffer", c);
}

CAPIStatus envoyGoFilterHttpSetBufferHelper(void* s, uint64_t id, void* data, int len,
                                            bufferAction action) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpSetBufferHelper(%s, %d bytes, %s)", side(p), len,
        action == Set ? "set" : action == Prepend ? "prepend" : "append");
  CAPIStatus c = check_state(p, "SetBufferHelper");
  buffer* b = c == CAPIOK ? find_buffer(p, id) : NULL;
  if (c == CAPIOK && !b) c = CAPIInvalidPhase;
  if (b) {
    if (action == Set) b->len = 0;
    if (action == Prepend) {
      buffer nb = {0};
      buf_append(&nb, data, (size_t)len);
      buf_append(&nb, b->data, b->len);
      free(b->data);
      *b = nb;
    } else {
      buf_append(b, data, (size_t)len);
    }
  }
  return ret("envoyGoFilterHttpSetBufferHelper", c);
}

CAPIStatus envoyGoFilterHttpCopyTrailers(void* s, void* strs, void* buf) {
  pstate* p = as_state(s);
  CAPIStatus c = check_state(p, "CopyTrailers");
  if (c == CAPIOK && !p->trailers) c = CAPIInvalidPhase;
  if (c == CAPIOK) {
    headermap* saved = p->headers;
    p->headers = p->trailers;
    c = envoyGoFilterHttpCopyHeaders(s, strs, buf);
    p->headers = saved;
  }
  return ret("envoyGoFilterHttpCopyTrailers", c);
}

CAPIStatus envoyGoFilterHttpSetTrailer(void* s, void* key, int klen, void* value, int vlen,
                                       headerAction act) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpSetTrailer(%s, %.*s)", side(p), klen, (const char*)key);
  CAPIStatus c = check_state(p, "SetTrailer");
  if (c == CAPIOK && !p->trailers) c = CAPIInvalidPhase;
  if (c == CAPIOK) {
    if (act == HeaderSet)
      hm_set(p->trailers, key, (size_t)klen, value, (size_t)vlen);
    else
      hm_add(p->trailers, key, (size_t)klen, value, (size_t)vlen);
  }
  return ret("envoyGoFilterHttpSetTrailer", c);
}

CAPIStatus envoyGoFilterHttpRemoveTrailer(void* s, void* key, int klen) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpRemoveTrailer(%s, %.*s)", side(p), klen, (const char*)key);
  CAPIStatus c = check_state(p, "RemoveTrailer");
  if (c == CAPIOK && !p->trailers) c = CAPIInvalidPhase;
  if (c == CAPIOK) {
    char* k = lowern(key, (size_t)klen);
    hm_remove(p->trailers, k);
    free(k);
  }
  return ret("envoyGoFilterHttpRemoveTrailer", c);
}

CAPIStatus envoyGoFilterHttpSetUpstreamOverrideHost(void* s, void* host, int len, bool strict) {
  pstate* p = as_state(s);
  trace("   <- envoyGoFilterHttpSetUpstreamOverrideHost(%s, %.*s, strict=%d)", side(p), len,
        (const char*)host, strict);
  CAPIStatus c = check_state(p, "SetUpstreamOverrideHost");
  if (c == CAPIOK && p->ps.is_encoding) c = CAPIInvalidPhase;
  return ret("envoyGoFilterHttpSetUpstreamOverrideHost", c);
}

// ---- callbacks: the request (stream info, metadata, filter state) ----

CAPIStatus envoyGoFilterHttpClearRouteCache(void* r, bool refresh) {
  stream* st = as_stream(r);
  trace("   <- envoyGoFilterHttpClearRouteCache(refresh=%d)", refresh);
  CAPIStatus c = check_request(st, "ClearRouteCache");
  if (c == CAPIOK) st->route_cache_clears++;
  return ret("envoyGoFilterHttpClearRouteCache", c);
}

static __thread char strvalue[256];  // Envoy anchors it in req_->strValue

CAPIStatus envoyGoFilterHttpGetStringValue(void* r, int id, uint64_t* data, int* len) {
  stream* st = as_stream(r);
  CAPIStatus c = check_request(st, "GetStringValue");
  const char* v = NULL;
  // S/golang_filter.h, EnvoyValue; the values are a plain HTTP/1.1 stream
  // on envoy.yaml's route sse_plain.
  switch (id) {
  case 1: v = "sse_plain"; break;                                   // RouteName
  case 2: v = ""; break;                                            // FilterChainName
  case 5: v = st->has_details ? st->details : NULL; break;          // ResponseCodeDetails
  case 7: v = "127.0.0.1:8080"; break;                              // DownstreamLocalAddress
  case 8: v = "127.0.0.1:50000"; break;                             // DownstreamRemoteAddress
  case 9: v = st->response_started ? "10.0.0.1:40000" : NULL; break; // UpstreamLocalAddress
  case 10: v = st->response_started ? "10.0.0.2:9000" : NULL; break; // UpstreamRemoteAddress
  case 11: v = "upstream_plain"; break;                             // UpstreamClusterName
  case 12: v = NULL; break;                                         // VirtualClusterName
  default:
    // Envoy: RELEASE_ASSERT(false, "invalid string value id").
    fprintf(stderr, "host: GetStringValue with invalid id %d: Envoy would abort\n", id);
    abort();
  }
  if (c == CAPIOK && !v) c = CAPIValueNotFound;
  if (c == CAPIOK) {
    snprintf(strvalue, sizeof strvalue, "%s", v);
    *data = (uint64_t)(uintptr_t)strvalue;
    *len = (int)strlen(strvalue);
  }
  trace("   <- envoyGoFilterHttpGetStringValue(%d) \"%s\"", id, c == CAPIOK ? strvalue : "");
  return ret("envoyGoFilterHttpGetStringValue", c);
}

CAPIStatus envoyGoFilterHttpGetIntegerValue(void* r, int id, uint64_t* value) {
  stream* st = as_stream(r);
  CAPIStatus c = check_request(st, "GetIntegerValue");
  if (c == CAPIOK) {
    switch (id) {
    case 3:  // Protocol: the Http::Protocol enum
      *value = (uint64_t)(st->fault_protocol ? st->fault_protocol : st->protocol);
      if (st->fault_protocol) trace("   !! fault: Protocol answers %d", st->fault_protocol);
      break;
    case 4: {  // ResponseCode
      const char* status = hm_get(&st->response_headers, ":status");
      if (!status) c = CAPIValueNotFound;
      else *value = (uint64_t)strtoull(status, NULL, 10);
      break;
    }
    case 6: *value = 1; break;  // AttemptCount
    default:
      fprintf(stderr, "host: GetIntegerValue with invalid id %d: Envoy would abort\n", id);
      abort();
    }
  }
  trace("   <- envoyGoFilterHttpGetIntegerValue(%d) %llu", id, c == CAPIOK ? (unsigned long long)*value : 0ULL);
  return ret("envoyGoFilterHttpGetIntegerValue", c);
}

// Go sends a serialized google.protobuf.Value; Envoy parses it
// (Filter::setDynamicMetadataInternal). The host decodes the scalar kinds
// into text so the checks can read them.
static int pb_varint(const unsigned char** p, const unsigned char* end, uint64_t* v) {
  *v = 0;
  for (int shift = 0; *p < end && shift < 64; shift += 7) {
    unsigned char b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 1;
  }
  return 0;
}

static int decode_value(const unsigned char* p, size_t n, char* out, size_t outn) {
  const unsigned char* end = p + n;
  snprintf(out, outn, "<empty>");
  while (p < end) {
    uint64_t tag, len;
    if (!pb_varint(&p, end, &tag)) return 0;
    int field = (int)(tag >> 3), wire = (int)(tag & 7);
    if (field == 2 && wire == 1 && end - p >= 8) {  // number_value: double
      double d;
      memcpy(&d, p, 8);
      p += 8;
      snprintf(out, outn, "%.17g", d);
    } else if (field == 3 && wire == 2) {  // string_value
      if (!pb_varint(&p, end, &len) || len > (uint64_t)(end - p)) return 0;
      snprintf(out, outn, "%.*s", (int)len, (const char*)p);
      p += len;
    } else if ((field == 1 || field == 4) && wire == 0) {  // null_value, bool_value
      if (!pb_varint(&p, end, &len)) return 0;
      snprintf(out, outn, field == 1 ? "null" : len ? "true" : "false");
    } else {
      snprintf(out, outn, "<field %d wire %d>", field, wire);
      return 1;
    }
  }
  return 1;
}

CAPIStatus envoyGoFilterHttpSetDynamicMetadata(void* r, void* ns, int nslen, void* key, int klen,
                                               void* buf, int blen) {
  stream* st = as_stream(r);
  CAPIStatus c = check_request(st, "SetDynamicMetadata");
  char value[512];
  if (!decode_value(buf, (size_t)blen, value, sizeof value)) snprintf(value, sizeof value, "<bad protobuf>");
  trace("   <- envoyGoFilterHttpSetDynamicMetadata(%.*s, %.*s, %s)", nslen, (const char*)ns, klen,
        (const char*)key, value);
  if (c != CAPIOK) return ret("envoyGoFilterHttpSetDynamicMetadata", c);
  mdentry* e = NULL;
  for (int i = 0; i < st->nmd; i++)
    if ((int)strlen(st->md[i].ns) == nslen && !memcmp(st->md[i].ns, ns, (size_t)nslen) &&
        (int)strlen(st->md[i].key) == klen && !memcmp(st->md[i].key, key, (size_t)klen))
      e = &st->md[i];
  if (!e && st->nmd < 16) e = &st->md[st->nmd++];
  if (e) {
    snprintf(e->ns, sizeof e->ns, "%.*s", nslen, (const char*)ns);
    snprintf(e->key, sizeof e->key, "%.*s", klen, (const char*)key);
    snprintf(e->value, sizeof e->value, "%s", value);
  }
  return ret("envoyGoFilterHttpSetDynamicMetadata", CAPIOK);
}

CAPIStatus envoyGoFilterHttpGetDynamicMetadata(void* r, void* ns, int nslen, uint64_t* data, int* len) {
  stream* st = as_stream(r);
  trace("   <- envoyGoFilterHttpGetDynamicMetadata(%.*s)", nslen, (const char*)ns);
  // Reading it back needs a serialized Struct; the sse filter never reads
  // it, so the host answers an empty one (no fields).
  *data = 0;
  *len = 0;
  return ret("envoyGoFilterHttpGetDynamicMetadata", check_request(st, "GetDynamicMetadata"));
}

void envoyGoFilterHttpFinalize(void* r, int reason) {
  stream* st = as_stream(r);
  // Envoy frees the request here (or defers it while the filter lives); the
  // host keeps the memory and records whether Go let go of it only after
  // OnDestroy.
  st->finalized = 1;
  if (!st->destroyed) st->finalized_before_destroy = 1;
  trace("   <- envoyGoFilterHttpFinalize(%s, reason=%d)", st->name, reason);
}

CAPIStatus envoyGoFilterHttpSetStringFilterState(void* r, void* key, int klen, void* value, int vlen,
                                                 int state_type, int life_span, int sharing) {
  stream* st = as_stream(r);
  (void)state_type, (void)life_span, (void)sharing;
  trace("   <- envoyGoFilterHttpSetStringFilterState(%.*s)", klen, (const char*)key);
  CAPIStatus c = check_request(st, "SetStringFilterState");
  if (c == CAPIOK) {
    snprintf(st->fs_key, sizeof st->fs_key, "%.*s", klen, (const char*)key);
    snprintf(st->fs_value, sizeof st->fs_value, "%.*s", vlen, (const char*)value);
  }
  return ret("envoyGoFilterHttpSetStringFilterState", c);
}

CAPIStatus envoyGoFilterHttpGetStringFilterState(void* r, void* key, int klen, uint64_t* data, int* len) {
  stream* st = as_stream(r);
  trace("   <- envoyGoFilterHttpGetStringFilterState(%.*s)", klen, (const char*)key);
  CAPIStatus c = check_request(st, "GetStringFilterState");
  if (c == CAPIOK && (int)strlen(st->fs_key) == klen && !memcmp(st->fs_key, key, (size_t)klen)) {
    *data = (uint64_t)(uintptr_t)st->fs_value;
    *len = (int)strlen(st->fs_value);
  }
  return ret("envoyGoFilterHttpGetStringFilterState", c);
}

CAPIStatus envoyGoFilterHttpGetStringProperty(void* r, void* key, int klen, uint64_t* data, int* len,
                                              int* rc) {
  stream* st = as_stream(r);
  CAPIStatus c = check_request(st, "GetStringProperty");
  // Envoy evaluates CEL attributes (Filter::getStringPropertyInternal). The
  // host knows the one the sse filter reads; any other comes back
  // CAPIValueNotFound, and the trace shows it was asked for.
  if (c == CAPIOK) {
    if (klen == 14 && !memcmp(key, "response.flags", 14)) {
      snprintf(strvalue, sizeof strvalue, "%s", st->response_flags ? st->response_flags : "0");
      *data = (uint64_t)(uintptr_t)strvalue;
      *len = (int)strlen(strvalue);
    } else {
      c = CAPIValueNotFound;
    }
  }
  *rc = c;
  trace("   <- envoyGoFilterHttpGetStringProperty(%.*s) \"%s\"", klen, (const char*)key,
        c == CAPIOK ? strvalue : "");
  return ret("envoyGoFilterHttpGetStringProperty", c);
}

CAPIStatus envoyGoFilterHttpGetStringSecret(void* r, void* key, int klen, uint64_t* data, int* len) {
  stream* st = as_stream(r);
  (void)data;
  trace("   <- envoyGoFilterHttpGetStringSecret(%.*s)", klen, (const char*)key);
  *len = -1;  // no generic_secrets in envoy.yaml
  return ret("envoyGoFilterHttpGetStringSecret", check_request(st, "GetStringSecret"));
}

// ---- driving the .so as S/golang_filter.cc does ----

static uint64_t filter_config_id;

static void stream_init(stream* st, const char* name, uint64_t config_id, uint32_t worker_id) {
  memset(st, 0, sizeof *st);
  st->name = name;
  static const char plugin[] = "sse";
  st->req.plugin_name.data = plugin;
  st->req.plugin_name.len = 3;
  // Filter::initRequest sets it on the first call into Go (the merged id
  // when the route has a per-route config).
  st->req.configId = config_id;
  st->req.worker_id = worker_id;
  st->dec.ps.req = &st->req;
  st->dec.ps.is_encoding = 0;
  st->dec.st = st;
  st->enc.ps.req = &st->req;
  st->enc.ps.is_encoding = 1;
  st->enc.st = st;
  st->protocol = 1;
}

static void push_buffer(pstate* p, buffer* b) {
  if (p->nbufs == MAX_BUFS) {
    fprintf(stderr, "host: too many buffers\n");
    exit(2);
  }
  p->bufs[p->nbufs++] = b;
}

// The bytes that leave the filter: upstream for decoding, downstream for encoding.
static void move_out(pstate* p) {
  for (int i = 0; i < p->nbufs; i++) {
    if (p->ps.is_encoding) buf_append(&p->st->downstream_body, p->bufs[i]->data, p->bufs[i]->len);
    else buf_append(&p->st->upstream_body, p->bufs[i]->data, p->bufs[i]->len);
    free(p->bufs[i]->data);
    free(p->bufs[i]);
  }
  p->nbufs = 0;
}

static void clear_buffers(pstate* p) {
  for (int i = 0; i < p->nbufs; i++) {
    free(p->bufs[i]->data);
    free(p->bufs[i]);
  }
  p->nbufs = 0;
  p->waiting.len = 0;
}

static int run_local_reply(stream* st);

// ProcessorState::handleHeaderGolangStatus; returns whether iteration continues.
static int handle_header_status(pstate* p, uint64_t status) {
  switch (status) {
  case 1: return 0;  // LocalReply: the posted reply follows
  case 0: return 0;  // Running: Go went async and calls Continue later
  case 2:
    p->ps.state = p->do_end_stream ? Done : WaitingData;
    p->headers = NULL;
    return 1;
  case 3: p->ps.state = WaitingAllData; return 0;
  case 4: p->ps.state = WaitingData; return 0;
  }
  fprintf(stderr, "host: unexpected header status %llu\n", (unsigned long long)status);
  return 0;
}

static uint64_t do_headers(pstate* p, headermap* h, int end_stream) {
  stream* st = p->st;
  p->headers = h;
  p->ps.state = ProcessingHeader;
  p->do_end_stream = end_stream;
  trace("-> envoyGoFilterOnHttpHeader(%s %s, end_stream=%d, %zu headers, %llu bytes)", st->name,
        side(p), end_stream, h->n, (unsigned long long)hm_bytes(h));
  current = st;
  uint64_t status = so.on_header(&p->ps, (uint64_t)end_stream, h->n, hm_bytes(h));
  current = NULL;
  trace("-> envoyGoFilterOnHttpHeader = %s", status_name(status));
  st_add(&st->ss, p->ps.is_encoding ? "encode_headers" : "decode_headers", status);
  handle_header_status(p, status);
  return status;
}

// Filter::doData and doDataGo: each chunk becomes a buffer of the do-data
// list whose address is its id; Continue moves the list on.
static uint64_t do_data(pstate* p, const char* data, size_t len, int end_stream) {
  stream* st = p->st;
  if (p->ps.state == WaitingAllData && !end_stream) {
    buf_append(&p->waiting, data, len);
    trace("   (host buffers %zu bytes: Go asked for the whole body)", len);
    return NOT_CALLED;
  }
  if (p->ps.state != WaitingData && p->ps.state != WaitingAllData) {
    trace("   (host drops %zu bytes: %s state %d takes no data)", len, side(p), p->ps.state);
    return NOT_CALLED;
  }
  buffer* b = xmalloc(sizeof *b);
  memset(b, 0, sizeof *b);
  buf_append(b, p->waiting.data, p->waiting.len);
  p->waiting.len = 0;
  buf_append(b, data, len);
  p->ps.state = ProcessingData;
  p->do_end_stream = end_stream;
  push_buffer(p, b);
  trace("-> envoyGoFilterOnHttpData(%s %s, end_stream=%d, buffer=%p, %zu bytes \"%s\")", st->name,
        side(p), end_stream, (void*)b, b->len, show(b->data, b->len));
  current = st;
  uint64_t status = so.on_data(&p->ps, (uint64_t)end_stream, (uint64_t)(uintptr_t)b, b->len);
  current = NULL;
  trace("-> envoyGoFilterOnHttpData = %s", status_name(status));
  st_add(&st->ss, p->ps.is_encoding ? "encode_data" : "decode_data", status);
  // ProcessorState::handleDataGolangStatus
  switch (status) {
  case 2:
    p->ps.state = end_stream ? Done : WaitingData;
    move_out(p);
    break;
  case 3: p->ps.state = WaitingAllData; break;
  case 5: p->nbufs--; free(b->data); free(b); p->ps.state = WaitingData; break;
  case 4: p->ps.state = WaitingData; break;
  default: break;  // LocalReply, Running
  }
  return status;
}

// The dispatcher's turn: what Go posted during the call runs now.
static void run_posted(stream* st) {
  if (st->reply.pending) run_local_reply(st);
}

static uint64_t decode_headers(stream* st, headermap* h, int end_stream) {
  hm_copy(h, &st->request_headers);
  uint64_t s = do_headers(&st->dec, &st->request_headers, end_stream);
  run_posted(st);
  return s;
}

static uint64_t decode_data(stream* st, const char* d, size_t n, int end_stream) {
  uint64_t s = do_data(&st->dec, d, n, end_stream);
  run_posted(st);
  return s;
}

static uint64_t encode_headers(stream* st, headermap* h, int end_stream) {
  st->response_started = 1;
  if (st->response_headers.n == 0) hm_copy(h, &st->response_headers);
  uint64_t s = do_headers(&st->enc, &st->response_headers, end_stream);
  run_posted(st);
  if (s == 2 && !st->headers_sent) {
    st->headers_sent = 1;
    hm_copy(&st->response_headers, &st->downstream_headers);
  }
  if (end_stream && s == 2) st->downstream_ended = 1;
  return s;
}

static uint64_t encode_data(stream* st, const char* d, size_t n, int end_stream) {
  // After a direct reply the filter manager ends the stream: no more upstream data reaches filters.
  if (st->reply.pending || st->direct_reply) return NOT_CALLED;
  uint64_t s = do_data(&st->enc, d, n, end_stream);
  run_posted(st);
  if (end_stream && s == 2) st->downstream_ended = 1;
  return s;
}

// The upstream's answer: the router sets these before the encoder filters run.
static uint64_t upstream_headers(stream* st, headermap* h, int end_stream) {
  st->has_details = 1;
  snprintf(st->details, sizeof st->details, "via_upstream");
  return encode_headers(st, h, end_stream);
}

// Filter::sendLocalReplyInternal, then the filter manager
// (source/common/http/filter_manager.cc, DownstreamFilterManager::
// sendLocalReply): before any response exists the reply goes through the
// encoder filters, this one included; once the response headers exist but
// have not gone out, it goes straight to the codec (sendDirectLocalReply);
// after that, the stream is reset. The headers are built as
// source/common/http/utility.cc, prepareLocalReply: :status, the filter's
// headers (non-empty values), content-length and a default content-type
// for a body.
static int run_local_reply(stream* st) {
  local_reply r = st->reply;
  st->reply.pending = 0;
  pstate* p = r.from_encoding ? &st->enc : &st->dec;
  clear_buffers(p);
  if (!r.from_encoding) p->ps.state = WaitingHeader;
  trace("   (dispatcher: local reply %d, details \"%s\")", r.code, r.details);
  st->has_details = 1;
  snprintf(st->details, sizeof st->details, "%s", r.details);
  headermap h = {0};
  char code[16];
  snprintf(code, sizeof code, "%d", r.code);
  hm_addz(&h, ":status", code);
  for (size_t i = 0; i < r.headers.n; i++)
    if (r.headers.h[i].value[0]) hm_addz(&h, r.headers.h[i].key, r.headers.h[i].value);
  if (r.body_len) {
    char cl[32];
    snprintf(cl, sizeof cl, "%zu", r.body_len);
    hm_set(&h, "content-length", 14, cl, strlen(cl));
    if (!hm_get(&h, "content-type")) hm_addz(&h, "content-type", "text/plain");
  }
  if (st->headers_sent) {
    trace("   (response already sent: Envoy resets the stream)");
    st->downstream_ended = 0;
    return 0;
  }
  if (st->response_started) {
    trace("   (response headers exist: Envoy sends the reply straight to the codec)");
    st->response_headers = h;
    st->downstream_headers = (headermap){0};
    hm_copy(&h, &st->downstream_headers);
    st->headers_sent = 1;
    buf_append(&st->downstream_body, r.body, r.body_len);
    st->downstream_ended = 1;
    // The encoder state stays where Go left it (Processing, after Running):
    // sendDirectLocalReply bypasses the filter, so onDestroy says Terminate.
    st->direct_reply = 1;
    return 0;
  }
  st->response_headers = (headermap){0};
  encode_headers(st, &h, r.body_len == 0);
  if (r.body_len) encode_data(st, r.body, r.body_len, 1);
  return 0;
}

static void call_log(stream* st, uint64_t type) {
  // Filter::log: the request and response maps as they are now, put into
  // the states so Go can copy them while is_golang_processing_log is set.
  st->dec.headers = &st->request_headers;
  st->enc.headers = st->response_headers.n ? &st->response_headers : NULL;
  trace("-> envoyGoFilterOnHttpLog(%s, type=%llu)", st->name, (unsigned long long)type);
  st->req.is_golang_processing_log = 1;
  current = st;
  so.on_log(&st->req, type, &st->dec.ps, &st->enc.ps, st->request_headers.n, hm_bytes(&st->request_headers),
            0, 0, st->response_headers.n, hm_bytes(&st->response_headers), 0, 0);
  current = NULL;
  st->req.is_golang_processing_log = 0;
  // Envoy leaves the maps in the states afterwards: so does the host.
}

// The end of every stream, in the filter manager's order: onStreamComplete,
// the access log (Filter::log with DownstreamEnd), onDestroy.
static void finish_stream(stream* st) {
  trace("-> envoyGoFilterOnHttpStreamComplete(%s)", st->name);
  st->req.is_golang_processing_log = 1;
  current = st;
  so.on_stream_complete(&st->req);
  current = NULL;
  st->req.is_golang_processing_log = 0;
  call_log(st, 6);  // AccessLogType::DownstreamEnd
  // Filter::onDestroy: Terminate while Go still holds a phase.
  st->destroy_reason = processing(&st->dec) || processing(&st->enc) ? 1 : 0;
  trace("-> envoyGoFilterOnHttpDestroy(%s, reason=%d)", st->name, st->destroy_reason);
  current = st;
  so.on_destroy(&st->req, (uint64_t)st->destroy_reason);
  current = NULL;
  st->destroyed = 1;
}

// ---- JSON output ----

static void jstr(FILE* f, const char* s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c == '\n') fputs("\\n", f);
    else if (c == '\r') fputs("\\r", f);
    else if (c == '\t') fputs("\\t", f);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

static void jz(FILE* f, const char* s) { jstr(f, s ? s : "", s ? strlen(s) : 0); }

static void jheaders(FILE* f, const headermap* m) {
  fputc('[', f);
  for (size_t i = 0; i < m->n; i++) {
    if (i) fputc(',', f);
    fputc('[', f);
    jz(f, m->h[i].key);
    fputc(',', f);
    jz(f, m->h[i].value);
    fputc(']', f);
  }
  fputc(']', f);
}

static int64_t metrics_before[MAX_METRICS];

static void snapshot_metrics(void) {
  for (int i = 0; i < nmetrics; i++) metrics_before[i] = metrics[i].value;
}

static int logs_before;

static int failures;

static void emit_stream(const char* scenario, stream* st, const char* sent, size_t sent_len) {
  const statuses* ss = &st->ss;
  FILE* f = stdout;
  fprintf(f, "{\"scenario\":");
  jz(f, scenario);
  fprintf(f, ",\"statuses\":[");
  for (int i = 0; i < ss->n; i++) {
    if (i) fputc(',', f);
    fprintf(f, "{\"phase\":\"%s\",\"status\":\"%s\"}", ss->phases[i], status_name(ss->statuses[i]));
  }
  fprintf(f, "],\"upstream_request\":");
  jheaders(f, st->request_headers.n && st->dec.ps.state == Done ? &st->request_headers : &(headermap){0});
  fprintf(f, ",\"response\":");
  jheaders(f, &st->downstream_headers);
  fprintf(f, ",\"body\":");
  jstr(f, st->downstream_body.data ? st->downstream_body.data : "", st->downstream_body.len);
  fprintf(f, ",\"upstream_body_sent\":");
  jstr(f, sent ? sent : "", sent_len);
  fprintf(f, ",\"downstream_ended\":%s,\"details\":", st->downstream_ended ? "true" : "false");
  jz(f, st->has_details ? st->details : "");
  fprintf(f, ",\"metadata\":{");
  for (int i = 0; i < st->nmd; i++) {
    if (i) fputc(',', f);
    char k[160];
    snprintf(k, sizeof k, "%s:%s", st->md[i].ns, st->md[i].key);
    jz(f, k);
    fputc(':', f);
    jz(f, st->md[i].value);
  }
  fprintf(f, "},\"periodic_events\":");
  jz(f, st->periodic_events);
  fprintf(f, ",\"metrics\":{");
  int first = 1;
  for (int i = 0; i < nmetrics; i++) {
    if (metrics[i].value == metrics_before[i]) continue;
    if (!first) fputc(',', f);
    first = 0;
    jz(f, metrics[i].name);
    fprintf(f, ":%lld", (long long)(metrics[i].value - metrics_before[i]));
  }
  fprintf(f, "},\"logs\":[");
  first = 1;
  for (int i = logs_before; i < log_count(); i++) {
    if (!first) fputc(',', f);
    first = 0;
    fprintf(f, "{\"level\":%d,\"msg\":", logs[i].level);
    jz(f, logs[i].msg);
    fputc('}', f);
  }
  fprintf(f, "],\"panic_replies\":%d,\"continue_calls\":%d,\"off_thread\":", st->panic_replies,
          st->continue_calls);
  jz(f, st->off_thread);
  fprintf(f, ",\"destroyed\":%s,\"destroy_reason\":%d,\"finalized_before_destroy\":%s}\n",
          st->destroyed ? "true" : "false", st->destroy_reason,
          st->finalized_before_destroy ? "true" : "false");
  fflush(f);
}

// ---- the host's own checks, so `make golang-host` means something alone;
// the Go test asserts on the JSON in more detail ----

static void expect(int ok, const char* scenario, const char* what) {
  if (!ok) failures++;
  fprintf(stderr, "%s %s: %s\n", ok ? "ok  " : "FAIL", scenario, what);
}

static int has_log(const char* needle) {
  for (int i = logs_before; i < log_count(); i++)
    if (strstr(logs[i].msg, needle)) return 1;
  return 0;
}

static const char* down(stream* st, const char* k) { return hm_get(&st->downstream_headers, k); }

static int eq(const char* a, const char* b) { return a && b && strcmp(a, b) == 0; }

// ---- scenarios ----

typedef struct {
  const char* method;
  const char* path;
  const char* origin;  // NULL: no Origin header
  const char* acrm;    // access-control-request-method
} request;

static headermap request_map(const request* rq) {
  headermap h = {0};
  hm_addz(&h, ":method", rq->method);
  hm_addz(&h, ":scheme", "http");
  hm_addz(&h, ":authority", "localhost:8080");
  hm_addz(&h, ":path", rq->path);
  hm_addz(&h, "accept", "text/event-stream");
  if (rq->origin) hm_addz(&h, "origin", rq->origin);
  if (rq->acrm) hm_addz(&h, "access-control-request-method", rq->acrm);
  hm_addz(&h, "x-forwarded-proto", "http");
  hm_addz(&h, "x-request-id", "6f6c7e1c-0c2c-4d7e-9d3b-0123456789ab");
  return h;
}

static headermap sse_response(int with_upstream_cors) {
  headermap h = {0};
  hm_addz(&h, ":status", "200");
  hm_addz(&h, "content-type", "text/event-stream; charset=utf-8");
  hm_addz(&h, "cache-control", "private, max-age=60");
  // An upstream's own grant: the policy must overwrite or remove it.
  if (with_upstream_cors) hm_addz(&h, "access-control-allow-origin", "*");
  hm_addz(&h, "x-envoy-upstream-service-time", "2");
  return h;
}

// An SSE body cut where a proxy can cut it: inside a field name, between
// CR and LF, inside a multi-byte character, and with the blank line that
// ends the last event alone in the last chunk.
static const char* chunks[] = {
    ": hello\n\nid: 1\nda",
    "ta: first\n\nid: 2\r",
    "\ndata: sec",
    "ond\r\n\r\nid: 3\nevent: tick\ndata: caf\xc3",
    "\xa9\ndata: line two\n",
    "\n",
};
#define NCHUNKS (sizeof chunks / sizeof chunks[0])

static void sse_body(stream* st, buffer* sent, int periodic_after) {
  for (size_t i = 0; i < NCHUNKS; i++) {
    int last = i + 1 == NCHUNKS;
    buf_append(sent, chunks[i], strlen(chunks[i]));
    encode_data(st, chunks[i], strlen(chunks[i]), 0);
    if ((int)i == periodic_after) {
      // HCM access_log_flush_interval: DownstreamPeriodic while it streams.
      call_log(st, 5);
      for (int k = 0; k < st->nmd; k++)
        if (!strcmp(st->md[k].key, "events"))
          snprintf(st->periodic_events, sizeof st->periodic_events, "%s", st->md[k].value);
    }
    if (last) encode_data(st, "", 0, 1);  // the upstream's end of stream
  }
}

static uint64_t route_config_id, invalid_route_config_id;

static void begin(const char* name) {
  trace("\n=== %s", name);
  snapshot_metrics();
  logs_before = log_count();
}

static void scenario_get(const char* name, const char* origin, int fault_protocol,
                         CAPIStatus fault_set_header, const char* flags, int upstream_ends,
                         uint64_t config_id) {
  static uint32_t worker_ids;
  begin(name);
  stream* st = xmalloc(sizeof *st);
  stream_init(st, name, config_id, worker_ids++ % 2);
  st->fault_protocol = fault_protocol;
  st->fault_set_header = fault_set_header;
  st->response_flags = flags;
  buffer sent = {0};
  request rq = {"GET", "/sse/events", origin, NULL};
  headermap h = request_map(&rq);
  decode_headers(st, &h, 1);
  headermap rh = sse_response(1);
  upstream_headers(st, &rh, 0);
  if (upstream_ends) {
    sse_body(st, &sent, 2);
  } else {
    // The client goes away after two chunks.
    for (int i = 0; i < 2; i++) {
      buf_append(&sent, chunks[i], strlen(chunks[i]));
      encode_data(st, chunks[i], strlen(chunks[i]), 0);
    }
    st->has_details = 1;
    snprintf(st->details, sizeof st->details, "downstream_remote_disconnect");
  }
  finish_stream(st);
  emit_stream(name, st, sent.data, sent.len);

  if (fault_protocol || fault_set_header != CAPIOK) {
    // The filter recovers the panic itself: the shim's 500 would be final
    // for an EventSource.
    expect(st->panic_replies == 0, name, "no panic reached the shim");
    expect(has_log("sse: panic in EncodeHeaders, failing open (CORS grant headers removed)"), name,
           "the filter logged the panic");
    expect(eq(down(st, ":status"), "200"), name, "the client got the upstream's 200");
    expect(down(st, "access-control-allow-origin") == NULL, name, "the CORS grant was removed (fail closed)");
    expect(st->downstream_body.len == sent.len &&
               (sent.len == 0 || !memcmp(st->downstream_body.data, sent.data, sent.len)),
           name, "the body went downstream unchanged");
    expect(st->destroyed, name, "the stream still ended normally (complete, log, destroy)");
    return;
  }
  expect(eq(down(st, ":status"), "200"), name, ":status 200");
  expect(eq(down(st, "x-sse-stream"), "golang"), name, "x-sse-stream: golang");
  expect(st->downstream_body.len == sent.len &&
             (sent.len == 0 || !memcmp(st->downstream_body.data, sent.data, sent.len)),
         name, "the body went downstream unchanged");
  expect(has_log("sse stream opened:"), name, "opened line");
  expect(has_log("sse stream closed:"), name, "closed line");
}

// An LLM-style token stream: a POST with a JSON body, answered with
// OpenAI-style chunks, the usage chunk cut inside its number, then [DONE].
// The policy's extract rules (envoy.yaml) read total_tokens out of it.
static const char* token_chunks[] = {
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}],\"usage\":null}\n\n",
    "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":12,\"total_tokens\":2",
    "1}}\n\n",
    "data: [DONE]\n\n",
};

static void scenario_tokens(const char* name) {
  begin(name);
  stream* st = xmalloc(sizeof *st);
  stream_init(st, name, filter_config_id, 0);
  request rq = {"POST", "/v1/chat/completions", "http://localhost:3000", NULL};
  headermap h = request_map(&rq);
  hm_addz(&h, "content-type", "application/json");
  decode_headers(st, &h, 0);
  const char* req = "{\"model\":\"joke\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
  decode_data(st, req, strlen(req), 1);
  headermap rh = sse_response(0);
  upstream_headers(st, &rh, 0);
  buffer sent = {0};
  size_t n = sizeof token_chunks / sizeof token_chunks[0];
  for (size_t i = 0; i < n; i++) {
    buf_append(&sent, token_chunks[i], strlen(token_chunks[i]));
    encode_data(st, token_chunks[i], strlen(token_chunks[i]), i + 1 == n);
  }
  finish_stream(st);
  emit_stream(name, st, sent.data, sent.len);
  expect(eq(down(st, ":status"), "200"), name, ":status 200");
  expect(eq(down(st, "access-control-allow-origin"), "http://localhost:3000"), name, "the page's origin is granted");
  expect(has_log("total_tokens=21"), name, "the closed line has the stream's total tokens");
}

static void scenario_preflight(const char* name, const char* origin, int with_body) {
  begin(name);
  stream* st = xmalloc(sizeof *st);
  stream_init(st, name, filter_config_id, 0);
  request rq = {"OPTIONS", "/sse/events", origin, "GET"};
  headermap h = request_map(&rq);
  if (with_body) {
    // A preflight with a body: the filter holds its reply until the body
    // ends (envoyproxy/envoy#44320).
    decode_headers(st, &h, 0);
    decode_data(st, "x=1", 3, 0);
    decode_data(st, "&y=2", 4, 1);
  } else {
    decode_headers(st, &h, 1);
  }
  finish_stream(st);
  emit_stream(name, st, NULL, 0);
  int allowed = strcmp(origin, "https://evil.example") != 0;
  expect(eq(down(st, ":status"), allowed ? "204" : "403"), name, allowed ? "204 local reply" : "403 local reply");
  expect(allowed == (down(st, "access-control-allow-origin") != NULL), name,
         allowed ? "allow-origin set" : "no allow-origin");
  expect(st->upstream_body.len == 0 && st->dec.ps.state != Done, name, "nothing went upstream");
}

static void scenario_route(const char* name, uint64_t config_id, const char* origin) {
  begin(name);
  stream* st = xmalloc(sizeof *st);
  stream_init(st, name, config_id, 1);
  buffer sent = {0};
  request rq = {"GET", "/sse/events", origin, NULL};
  headermap h = request_map(&rq);
  decode_headers(st, &h, 1);
  if (!st->headers_sent) {
    headermap rh = sse_response(0);
    upstream_headers(st, &rh, 0);
    sse_body(st, &sent, -1);
  }
  finish_stream(st);
  emit_stream(name, st, sent.data, sent.len);
  if (config_id == invalid_route_config_id) {
    expect(eq(down(st, ":status"), "500"), name, "500 for an invalid per-route config");
  } else {
    expect(eq(down(st, ":status"), "200"), name, ":status 200");
    expect(eq(down(st, "access-control-allow-origin"), origin), name, "the route's origin is allowed");
  }
}

// ---- config (S/golang_filter.cc, FilterConfig and RoutePluginConfig) ----

static char* read_file(const char* path, size_t* n) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "host: %s: %s\n", path, strerror(errno));
    exit(2);
  }
  buffer b = {0};
  char tmp[4096];
  size_t r;
  while ((r = fread(tmp, 1, sizeof tmp, f)) > 0) buf_append(&b, tmp, r);
  fclose(f);
  *n = b.len;
  return b.data ? b.data : dupn("", 0);
}

static hconfig* make_config(const char* bytes, size_t n, int is_route) {
  static const char plugin[] = "sse";
  hconfig* c = xmalloc(sizeof *c);
  memset(c, 0, sizeof *c);
  c->c.plugin_name_ptr = (uint64_t)(uintptr_t)plugin;
  c->c.plugin_name_len = 3;
  c->c.config_ptr = (uint64_t)(uintptr_t)bytes;
  c->c.config_len = n;
  c->c.is_route_config = is_route;
  c->c.concurrency = 2;  // two workers: streams alternate worker_id 0 and 1
  return c;
}

static uint64_t new_config(const char* what, hconfig* c) {
  trace("-> envoyGoFilterNewHttpPluginConfig(%s, %llu bytes, is_route_config=%d)", what,
        (unsigned long long)c->c.config_len, c->c.is_route_config);
  uint64_t id = so.new_config(&c->c);
  trace("-> envoyGoFilterNewHttpPluginConfig = %llu", (unsigned long long)id);
  return id;
}

static uint64_t merge(uint64_t parent, uint64_t child) {
  static const char plugin[] = "sse";
  trace("-> envoyGoFilterMergeHttpPluginConfig(sse, parent=%llu, child=%llu)", (unsigned long long)parent,
        (unsigned long long)child);
  uint64_t id = so.merge_config((uint64_t)(uintptr_t)plugin, 3, parent, child);
  trace("-> envoyGoFilterMergeHttpPluginConfig = %llu", (unsigned long long)id);
  return id;
}

static void usage(void) {
  fprintf(stderr,
          "usage: host [-v] -so PATH -config FILE [-route-config FILE] [-invalid-route-config FILE]\n"
          "            [-bad-config FILE:FIELD]... [-scenario NAME]...\n"
          "FILEs hold the serialized google.protobuf.Any of a plugin_config, as Envoy passes it.\n");
  exit(2);
}

#define MAX_BAD 8

static void* load(void* h, const char* sym) {
  void* p = dlsym(h, sym);
  if (!p) {
    fprintf(stderr, "host: the .so does not export %s: %s\n", sym, dlerror());
    exit(1);
  }
  return p;
}

static int wanted(const char** names, int n, const char* name) {
  if (n == 0) return 1;
  for (int i = 0; i < n; i++)
    if (!strcmp(names[i], name)) return 1;
  return 0;
}

int main(int argc, char** argv) {
  const char *so_path = NULL, *config_path = NULL, *route_path = NULL, *invalid_route_path = NULL;
  const char* bad[MAX_BAD];
  int nbad = 0;
  const char* only[32];
  int nonly = 0;
  for (int i = 1; i < argc; i++) {
    const char* a = argv[i];
    if (!strcmp(a, "-v")) verbose = 1;
    else if (i + 1 >= argc) usage();
    else if (!strcmp(a, "-so")) so_path = argv[++i];
    else if (!strcmp(a, "-config")) config_path = argv[++i];
    else if (!strcmp(a, "-route-config")) route_path = argv[++i];
    else if (!strcmp(a, "-invalid-route-config")) invalid_route_path = argv[++i];
    else if (!strcmp(a, "-bad-config") && nbad < MAX_BAD) bad[nbad++] = argv[++i];
    else if (!strcmp(a, "-scenario") && nonly < 32) only[nonly++] = argv[++i];
    else usage();
  }
  if (!so_path || !config_path) usage();
  worker = pthread_self();

  // D/dso.cc: dlopen with RTLD_LAZY, then dlsym of each entry point. The
  // .so's own imports (the callbacks above) resolve against this
  // executable, which exports them (-rdynamic), as Envoy's binary does.
  trace("-> dlopen(%s, RTLD_LAZY)", so_path);
  void* h = dlopen(so_path, RTLD_LAZY);
  if (!h) {
    fprintf(stderr, "host: dlopen: %s\n", dlerror());
    return 1;
  }
  so.new_config = (new_config_fn)load(h, "envoyGoFilterNewHttpPluginConfig");
  so.merge_config = (merge_config_fn)load(h, "envoyGoFilterMergeHttpPluginConfig");
  so.destroy_config = (destroy_config_fn)load(h, "envoyGoFilterDestroyHttpPluginConfig");
  so.on_header = (on_header_fn)load(h, "envoyGoFilterOnHttpHeader");
  so.on_data = (on_data_fn)load(h, "envoyGoFilterOnHttpData");
  so.on_log = (on_log_fn)load(h, "envoyGoFilterOnHttpLog");
  so.on_stream_complete = (on_request_fn)load(h, "envoyGoFilterOnHttpStreamComplete");
  so.on_destroy = (on_destroy_fn)load(h, "envoyGoFilterOnHttpDestroy");
  so.sema_dec = (on_request_fn)load(h, "envoyGoRequestSemaDec");
  so.cleanup = (cleanup_fn)load(h, "envoyGoFilterCleanUp");

  // The filter-level plugin_config, parsed on the main thread with
  // callbacks (FilterConfig::newGoPluginConfig): a zero id makes Envoy
  // reject the configuration.
  begin("config");
  size_t n;
  char* bytes = read_file(config_path, &n);
  filter_config = make_config(bytes, n, 0);
  filter_config_id = new_config("envoy.yaml plugin_config", filter_config);
  fprintf(stdout, "{\"scenario\":\"config\",\"config_id\":%llu,\"metrics_defined\":[",
          (unsigned long long)filter_config_id);
  for (int i = 0; i < nmetrics; i++) {
    fprintf(stdout, "%s{\"name\":", i ? "," : "");
    jz(stdout, metrics[i].name);
    fprintf(stdout, ",\"type\":%u}", metrics[i].type);
  }
  fprintf(stdout, "],\"logs\":[");
  for (int i = logs_before; i < log_count(); i++) {
    fprintf(stdout, "%s", i > logs_before ? "," : "");
    jz(stdout, logs[i].msg);
  }
  fprintf(stdout, "]}\n");
  expect(filter_config_id != 0, "config", "envoy.yaml's plugin_config is accepted");
  expect(nmetrics > 0, "config", "the filter-level Parse defined its stats");
  if (!filter_config_id) return 1;

  for (int i = 0; i < nbad; i++) {
    char path[1024];
    snprintf(path, sizeof path, "%s", bad[i]);
    char* field = strrchr(path, ':');
    if (!field) usage();
    *field++ = 0;
    char name[1100];
    snprintf(name, sizeof name, "bad_config:%s", field);
    begin(name);
    size_t bn;
    char* bb = read_file(path, &bn);
    // Envoy's FilterConfig owns the config it passes; a refused one is never
    // used again, so the host does not keep it as the metrics' owner.
    hconfig* bc = make_config(bb, bn, 0);
    hconfig* saved = filter_config;
    filter_config = bc;
    uint64_t id = new_config(name, bc);
    filter_config = saved;
    fprintf(stdout, "{\"scenario\":");
    jz(stdout, name);
    fprintf(stdout, ",\"config_id\":%llu,\"logs\":[", (unsigned long long)id);
    for (int k = logs_before; k < log_count(); k++) {
      fprintf(stdout, "%s", k > logs_before ? "," : "");
      jz(stdout, logs[k].msg);
    }
    fprintf(stdout, "]}\n");
    expect(id == 0, name, "refused (id 0: Envoy throws \"failed to parse plugin config\")");
    expect(has_log(field), name, "the error log names the field");
  }

  // Per-route configs: RoutePluginConfig parses with is_route_config=1 (nil
  // callbacks in Go), then getMergedConfigId merges it onto the filter's id.
  if (route_path) {
    begin("route_config");
    size_t rn;
    char* rb = read_file(route_path, &rn);
    uint64_t child = new_config("per-route plugin_config", make_config(rb, rn, 1));
    route_config_id = child ? merge(filter_config_id, child) : 0;
    fprintf(stdout, "{\"scenario\":\"route_config\",\"config_id\":%llu,\"merged_id\":%llu}\n",
            (unsigned long long)child, (unsigned long long)route_config_id);
    expect(child != 0 && route_config_id != 0 && route_config_id != child && route_config_id != filter_config_id,
           "route_config", "parsed and merged into a new config id");
  }
  if (invalid_route_path) {
    begin("invalid_route_config");
    size_t rn;
    char* rb = read_file(invalid_route_path, &rn);
    uint64_t child = new_config("invalid per-route plugin_config", make_config(rb, rn, 1));
    invalid_route_config_id = child ? merge(filter_config_id, child) : 0;
    fprintf(stdout, "{\"scenario\":\"invalid_route_config\",\"config_id\":%llu,\"merged_id\":%llu}\n",
            (unsigned long long)child, (unsigned long long)invalid_route_config_id);
    // A per-route error must not reach Envoy as id 0 on a worker
    // (RoutePluginConfig::getMergedConfigId RELEASE_ASSERTs on it).
    expect(child != 0 && invalid_route_config_id != 0, "invalid_route_config",
           "accepted as a config that refuses its requests");
  }

  if (wanted(only, nonly, "get_allowed"))
    scenario_get("get_allowed", "http://localhost:3000", 0, CAPIOK, NULL, 1, filter_config_id);
  if (wanted(only, nonly, "get_no_origin"))
    scenario_get("get_no_origin", NULL, 0, CAPIOK, NULL, 1, filter_config_id);
  if (wanted(only, nonly, "get_refused"))
    scenario_get("get_refused", "https://evil.example", 0, CAPIOK, NULL, 1, filter_config_id);
  if (wanted(only, nonly, "token_stream")) scenario_tokens("token_stream");
  if (wanted(only, nonly, "client_gone"))
    scenario_get("client_gone", "http://localhost:3000", 0, CAPIOK, "16384", 0, filter_config_id);
  if (wanted(only, nonly, "preflight_allowed")) scenario_preflight("preflight_allowed", "http://localhost:3000", 0);
  if (wanted(only, nonly, "preflight_refused")) scenario_preflight("preflight_refused", "https://evil.example", 0);
  if (wanted(only, nonly, "preflight_with_body"))
    scenario_preflight("preflight_with_body", "http://localhost:3000", 1);
  if (route_config_id && wanted(only, nonly, "route_allowed"))
    scenario_route("route_allowed", route_config_id, "https://route.example");
  if (invalid_route_config_id && wanted(only, nonly, "route_invalid"))
    scenario_route("route_invalid", invalid_route_config_id, "https://route.example");
  // Panics: a callback answers what Envoy answers elsewhere, and Go code
  // (Envoy's shim, under the sse filter's EncodeHeaders) panics on it.
  if (wanted(only, nonly, "panic_protocol"))
    scenario_get("panic_protocol", "http://localhost:3000", 9, CAPIOK, NULL, 1, filter_config_id);
  if (wanted(only, nonly, "panic_invalid_phase"))
    scenario_get("panic_invalid_phase", "http://localhost:3000", 0, CAPIInvalidPhase, NULL, 1, filter_config_id);

  // Teardown as Envoy's config destructors do; then the asan hook, which
  // forces a GC so Go's finalizers hand the requests back.
  trace("\n=== teardown");
  if (route_config_id) so.destroy_config(route_config_id, 0);
  if (invalid_route_config_id) so.destroy_config(invalid_route_config_id, 0);
  trace("-> envoyGoFilterDestroyHttpPluginConfig(%llu, 0)", (unsigned long long)filter_config_id);
  so.destroy_config(filter_config_id, 0);
  filter_config_gone = 1;
  trace("-> envoyGoFilterCleanUp()");
  so.cleanup();
  // Go's finalizers keep running on its own threads while the process
  // exits: their trace would interleave with the verdict.
  pthread_mutex_lock(&mu);
  verbose = 0;
  pthread_mutex_unlock(&mu);
  fprintf(stdout, "{\"scenario\":\"teardown\",\"panic_error\":%lld,\"metrics\":{", (long long)panic_error);
  for (int i = 0; i < nmetrics; i++) {
    fprintf(stdout, "%s", i ? "," : "");
    jz(stdout, metrics[i].name);
    fprintf(stdout, ":%lld", (long long)metrics[i].value);
  }
  fprintf(stdout, "}}\n");
  for (int i = 0; i < nmetrics; i++)
    if (metrics[i].type == 1)
      expect(metrics[i].value == 0, "teardown", "every gauge is back to 0 once every stream ended");
  fprintf(stderr, "%s: %d check(s) failed\n", failures ? "FAIL" : "PASS", failures);
  return failures ? 1 : 0;
}
