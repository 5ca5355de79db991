package abi

/*
#include "sse_abi.h"
*/
import "C"

import (
	"fmt"
	"runtime/debug"
)

// Status is what a header, body or trailer hook tells Envoy. Continue is 0
// in every status enum of the ABI.
type Status int32

const (
	Continue Status = C.envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue
	// StopIteration stops headers or trailers; for a body hook, the same
	// value means StopIterationAndBuffer.
	StopIteration Status = C.envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration
	// StopAndBuffer is a body hook's StopIterationAndBuffer.
	StopAndBuffer Status = C.envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationAndBuffer
	// StopNoBuffer is a body hook's StopIterationNoBuffer: what a hook that
	// has just sent a local reply returns.
	StopNoBuffer Status = C.envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationNoBuffer
)

// Module is what a dynamic module implements: it makes a FilterConfig for
// each filter configuration and a value for each per-route configuration.
type Module interface {
	// NewFilterConfig runs on Envoy's main thread; stats can be defined on
	// c only here. An error refuses the configuration (and is logged).
	NewFilterConfig(c Config, name string, config []byte) (FilterConfig, error)
	// NewPerRouteConfig makes what Filter.RouteConfig returns on the route.
	NewPerRouteConfig(name string, config []byte) (any, error)
}

// FilterConfig makes a filter for each HTTP stream, on its worker thread.
type FilterConfig interface {
	NewFilter(f Filter) HTTPFilter
}

// HTTPFilter gets one stream's events, one at a time on its worker thread.
// Response body chunks are not among them: the C body hook counts them for
// streams that asked it to (Filter.CountBody). A method that panics fails
// open: the hook logs the panic and returns Continue. A filter whose failure
// value differs recovers itself, does what failing means, and re-panics.
type HTTPFilter interface {
	OnRequestHeaders(endOfStream bool) Status
	OnRequestBody(endOfStream bool) Status
	OnRequestTrailers() Status
	OnResponseHeaders(endOfStream bool) Status
	OnResponseTrailers() Status
	// OnStreamComplete runs before the access log is written: the last hook
	// that may call Envoy about the stream.
	OnStreamComplete()
	// OnDestroy must not call Envoy about the stream: 1.40 runs it after the
	// stream is gone.
	OnDestroy()
}

// EventReader is an HTTPFilter that reads the events the C body hook hands
// it (Filter.ReadEvents): mask says which extract rules' cheap test the
// event passed, data (valid only during the call) is its data, cut says it
// went past the rules' event size.
type EventReader interface {
	OnEventData(mask uint32, data []byte, cut bool)
}

// PassThrough is an HTTPFilter that does nothing: what a stream gets when
// its filter could not be made.
type PassThrough struct{}

func (PassThrough) OnRequestHeaders(bool) Status  { return Continue }
func (PassThrough) OnRequestBody(bool) Status     { return Continue }
func (PassThrough) OnRequestTrailers() Status     { return Continue }
func (PassThrough) OnResponseHeaders(bool) Status { return Continue }
func (PassThrough) OnResponseTrailers() Status    { return Continue }
func (PassThrough) OnStreamComplete()             {}
func (PassThrough) OnDestroy()                    {}

var registered Module

// Register sets the module the hooks call; the c-shared main package calls
// it from init, before Envoy can call any hook.
func Register(m Module) { registered = m }

// recoverHook keeps a panic from reaching Envoy, where it would abort the
// process: it logs the panic and lets the hook return its fail-open value.
func recoverHook(hook string) {
	if r := recover(); r != nil {
		logPanic(hook, r)
	}
}

func logPanic(hook string, r any) {
	Log(LogError, fmt.Sprintf("sse: panic in %s, failing open: %v\n%s", hook, r, debug.Stack()))
}
