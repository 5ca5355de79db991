package ssefilter

import (
	"context"
	"debug/elf"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The .so is what users ship: it must build with -buildmode=c-shared, export
// the entry points Envoy's golang filter calls, and need no glibc newer than
// the contrib image's (Ubuntu 22.04: 2.35). The test builds it rather than
// loading it, because loading needs Envoy's C side.
func TestSharedObjectExportsEnvoyEntryPoints(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sse.so")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", out, "example.com/sse-on-envoy/filter")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the filter: %v\n%s", err, msg)
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
	maxGlibc := [2]int{}
	for _, s := range symbols {
		if s.Section != elf.SHN_UNDEF {
			exported[s.Name] = true
			continue
		}
		if v, ok := strings.CutPrefix(s.Version, "GLIBC_"); ok {
			major, minor, _ := strings.Cut(v, ".")
			ma, _ := strconv.Atoi(major)
			mi, _ := strconv.Atoi(strings.SplitN(minor, ".", 2)[0])
			if ma > maxGlibc[0] || ma == maxGlibc[0] && mi > maxGlibc[1] {
				maxGlibc = [2]int{ma, mi}
			}
		}
	}
	for _, name := range []string{
		"envoyGoFilterNewHttpPluginConfig",
		"envoyGoFilterMergeHttpPluginConfig",
		"envoyGoFilterDestroyHttpPluginConfig",
		"envoyGoFilterOnHttpHeader",
		"envoyGoFilterOnHttpData",
		"envoyGoFilterOnHttpLog",
		"envoyGoFilterOnHttpStreamComplete",
		"envoyGoFilterOnHttpDestroy",
		"envoyGoFilterCleanUp",
	} {
		if !exported[name] {
			t.Errorf("the .so does not export %s", name)
		}
	}
	if maxGlibc[0] > 2 || maxGlibc[0] == 2 && maxGlibc[1] > 35 {
		t.Errorf("the .so needs GLIBC_%d.%d; the contrib image has 2.35", maxGlibc[0], maxGlibc[1])
	}
	t.Logf("the .so needs at most GLIBC_%d.%d", maxGlibc[0], maxGlibc[1])
}
