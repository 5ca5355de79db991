// Package writeup holds what the write-up's curl transcripts promise, for
// every test that runs them against a real Envoy: the end-to-end tests
// (e2e, stock Envoy with the module or ext_proc) and the Envoy Gateway run
// (tools/envoygateway). It runs the real curl, as the write-up does.
package writeup

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/internal/sse"
)

// Curl runs curl -sS -i -N with args for at most 15 s and splits its output
// into the status line, the headers and the body. curl's exit 28 (its
// --max-time ran out) is how a stream request ends, not a failure.
func Curl(t testing.TB, args ...string) (status string, headers http.Header, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "curl", append([]string{"-sS", "-i", "-N"}, args...)...).Output()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 28) {
		t.Fatalf("curl %v: %v\n%s", args, err, out)
	}
	head, body, ok := strings.Cut(string(out), "\r\n\r\n")
	if !ok {
		t.Fatalf("curl %v: no header block in %q", args, out)
	}
	lines := strings.Split(head, "\r\n")
	headers = http.Header{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		headers.Add(k, strings.TrimSpace(v))
	}
	return strings.TrimSpace(lines[0]), headers, body
}

// ParseEvents reads every event of a stream's body.
func ParseEvents(t testing.TB, body string) []sse.Event {
	t.Helper()
	r := sse.NewReader(strings.NewReader(body))
	var events []sse.Event
	for {
		e, err := r.Next()
		if err == io.EOF {
			return events
		}
		if err != nil {
			t.Fatalf("parsing the stream: %v", err)
		}
		events = append(events, e)
	}
}

// CheckTranscripts runs the write-up's four transcripts (Envoy's plain
// listener httpURL and TLS listener httpsURL, each to the plain and the TLS
// upstream leg; caFile verifies the chain) and checks what they show: the
// status line of each protocol, the headers (CORS, cache-control, the tag
// naming the adapter, Envoy's own), no content-length, and DAD_JOKE events
// whose ids keep rising across all four.
func CheckTranscripts(t *testing.T, httpURL, httpsURL, caFile, tag string) {
	t.Helper()
	lastID := 0
	for _, tc := range []struct {
		name, url, wantStatus string
	}{
		{"8080 to the plain upstream", httpURL + routes.EventsPath, "HTTP/1.1 200 OK"},
		{"8080 to the TLS upstream", httpURL + routes.TLS(routes.EventsPath), "HTTP/1.1 200 OK"},
		{"8443 to the plain upstream", httpsURL + routes.EventsPath, "HTTP/2 200"},
		{"8443 to the TLS upstream", httpsURL + routes.TLS(routes.EventsPath), "HTTP/2 200"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := Curl(t, "--max-time", "1.5", "--cacert", caFile, tc.url)
			if status != tc.wantStatus {
				t.Errorf("status line %q, want %q", status, tc.wantStatus)
			}
			for k, want := range map[string]string{
				"content-type":                     "text/event-stream",
				"cache-control":                    "no-cache",
				"access-control-allow-origin":      "https://localhost:8080",
				"access-control-allow-credentials": "true",
				"access-control-allow-headers":     "Keep-Alive,X-Requested-With,Cache-Control,Content-Type,Last-Event-ID",
				"access-control-allow-methods":     "GET, OPTIONS",
				"x-sse-stream":                     tag,
				"x-envoy-upstream-service-time":    "",
				"server":                           "envoy",
			} {
				if got, ok := h[http.CanonicalHeaderKey(k)]; !ok || !strings.HasPrefix(got[0], want) {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if v := h.Get("content-length"); v != "" {
				t.Errorf("content-length %q on a stream", v)
			}
			events := ParseEvents(t, body)
			if len(events) < 3 {
				t.Fatalf("%d events in 1.5 s, want at least 3:\n%s", len(events), body)
			}
			for _, e := range events {
				id, err := strconv.Atoi(e.ID)
				if err != nil || e.Type != "DAD_JOKE" || e.Data == "" {
					t.Fatalf("event %+v", e)
				}
				// One global sequence: ids keep rising across connections,
				// ports, upstream listeners and replicas.
				if id < lastID {
					t.Errorf("id %d after %d", id, lastID)
				}
				lastID = id
			}
		})
	}
}
