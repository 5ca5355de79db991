//go:build !sse_nocgoknobs

package abi

// Build with -tags sse_nocgoknobs to measure without these directives
// (BenchmarkResponseBodyHook in package ssemodule).

/*
#include "sse_abi.h"

// The hot callbacks neither keep our pointers past the call nor call back
// into Go, which lets cgo skip escaping their arguments to the heap and the
// bookkeeping for a callback. send_response is not among them: the local
// reply runs through the filter chain, our response hooks included.
#cgo noescape envoy_dynamic_module_callback_http_get_header
#cgo nocallback envoy_dynamic_module_callback_http_get_header
#cgo noescape envoy_dynamic_module_callback_http_set_header
#cgo nocallback envoy_dynamic_module_callback_http_set_header
#cgo noescape envoy_dynamic_module_callback_http_filter_increment_counter
#cgo nocallback envoy_dynamic_module_callback_http_filter_increment_counter
#cgo noescape envoy_dynamic_module_callback_http_filter_increment_gauge
#cgo nocallback envoy_dynamic_module_callback_http_filter_increment_gauge
#cgo noescape envoy_dynamic_module_callback_http_filter_decrement_gauge
#cgo nocallback envoy_dynamic_module_callback_http_filter_decrement_gauge
#cgo noescape envoy_dynamic_module_callback_http_set_dynamic_metadata_number
#cgo nocallback envoy_dynamic_module_callback_http_set_dynamic_metadata_number
#cgo noescape envoy_dynamic_module_callback_http_set_dynamic_metadata_string
#cgo nocallback envoy_dynamic_module_callback_http_set_dynamic_metadata_string
#cgo noescape envoy_dynamic_module_callback_http_filter_get_attribute_string
#cgo nocallback envoy_dynamic_module_callback_http_filter_get_attribute_string
#cgo noescape envoy_dynamic_module_callback_http_filter_get_attribute_int
#cgo nocallback envoy_dynamic_module_callback_http_filter_get_attribute_int
#cgo nocallback envoy_dynamic_module_callback_get_most_specific_route_config
#cgo noescape envoy_dynamic_module_callback_log
#cgo nocallback envoy_dynamic_module_callback_log

*/
import "C"
