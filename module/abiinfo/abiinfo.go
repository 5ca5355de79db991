// Package abiinfo holds what differs between the Envoy releases the dynamic
// module is built for: the ABI version string, the release, the build tags
// that select it, how Envoy names the module's stats and whether a stream's
// end can be told apart. Envoy 1.40 is the default build (abiinfo_140.go),
// 1.37 the compat build with -tags envoy137 (abiinfo_137.go).
//
// It has no cgo and no dependencies, so the tooling and the end-to-end
// tests read these facts without linking the module's cgo bindings
// (module/abi, which re-exports them): tools/ must not depend on module/abi
// (TestToolsDoNotLinkTheModuleBindings in tools).
package abiinfo

import "time"

// GoTimerSlack is the timer slack the Go runtime's threads start with in
// Envoy (module/abi/slack.c, which holds the same value for its
// constructor, which runs before any Go code; a test keeps the two equal):
// it keeps the runtime's monitor thread from waking every 20 µs while
// Envoy's threads call into Go. Envoy's own threads keep theirs.
const GoTimerSlack = 10 * time.Millisecond
