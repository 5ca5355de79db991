package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/localstack"
)

// Real stock Envoy (ENVOY_BIN: 1.40.0) accepts the three configurations. Stock Envoy has no
// golang extension, so envoy.yaml is validated without that one filter:
// every other field, and the config around it, is what the contrib image
// loads. envoy-module.yaml is validated with the module loaded (validation
// runs its config-new hook, so the module's parser sees filter_config).
func TestStockEnvoyValidatesTheConfigs(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if out, err := exec.Command(bins["certs"], "-out", certDir).CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	for _, tc := range []struct {
		name    string
		adapter localstack.Adapter
		so      string
	}{
		{"envoy-extproc.yaml", localstack.AdapterExtProc, ""},
		{"envoy-module.yaml", localstack.AdapterModule, ""},
		{"envoy.yaml", localstack.AdapterGolang, "/nonexistent/sse.so"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := localstack.RenderEnvoyConfig(localstack.Options{Root: repoRoot, Adapter: tc.adapter, FilterSO: tc.so}, certDir)
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
			cmd := exec.CommandContext(ctx, os.Getenv("ENVOY_BIN"), "--mode", "validate", "-c", path)
			cmd.Env = append(os.Environ(), localstack.ModuleSearchPathEnv+"="+moduleDir)
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("envoy --mode validate refused %s: %v\n%s", tc.name, err, msg)
			}
		})
	}
}

// A bad setting makes stock Envoy refuse envoy-module.yaml at load, and the
// module's log line names the field, with the policy's own message.
func TestStockEnvoyRefusesABadModuleConfig(t *testing.T) {
	requireTools(t)
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs")
	if out, err := exec.Command(bins["certs"], "-out", certDir).CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	out, err := localstack.RenderEnvoyConfig(localstack.Options{Root: repoRoot, Adapter: localstack.AdapterModule}, certDir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := envoyconfig.Parse(out)
	if err != nil {
		t.Fatal(err)
	}
	maxAge := "10x"
	if err := envoyconfig.SetModuleFilterConfig(b, &policy.Config{MaxAge: &maxAge}); err != nil {
		t.Fatal(err)
	}
	if out, err = envoyconfig.Marshal(b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(path, out, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Getenv("ENVOY_BIN"), "--mode", "validate", "-c", path)
	cmd.Env = append(os.Environ(), localstack.ModuleSearchPathEnv+"="+moduleDir)
	msg, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("envoy accepted max_age: 10x:\n%s", msg)
	}
	if want := `filter_config: invalid sse config: max_age: "10x" is not a duration`; !strings.Contains(string(msg), want) {
		t.Errorf("envoy's output lacks %q:\n%s", want, msg)
	}
}
