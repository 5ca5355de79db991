// Package ssefilter is the golang HTTP filter adapter: it turns Envoy's
// filter callbacks into calls on the shared SSE policy. It imports only the
// golang filter's api package, so it runs in tests without Envoy.
package ssefilter

import (
	"fmt"
	"sync"
	"time"

	xdstype "github.com/cncf/xds/go/xds/type/v3"
	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
)

// FilterName is the plugin_name Envoy's configuration must use.
const FilterName = "sse"

const (
	typedStructURL       = "type.googleapis.com/xds.type.v3.TypedStruct"
	legacyTypedStructURL = "type.googleapis.com/udpa.type.v1.TypedStruct"
	structURL            = "type.googleapis.com/google.protobuf.Struct"
)

// config is what Parse hands Envoy and Envoy hands Factory for each stream.
type config struct {
	policy  *policy.Policy
	metrics *ssestream.Metrics
	// invalid is a per-route configuration's error. Envoy 1.37.1 may parse
	// per-route configs lazily, on a worker at a route's first request,
	// where a returned error hits a RELEASE_ASSERT and aborts the whole
	// process; so the route's requests get a local reply instead.
	invalid    error
	loggedOnce sync.Once
	// now is the streams' clock; nil is time.Now (tests set it).
	now func() time.Time
}

// ConfigParser parses plugin_config. A returned error makes Envoy reject the
// configuration, and the error names the offending field.
type ConfigParser struct{}

// Parse runs on Envoy's main thread for the filter-level configuration (with
// callbacks, so stats can be defined), where an error makes Envoy refuse the
// configuration. Per-route configurations come with nil callbacks and never
// return an error: see config.invalid.
func (ConfigParser) Parse(pluginConfig *anypb.Any, callbacks api.ConfigCallbackHandler) (interface{}, error) {
	p, err := parsePolicy(pluginConfig)
	if err != nil {
		if callbacks == nil {
			return &config{invalid: fmt.Errorf("per-route %w", err), metrics: &ssestream.Metrics{}}, nil
		}
		return nil, err
	}
	c := &config{policy: p, metrics: &ssestream.Metrics{}}
	if callbacks != nil {
		// Envoy creates them in the root scope, so the names are exactly
		// ssestream's.
		c.metrics = ssestream.DefineMetrics(func(s ssestream.Stat) ssestream.Counter {
			switch s.Kind {
			case ssestream.KindGauge:
				return callbacks.DefineGaugeMetric(s.Name)
			case ssestream.KindHistogram:
				// The v1.37.1 golang filter API has no histograms ("TODO
				// Histogram" in its api package).
				return nil
			}
			return callbacks.DefineCounterMetric(s.Name)
		})
	}
	return c, nil
}

// Merge lets a per-route policy replace the filter-level one while the stats,
// which only the filter level can define, stay. It runs lazily on worker
// threads, so it only combines values.
func (ConfigParser) Merge(parent, child interface{}) interface{} {
	p, pok := parent.(*config)
	c, cok := child.(*config)
	switch {
	case !cok:
		return parent
	case !pok:
		return child
	}
	return &config{policy: c.policy, invalid: c.invalid, metrics: p.metrics, now: p.now}
}

func parsePolicy(pluginConfig *anypb.Any) (*policy.Policy, error) {
	js, err := pluginConfigJSON(pluginConfig)
	if err != nil {
		return nil, err
	}
	return policy.Load("plugin_config", js, policy.ParseJSON)
}

// pluginConfigJSON accepts what Envoy users write: an xds TypedStruct (or
// its udpa predecessor) wrapping a Struct, a bare Struct, or nothing at all
// (the defaults), and returns the settings as JSON.
func pluginConfigJSON(a *anypb.Any) ([]byte, error) {
	if a == nil || (a.GetTypeUrl() == "" && len(a.GetValue()) == 0) {
		return nil, nil
	}
	var value *structpb.Struct
	switch a.GetTypeUrl() {
	case typedStructURL, legacyTypedStructURL:
		var ts xdstype.TypedStruct
		if err := proto.Unmarshal(a.GetValue(), &ts); err != nil {
			return nil, fmt.Errorf("plugin_config: decoding TypedStruct: %w", err)
		}
		value = ts.GetValue()
	case structURL:
		value = &structpb.Struct{}
		if err := proto.Unmarshal(a.GetValue(), value); err != nil {
			return nil, fmt.Errorf("plugin_config: decoding Struct: %w", err)
		}
	default:
		return nil, fmt.Errorf("plugin_config: unsupported type %q; use %s (with the settings in value) or %s",
			a.GetTypeUrl(), typedStructURL, structURL)
	}
	if value == nil {
		value = &structpb.Struct{}
	}
	js, err := protojson.Marshal(value)
	if err != nil {
		return nil, fmt.Errorf("plugin_config: %w", err)
	}
	return js, nil
}
