// Package fakeenvoy stands in for Envoy's side of the dynamic-module ABI in
// Go tests: it defines, in C, the callbacks package abi declares weak, and
// calls the exported hooks from C as Envoy does. Importing it into a test
// binary is what makes the real cgo path (C to Go hook, Go to C callback)
// run and measurable without Envoy. Never import it into the module.
package fakeenvoy

/*
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../sse_abi.h"

#define FAKE_MAX 32

static const char* fake_keys[4][FAKE_MAX];
static const char* fake_values[4][FAKE_MAX];
static int fake_nheaders[4];

static sse_buffer fake_body[8];
static size_t fake_nbody;

static uint64_t fake_stats[FAKE_MAX];
static size_t fake_nstats;

static char fake_last_log[4096];
static int fake_nlogs;
static uint32_t fake_reply_status;

void envoy_dynamic_module_callback_log(int level, sse_buffer message) {
  size_t n = message.length < sizeof(fake_last_log) - 1 ? message.length : sizeof(fake_last_log) - 1;
  memcpy(fake_last_log, message.ptr, n);
  fake_last_log[n] = 0;
  fake_nlogs++;
}
bool envoy_dynamic_module_callback_log_enabled(int level) { return true; }

#define FAKE_STAT_OK envoy_dynamic_module_type_metrics_result_Success

static int fake_define(size_t* id) {
  if (fake_nstats == FAKE_MAX) return envoy_dynamic_module_type_metrics_result_Frozen;
  *id = fake_nstats++;
  return FAKE_STAT_OK;
}
int envoy_dynamic_module_callback_http_filter_config_define_counter(void* c, sse_buffer name, sse_buffer* l, size_t n, size_t* id) { return fake_define(id); }
int envoy_dynamic_module_callback_http_filter_config_define_gauge(void* c, sse_buffer name, sse_buffer* l, size_t n, size_t* id) { return fake_define(id); }
int envoy_dynamic_module_callback_http_filter_increment_counter(void* f, size_t id, sse_buffer* l, size_t n, uint64_t v) { fake_stats[id] += v; return FAKE_STAT_OK; }
int envoy_dynamic_module_callback_http_filter_config_define_histogram(void* c, sse_buffer name, sse_buffer* l, size_t n, size_t* id) { return fake_define(id); }
// A histogram's stat is the sum of the values recorded.
int envoy_dynamic_module_callback_http_filter_record_histogram_value(void* f, size_t id, sse_buffer* l, size_t n, uint64_t v) { fake_stats[id] += v; return FAKE_STAT_OK; }
int envoy_dynamic_module_callback_http_filter_increment_gauge(void* f, size_t id, sse_buffer* l, size_t n, uint64_t v) { fake_stats[id] += v; return FAKE_STAT_OK; }
int envoy_dynamic_module_callback_http_filter_decrement_gauge(void* f, size_t id, sse_buffer* l, size_t n, uint64_t v) { fake_stats[id] -= v; return FAKE_STAT_OK; }

static int fake_find(int t, sse_buffer key) {
  for (int i = 0; i < fake_nheaders[t]; i++) {
    if (fake_keys[t][i] && strlen(fake_keys[t][i]) == key.length && memcmp(fake_keys[t][i], key.ptr, key.length) == 0) return i;
  }
  return -1;
}
bool envoy_dynamic_module_callback_http_get_header(void* f, int t, sse_buffer key, sse_buffer* result, size_t index, size_t* size) {
  int i = fake_find(t, key);
  if (i < 0) { result->ptr = NULL; result->length = 0; return false; }
  result->ptr = fake_values[t][i];
  result->length = strlen(fake_values[t][i]);
  return true;
}
// The header edits since the last reset, one "<type> set|add|remove key[=value]"
// line each, oldest first; set and remove also change the map Gets read.
static char fake_edits[4096];
static size_t fake_edits_len;
static void fake_note_edit(int t, const char* op, sse_buffer key, sse_buffer value, bool with_value) {
  int n = snprintf(fake_edits + fake_edits_len, sizeof(fake_edits) - fake_edits_len, "%d %s %.*s%s%.*s\n", t, op,
                   (int)key.length, key.ptr, with_value ? "=" : "", with_value ? (int)value.length : 0,
                   with_value ? value.ptr : "");
  if (n > 0 && fake_edits_len + (size_t)n < sizeof(fake_edits)) fake_edits_len += (size_t)n;
}
static char* fake_dup(sse_buffer b) {
  char* p = malloc(b.length + 1);
  memcpy(p, b.ptr, b.length);
  p[b.length] = 0;
  return p;
}
static void fake_remove(int t, sse_buffer key) {
  for (int i; (i = fake_find(t, key)) >= 0;) {
    free((void*)fake_keys[t][i]);
    free((void*)fake_values[t][i]);
    fake_nheaders[t]--;
    fake_keys[t][i] = fake_keys[t][fake_nheaders[t]];
    fake_values[t][i] = fake_values[t][fake_nheaders[t]];
  }
}
static void fake_append(int t, sse_buffer key, sse_buffer value) {
  if (fake_nheaders[t] == FAKE_MAX) return;
  int i = fake_nheaders[t]++;
  fake_keys[t][i] = fake_dup(key);
  fake_values[t][i] = fake_dup(value);
}
// An empty value removes the header, as the 1.37 ABI does: RemoveHeader
// sends one.
bool envoy_dynamic_module_callback_http_set_header(void* f, int t, sse_buffer key, sse_buffer value) {
  fake_remove(t, key);
  if (value.length == 0) {
    fake_note_edit(t, "remove", key, value, false);
    return true;
  }
  fake_note_edit(t, "set", key, value, true);
  fake_append(t, key, value);
  return true;
}
bool envoy_dynamic_module_callback_http_add_header(void* f, int t, sse_buffer key, sse_buffer value) {
  fake_note_edit(t, "add", key, value, true);
  fake_append(t, key, value);
  return true;
}
void envoy_dynamic_module_callback_http_send_response(void* f, uint32_t status, sse_header* h, size_t n, sse_buffer body, sse_buffer details) {
  fake_reply_status = status;
}
// The fake body is the chunk a response-body hook received; any other body
// type has nothing, so asking for the wrong one shows in the counts.
size_t envoy_dynamic_module_callback_http_get_body_chunks_size(void* f, int t) {
  return t == envoy_dynamic_module_type_http_body_type_ReceivedResponseBody ? fake_nbody : 0;
}
bool envoy_dynamic_module_callback_http_get_body_chunks(void* f, int t, sse_buffer* result) {
  if (t != envoy_dynamic_module_type_http_body_type_ReceivedResponseBody) return false;
  memcpy(result, fake_body, fake_nbody * sizeof(sse_buffer));
  return true;
}
// The metadata set last, as "ns:key=value" lines, newest last.
static char fake_metadata[4096];
static size_t fake_metadata_len;
static int fake_metadata_sets;
static void fake_note_metadata(sse_buffer ns, sse_buffer key, const char* v, size_t n) {
  fake_metadata_sets++;
  size_t need = ns.length + key.length + n + 3;
  if (fake_metadata_len + need >= sizeof(fake_metadata)) fake_metadata_len = 0;
  char* p = fake_metadata + fake_metadata_len;
  memcpy(p, ns.ptr, ns.length); p += ns.length; *p++ = ':';
  memcpy(p, key.ptr, key.length); p += key.length; *p++ = '=';
  memcpy(p, v, n); p += n; *p++ = '\n';
  fake_metadata_len = (size_t)(p - fake_metadata);
  *p = 0;
}
void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(void* f, sse_buffer ns, sse_buffer key, double v) {
  char num[64];
  int n = snprintf(num, sizeof num, "%.0f", v);
  fake_note_metadata(ns, key, num, (size_t)n);
}
void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(void* f, sse_buffer ns, sse_buffer key, sse_buffer v) {
  fake_note_metadata(ns, key, v.ptr, v.length);
}
bool envoy_dynamic_module_callback_http_filter_get_attribute_string(void* f, int id, sse_buffer* result) {
  result->ptr = "HTTP/1.1";
  result->length = 8;
  return true;
}
bool envoy_dynamic_module_callback_http_filter_get_attribute_int(void* f, int id, uint64_t* result) { return false; }
const void* envoy_dynamic_module_callback_get_most_specific_route_config(void* f) { return NULL; }

// The hooks, as package abi exports them.
extern char* envoy_dynamic_module_on_program_init(void);
extern uintptr_t envoy_dynamic_module_on_http_filter_config_new(void*, sse_buffer, sse_buffer);
extern void envoy_dynamic_module_on_http_filter_config_destroy(uintptr_t);
extern uintptr_t envoy_dynamic_module_on_http_filter_new(uintptr_t, void*);
extern int envoy_dynamic_module_on_http_filter_request_headers(void*, uintptr_t, bool);
extern int envoy_dynamic_module_on_http_filter_response_headers(void*, uintptr_t, bool);
extern int envoy_dynamic_module_on_http_filter_response_body(void*, uintptr_t, bool);
extern void envoy_dynamic_module_on_http_filter_stream_complete(void*, uintptr_t);
extern void envoy_dynamic_module_on_http_filter_destroy(uintptr_t);

// A fake DynamicModuleHttpFilter / Config: only its address matters.
static char fake_filter, fake_config;

static uintptr_t fake_config_new(const char* cfg, size_t n) {
  sse_buffer name = {"sse", 3}, config = {cfg, n};
  return envoy_dynamic_module_on_http_filter_config_new(&fake_config, name, config);
}
static uintptr_t fake_filter_new(uintptr_t c) { return envoy_dynamic_module_on_http_filter_new(c, &fake_filter); }
static int fake_request_headers(uintptr_t h, bool eos) { return envoy_dynamic_module_on_http_filter_request_headers(&fake_filter, h, eos); }
static int fake_response_headers(uintptr_t h, bool eos) { return envoy_dynamic_module_on_http_filter_response_headers(&fake_filter, h, eos); }
static int fake_response_body(uintptr_t h, bool eos) { return envoy_dynamic_module_on_http_filter_response_body(&fake_filter, h, eos); }
static int fake_response_body_n(uintptr_t h, int n) {
  int s = 0;
  for (int i = 0; i < n; i++) s |= envoy_dynamic_module_on_http_filter_response_body(&fake_filter, h, false);
  return s;
}
static void fake_stream_complete(uintptr_t h) { envoy_dynamic_module_on_http_filter_stream_complete(&fake_filter, h); }

static void fake_set_header(int t, const char* k, const char* v) {
  int i = fake_nheaders[t]++;
  fake_keys[t][i] = k;
  fake_values[t][i] = v;
}
static void fake_reset(void) {
  for (int t = 0; t < 4; t++) {
    for (int i = 0; i < fake_nheaders[t]; i++) { free((void*)fake_keys[t][i]); free((void*)fake_values[t][i]); }
    fake_nheaders[t] = 0;
  }
  for (size_t i = 0; i < fake_nbody; i++) free((void*)fake_body[i].ptr);
  fake_nbody = 0;
  memset(fake_stats, 0, sizeof(fake_stats));
  fake_nstats = 0;
  fake_nlogs = 0;
  fake_last_log[0] = 0;
  fake_reply_status = 0;
  fake_metadata_len = 0;
  fake_metadata[0] = 0;
  fake_metadata_sets = 0;
  fake_edits_len = 0;
  fake_edits[0] = 0;
}
static void fake_add_body(const char* p, size_t n) {
  fake_body[fake_nbody].ptr = p;
  fake_body[fake_nbody].length = n;
  fake_nbody++;
}
static const char* fake_body_ptr(int i) { return fake_body[i].ptr; }
static uint64_t fake_stat(size_t id) { return fake_stats[id]; }
static const char* fake_log(void) { return fake_last_log; }
static int fake_logs(void) { return fake_nlogs; }
static uint32_t fake_reply(void) { return fake_reply_status; }
static const char* fake_metadata_lines(void) { return fake_metadata; }
static const char* fake_header_edits(void) { return fake_edits; }
static int fake_metadata_count(void) { return fake_metadata_sets; }
static void fake_clear_body(void) {
  for (size_t i = 0; i < fake_nbody; i++) free((void*)fake_body[i].ptr);
  fake_nbody = 0;
}
static const char* fake_version(void) { return envoy_dynamic_module_on_program_init(); }
*/
import "C"

import "unsafe"

// Header types, as abi numbers them.
const (
	RequestHeaders  = 0
	ResponseHeaders = 2
)

// Reset forgets every header, body chunk, stat and log line.
func Reset() { C.fake_reset() }

// SetHeader adds a header Envoy would hand the module (at most 32 a map).
func SetHeader(t int, key, value string) {
	C.fake_set_header(C.int(t), C.CString(key), C.CString(value))
}

// AddBody adds a slice to the body chunk the response-body hook sees.
func AddBody(s string) { C.fake_add_body(C.CString(s), C.size_t(len(s))) }

// BodyPointer is the C address of body slice i, to check nothing copied it.
func BodyPointer(i int) uintptr { return uintptr(unsafe.Pointer(C.fake_body_ptr(C.int(i)))) }

// ProgramInit calls envoy_dynamic_module_on_program_init.
func ProgramInit() string { return C.GoString(C.fake_version()) }

// ConfigNew calls the config-new hook from C; 0 means refused.
func ConfigNew(config string) uintptr {
	cs := C.CString(config)
	defer C.free(unsafe.Pointer(cs))
	return uintptr(C.fake_config_new(cs, C.size_t(len(config))))
}

// ConfigDestroy calls the config-destroy hook.
func ConfigDestroy(h uintptr) { C.envoy_dynamic_module_on_http_filter_config_destroy(C.uintptr_t(h)) }

// FilterNew calls the filter-new hook for config handle c.
func FilterNew(c uintptr) uintptr { return uintptr(C.fake_filter_new(C.uintptr_t(c))) }

// RequestHeadersHook, ResponseHeadersHook and ResponseBodyHook call the
// hooks from C and return their status.
func RequestHeadersHook(h uintptr, eos bool) int {
	return int(C.fake_request_headers(C.uintptr_t(h), C.bool(eos)))
}

func ResponseHeadersHook(h uintptr, eos bool) int {
	return int(C.fake_response_headers(C.uintptr_t(h), C.bool(eos)))
}

func ResponseBodyHook(h uintptr, eos bool) int {
	return int(C.fake_response_body(C.uintptr_t(h), C.bool(eos)))
}

// ResponseBodyHookN calls the body hook n times from one C loop, so a
// benchmark measures Envoy-to-Go calls rather than Go-to-C ones.
func ResponseBodyHookN(h uintptr, n int) int {
	return int(C.fake_response_body_n(C.uintptr_t(h), C.int(n)))
}

// StreamComplete and Destroy call the last two hooks of a stream.
func StreamComplete(h uintptr) { C.fake_stream_complete(C.uintptr_t(h)) }
func Destroy(h uintptr)        { C.envoy_dynamic_module_on_http_filter_destroy(C.uintptr_t(h)) }

// Stat is a stat's value by the id the module defined it as.
func Stat(id int) int64 { return int64(C.fake_stat(C.size_t(id))) }

// LastLog is the last line the module logged; Logs counts them.
func LastLog() string { return C.GoString(C.fake_log()) }
func Logs() int       { return int(C.fake_logs()) }

// Metadata is the metadata set since the last Reset, one "ns:key=value"
// line each (numbers without decimals), oldest first; MetadataSets counts
// the calls.
func Metadata() string  { return C.GoString(C.fake_metadata_lines()) }
func MetadataSets() int { return int(C.fake_metadata_count()) }

// HeaderEdits are the header edits since the last Reset, one
// "<type> set key=value", "<type> add key=value" or "<type> remove key"
// line each (type as abi numbers header maps: 0 request, 2 response),
// oldest first. Set and remove also change what the module reads back.
func HeaderEdits() string { return C.GoString(C.fake_header_edits()) }

// ClearBody empties the chunk the response-body hook sees.
func ClearBody() { C.fake_clear_body() }

// ReplyStatus is the status of the last local reply, 0 if none.
func ReplyStatus() int { return int(C.fake_reply()) }
