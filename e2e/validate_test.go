package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"example.com/sse-on-envoy/internal/envoyconfig"
	"example.com/sse-on-envoy/internal/localstack"
)

// Real Envoy 1.37 accepts both configurations. Stock Envoy has no golang
// extension, so envoy.yaml is validated without that one filter: every other
// field, and the config around it, is what the contrib image loads.
func TestStockEnvoyValidatesBothConfigs(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if out, err := exec.Command(bins["certs"], "-out", certDir).CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name string
		so   string
	}{{"envoy-extproc.yaml", ""}, {"envoy.yaml", "/nonexistent/sse.so"}} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := localstack.RenderEnvoyConfig(localstack.Options{Root: repoRoot, FilterSO: tc.so}, certDir)
			if err != nil {
				t.Fatal(err)
			}
			if tc.so != "" {
				b, err := envoyconfig.Parse(out)
				if err != nil {
					t.Fatal(err)
				}
				removed := 0
				err = envoyconfig.EditHTTPConnectionManagers(b, func(h *hcmv3.HttpConnectionManager) error {
					kept := h.HttpFilters[:0]
					for _, f := range h.GetHttpFilters() {
						if f.GetName() == envoyconfig.GolangFilter {
							removed++
							continue
						}
						kept = append(kept, f)
					}
					h.HttpFilters = kept
					return nil
				})
				if err != nil || removed != 2 {
					t.Fatalf("removing the golang filter: %d removed, %v", removed, err)
				}
				if out, err = envoyconfig.Marshal(b); err != nil {
					t.Fatal(err)
				}
			}
			path := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(path, out, 0o644); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if msg, err := exec.CommandContext(ctx, os.Getenv("ENVOY_BIN"), "--mode", "validate", "-c", path).CombinedOutput(); err != nil {
				t.Errorf("envoy --mode validate refused %s: %v\n%s", tc.name, err, msg)
			}
		})
	}
}
