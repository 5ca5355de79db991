package envoyconfig

import (
	"encoding/json"
	"fmt"

	xdstype "github.com/cncf/xds/go/xds/type/v3"
	golangv3alpha "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/http/golang/v3alpha"
	envoybootstrap "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"example.com/sse-on-envoy/internal/policy"
)

// GolangFilters returns the golang filter's config from every HCM, in
// listener order.
func GolangFilters(b *envoybootstrap.Bootstrap) ([]*golangv3alpha.Config, error) {
	return httpFilters[golangv3alpha.Config](b, GolangFilter)
}

// httpFilters decodes the typed config of every HTTP filter named name, in
// every HCM, in listener order.
func httpFilters[T any, PT interface {
	*T
	proto.Message
}](b *envoybootstrap.Bootstrap, name string) ([]PT, error) {
	var out []PT
	for _, l := range b.GetStaticResources().GetListeners() {
		hcms, err := HTTPConnectionManagers(l)
		if err != nil {
			return nil, err
		}
		for _, hcm := range hcms {
			for _, f := range hcm.GetHttpFilters() {
				if f.GetName() != name {
					continue
				}
				cfg := PT(new(T))
				if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
					return nil, fmt.Errorf("listener %s: %s: %w", l.GetName(), name, err)
				}
				out = append(out, cfg)
			}
		}
	}
	return out, nil
}

// SetGolangPluginConfig replaces the golang filter's plugin_config with pc,
// wrapped in a TypedStruct as envoy.yaml writes it.
func SetGolangPluginConfig(b *envoybootstrap.Bootstrap, pc *policy.Config) error {
	js, err := json.Marshal(pc)
	if err != nil {
		return err
	}
	var fields map[string]any
	if err := json.Unmarshal(js, &fields); err != nil {
		return err
	}
	value, err := structpb.NewStruct(fields)
	if err != nil {
		return fmt.Errorf("plugin_config: %w", err)
	}
	return editHTTPFilters(b, GolangFilter, func(cfg *golangv3alpha.Config) error {
		typeURL := "type.googleapis.com/sse.FilterConfig"
		var old xdstype.TypedStruct
		if cfg.GetPluginConfig().UnmarshalTo(&old) == nil && old.GetTypeUrl() != "" {
			typeURL = old.GetTypeUrl()
		}
		wrapped, err := anypb.New(&xdstype.TypedStruct{TypeUrl: typeURL, Value: value})
		cfg.PluginConfig = wrapped
		return err
	})
}

// editHTTPFilters decodes the typed config of every HTTP filter named name,
// lets edit change it and stores it back; a config with no such filter is
// an error.
func editHTTPFilters[T any, PT interface {
	*T
	proto.Message
}](b *envoybootstrap.Bootstrap, name string, edit func(PT) error) error {
	found := false
	err := EditHTTPConnectionManagers(b, func(hcm *hcmv3.HttpConnectionManager) error {
		for _, f := range hcm.GetHttpFilters() {
			if f.GetName() != name {
				continue
			}
			cfg := PT(new(T))
			if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := edit(cfg); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if err := f.GetTypedConfig().MarshalFrom(cfg); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			found = true
		}
		return nil
	})
	if err == nil && !found {
		err = fmt.Errorf("no %s filter to configure", name)
	}
	return err
}
