// Declarations of the parts of Envoy's dynamic-module C ABI that the SSE
// module uses, as stock Envoy 1.40.0 (the default build) and 1.37.0 (the
// compat build, -tags envoy137) implement it: every declaration here is the
// same in both. Written from Envoy's abi.h and v1.37.1's abi_impl.cc.
// Declarations only: cgo copies every preamble that includes this into two
// C files.
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

// The ABI's enums the module uses, named and numbered as in Envoy's abi.h
// (frozen since 1.37: the same values in 1.40). Only the values used are
// listed where an enum is long; the callbacks below take them as C ints.

// envoy_dynamic_module_type_http_header_type: the header map a header
// callback reads or edits.
enum {
  envoy_dynamic_module_type_http_header_type_RequestHeader = 0,
  envoy_dynamic_module_type_http_header_type_RequestTrailer = 1,
  envoy_dynamic_module_type_http_header_type_ResponseHeader = 2,
  envoy_dynamic_module_type_http_header_type_ResponseTrailer = 3,
};

// envoy_dynamic_module_type_http_body_type: the body a body callback reads.
enum {
  envoy_dynamic_module_type_http_body_type_ReceivedRequestBody = 0,
  envoy_dynamic_module_type_http_body_type_BufferedRequestBody = 1,
  envoy_dynamic_module_type_http_body_type_ReceivedResponseBody = 2,
  envoy_dynamic_module_type_http_body_type_BufferedResponseBody = 3,
};

// envoy_dynamic_module_type_log_level (Envoy's base_logger.h levels).
enum {
  envoy_dynamic_module_type_log_level_Trace = 0,
  envoy_dynamic_module_type_log_level_Debug = 1,
  envoy_dynamic_module_type_log_level_Info = 2,
  envoy_dynamic_module_type_log_level_Warn = 3,
  envoy_dynamic_module_type_log_level_Error = 4,
  envoy_dynamic_module_type_log_level_Critical = 5,
  envoy_dynamic_module_type_log_level_Off = 6,
};

// envoy_dynamic_module_type_metrics_result: what the metrics callbacks
// return.
enum {
  envoy_dynamic_module_type_metrics_result_Success = 0,
  envoy_dynamic_module_type_metrics_result_MetricNotFound = 1,
  envoy_dynamic_module_type_metrics_result_InvalidLabels = 2,
  envoy_dynamic_module_type_metrics_result_Frozen = 3,
};

// envoy_dynamic_module_type_attribute_id: the attributes the module reads
// (the enum has about seventy).
enum {
  envoy_dynamic_module_type_attribute_id_RequestProtocol = 10,
  envoy_dynamic_module_type_attribute_id_ResponseCodeDetails = 16,
  envoy_dynamic_module_type_attribute_id_ResponseFlags = 17,
  envoy_dynamic_module_type_attribute_id_XdsRouteName = 61,
};

// What the hooks return: Envoy's FilterHeadersStatus, FilterDataStatus and
// FilterTrailersStatus. Continue is 0 in every one.
enum {
  envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration = 1,
  envoy_dynamic_module_type_on_http_filter_request_headers_status_ContinueAndDontEndStream = 2,
  envoy_dynamic_module_type_on_http_filter_request_headers_status_StopAllIterationAndBuffer = 3,
  envoy_dynamic_module_type_on_http_filter_request_headers_status_StopAllIterationAndWatermark = 4,
};
enum {
  envoy_dynamic_module_type_on_http_filter_request_body_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationAndBuffer = 1,
  envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationAndWatermark = 2,
  envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationNoBuffer = 3,
};
enum {
  envoy_dynamic_module_type_on_http_filter_response_body_status_Continue = 0,
  envoy_dynamic_module_type_on_http_filter_response_body_status_StopIterationAndBuffer = 1,
  envoy_dynamic_module_type_on_http_filter_response_body_status_StopIterationAndWatermark = 2,
  envoy_dynamic_module_type_on_http_filter_response_body_status_StopIterationNoBuffer = 3,
};

// The callbacks. Enums are passed as C ints; the metrics callbacks return a
// metrics_result.
#define SSE_WEAK __attribute__((weak))

SSE_WEAK void envoy_dynamic_module_callback_log(int level, sse_buffer message);
SSE_WEAK bool envoy_dynamic_module_callback_log_enabled(int level);

SSE_WEAK int envoy_dynamic_module_callback_http_filter_config_define_counter(
    void* config_envoy_ptr, sse_buffer name, sse_buffer* label_names, size_t label_names_length,
    size_t* id);
SSE_WEAK int envoy_dynamic_module_callback_http_filter_config_define_gauge(
    void* config_envoy_ptr, sse_buffer name, sse_buffer* label_names, size_t label_names_length,
    size_t* id);
SSE_WEAK int envoy_dynamic_module_callback_http_filter_config_define_histogram(
    void* config_envoy_ptr, sse_buffer name, sse_buffer* label_names, size_t label_names_length,
    size_t* id);
SSE_WEAK int envoy_dynamic_module_callback_http_filter_record_histogram_value(
    void* filter_envoy_ptr, size_t id, sse_buffer* label_values, size_t label_values_length,
    uint64_t value);
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
