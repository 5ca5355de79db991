package localstack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"example.com/sse-on-envoy/module/abiinfo"
)

// Adapter is how the SSE policy reaches Envoy.
type Adapter string

const (
	// AdapterModule: the Go policy inside stock Envoy as a dynamic module
	// (envoy-module.yaml, libsse.so). The default on stock Envoy.
	AdapterModule Adapter = "module"
	// AdapterExtProc: the policy in the ext_proc server (envoy-extproc.yaml).
	AdapterExtProc Adapter = "ext_proc"
	// AdapterGolang: the golang filter (envoy.yaml, FilterSO); needs an
	// Envoy with the golang extension (the contrib build).
	AdapterGolang Adapter = "golang"
)

// Adapters lists every adapter, for flags and tests.
var Adapters = []Adapter{AdapterModule, AdapterExtProc, AdapterGolang}

// ParseAdapter checks a name given on a command line.
func ParseAdapter(s string) (Adapter, error) {
	for _, a := range Adapters {
		if string(a) == s {
			return a, nil
		}
	}
	return "", fmt.Errorf("unknown adapter %q: want %s, %s or %s", s, AdapterModule, AdapterExtProc, AdapterGolang)
}

// ConfigFile is the repository's Envoy config for the adapter.
func (a Adapter) ConfigFile() string {
	switch a {
	case AdapterGolang:
		return "envoy.yaml"
	case AdapterExtProc:
		return "envoy-extproc.yaml"
	}
	return "envoy-module.yaml"
}

// adapter resolves the default: the golang filter when a FilterSO is given
// (as before adapters could be chosen), else the module.
func (o Options) adapter() Adapter {
	switch {
	case o.Adapter != "":
		return o.Adapter
	case o.FilterSO != "":
		return AdapterGolang
	}
	return AdapterModule
}

// ModuleLibrary is the file Envoy loads for the module named "sse".
const ModuleLibrary = "libsse.so"

// ModuleSearchPathEnv tells Envoy where dynamic modules are.
const ModuleSearchPathEnv = "ENVOY_DYNAMIC_MODULES_SEARCH_PATH"

// BuildModule builds the dynamic module into dir/libsse.so and returns dir,
// the value for ENVOY_DYNAMIC_MODULES_SEARCH_PATH. The module is built for
// the ABI this binary was built with (abiinfo.BuildTags: go test -tags envoy137
// runs everything against Envoy 1.37).
func BuildModule(ctx context.Context, root, dir string) (string, error) {
	out := filepath.Join(dir, ModuleLibrary)
	cmd := exec.CommandContext(ctx, "go", "build", "-tags="+abiinfo.BuildTags, "-buildmode=c-shared", "-o", out, "./module")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the dynamic module: %w\n%s", err, msg)
	}
	return dir, nil
}
