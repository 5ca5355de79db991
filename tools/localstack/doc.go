// Package localstack runs the whole system on loopback without Docker: the
// upstream, the ext_proc server (or the golang filter's .so when the Envoy
// binary has the golang extension), Envoy itself with this repo's config
// rewritten to local ports and paths, and the demo page. `make run-local`
// and the end-to-end tests both use it, so what the tests prove is what a
// user runs.
package localstack
