package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"example.com/sse-on-envoy/tools/localstack"
)

// streamState mirrors one entry of the demo page's window.sseStreams.
type streamState struct {
	State  string `json:"state"`
	Events int    `json:"events"`
	LastID string `json:"lastId"`
	Errors int    `json:"errors"`
}

var noBrowserOnce sync.Once

// browser starts headless Chromium (Debian's, installed by `make e2e-deps`).
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := os.Getenv("CHROMIUM_BIN")
	if bin == "" {
		bin = "/usr/bin/chromium"
	}
	if !executable(bin) {
		if os.Getenv("SSE_E2E") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("Chromium not found at %s (run `make e2e-deps`)", bin)
		}
		msg := fmt.Sprintf("END-TO-END BROWSER TEST SKIPPED: no Chromium at %s (run `make e2e-deps`)", bin)
		// On stderr too, once: without -v, go test prints no skip message.
		noBrowserOnce.Do(func() { fmt.Fprintf(os.Stderr, "\n!!! %s !!!\n\n", msg) })
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		// The test CA is not in Chromium's store; curl and Go clients in the
		// other tests verify the chain for real.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if _, err := chromedp.Run(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("starting Chromium (%s): %v", bin, err)
	}
	return ctx
}

// openStreams loads the demo page from pageOrigin, opens n EventSources to
// streamURL, and polls their states until settled says so (or 20 s pass):
// polling keeps the test quick on an idle machine and patient on a busy one.
func openStreams(t *testing.T, ctx context.Context, pageOrigin, streamURL string, n int, settled func([]streamState) bool) []streamState {
	t.Helper()
	page := fmt.Sprintf("%s/?url=%s&streams=%d", pageOrigin, url.QueryEscape(streamURL), n)
	if _, err := chromedp.Run(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("loading the demo page %s: %v", page, err)
	}
	return pollStreams(t, ctx, settled)
}

// pollStreams reads the page's streams until settled says so (or 20 s pass).
func pollStreams(t *testing.T, ctx context.Context, settled func([]streamState) bool) []streamState {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		states, err := chromedp.Run(ctx, chromedp.Evaluate[[]streamState](
			`window.sseStreams.map(s => ({state: s.state, events: s.events, lastId: s.lastId, errors: s.errors}))`))
		if err != nil {
			t.Fatalf("reading the demo page's streams: %v", err)
		}
		if settled(states) || time.Now().After(deadline) {
			return states
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func countOpen(states []streamState) int {
	open := 0
	for _, st := range states {
		if st.State == "open" && st.Events > 0 {
			open++
		}
	}
	return open
}

func TestBrowserCORS(t *testing.T) {
	ctx := browser(t)
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		allowedPage := s.DemoURL            // http://localhost:PORT, in the allow-list
		refusedPage := s.DemoURLOtherOrigin // http://127.0.0.1:PORT, not in it
		for _, stream := range []string{s.HTTPURL + "/sse/events", s.HTTPSURL + "/sse-with-tls/events"} {
			t.Run(stream, func(t *testing.T) {
				got := openStreams(t, ctx, allowedPage, stream, 1, func(s []streamState) bool { return len(s) == 1 && s[0].Events >= 3 })
				if len(got) != 1 || got[0].State != "open" || got[0].Events < 3 {
					t.Errorf("allowed origin: %+v, want an open stream with events", got)
				}
				// Chromium fails the EventSource for good on a CORS failure
				// (readyState CLOSED): it judges a retry futile.
				got = openStreams(t, ctx, refusedPage, stream, 1, func(s []streamState) bool { return len(s) == 1 && s[0].State == "closed" })
				if len(got) != 1 || got[0].Events != 0 || got[0].Errors == 0 || got[0].State != "closed" {
					t.Errorf("refused origin: %+v, want CORS to block the stream", got)
				}
			})
		}
	})
}

// The write-up's first point, shown: a browser opens at most six HTTP/1.1
// connections per origin, so the seventh EventSource on 8080 waits, while
// over HTTP/2 on 8443 all seven share one connection.
func TestBrowserSevenStreams(t *testing.T) {
	ctx := browser(t)
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		tests := []struct {
			name     string
			url      string
			wantOpen int
		}{
			{"8080 HTTP/1.1", s.HTTPURL + "/sse/events", 6},
			{"8443 HTTP/2", s.HTTPSURL + "/sse/events", 7},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				start := time.Now()
				got := openStreams(t, ctx, s.DemoURL, tc.url, 7, func(s []streamState) bool { return countOpen(s) >= tc.wantOpen })
				// Then give a seventh stream time it would need to open, were it
				// able to: several event intervals.
				if tc.wantOpen < 7 {
					time.Sleep(max(2*time.Second, time.Since(start)))
					got = pollStreams(t, ctx, func([]streamState) bool { return true })
				}
				if open := countOpen(got); open != tc.wantOpen {
					t.Errorf("%d of 7 streams open, want %d: %+v", open, tc.wantOpen, got)
				}
			})
		}
	})
}
