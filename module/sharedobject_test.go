package main

import (
	"bytes"
	"context"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"example.com/sse-on-envoy/module/abi"
)

// The library Envoy loads must export every hook the pinned Envoy looks up
// by name, and return the ABI version that binary carries. Envoy checks
// neither signatures nor presence until it loads the module, so this reads
// both from the binary itself (ENVOY_BIN); the end-to-end tests then run
// every hook in it.
func TestLibraryMatchesThePinnedEnvoy(t *testing.T) {
	envoy := os.Getenv("ENVOY_BIN")
	if envoy == "" {
		t.Skip("ENVOY_BIN is not set (make test sets it)")
	}
	bin, err := os.ReadFile(envoy)
	if err != nil {
		t.Fatal(err)
	}
	hooks := regexp.MustCompile(`envoy_dynamic_module_on_(?:program_init|http_filter_[a-z_]+)`).FindAll(bin, -1)
	if len(hooks) < 20 {
		t.Fatalf("found %d hook names in %s; is it Envoy?", len(hooks), envoy)
	}
	if !bytes.Contains(bin, []byte(abi.Version)) {
		t.Errorf("%s does not carry ABI version %s: the module would be refused", envoy, abi.Version)
	}

	out := filepath.Join(t.TempDir(), "libsse.so")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	if msg, err := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, ".").CombinedOutput(); err != nil {
		t.Fatalf("building the module: %v\n%s", err, msg)
	}
	so, err := elf.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer so.Close()
	symbols, err := so.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, s := range symbols {
		if s.Section != elf.SHN_UNDEF {
			exported[s.Name] = true
		}
	}
	// Optional in 1.37.0: Envoy loads a module without it.
	optional := map[string]bool{"envoy_dynamic_module_on_http_filter_config_scheduled": true}
	for _, h := range hooks {
		if name := string(h); !exported[name] && !optional[name] {
			t.Errorf("the library does not export %s, which Envoy looks up", name)
		}
	}
}
