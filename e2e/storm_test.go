package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/envoyconfig"
)

// stormResult counts how the streams of one leg of a storm were answered.
type stormResult struct {
	non200     map[string]int // status and Envoy's flags -> count
	localReply map[string]int // 200s Envoy made itself (EventSource retries them), by flags
	events     int            // streams that got an event from the upstream
	errors     int            // requests that failed before an answer
}

// A deploy or an Envoy restart makes every browser reconnect at once: 2,000
// streams opened within about a second, through both ports and both upstream
// legs, must all be answered 200 (any other status ends an EventSource).
// The 10,000 case belongs to the load benchmark.
func TestReconnectStorm(t *testing.T) {
	perLeg := stormPerLeg(t) // x 4 legs
	s := startStack(t)
	h1, h2 := httpClient(t, s, false), httpClient(t, s, true)
	legs := []struct {
		name   string
		client *http.Client
		url    string
	}{
		{"8080 HTTP/1.1 /sse/", h1, s.HTTPURL + "/sse/events"},
		{"8080 HTTP/1.1 /sse-with-tls/", h1, s.HTTPURL + "/sse-with-tls/events"},
		{"8443 h2 /sse/", h2, s.HTTPSURL + "/sse/events"},
		{"8443 h2 /sse-with-tls/", h2, s.HTTPSURL + "/sse-with-tls/events"},
	}
	results := make([]stormResult, len(legs))
	for i := range results {
		results[i].non200 = map[string]int{}
		results[i].localReply = map[string]int{}
	}
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Every stream stays open until all have been answered, as browsers
	// keep theirs: closing early would free capacity a real storm does not.
	release := make(chan struct{})
	var answered, done sync.WaitGroup
	total := perLeg * len(legs)
	start := time.Now()
	for n := range total {
		// Spread over one second, in 10 ms batches (time.Sleep is too coarse
		// for 2 ms gaps on a busy machine).
		if n%(total/100) == 0 {
			time.Sleep(time.Until(start.Add(time.Duration(n) * time.Second / time.Duration(total))))
		}
		i := n % len(legs)
		leg := legs[i]
		answered.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			once := sync.OnceFunc(answered.Done)
			defer once()
			r := &results[i]
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, leg.url, nil)
			req.Header.Set("Origin", "https://localhost:8443")
			resp, err := leg.client.Do(req)
			if err != nil {
				mu.Lock()
				r.errors++
				mu.Unlock()
				t.Logf("%s: %v", leg.name, err)
				return
			}
			defer resp.Body.Close()
			mu.Lock()
			switch {
			case resp.StatusCode != http.StatusOK:
				r.non200[fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("x-envoy-response-flags"))]++
			case resp.Header.Get(envoyconfig.LocalReplyHeader) != "":
				r.localReply[resp.Header.Get(envoyconfig.LocalReplyHeader)]++
			}
			mu.Unlock()
			if resp.StatusCode != http.StatusOK || resp.Header.Get(envoyconfig.LocalReplyHeader) != "" {
				return
			}
			rd := sse.NewReader(resp.Body)
			if _, err := rd.Next(); err == nil {
				mu.Lock()
				r.events++
				mu.Unlock()
			}
			once()
			select {
			case <-release:
			case <-ctx.Done():
			}
		}()
	}
	opened := time.Since(start)
	answered.Wait()
	close(release)
	cancel()
	done.Wait()
	t.Logf("%d streams opened in %v, all answered after %v", total, opened.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	for i, leg := range legs {
		r := results[i]
		bad := 0
		for _, n := range r.non200 {
			bad += n
		}
		local := 0
		for _, n := range r.localReply {
			local += n
		}
		t.Logf("%-28s non-200 %d %v, mapped local replies %d %v, streaming %d, failed requests %d", leg.name, bad, r.non200, local, r.localReply, r.events, r.errors)
		if bad != 0 || r.errors != 0 {
			t.Errorf("%s: %d non-200 answers %v and %d failed requests, want none", leg.name, bad, r.non200, r.errors)
		}
		if r.events+local != perLeg {
			t.Errorf("%s: %d streams got events and %d a retry answer, of %d", leg.name, r.events, local, perLeg)
		}
	}
}

// stormPerLeg is 500 (2,000 streams in all); SSE_STORM_PER_LEG raises it
// by hand on a machine with file descriptors to spare.
func stormPerLeg(t *testing.T) int {
	if v := os.Getenv("SSE_STORM_PER_LEG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 {
			t.Fatalf("SSE_STORM_PER_LEG=%q: want a number >= 100", v)
		}
		return n
	}
	return 500
}
