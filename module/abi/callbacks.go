package abi

/*
#include "stream.h"

#include <stdlib.h>
#include <string.h>

// In a Go test binary the weak callbacks are NULL.
static inline int sse_in_envoy(void) { return envoy_dynamic_module_callback_log != NULL; }

// -1 where Envoy has no histogram callbacks (a Go test binary).
static inline int sse_define_histogram(void* config, sse_buffer name, size_t* id) {
  if (envoy_dynamic_module_callback_http_filter_config_define_histogram == NULL) return -1;
  return envoy_dynamic_module_callback_http_filter_config_define_histogram(config, name, NULL, 0, id);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"unsafe"
)

// HeaderType selects a header map of the stream.
type HeaderType int32

// The ABI's enum values come from sse_abi.h, named as in Envoy's abi.h.
const (
	RequestHeaders   HeaderType = C.envoy_dynamic_module_type_http_header_type_RequestHeader
	RequestTrailers  HeaderType = C.envoy_dynamic_module_type_http_header_type_RequestTrailer
	ResponseHeaders  HeaderType = C.envoy_dynamic_module_type_http_header_type_ResponseHeader
	ResponseTrailers HeaderType = C.envoy_dynamic_module_type_http_header_type_ResponseTrailer
)

// Attribute is one of Envoy's attributes, numbered as the ABI's
// attribute_id enum (only those the SSE module reads).
type Attribute int32

const (
	// AttributeRequestProtocol: "HTTP/1.1", "HTTP/2"... (request.protocol).
	AttributeRequestProtocol Attribute = C.envoy_dynamic_module_type_attribute_id_RequestProtocol
	// AttributeResponseCodeDetails: response.code_details (1.40).
	AttributeResponseCodeDetails Attribute = C.envoy_dynamic_module_type_attribute_id_ResponseCodeDetails
	// AttributeResponseFlags: response.flags, the legacy bitmask (1.40).
	AttributeResponseFlags Attribute = C.envoy_dynamic_module_type_attribute_id_ResponseFlags
	// AttributeRouteName: xds.route_name.
	AttributeRouteName Attribute = C.envoy_dynamic_module_type_attribute_id_XdsRouteName
)

// LogLevel is Envoy's log level.
type LogLevel int32

const (
	LogTrace    LogLevel = C.envoy_dynamic_module_type_log_level_Trace
	LogDebug    LogLevel = C.envoy_dynamic_module_type_log_level_Debug
	LogInfo     LogLevel = C.envoy_dynamic_module_type_log_level_Info
	LogWarn     LogLevel = C.envoy_dynamic_module_type_log_level_Warn
	LogError    LogLevel = C.envoy_dynamic_module_type_log_level_Error
	LogCritical LogLevel = C.envoy_dynamic_module_type_log_level_Critical
)

// Header is one header of a local reply.
type Header struct{ Key, Value string }

// inEnvoy reports whether Envoy's callbacks are there, that is whether the
// code runs inside the Envoy process rather than in a Go test binary.
func inEnvoy() bool { return C.sse_in_envoy() != 0 }

// Log writes msg to Envoy's log (component dynamic_modules), or to stderr
// outside Envoy.
func Log(level LogLevel, msg string) {
	if !inEnvoy() {
		fmt.Fprintf(os.Stderr, "[%d] %s\n", level, msg)
		return
	}
	C.envoy_dynamic_module_callback_log(C.int(level), moduleBuffer(msg))
}

// moduleBuffer points Envoy at Go memory for the length of one call. The
// bytes hold no Go pointers, which is what cgo's pointer rules ask.
func moduleBuffer(s string) C.sse_buffer {
	return C.sse_buffer{ptr: (*C.char)(unsafe.Pointer(unsafe.StringData(s))), length: C.size_t(len(s))}
}

// envoyBytes views Envoy's memory without copying; valid until the hook
// returns.
func envoyBytes(b C.sse_buffer) []byte {
	if b.ptr == nil || b.length == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(b.ptr)), int(b.length))
}

// Config is Envoy's side of a filter configuration, valid inside the
// config-new hook: the only place stats can be defined.
type Config struct{ ptr unsafe.Pointer }

var errMetrics = errors.New("envoy refused the metric")

// DefineCounter defines a counter and returns its id. Envoy puts
// StatPrefix and, on 1.40, the metrics_namespace in front of name.
func (c Config) DefineCounter(name string) (uint64, error) {
	var id C.size_t
	if r := C.envoy_dynamic_module_callback_http_filter_config_define_counter(c.ptr, moduleBuffer(name), nil, 0, &id); r != C.envoy_dynamic_module_type_metrics_result_Success {
		return 0, fmt.Errorf("defining counter %s: %w (result %d)", name, errMetrics, r)
	}
	return uint64(id), nil
}

// DefineGauge defines a gauge and returns its id.
func (c Config) DefineGauge(name string) (uint64, error) {
	var id C.size_t
	if r := C.envoy_dynamic_module_callback_http_filter_config_define_gauge(c.ptr, moduleBuffer(name), nil, 0, &id); r != C.envoy_dynamic_module_type_metrics_result_Success {
		return 0, fmt.Errorf("defining gauge %s: %w (result %d)", name, errMetrics, r)
	}
	return uint64(id), nil
}

// DefineHistogram defines a histogram and returns its id; only where
// Histograms (1.40).
func (c Config) DefineHistogram(name string) (uint64, error) {
	var id C.size_t
	if !Histograms {
		return 0, fmt.Errorf("defining histogram %s: %w (no histograms in this ABI)", name, errMetrics)
	}
	if r := C.sse_define_histogram(c.ptr, moduleBuffer(name), &id); r != C.envoy_dynamic_module_type_metrics_result_Success {
		return 0, fmt.Errorf("defining histogram %s: %w (result %d)", name, errMetrics, r)
	}
	return uint64(id), nil
}

// Filter is Envoy's side of one HTTP stream, valid from the filter-new hook
// to the stream-complete hook (1.40 destroys a filter after its stream is
// gone), with the stream's C state the body hook updates.
type Filter struct {
	ptr    unsafe.Pointer
	stream *C.sse_stream
}

// Header returns the first value of a header, copied into Go.
func (f Filter) Header(t HeaderType, key string) (string, bool) {
	var result C.sse_buffer
	if !C.envoy_dynamic_module_callback_http_get_header(f.ptr, C.int(t), moduleBuffer(key), &result, 0, nil) {
		return "", false
	}
	return string(envoyBytes(result)), true
}

// SetHeader replaces a header. An empty value removes it: that is what the
// 1.37 ABI does with one.
func (f Filter) SetHeader(t HeaderType, key, value string) bool {
	return bool(C.envoy_dynamic_module_callback_http_set_header(f.ptr, C.int(t), moduleBuffer(key), moduleBuffer(value)))
}

// RemoveHeader removes every value of a header.
func (f Filter) RemoveHeader(t HeaderType, key string) bool {
	return bool(C.envoy_dynamic_module_callback_http_set_header(f.ptr, C.int(t), moduleBuffer(key), C.sse_buffer{}))
}

// SendResponse answers the request from Envoy (a local reply).
func (f Filter) SendResponse(status int, headers []Header, body, details string) {
	// The header array crosses to C with pointers in it, so it lives in C
	// memory; the strings it points at are Go memory without pointers.
	var arr *C.sse_header
	if len(headers) > 0 {
		arr = (*C.sse_header)(C.calloc(C.size_t(len(headers)), C.size_t(unsafe.Sizeof(C.sse_header{}))))
		defer C.free(unsafe.Pointer(arr))
		// Strings are copied too: a C array may not hold Go pointers.
		cs := make([]*C.char, 0, 2*len(headers))
		defer func() {
			for _, p := range cs {
				C.free(unsafe.Pointer(p))
			}
		}()
		hs := unsafe.Slice(arr, len(headers))
		for i, h := range headers {
			k, v := C.CString(h.Key), C.CString(h.Value)
			cs = append(cs, k, v)
			hs[i] = C.sse_header{key_ptr: k, key_length: C.size_t(len(h.Key)), value_ptr: v, value_length: C.size_t(len(h.Value))}
		}
	}
	C.envoy_dynamic_module_callback_http_send_response(f.ptr, C.uint32_t(status), arr, C.size_t(len(headers)),
		moduleBuffer(body), moduleBuffer(details))
}

// SetMetadataNumber sets a number in the stream's dynamic metadata.
func (f Filter) SetMetadataNumber(ns, key string, v float64) {
	C.envoy_dynamic_module_callback_http_set_dynamic_metadata_number(f.ptr, moduleBuffer(ns), moduleBuffer(key), C.double(v))
}

// SetMetadataString sets a string in the stream's dynamic metadata.
func (f Filter) SetMetadataString(ns, key, v string) {
	C.envoy_dynamic_module_callback_http_set_dynamic_metadata_string(f.ptr, moduleBuffer(ns), moduleBuffer(key), moduleBuffer(v))
}

// AttributeString reads a string attribute, copied into Go.
func (f Filter) AttributeString(a Attribute) (string, bool) {
	var result C.sse_buffer
	if !C.envoy_dynamic_module_callback_http_filter_get_attribute_string(f.ptr, C.int(a), &result) {
		return "", false
	}
	return string(envoyBytes(result)), true
}

// AttributeInt reads an integer attribute.
func (f Filter) AttributeInt(a Attribute) (uint64, bool) {
	var result C.uint64_t
	if !C.envoy_dynamic_module_callback_http_filter_get_attribute_int(f.ptr, C.int(a), &result) {
		return 0, false
	}
	return uint64(result), true
}

// IncrementCounter adds v to a counter defined in the config-new hook.
func (f Filter) IncrementCounter(id, v uint64) {
	C.envoy_dynamic_module_callback_http_filter_increment_counter(f.ptr, C.size_t(id), nil, 0, C.uint64_t(v))
}

// RecordHistogram records v in a histogram defined in the config-new hook.
func (f Filter) RecordHistogram(id, v uint64) {
	C.envoy_dynamic_module_callback_http_filter_record_histogram_value(f.ptr, C.size_t(id), nil, 0, C.uint64_t(v))
}

// AddGauge moves a gauge up (delta > 0) or down.
func (f Filter) AddGauge(id uint64, delta int64) {
	if delta >= 0 {
		C.envoy_dynamic_module_callback_http_filter_increment_gauge(f.ptr, C.size_t(id), nil, 0, C.uint64_t(delta))
		return
	}
	C.envoy_dynamic_module_callback_http_filter_decrement_gauge(f.ptr, C.size_t(id), nil, 0, C.uint64_t(-delta))
}

// RouteConfig returns what the module's NewPerRouteConfig made for the
// most specific route config of this stream, or nil.
func (f Filter) RouteConfig() any {
	h := uintptr(unsafe.Pointer(C.envoy_dynamic_module_callback_get_most_specific_route_config(f.ptr)))
	if h == 0 {
		return nil
	}
	v, _ := routeConfigs.get(h)
	return v
}
