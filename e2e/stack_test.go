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

	"example.com/sse-on-envoy/internal/localstack"
	"example.com/sse-on-envoy/internal/sse"
)

// Upstream timing for the tests: events fast enough to see several in a
// second, heartbeats often enough to see one.
var fastUpstream = []string{"-interval", "250ms", "-heartbeat", "1s", "-retry", "500ms"}

// startStack runs the whole system for one test and stops it at cleanup,
// printing every process's output when the test failed.
func startStack(t *testing.T, extraOrigins ...string) *localstack.Stack {
	t.Helper()
	requireTools(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := localstack.Start(ctx, localstack.Options{
		Root:         repoRoot,
		Dir:          t.TempDir(),
		EnvoyBin:     os.Getenv("ENVOY_BIN"),
		Bins:         bins,
		ExtraOrigins: extraOrigins,
		UpstreamArgs: fastUpstream,
		ServeDemo:    true,
		// One replica: these tests read the upstream's log and stop it as
		// one process; replicas_test.go runs several.
		Replicas: 1,
	})
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
