package localstack

import (
	"path/filepath"
	"syscall"
	"testing"

	"example.com/sse-on-envoy/tools/envoyconfig"
)

func TestConnectionCap(t *testing.T) {
	for _, tc := range []struct {
		limit uint64
		want  int64
	}{
		{20000, 9488},  // this machine: 10,000 HTTP/1.1 streams would need 20,000+
		{65536, 32256}, // Compose's nofile: above the configs' 25,000
		{1024, 1},      // nothing to spare: refuse rather than crash
	} {
		if got := connectionCap(tc.limit); got != tc.want {
			t.Errorf("connectionCap(%d) = %d, want %d", tc.limit, got, tc.want)
		}
	}
}

// Rendered for this machine, every config's cap fits the descriptors
// Envoy will have, and never rises above what the config asks.
func TestRenderedConfigsFitTheFileLimit(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	root := repoRoot(t)
	for _, name := range []string{"envoy.yaml", "envoy-extproc.yaml", "envoy-module.yaml"} {
		configured, err := envoyconfig.Load(filepath.Join(root, "envoy", name))
		if err != nil {
			t.Fatal(err)
		}
		want, err := envoyconfig.DownstreamConnectionLimit(configured)
		if err != nil || want == 0 {
			t.Fatalf("%s: no connection cap (%v)", name, err)
		}
		want = min(want, connectionCap(lim.Cur))
		if err := fitConnectionCap(configured); err != nil {
			t.Fatal(err)
		}
		if got, _ := envoyconfig.DownstreamConnectionLimit(configured); got != want {
			t.Errorf("%s: cap %d with RLIMIT_NOFILE %d, want %d", name, got, lim.Cur, want)
		}
	}
}
