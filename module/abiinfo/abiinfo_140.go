//go:build !envoy137

package abiinfo

const (
	// Version is what envoy_dynamic_module_on_program_init returns: the
	// ENVOY_DYNAMIC_MODULES_ABI_VERSION of Envoy 1.40's abi.h. Envoy logs
	// "ABI version ... matched" for it, and "... is deprecated" for any other.
	Version = "v0.2.0"
	// Release is the Envoy release these bindings are for.
	Release = "1.40"
	// BuildTags are the go build tags that select this ABI.
	BuildTags = ""
	// StatsInNamespace: Envoy puts a module's stats under the
	// dynamic_module_config's metrics_namespace, so a stat is defined by its
	// name within the namespace ("events" in "sse" shows as sse.events).
	StatsInNamespace = true
	// StatPrefix is what Envoy puts in front of the namespace ("" here).
	StatPrefix = ""
	// EndKnown: stream-complete can read response.flags and
	// response.code_details, so a closed stream says how it ended.
	EndKnown = true
	// Histograms: the module defines histograms and records values in them
	// (define_histogram, record_histogram_value with label arrays, as the
	// counters), so sse.first_event_ms and sse.max_gap_ms exist.
	Histograms = true
)
