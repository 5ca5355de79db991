package main

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"example.com/sse-on-envoy/extproc/processor"
	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
)

// /metrics on the admin listener follows the processor's stats under their
// /stats names, counters as counters and the active streams as a gauge.
func TestMetricsFollowStats(t *testing.T) {
	p, err := policy.New(&policy.Config{})
	if err != nil {
		t.Fatal(err)
	}
	srv := processor.New(p, slog.New(slog.DiscardHandler))
	ts := httptest.NewServer(adminHandler(srv))
	defer ts.Close()
	scrape := func() string {
		resp, err := ts.Client().Get(ts.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics: %s", resp.Status)
		}
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	before := scrape()
	for _, want := range []string{
		"# TYPE sse_streams_opened counter\nsse_streams_opened 0\n",
		"# TYPE sse_streams_active gauge\nsse_streams_active 0\n",
		"# TYPE sse_events counter\nsse_events 0\n",
		"# TYPE sse_preflights counter\nsse_preflights 0\n",
		"# TYPE sse_rejected_origins counter\nsse_rejected_origins 0\n",
	} {
		if !strings.Contains(before, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	st := srv.Stats()
	for name, n := range map[string]int64{
		ssestream.StatStreamsOpened: 3, ssestream.StatStreamsActive: 2, ssestream.StatEvents: 7,
		ssestream.StatPreflights: 1, ssestream.StatRejectedOrigins: 4,
	} {
		st.Counter(name).Increment(n)
	}
	after := scrape()
	for _, want := range []string{
		"\nsse_streams_opened 3\n", "\nsse_streams_active 2\n", "\nsse_events 7\n",
		"\nsse_preflights 1\n", "\nsse_rejected_origins 4\n",
	} {
		if !strings.Contains(after, want) {
			t.Errorf("/metrics after the stats changed lacks %q", strings.TrimSpace(want))
		}
	}
	// The per-stream timing as Prometheus histograms, in Envoy's buckets.
	st.Histogram(ssestream.StatFirstEventMS).Increment(3)
	st.Histogram(ssestream.StatFirstEventMS).Increment(700)
	hist := scrape()
	for _, want := range []string{
		"# TYPE sse_first_event_ms histogram\n", "\nsse_first_event_ms_bucket{le=\"5\"} 1\n",
		"\nsse_first_event_ms_bucket{le=\"1000\"} 2\n", "\nsse_first_event_ms_sum 703\n", "\nsse_first_event_ms_count 2\n",
		"\nsse_max_gap_ms_count 0\n",
	} {
		if !strings.Contains(hist, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	if !strings.Contains(after, "go_goroutines") {
		t.Error("/metrics lacks the Go runtime metrics")
	}
}
