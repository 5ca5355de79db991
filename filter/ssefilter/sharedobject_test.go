package ssefilter

import (
	"path/filepath"
	"testing"

	"example.com/sse-on-envoy/tools/sharedobject"
)

// The .so is what users ship: it must build with -buildmode=c-shared, export
// the entry points Envoy's golang filter calls, and need no glibc newer than
// the contrib image's (Ubuntu 22.04: 2.35). The test builds it rather than
// loading it, because loading needs Envoy's C side.
func TestSharedObjectExportsEnvoyEntryPoints(t *testing.T) {
	lib, err := sharedobject.Build("example.com/sse-on-envoy/filter", filepath.Join(t.TempDir(), "sse.so"), "")
	if err != nil {
		t.Fatal(err)
	}
	exported, maxGlibc := lib.Exported, lib.MaxGlibc
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
