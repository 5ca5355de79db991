package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docs/running-locally.md's "The same by hand" rewrites the configs with sed for a
// machine without Compose. Run those exact lines (with the certificates
// and output in a temporary folder) and have the pinned Envoy validate
// what they make: a config that still names a Compose host fails here.
func TestReadmeByHandConfigsValidate(t *testing.T) {
	requireTools(t)
	readme, err := os.ReadFile(filepath.Join(repoRoot, "docs", "running-locally.md"))
	if err != nil {
		t.Fatal(err)
	}
	// A sed command, its continuation line, up to the file it writes.
	seds := regexp.MustCompile(`(?m)^sed -e [^\n]*\\\n[^\n]*> /tmp/envoy-local\.yaml$`).FindAll(readme, -1)
	if len(seds) != 2 {
		t.Fatalf("found %d sed commands in docs/running-locally.md's by-hand section, want 2 (module, ext_proc)", len(seds))
	}
	dir := t.TempDir()
	certDir := filepath.Join(dir, "certs", "out")
	if out, err := exec.Command(bins["certs"], "-out", certDir).CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	// The scripts read envoy/*.yaml and name $PWD/certs/out: run them in a
	// folder that has the repository's configs and this test's certificates.
	if err := os.Symlink(filepath.Join(repoRoot, "envoy"), filepath.Join(dir, "envoy")); err != nil {
		t.Fatal(err)
	}
	for i, sed := range seds {
		out := filepath.Join(dir, "envoy-local.yaml")
		script := strings.ReplaceAll(string(sed), "/tmp/envoy-local.yaml", out)
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = dir
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sed %d: %v\n%s", i, err, msg)
		}
		validate := exec.Command(os.Getenv("ENVOY_BIN"), "--mode", "validate", "-c", out)
		validate.Env = append(os.Environ(), "ENVOY_DYNAMIC_MODULES_SEARCH_PATH="+moduleDir)
		if msg, err := validate.CombinedOutput(); err != nil {
			t.Errorf("docs/running-locally.md's sed %d makes a config Envoy refuses: %v\n%s", i, err, msg)
		}
		if cfg, _ := os.ReadFile(out); strings.Contains(string(cfg), "address: upstream") {
			t.Errorf("docs/running-locally.md's sed %d leaves a Compose host in the config", i)
		}
	}
}
