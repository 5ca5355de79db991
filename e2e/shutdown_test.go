package e2e

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/localstack"
)

// SIGTERM to the upstream ends every stream through Envoy as a complete
// response (a clean EOF, so EventSource reconnects with Last-Event-ID), not
// as a reset, on both ports and both upstream legs.
func TestUpstreamShutdownEndsStreamsCleanly(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		type result struct {
			name   string
			events int
			err    error
		}
		streams := []struct {
			name string
			url  string
			h2   bool
		}{
			{"8080 to the plain upstream", s.HTTPURL + "/sse/events", false},
			{"8443 to the TLS upstream", s.HTTPSURL + "/sse-with-tls/events", true},
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		started := make(chan struct{}, len(streams))
		results := make(chan result, len(streams))
		for _, st := range streams {
			client := httpClient(t, s, st.h2)
			go func() {
				r := result{name: st.name}
				r.err = readStream(ctx, client, st.url, func(sse.Event) {
					if r.events++; r.events == 2 {
						started <- struct{}{}
					}
				})
				if r.events < 2 {
					started <- struct{}{}
				}
				results <- r
			}()
		}
		for range streams {
			<-started
		}
		begin := time.Now()
		s.Upstream.Stop(15 * time.Second)
		for range streams {
			r := <-results
			if !errors.Is(r.err, io.EOF) {
				t.Errorf("%s: the stream ended with %v after %d events, want a clean end (EOF)", r.name, r.err, r.events)
			}
			if r.events < 2 {
				t.Errorf("%s: only %d events before the shutdown", r.name, r.events)
			}
		}
		t.Logf("streams ended %v after SIGTERM", time.Since(begin).Round(time.Millisecond))
		if a == localstack.AdapterModule {
			// The module saw the upstream finish both responses.
			waitForLog(t, s.Envoy, "end=upstream_end", len(streams))
		}
	})
}
