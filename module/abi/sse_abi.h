// Declarations of the parts of Envoy 1.37.0's dynamic-module C ABI that the
// SSE module uses, written from Envoy v1.37.1's abi_impl.cc. Declarations
// only: cgo copies every preamble that includes this into two C files.
#ifndef SSE_ABI_H
#define SSE_ABI_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Both buffer kinds of the ABI (envoy_buffer: Envoy's memory; module_buffer:
// ours) are {pointer, length}.
typedef struct {
  const char* ptr;
  size_t length;
} sse_buffer;

// envoy_http_header and module_http_header.
typedef struct {
  const char* key_ptr;
  size_t key_length;
  const char* value_ptr;
  size_t value_length;
} sse_header;

// Callbacks of the 1.37.0 binary. Enums are C ints; metrics results are
// enums too (0 is Success).
#define SSE_WEAK __attribute__((weak))

SSE_WEAK void envoy_dynamic_module_callback_log(int level, sse_buffer message);
SSE_WEAK bool envoy_dynamic_module_callback_log_enabled(int level);

SSE_WEAK int envoy_dynamic_module_callback_http_filter_config_define_counter(
    void* config_envoy_ptr, sse_buffer name, sse_buffer* label_names, size_t label_names_length,
    size_t* id);
SSE_WEAK int envoy_dynamic_module_callback_http_filter_config_define_gauge(
    void* config_envoy_ptr, sse_buffer name, sse_buffer* label_names, size_t label_names_length,
    size_t* id);
SSE_WEAK int envoy_dynamic_module_callback_http_filter_increment_counter(
    void* filter_envoy_ptr, size_t id, sse_buffer* label_values, size_t label_values_length,
    uint64_t value);
SSE_WEAK int envoy_dynamic_module_callback_http_filter_increment_gauge(
    void* filter_envoy_ptr, size_t id, sse_buffer* label_values, size_t label_values_length,
    uint64_t value);
SSE_WEAK int envoy_dynamic_module_callback_http_filter_decrement_gauge(
    void* filter_envoy_ptr, size_t id, sse_buffer* label_values, size_t label_values_length,
    uint64_t value);

SSE_WEAK bool envoy_dynamic_module_callback_http_get_header(
    void* filter_envoy_ptr, int header_type, sse_buffer key, sse_buffer* result, size_t index,
    size_t* optional_size);
SSE_WEAK bool envoy_dynamic_module_callback_http_set_header(
    void* filter_envoy_ptr, int header_type, sse_buffer key, sse_buffer value);
SSE_WEAK bool envoy_dynamic_module_callback_http_add_header(
    void* filter_envoy_ptr, int header_type, sse_buffer key, sse_buffer value);

SSE_WEAK void envoy_dynamic_module_callback_http_send_response(
    void* filter_envoy_ptr, uint32_t status_code, sse_header* headers, size_t headers_size,
    sse_buffer body, sse_buffer details);

SSE_WEAK size_t envoy_dynamic_module_callback_http_get_body_chunks_size(void* filter_envoy_ptr,
                                                                         int body_type);
SSE_WEAK bool envoy_dynamic_module_callback_http_get_body_chunks(void* filter_envoy_ptr,
                                                                 int body_type,
                                                                 sse_buffer* result);

SSE_WEAK void envoy_dynamic_module_callback_http_set_dynamic_metadata_number(
    void* filter_envoy_ptr, sse_buffer ns, sse_buffer key, double value);
SSE_WEAK void envoy_dynamic_module_callback_http_set_dynamic_metadata_string(
    void* filter_envoy_ptr, sse_buffer ns, sse_buffer key, sse_buffer value);

SSE_WEAK bool envoy_dynamic_module_callback_http_filter_get_attribute_string(
    void* filter_envoy_ptr, int attribute_id, sse_buffer* result);
SSE_WEAK bool envoy_dynamic_module_callback_http_filter_get_attribute_int(
    void* filter_envoy_ptr, int attribute_id, uint64_t* result);

SSE_WEAK const void* envoy_dynamic_module_callback_get_most_specific_route_config(
    void* filter_envoy_ptr);
#endif
