// Package ssemodule is the dynamic-module adapter: it turns the hooks of
// Envoy's dynamic-module ABI (package abi) into calls on the shared SSE
// policy (internal/policy, internal/ssestream), as filter/ssefilter does for
// the golang filter and extproc/processor for ext_proc. It reaches Envoy
// only through the Envoy and StatDefiner interfaces, so tests run it
// against fakes.
package ssemodule

import (
	"bytes"
	"fmt"
	"time"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
)

// ModuleName is the name Envoy loads the library by (libsse.so).
const ModuleName = "sse"

// StatPrefix is what Envoy 1.37 puts in front of a module's stats:
// sse.events appears in /stats as dynamicmodulescustom.sse.events.
const StatPrefix = "dynamicmodulescustom."

// StatDefiner defines stats; abi.Config is one, inside the config-new hook.
type StatDefiner interface {
	DefineCounter(name string) (uint64, error)
	DefineGauge(name string) (uint64, error)
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
	return &routeConfig{policy: p}, nil
}

type routeConfig struct{ policy *policy.Policy }

// filterConfig is shared by every stream of one filter configuration, on
// every worker thread: it is read-only after newFilterConfig.
type filterConfig struct {
	policy *policy.Policy
	// statIDs are Envoy's ids of ssestream.Stats(), in that order.
	statIDs []uint64
	log     func(abi.LogLevel, string)
	// now is the streams' clock; nil is time.Now (tests set it).
	now func() time.Time
}

func newFilterConfig(d StatDefiner, raw []byte, log func(abi.LogLevel, string)) (*filterConfig, error) {
	p, err := parsePolicy(raw)
	if err != nil {
		return nil, err
	}
	c := &filterConfig{policy: p, log: log}
	for _, s := range ssestream.Stats() {
		define := d.DefineCounter
		if s.Kind == ssestream.KindGauge {
			define = d.DefineGauge
		}
		id, err := define(s.Name)
		if err != nil {
			return nil, err
		}
		c.statIDs = append(c.statIDs, id)
	}
	return c, nil
}

// parsePolicy reads the settings from filter_config: a
// google.protobuf.StringValue (or BytesValue) holding YAML or JSON in the
// schema of envoy/sse-policy.yaml. Nothing at all means the defaults.
func parsePolicy(raw []byte) (*policy.Policy, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	cfg, err := policy.ParseYAMLOrJSON(raw)
	if err != nil {
		return nil, fmt.Errorf("filter_config: %w", err)
	}
	p, err := policy.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("filter_config: %w", err)
	}
	return p, nil
}

// ParseConfig checks a filter_config payload as the module does when Envoy
// loads it (tests of the repository's Envoy configs use it).
func ParseConfig(raw []byte) error {
	_, err := parsePolicy(raw)
	return err
}
