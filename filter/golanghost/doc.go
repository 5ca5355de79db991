// Package golanghost drives the golang filter's .so (bin/sse.so) through a
// host written in C (csrc/host.c) that stands in for Envoy v1.37.1's side of
// the golang HTTP filter ABI: the C callbacks of Envoy's api.h and the calls
// into the .so's exported entry points. Its test builds both, runs the host
// and checks what the .so asked of it: headers, local replies, dynamic
// metadata, stats, log lines, and that panics stay inside the .so.
//
// The package has no code of its own: the host is C, and a Go test binary
// that imported Envoy's Go shim would crash at init (it calls into Envoy).
package golanghost
