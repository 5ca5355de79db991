package tools

import (
	"os/exec"
	"strings"
	"testing"
)

// The tooling reads the module's per-ABI facts from module/abiinfo (no cgo)
// and never links the cgo bindings of module/abi, with either ABI's build
// tags, tests included.
func TestToolsDoNotLinkTheModuleBindings(t *testing.T) {
	const bindings = "example.com/sse-on-envoy/module/abi"
	for _, tags := range []string{"", "envoy137"} {
		out, err := exec.Command("go", "list", "-deps", "-test", "-tags="+tags, "example.com/sse-on-envoy/tools/...").CombinedOutput()
		if err != nil {
			t.Fatalf("go list -tags=%q: %v\n%s", tags, err, out)
		}
		for _, p := range strings.Fields(string(out)) {
			if p == bindings || strings.HasPrefix(p, bindings+"/") {
				t.Errorf("with -tags=%q, tools/... depends on %s", tags, p)
			}
		}
	}
}
