package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"example.com/sse-on-envoy/upstream/hub"
)

// /healthz follows Health: 503 with the reason while it fails, so that a
// load balancer stops sending new streams; 200 once it passes.
func TestHealthzFollowsHealth(t *testing.T) {
	h := hub.New(hub.Options{})
	defer h.Close()
	var healthy atomic.Bool
	ts, c := newH1(t, NewHandler(h, HandlerOptions{Health: func() error {
		if healthy.Load() {
			return nil
		}
		return errors.New("nats RECONNECTING")
	}}))
	get := func() (int, string) {
		resp, err := c.Get(ts.URL + HealthPath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get(); code != http.StatusServiceUnavailable || body != "unavailable: nats RECONNECTING\n" {
		t.Errorf("unhealthy: %d %q", code, body)
	}
	healthy.Store(true)
	if code, body := get(); code != http.StatusOK || body != "ok\n" {
		t.Errorf("healthy: %d %q", code, body)
	}
}

// A Last-Event-ID beyond this replica's newest event that the shared log
// did issue (the client came from a replica slightly ahead) is "replayed 0":
// the client gets nothing it already has, then every event after its id.
// One the log never issued stays "future-last-event-id".
func TestLastEventIDAheadOfThisReplica(t *testing.T) {
	tests := []struct {
		name       string
		streamLast uint64
		err        error
		header     string
		first      uint64
	}{
		{"the log has it", 12, nil, "replayed 0", 13},
		{"the log does not", 11, nil, "future-last-event-id", 10},
		{"the log cannot say", 0, errors.New("nats down"), "future-last-event-id", 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hub.New(hub.Options{})
			defer h.Close()
			publish(t, h, 10)
			m := newMetrics(h, nil)
			ts, c := newH1(t, NewHandler(h, HandlerOptions{
				Metrics:    m,
				StreamLast: func(context.Context) (uint64, error) { return tc.streamLast, tc.err },
			}))
			s := openStream(testContext(t), t, c, ts.URL+EventsPath, http.Header{"Last-Event-Id": {"12"}})
			if got := s.resp.Header.Get(ReplayHeader); got != tc.header {
				t.Errorf("x-sse-replay %q, want %q", got, tc.header)
			}
			publish(t, h, 3) // ids 11, 12, 13
			if got := s.nextID(t); got != tc.first {
				t.Errorf("first id %d, want %d", got, tc.first)
			}
			outcome := "ahead"
			if tc.header != "replayed 0" {
				outcome = "future"
			}
			if got := scrape(t, c, ts.URL, `sse_upstream_replays_total{outcome="`+outcome+`"}`); got != "1" {
				t.Errorf("replays{%s} = %s, want 1", outcome, got)
			}
		})
	}
}

// scrape returns one metric's value from /metrics.
func scrape(t *testing.T, c *http.Client, base, name string) string {
	t.Helper()
	resp, err := c.Get(base + MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	t.Fatalf("%s not in /metrics:\n%s", name, body)
	return ""
}
