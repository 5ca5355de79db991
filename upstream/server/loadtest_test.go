package server_test

import (
	"context"
	"net"
	"testing"
	"time"

	"example.com/sse-on-envoy/tools/loadtest"
	"example.com/sse-on-envoy/upstream/seed"
	"example.com/sse-on-envoy/upstream/server"
)

// The load client (tools/loadtest) against the real upstream, stamping:
// every event arrives once, in order, with a plausible latency.

const loadTestTimeout = 15 * time.Second

// startUpstream runs the real upstream server, stamping, on loopback.
func startUpstream(t *testing.T, interval time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv := server.New(server.Config{Interval: interval, Stamp: true})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, nil) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return "http://" + ln.Addr().String() + seed.EventsPath
}

func TestLoadClientAgainstTheUpstream(t *testing.T) {
	url := startUpstream(t, 20*time.Millisecond)
	tests := []struct {
		name   string
		cfg    loadtest.Config
		events bool
	}{
		{"readers paced", loadtest.Config{URL: url, Streams: 8, OpenRate: 200}, true},
		{"readers at once", loadtest.Config{URL: url, Streams: 8}, true},
		{"never reading", loadtest.Config{URL: url, Streams: 4, NoRead: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := loadtest.Start(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), loadTestTimeout)
			defer cancel()
			if n := l.WaitAnswered(ctx); n != tt.cfg.Streams {
				t.Fatalf("%d of %d streams answered", n, tt.cfg.Streams)
			}
			l.StartWindow()
			time.Sleep(300 * time.Millisecond)
			w := l.EndWindow()
			s := l.Close()
			if s.Opened() != tt.cfg.Streams || s.Failed() != 0 {
				t.Errorf("statuses %v, want %d x 200", s.Statuses, tt.cfg.Streams)
			}
			if s.Gaps != 0 || s.Dups != 0 || len(s.Ended) != 0 {
				t.Errorf("gaps %d, dups %d, ended %v: want none", s.Gaps, s.Dups, s.Ended)
			}
			if !tt.events {
				if w.Events != 0 {
					t.Errorf("never-reading streams counted %d events", w.Events)
				}
				return
			}
			if w.Events < int64(tt.cfg.Streams) || w.Unstamped != 0 || int64(len(w.Latencies)) != w.Events {
				t.Errorf("window: %d events, %d unstamped, %d latencies", w.Events, w.Unstamped, len(w.Latencies))
			}
			for _, d := range w.Latencies {
				if d <= 0 || d > 5*time.Second {
					t.Fatalf("latency %v is not plausible", d)
				}
			}
		})
	}
}
