package envoyconfig

import (
	"path/filepath"
	"testing"
)

func TestSetRuntime(t *testing.T) {
	b, err := Load(filepath.Join("..", "..", "envoy", "envoy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const flag = "envoy.reloadable_features.http2_use_oghttp2"
	if err := SetRuntime(b, map[string]any{flag: false}); err != nil {
		t.Fatal(err)
	}
	if err := SetRuntime(b, map[string]any{"overload.global_downstream_max_connections": 10}); err != nil {
		t.Fatal(err)
	}
	layers := b.GetLayeredRuntime().GetLayers()
	if len(layers) != 1 {
		t.Fatalf("%d runtime layers, want one holding both keys", len(layers))
	}
	fields := layers[0].GetStaticLayer().GetFields()
	if v, ok := fields[flag]; !ok || v.GetBoolValue() {
		t.Errorf("%s = %v, want false", flag, v)
	}
	if len(fields) != 2 {
		t.Errorf("keys %v, want 2", fields)
	}
	// What Envoy is given must still parse strictly.
	data, err := Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Parse(data); err != nil {
		t.Errorf("edited config does not parse: %v", err)
	}
}
