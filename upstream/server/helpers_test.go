package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/h2server"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/seed"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every wait in these tests: generous, because a loaded
// two-core machine with the race detector is slow, and never reached when
// things work.
const testTimeout = 15 * time.Second

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer collects JSON log lines from concurrent handlers.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(b, nil))
}

// records returns the log records whose msg is msg.
func (b *logBuffer) records(msg string) []map[string]any {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for line := range strings.Lines(b.buf.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// waitFor polls cond until it holds or the test's bound passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(testTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// newH1 serves handler over plain HTTP/1.1.
func newH1(t *testing.T, handler http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	ts := httptest.NewServer(handler)
	c := ts.Client()
	t.Cleanup(func() {
		c.CloseIdleConnections()
		ts.Close()
	})
	return ts, c
}

// newH2 serves handler over TLS with HTTP/2 negotiated through ALPN, by
// h2server as the upstream does.
func newH2(t *testing.T, handler http.Handler) (*httptest.Server, *http.Client) {
	t.Helper()
	ts := httptest.NewUnstartedServer(handler)
	ts.EnableHTTP2 = true // the client's side
	ts.TLS = &tls.Config{NextProtos: []string{"h2", "http/1.1"}}
	(&h2server.Server{}).Configure(ts.Config)
	ts.StartTLS()
	c := ts.Client()
	t.Cleanup(func() {
		c.CloseIdleConnections()
		ts.Close()
	})
	return ts, c
}

// clientStream is one client's open event stream.
type clientStream struct {
	resp *http.Response
	raw  *logBuffer // every byte read, for wire-level assertions
	rd   *sse.Reader
}

func openStream(ctx context.Context, t *testing.T, c *http.Client, url string, header http.Header) *clientStream {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	raw := &logBuffer{}
	return &clientStream{resp: resp, raw: raw, rd: sse.NewReader(io.TeeReader(resp.Body, raw))}
}

func (s *clientStream) next(t *testing.T) sse.Event {
	t.Helper()
	e, err := s.rd.Next()
	if err != nil {
		t.Fatalf("reading event: %v", err)
	}
	return e
}

func (s *clientStream) nextID(t *testing.T) uint64 {
	t.Helper()
	e := s.next(t)
	id, err := strconv.ParseUint(e.ID, 10, 64)
	if err != nil {
		t.Fatalf("event id %q: %v", e.ID, err)
	}
	return id
}

// readIDs reads n events and returns their ids.
func (s *clientStream) readIDs(t *testing.T, n int) []uint64 {
	t.Helper()
	out := make([]uint64, n)
	for i := range out {
		out[i] = s.nextID(t)
	}
	return out
}

func publish(t *testing.T, h *hub.Hub, n int) {
	t.Helper()
	for i := range n {
		if _, err := h.Publish(seed.EventType, "joke "+strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
}

func span(from, to uint64) []uint64 {
	out := []uint64{}
	for id := from; id <= to; id++ {
		out = append(out, id)
	}
	return out
}

// testTLS returns a server config with a fresh self-signed certificate for
// 127.0.0.1 and a client that trusts it and negotiates HTTP/2.
func testTLS(t testing.TB) (*tls.Config, *http.Client) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "upstream test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		ForceAttemptHTTP2: true,
	}
	c := &http.Client{Transport: tr}
	t.Cleanup(tr.CloseIdleConnections)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}}, c
}

func h1Client(t *testing.T) *http.Client {
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// countLines reads r until want held for n lines.
func countLines(ctx context.Context, r io.Reader, want func(string) bool, n int) error {
	sc := bufio.NewScanner(r)
	for got := 0; got < n; {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !sc.Scan() {
			if sc.Err() != nil {
				return sc.Err()
			}
			return io.ErrUnexpectedEOF
		}
		if want(sc.Text()) {
			got++
		}
	}
	return nil
}
