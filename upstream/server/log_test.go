package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/seed"
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
				Metrics: m,
				Log:     &fakeLog{first: 1, last: tc.streamLast, err: tc.err},
			}))
			s := openStream(testContext(t), t, c, ts.URL+seed.EventsPath, http.Header{"Last-Event-Id": {"12"}})
			if got := s.resp.Header.Get(seed.ReplayHeader); got != tc.header {
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

// A replay reaching before the hub's window is completed from the log,
// decided on what the log holds: closed when it reaches the client's id,
// narrowed when the log lost the oldest, bounded by what the window holds
// when the log fails; never with a hole.
func TestReplayBeyondTheWindow(t *testing.T) {
	tests := []struct {
		name   string
		log    *fakeLog
		lastID string
		header string
		ids    []uint64
	}{
		{"no log", nil, "2", "gap 3", span(8, 10)},
		{"the log closes the gap", &fakeLog{first: 1, last: 10}, "2", "replayed 8", span(3, 10)},
		{"the log lost the oldest", &fakeLog{first: 5, last: 10}, "2", "gap 6", span(5, 10)},
		{"the log lost them meanwhile", &fakeLog{first: 1, last: 10, gone: [2]uint64{1, 4}}, "2", "gap 6", span(5, 10)},
		{"a hole in the log", &fakeLog{first: 1, last: 10, gone: [2]uint64{5, 5}}, "2", "gap 5", span(6, 10)},
		{"the log fails to read", &fakeLog{first: 1, last: 10, rangeErr: errors.New("nats down")}, "2", "gap 3", span(8, 10)},
		{"the log cannot say", &fakeLog{err: errors.New("nats down")}, "2", "gap 3", span(8, 10)},
		{"zero", &fakeLog{first: 1, last: 10}, "0", "replayed 10", span(1, 10)},
		{"in the window", &fakeLog{first: 1, last: 10}, "8", "replayed 2", span(9, 10)},
		{"right before the window", &fakeLog{first: 1, last: 10}, "7", "replayed 3", span(8, 10)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := hub.New(hub.Options{History: 3})
			defer h.Close()
			for id := uint64(1); id <= 10; id++ { // the hub holds 8..10
				if _, err := h.Append(id, time.Now(), seed.EventType, "x", time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			opts := HandlerOptions{}
			if tc.log != nil {
				opts.Log = tc.log
			}
			ts, c := newH1(t, NewHandler(h, opts))
			s := openStream(testContext(t), t, c, ts.URL+seed.EventsPath, http.Header{"Last-Event-Id": {tc.lastID}})
			if got := s.resp.Header.Get(seed.ReplayHeader); got != tc.header {
				t.Errorf("x-sse-replay %q, want %q", got, tc.header)
			}
			if got := s.readIDs(t, len(tc.ids)); fmt.Sprint(got) != fmt.Sprint(tc.ids) {
				t.Errorf("replayed %v, want %v", got, tc.ids)
			}
			if _, err := h.Append(11, time.Now(), seed.EventType, "live", time.Time{}); err != nil {
				t.Fatal(err)
			}
			if got := s.nextID(t); got != 11 {
				t.Errorf("first live id %d, want 11", got)
			}
		})
	}
}

// fakeLog is a shared event log as the handler sees it: bounds, and the
// events first..last with one missing range (gone) and an optional error.
type fakeLog struct {
	first, last uint64
	gone        [2]uint64 // ids gone..gone[1] are missing from Range
	err         error     // returned by Bounds
	rangeErr    error
}

func (f *fakeLog) Bounds(context.Context) (uint64, uint64, error) {
	return f.first, f.last, f.err
}

func (f *fakeLog) Range(_ context.Context, from, to uint64) ([]*hub.Message, error) {
	if f.rangeErr != nil {
		return nil, f.rangeErr
	}
	var out []*hub.Message
	for id := max(from, f.first); id <= min(to, f.last); id++ {
		if id >= f.gone[0] && id <= f.gone[1] {
			continue
		}
		out = append(out, hub.NewMessage(id, time.Now(), seed.EventType, "from the log", time.Time{}))
	}
	return out, nil
}
