//go:build envoy137

package abiinfo

const (
	// Version is what envoy_dynamic_module_on_program_init returns: the ABI
	// version of stock Envoy 1.37.0 (the only 64-hex string in the binary
	// besides the sha256 of the empty string). 1.37.0 refuses any other
	// value, misleadingly, as "<lib>.so not found in any search path".
	Version = "4dae397a7c9ff0238d318d57ea656ce8b3fbff595787dcd7ee2ff5b79c9fe10f"
	// Release is the Envoy release these bindings are for.
	Release = "1.37"
	// BuildTags are the go build tags that select this ABI.
	BuildTags = "envoy137"
	// StatsInNamespace: 1.37 has no metrics_namespace; a stat's name is the
	// whole name ("sse.events") under Envoy's StatPrefix.
	StatsInNamespace = false
	// StatPrefix is what Envoy 1.37 puts in front of a module's stats.
	StatPrefix = "dynamicmodulescustom."
	// EndKnown: 1.37 gives a module neither response flags nor details, so a
	// stream the upstream did not finish ends as "reset".
	EndKnown = false
	// Histograms: left out on 1.37, whose histogram callbacks these
	// bindings were not written against; the per-stream timing is still in
	// the metadata and the closed line.
	Histograms = false
)
