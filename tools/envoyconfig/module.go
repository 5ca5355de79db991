package envoyconfig

import (
	"encoding/json"
	"fmt"

	envoybootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	dynmodv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"example.com/sse-on-envoy/internal/policy"
)

// ModuleFilter is the dynamic-module HTTP filter's name in envoy-module.yaml.
const ModuleFilter = "envoy.filters.http.dynamic_modules"

// ModuleFilters returns the dynamic-module filter's config from every HCM,
// in listener order.
func ModuleFilters(b *envoybootstrap.Bootstrap) ([]*dynmodv3.DynamicModuleFilter, error) {
	return httpFilters[dynmodv3.DynamicModuleFilter](b, ModuleFilter)
}

// ModuleFilterConfig reads the policy settings from a dynamic-module
// filter's filter_config (a StringValue holding YAML or JSON).
func ModuleFilterConfig(f *dynmodv3.DynamicModuleFilter) ([]byte, error) {
	var s wrapperspb.StringValue
	if err := f.GetFilterConfig().UnmarshalTo(&s); err != nil {
		return nil, fmt.Errorf("filter_config: want a google.protobuf.StringValue: %w", err)
	}
	return []byte(s.GetValue()), nil
}

// SetModuleFilterConfig replaces the dynamic-module filter's filter_config
// with pc, as JSON in a StringValue.
func SetModuleFilterConfig(b *envoybootstrap.Bootstrap, pc *policy.Config) error {
	js, err := json.Marshal(pc)
	if err != nil {
		return err
	}
	value, err := anypb.New(wrapperspb.String(string(js)))
	if err != nil {
		return err
	}
	return editHTTPFilters(b, ModuleFilter, func(cfg *dynmodv3.DynamicModuleFilter) error {
		cfg.FilterConfig = value
		return nil
	})
}

// SetModuleMetricsNamespace sets the namespace Envoy puts the module's stats
// under (dynamic_module_config.metrics_namespace, Envoy 1.38 and later); ""
// removes it, as Envoy 1.37 refuses the field.
func SetModuleMetricsNamespace(b *envoybootstrap.Bootstrap, ns string) error {
	return editHTTPFilters(b, ModuleFilter, func(cfg *dynmodv3.DynamicModuleFilter) error {
		if cfg.GetDynamicModuleConfig() == nil {
			return fmt.Errorf("filter %s has no dynamic_module_config", ModuleFilter)
		}
		cfg.DynamicModuleConfig.MetricsNamespace = ns
		return nil
	})
}
