// Package ssemodule is the dynamic-module adapter: it turns the hooks of
// Envoy's dynamic-module ABI (package abi) into calls on the shared SSE
// policy (internal/policy, internal/ssestream), as filter/ssefilter does for
// the golang filter and extproc/processor for ext_proc. It reaches Envoy
// only through the Envoy and StatDefiner interfaces, so tests run it
// against fakes.
package ssemodule

import (
	"time"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
)

// ModuleName is the name Envoy loads the library by (libsse.so).
const ModuleName = "sse"

// StatPrefix is what Envoy puts in front of the module's stats: nothing on
// 1.40 (sse.events is sse.events, the namespace coming from
// metrics_namespace), "dynamicmodulescustom." on 1.37.
const StatPrefix = abi.StatPrefix

// StatDefiner defines stats; abi.Config is one, inside the config-new hook.
type StatDefiner interface {
	DefineCounter(name string) (uint64, error)
	DefineGauge(name string) (uint64, error)
	DefineHistogram(name string) (uint64, error)
}

// Module implements abi.Module.
type Module struct{}

// NewFilterConfig parses the filter-level config and defines the stats.
func (Module) NewFilterConfig(c abi.Config, _ string, raw []byte) (abi.FilterConfig, error) {
	return newFilterConfig(c, raw, abi.Log)
}

// NewPerRouteConfig parses a route's config, which replaces the filter-level
// policy on that route (the stats stay the filter level's).
func (Module) NewPerRouteConfig(_ string, raw []byte) (any, error) {
	p, err := parsePolicy(raw)
	if err != nil {
		return nil, err
	}
	return &routeConfig{policy: p, rules: abi.NewRules(p.Extract())}, nil
}

type routeConfig struct {
	policy *policy.Policy
	rules  *abi.Rules // the policy's extract rules for the C body hook
}

// filterConfig is shared by every stream of one filter configuration, on
// every worker thread: it is read-only after newFilterConfig.
type filterConfig struct {
	policy *policy.Policy
	rules  *abi.Rules // the policy's extract rules for the C body hook
	// stats are Envoy's ids of the stats, by ssestream.StatID.
	stats [ssestream.NumStats]definedStat
	log   func(abi.LogLevel, string)
	// now is the streams' clock; nil is time.Now (tests set it).
	now func() time.Time
}

func newFilterConfig(d StatDefiner, raw []byte, log func(abi.LogLevel, string)) (*filterConfig, error) {
	p, err := parsePolicy(raw)
	if err != nil {
		return nil, err
	}
	c := &filterConfig{policy: p, rules: abi.NewRules(p.Extract()), log: log}
	for _, s := range ssestream.Stats() {
		define := d.DefineCounter
		switch s.Kind {
		case ssestream.KindGauge:
			define = d.DefineGauge
		case ssestream.KindHistogram:
			if !abi.Histograms {
				continue // not on 1.37: the stat stays undefined
			}
			define = d.DefineHistogram
		}
		id, err := define(StatName(s.Name))
		if err != nil {
			return nil, err
		}
		c.stats[s.ID] = definedStat{id: id, kind: s.Kind, defined: true}
	}
	return c, nil
}

type definedStat struct {
	id      uint64
	kind    ssestream.StatKind
	defined bool
}

// StatName is what the module defines a stat as: its name within the
// metrics_namespace on 1.40, its whole name on 1.37.
func StatName(name string) string {
	if abi.StatsInNamespace {
		return ssestream.InNamespace(name)
	}
	return name
}

// eventsStat is Envoy's id of the events counter, which the C body hook
// updates.
func (c *filterConfig) eventsStat() (uint64, bool) {
	return c.stats[ssestream.Events].id, true
}

// parsePolicy reads the settings from filter_config: a
// google.protobuf.StringValue (or BytesValue) holding YAML or JSON in the
// schema of envoy/sse-policy.yaml. Nothing at all means the defaults.
func parsePolicy(raw []byte) (*policy.Policy, error) {
	return policy.Load("filter_config", raw, policy.ParseYAMLOrJSON)
}

// ParseConfig checks a filter_config payload as the module does when Envoy
// loads it (tests of the repository's Envoy configs use it).
func ParseConfig(raw []byte) error {
	_, err := parsePolicy(raw)
	return err
}

// gcPercent sizes the Go heap inside Envoy. It holds a few hundred bytes per
// stream plus the garbage of each stream's start and end (the body path
// allocates nothing). At Go's default of 100 the heap grows to at least
// 4 MB before its first collection, all of it in Envoy's RSS: with 200
// streams that is 20 KiB a stream for nothing. 10 lowers that floor to
// 400 KB and collects at 1.1x the live heap (about 650 bytes a stream);
// collections come only with new streams, every hundred or so.
const gcPercent = 10

// GCPercent is the GC percent the module sets when it loads, and whether it
// sets one: GOGC in Envoy's environment still wins.
func GCPercent(getenv func(string) string) (percent int, set bool) {
	if getenv("GOGC") != "" {
		return 0, false
	}
	return gcPercent, true
}
