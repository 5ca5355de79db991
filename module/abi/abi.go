// Package abi is the cgo boundary between Go and the C ABI of Envoy's
// dynamic modules (envoy.filters.http.dynamic_modules), as the stock Envoy
// 1.40.0 binary implements it (the default build) or as 1.37.0 does (built
// with -tags envoy137). What differs between the two is in module/abiinfo
// (abiinfo_140.go and abiinfo_137.go, re-exported here), and nowhere else.
// It exports the event hooks Envoy looks up with dlsym, turns them into
// calls on a registered Module, and wraps the callbacks Envoy exports (only
// those `nm -D envoy` shows for both).
//
// The declarations are written from Envoy's abi.h (the ABI is frozen once
// released: every callback used here has the same signature in 1.37 and
// 1.40) and v1.37.1's sources (source/extensions/filters/http/
// dynamic_modules/abi_impl.cc, filter.cc, filter_config.cc). Envoy
// finds hooks by name only and never checks a signature: the test that
// loads the library into the real binary is what checks them.
//
// Every chunk of a response body is handled in C (stream.c, ssescan.c): an
// SSE stream enters the Go runtime at its start and its end, not per event.
//
// Envoy's callbacks exist only inside the Envoy process, so they are
// declared weak: a Go test binary that links this package resolves them to
// NULL and still builds (tests drive the adapter through fakes instead).
package abi
