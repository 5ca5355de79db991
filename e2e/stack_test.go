package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/localstack"
)

// Upstream timing for the tests: events fast enough to see several in a
// second, heartbeats often enough to see one.
var fastUpstream = []string{"-interval", "250ms", "-heartbeat", "1s", "-retry", "500ms"}

// stockAdapters are the adapters stock Envoy can load; the golang filter
// needs the contrib build, which cannot run here.
var stockAdapters = []localstack.Adapter{localstack.AdapterModule, localstack.AdapterExtProc}

// forEachAdapter runs fn as one subtest per adapter stock Envoy can load.
func forEachAdapter(t *testing.T, fn func(t *testing.T, a localstack.Adapter)) {
	t.Helper()
	for _, a := range stockAdapters {
		t.Run(string(a), func(t *testing.T) { fn(t, a) })
	}
}

// tagOf is the tag header's value on streams adapter a tagged.
func tagOf(a localstack.Adapter) string {
	if a == localstack.AdapterModule {
		return "dynamic_module"
	}
	return string(a)
}

// startStack runs the whole system with the default adapter (the dynamic
// module) for one test; see startStackWith.
func startStack(t *testing.T, extraOrigins ...string) *localstack.Stack {
	t.Helper()
	return startStackWith(t, localstack.AdapterModule, extraOrigins...)
}

// startStackWith runs the whole system with adapter a for one test.
func startStackWith(t *testing.T, a localstack.Adapter, extraOrigins ...string) *localstack.Stack {
	t.Helper()
	return startStackOptions(t, localstack.Options{Adapter: a, ExtraOrigins: extraOrigins})
}

// startStackOptions runs the system as o says, with the test's folders,
// binaries and upstream timing (fastUpstream unless o has its own) filled in, and stops it at cleanup, printing
// every process's output when the test failed.
func startStackOptions(t *testing.T, o localstack.Options) *localstack.Stack {
	t.Helper()
	requireTools(t)
	// Replicas share a nats-server, which starts first.
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	o.Root, o.Dir, o.EnvoyBin, o.Bins = repoRoot, t.TempDir(), os.Getenv("ENVOY_BIN"), bins
	o.ModuleDir, o.ServeDemo = moduleDir, true
	if o.UpstreamArgs == nil {
		o.UpstreamArgs = fastUpstream
	}
	if o.Replicas == 0 {
		// One replica unless asked: these tests read the upstream's log and
		// stop it as one process; replicas_test.go runs several.
		o.Replicas = 1
	}
	s, err := localstack.Start(ctx, o)
	if err != nil {
		t.Fatalf("starting the stack: %v", err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			for _, p := range s.Processes() {
				t.Logf("---- %s output ----\n%s", p.Name, p.Output())
			}
		}
	})
	return s
}

// httpClient trusts the stack's CA; h2 says whether to offer HTTP/2.
func httpClient(t *testing.T, s *localstack.Stack, h2 bool) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in " + s.CAFile)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// readStream GETs url and hands each event to onEvent until the stream or
// ctx ends; it returns how the stream ended (io.EOF: a complete response).
func readStream(ctx context.Context, client *http.Client, url string, onEvent func(sse.Event)) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	r := sse.NewReader(resp.Body)
	for {
		e, err := r.Next()
		if err != nil {
			return err
		}
		onEvent(e)
	}
}
