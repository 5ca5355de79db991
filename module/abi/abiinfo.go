package abi

import "example.com/sse-on-envoy/module/abiinfo"

// What differs between the ABIs, defined once in module/abiinfo (by build
// tag: abiinfo_140.go by default, abiinfo_137.go with -tags envoy137).
const (
	// Version is what envoy_dynamic_module_on_program_init returns.
	Version = abiinfo.Version
	// Release is the Envoy release these bindings are for.
	Release = abiinfo.Release
	// BuildTags are the go build tags that select this ABI.
	BuildTags = abiinfo.BuildTags
	// StatsInNamespace: a stat is defined by its name within the
	// dynamic_module_config's metrics_namespace (1.40), not by its whole
	// name (1.37).
	StatsInNamespace = abiinfo.StatsInNamespace
	// StatPrefix is what Envoy puts in front of the module's stats.
	StatPrefix = abiinfo.StatPrefix
	// EndKnown: stream-complete can read Envoy's response flags and details.
	EndKnown = abiinfo.EndKnown
	// Histograms: DefineHistogram and RecordHistogram reach Envoy.
	Histograms = abiinfo.Histograms
)
