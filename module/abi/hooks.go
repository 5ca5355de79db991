package abi

// The event hooks Envoy looks up by name (1.40.0, and 1.37.0 with -tags
// envoy137). Module-side pointers are handles (uintptr_t, the same register
// as a pointer in the C ABI); Envoy's pointers stay opaque. Every hook recovers panics, logs them and fails
// open: a status hook returns Continue (recoverStatus), a config hook 0
// (Envoy refuses the configuration), filter-new a pass-through stream. A
// filter that must fail otherwise recovers in its own hook first (the SSE
// module's response headers remove the CORS grant, then re-panic).

/*
#include "slack.h"
#include "stream.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"
)

// version is Version as a C string that lives as long as the process.
var version = C.CString(Version)

// Envoy loads the module only if this returns its ABI version; NULL
// unloads it at once. The C body hook has no values of its own: without
// SetStreamSettings (the module's init) it must not run.
//
//export envoy_dynamic_module_on_program_init
func envoy_dynamic_module_on_program_init() *C.char {
	// On the thread that loaded the library, right after: see slack.c.
	C.sse_restore_host_slack()
	if !streamSettingsSet() {
		Log(LogCritical, "sse: the stream settings were never set (abi.SetStreamSettings in the module's init): refusing to load")
		return nil
	}
	return version
}

//export envoy_dynamic_module_on_http_filter_config_new
func envoy_dynamic_module_on_http_filter_config_new(configEnvoy unsafe.Pointer, name, config C.sse_buffer) (h C.uintptr_t) {
	defer recoverHook("http_filter_config_new")
	if registered == nil {
		Log(LogError, "sse: no module registered")
		return 0
	}
	n := string(envoyBytes(name))
	fc, err := registered.NewFilterConfig(Config{configEnvoy}, n, envoyBytes(config))
	if err == nil && fc == nil {
		err = errors.New("no filter config")
	}
	if err != nil {
		// Envoy only says "Failed to initialize dynamic module": the line
		// naming the bad field is this one.
		Log(LogError, fmt.Sprintf("sse: filter %q: refusing the configuration: %v", n, err))
		return 0
	}
	return C.uintptr_t(filterConfigs.add(fc))
}

//export envoy_dynamic_module_on_http_filter_config_destroy
func envoy_dynamic_module_on_http_filter_config_destroy(h C.uintptr_t) {
	defer recoverHook("http_filter_config_destroy")
	filterConfigs.remove(uintptr(h))
}

//export envoy_dynamic_module_on_http_filter_per_route_config_new
func envoy_dynamic_module_on_http_filter_per_route_config_new(name, config C.sse_buffer) (h C.uintptr_t) {
	defer recoverHook("http_filter_per_route_config_new")
	if registered == nil {
		Log(LogError, "sse: no module registered")
		return 0
	}
	n := string(envoyBytes(name))
	rc, err := registered.NewPerRouteConfig(n, envoyBytes(config))
	if err == nil && rc == nil {
		err = errors.New("no per-route config")
	}
	if err != nil {
		Log(LogError, fmt.Sprintf("sse: per-route config %q: refusing the configuration: %v", n, err))
		return 0
	}
	return C.uintptr_t(routeConfigs.add(rc))
}

//export envoy_dynamic_module_on_http_filter_per_route_config_destroy
func envoy_dynamic_module_on_http_filter_per_route_config_destroy(h C.uintptr_t) {
	defer recoverHook("http_filter_per_route_config_destroy")
	routeConfigs.remove(uintptr(h))
}

//export envoy_dynamic_module_on_http_filter_new
func envoy_dynamic_module_on_http_filter_new(configHandle C.uintptr_t, filterEnvoy unsafe.Pointer) (p C.uintptr_t) {
	// The stream's C state and a pass-through filter exist before the
	// module's code runs: NULL would make Envoy close the stream, so a panic
	// or a nil filter leaves a stream that the filter does not touch.
	handle := filters.add(PassThrough{})
	s := newStream(handle)
	if s == nil {
		filters.remove(handle)
		Log(LogError, "sse: out of memory in http_filter_new")
		return 0
	}
	defer func() {
		if r := recover(); r != nil {
			Log(LogError, fmt.Sprintf("sse: panic in http_filter_new, passing the stream through: %v", r))
			p = streamAddr(s)
		}
	}()
	if fc, ok := filterConfigs.get(uintptr(configHandle)); ok {
		if f := fc.NewFilter(Filter{ptr: filterEnvoy, stream: s}); f != nil {
			filters.set(handle, f)
		}
	}
	return streamAddr(s)
}

// filterOf finds the Go filter of the stream whose C state is at p.
func filterOf(p C.uintptr_t) HTTPFilter {
	if s := streamAt(p); s != nil {
		if f, ok := filters.get(uintptr(s.go_handle)); ok {
			return f
		}
	}
	return PassThrough{}
}

// recoverStatus is recoverHook for a hook that returns a status: on a panic
// the hook returns Continue, its failure value.
func recoverStatus(hook string, s *C.int) {
	if r := recover(); r != nil {
		logPanic(hook, r)
		*s = C.int(Continue)
	}
}

//export envoy_dynamic_module_on_http_filter_request_headers
func envoy_dynamic_module_on_http_filter_request_headers(_ unsafe.Pointer, h C.uintptr_t, endOfStream C.bool) (s C.int) {
	defer recoverStatus("http_filter_request_headers", &s)
	return C.int(filterOf(h).OnRequestHeaders(bool(endOfStream)))
}

//export envoy_dynamic_module_on_http_filter_request_body
func envoy_dynamic_module_on_http_filter_request_body(_ unsafe.Pointer, h C.uintptr_t, endOfStream C.bool) (s C.int) {
	defer recoverStatus("http_filter_request_body", &s)
	return C.int(filterOf(h).OnRequestBody(bool(endOfStream)))
}

//export envoy_dynamic_module_on_http_filter_request_trailers
func envoy_dynamic_module_on_http_filter_request_trailers(_ unsafe.Pointer, h C.uintptr_t) (s C.int) {
	defer recoverStatus("http_filter_request_trailers", &s)
	return C.int(filterOf(h).OnRequestTrailers())
}

//export envoy_dynamic_module_on_http_filter_response_headers
func envoy_dynamic_module_on_http_filter_response_headers(_ unsafe.Pointer, h C.uintptr_t, endOfStream C.bool) (s C.int) {
	defer recoverStatus("http_filter_response_headers", &s)
	return C.int(filterOf(h).OnResponseHeaders(bool(endOfStream)))
}

//export envoy_dynamic_module_on_http_filter_response_trailers
func envoy_dynamic_module_on_http_filter_response_trailers(_ unsafe.Pointer, h C.uintptr_t) (s C.int) {
	defer recoverStatus("http_filter_response_trailers", &s)
	return C.int(filterOf(h).OnResponseTrailers())
}

//export envoy_dynamic_module_on_http_filter_stream_complete
func envoy_dynamic_module_on_http_filter_stream_complete(_ unsafe.Pointer, h C.uintptr_t) {
	defer recoverHook("http_filter_stream_complete")
	filterOf(h).OnStreamComplete()
}

//export envoy_dynamic_module_on_http_filter_destroy
func envoy_dynamic_module_on_http_filter_destroy(p C.uintptr_t) {
	defer recoverHook("http_filter_destroy")
	s := streamAt(p)
	if s == nil {
		return
	}
	f, ok := filters.remove(uintptr(s.go_handle))
	// The C state goes even if OnDestroy panics.
	defer freeStream(s)
	if ok {
		f.OnDestroy()
	}
}

// sse_module_on_event is called by the C body hook (stream.c) with an event
// that passed the stream's extract rules' cheap test.
//
//export sse_module_on_event
func sse_module_on_event(handle C.uintptr_t, mask C.uint32_t, data *C.char, n C.size_t, cut C.bool) {
	defer recoverHook("sse_module_on_event")
	f, ok := filters.get(uintptr(handle))
	if !ok {
		return
	}
	if r, ok := f.(EventReader); ok {
		r.OnEventData(uint32(mask), unsafe.Slice((*byte)(unsafe.Pointer(data)), int(n)), bool(cut))
	}
}

// Hooks 1.37.0 requires although the SSE module starts no callouts, uses no
// scheduler and ignores watermarks.

//export envoy_dynamic_module_on_http_filter_http_callout_done
func envoy_dynamic_module_on_http_filter_http_callout_done(p0 unsafe.Pointer, p1 C.uintptr_t, p2 C.uint64_t, p3 C.int, p4 unsafe.Pointer, p5 C.size_t, p6 unsafe.Pointer, p7 C.size_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_headers
func envoy_dynamic_module_on_http_filter_http_stream_headers(p0 unsafe.Pointer, p1 C.uintptr_t, p2 C.uint64_t, p3 unsafe.Pointer, p4 C.size_t, p5 C.bool) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_data
func envoy_dynamic_module_on_http_filter_http_stream_data(p0 unsafe.Pointer, p1 C.uintptr_t, p2 C.uint64_t, p3 unsafe.Pointer, p4 C.size_t, p5 C.bool) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_trailers
func envoy_dynamic_module_on_http_filter_http_stream_trailers(p0 unsafe.Pointer, p1 C.uintptr_t, p2 C.uint64_t, p3 unsafe.Pointer, p4 C.size_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_complete
func envoy_dynamic_module_on_http_filter_http_stream_complete(p0 unsafe.Pointer, p1 C.uintptr_t, p2 C.uint64_t) {
}

//export envoy_dynamic_module_on_http_filter_http_stream_reset
func envoy_dynamic_module_on_http_filter_http_stream_reset(p0 unsafe.Pointer, p1 C.uintptr_t, p2 C.uint64_t, p3 C.int) {
}

//export envoy_dynamic_module_on_http_filter_scheduled
func envoy_dynamic_module_on_http_filter_scheduled(p0 unsafe.Pointer, p1 C.uintptr_t, p2 C.uint64_t) {
}

//export envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark
func envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(p0 unsafe.Pointer, p1 C.uintptr_t) {
}

//export envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark
func envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(p0 unsafe.Pointer, p1 C.uintptr_t) {
}
