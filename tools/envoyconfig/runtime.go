package envoyconfig

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// runtimeLayer is the static runtime layer SetRuntime writes.
const runtimeLayer = "bench"

// SetRuntime sets runtime keys (feature flags such as
// envoy.reloadable_features.*) in a static layer of their own, on top of
// the bootstrap's other layers.
func SetRuntime(b *bootstrapv3.Bootstrap, values map[string]any) error {
	s, err := structpb.NewStruct(values)
	if err != nil {
		return fmt.Errorf("runtime values: %w", err)
	}
	if b.LayeredRuntime == nil {
		b.LayeredRuntime = &bootstrapv3.LayeredRuntime{}
	}
	for _, l := range b.LayeredRuntime.Layers {
		if l.GetName() == runtimeLayer {
			for k, v := range s.Fields {
				l.GetStaticLayer().Fields[k] = v
			}
			return nil
		}
	}
	b.LayeredRuntime.Layers = append(b.LayeredRuntime.Layers, &bootstrapv3.RuntimeLayer{
		Name:           runtimeLayer,
		LayerSpecifier: &bootstrapv3.RuntimeLayer_StaticLayer{StaticLayer: s},
	})
	return nil
}
