// Package abi is the cgo boundary between Go and the C ABI of Envoy's
// dynamic modules (envoy.filters.http.dynamic_modules), as the stock Envoy
// 1.37.0 binary implements it. It exports the event hooks Envoy looks up
// with dlsym, turns them into calls on a registered Module, and wraps the
// callbacks Envoy exports (only those `nm -D envoy` shows for 1.37.0).
//
// The declarations are written from Envoy v1.37.1's sources
// (source/extensions/filters/http/dynamic_modules/abi_impl.cc, filter.cc,
// filter_config.cc) because abi.h itself is not in that Go module. Envoy
// finds hooks by name only and never checks a signature: the test that
// loads the library into the real binary is what checks them.
//
// Envoy's callbacks exist only inside the Envoy process, so they are
// declared weak: a Go test binary that links this package resolves them to
// NULL and still builds (tests drive the adapter through fakes instead).
package abi

const (
	// Version is what envoy_dynamic_module_on_program_init returns: the ABI
	// version string of stock Envoy 1.37.0 (the only 64-hex string in the
	// binary besides the sha256 of the empty string). 1.37.0 refuses any
	// other value, misleadingly, as "<lib>.so not found in any search path";
	// 1.38 to 1.40 warn that it is deprecated and load the module.
	Version = "4dae397a7c9ff0238d318d57ea656ce8b3fbff595787dcd7ee2ff5b79c9fe10f"
)
