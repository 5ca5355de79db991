package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/localstack"
)

// startReplicatedStack is startStack with n upstream replicas sharing one
// NATS server.
func startReplicatedStack(t *testing.T, n int) *localstack.Stack {
	t.Helper()
	return startStackOptions(t, localstack.Options{Adapter: localstack.AdapterModule, Replicas: n})
}

// stopUpstreams stops every upstream replica on purpose (no restart).
func stopUpstreams(t *testing.T, s *localstack.Stack) {
	t.Helper()
	for _, u := range s.Upstreams {
		u.Stop(10 * time.Second)
	}
}

// startUpstreams starts every replica again and waits until they serve.
func startUpstreams(t *testing.T, s *localstack.Stack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, u := range s.Upstreams {
		if err := u.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
}

// idLog is what one reconnecting client saw.
type idLog struct {
	mu       sync.Mutex
	ids      []int
	connects int
	replays  []string
	statuses []int
}

func (l *idLog) last() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ids) == 0 {
		return 0
	}
	return l.ids[len(l.ids)-1]
}

// problems lists gaps and repeats in the ids: they come from one global
// sequence, so each must be the previous plus one.
func (l *idLog) problems() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for i := 1; i < len(l.ids); i++ {
		switch prev, id := l.ids[i-1], l.ids[i]; {
		case id <= prev:
			out = append(out, fmt.Sprintf("duplicate %d after %d", id, prev))
		case id > prev+1:
			out = append(out, fmt.Sprintf("lost %d-%d", prev+1, id-1))
		}
	}
	return out
}

// follow reads url with our EventSource-like client until ctx ends.
func follow(ctx context.Context, t *testing.T, client *http.Client, url string) *idLog {
	l := &idLog{}
	c := &sse.Client{
		HTTP: client, URL: url, Retry: 500 * time.Millisecond,
		Header: http.Header{"Origin": {"https://localhost:8443"}},
		OnConnect: func(r *http.Response) {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.connects++
			l.statuses = append(l.statuses, r.StatusCode)
			l.replays = append(l.replays, r.Header.Get("x-sse-replay"))
		},
	}
	go func() {
		err := c.Run(ctx, func(e sse.Event) {
			id, err := strconv.Atoi(e.ID)
			if err != nil {
				t.Errorf("%s: event id %q", url, e.ID)
				return
			}
			l.mu.Lock()
			l.ids = append(l.ids, id)
			l.mu.Unlock()
		})
		if err != nil {
			t.Errorf("%s: the client gave up as EventSource would: %v", url, err)
		}
	}()
	return l
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
	return true
}

// legs are the four ways through Envoy: both ports, both upstream legs.
func legs(t *testing.T, s *localstack.Stack) []struct {
	client *http.Client
	url    string
} {
	h1, h2 := httpClient(t, s, false), httpClient(t, s, true)
	return []struct {
		client *http.Client
		url    string
	}{
		{h1, s.HTTPURL + "/sse/events"},
		{h1, s.HTTPURL + "/sse-with-tls/events"},
		{h2, s.HTTPSURL + "/sse/events"},
		{h2, s.HTTPSURL + "/sse-with-tls/events"},
	}
}

// pageStream is one stream of the demo page, with the fields this file's
// tests read.
type pageStream struct {
	State      string   `json:"state"`
	Events     int      `json:"events"`
	LastID     string   `json:"lastId"`
	Reconnects int      `json:"reconnects"`
	Replays    []string `json:"replays"`
	Missing    []string `json:"missing"`
	Duplicates []int    `json:"duplicates"`
	EverClosed bool     `json:"everClosed"`
}

func pageStreams(t *testing.T, ctx context.Context) []pageStream {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[[]pageStream](
		`window.sseStreams.map(s => ({state: s.state, events: s.events, lastId: s.lastId, reconnects: s.reconnects,
		  replays: s.replays, missing: s.missing, duplicates: s.duplicates, everClosed: s.everClosed}))`))
	if err != nil {
		t.Fatalf("reading the demo page's streams: %v", err)
	}
	return got
}

func minLastID(ps []pageStream) int {
	m := -1
	for _, p := range ps {
		id, _ := strconv.Atoi(p.LastID)
		if m < 0 || id < m {
			m = id
		}
	}
	return m
}

// Kill -9 one replica under 100 streams: every client resumes on the other
// replica through Envoy, with no lost and no duplicated id, both for our
// reconnecting client and for Chromium's EventSource.
func TestKillReplicaUnderStreams(t *testing.T) {
	ctx := browser(t)
	s := startReplicatedStack(t, 2)
	runCtx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ways := legs(t, s)
	var clients []*idLog
	for i := range 100 {
		leg := ways[i%4]
		clients = append(clients, follow(runCtx, t, leg.client, leg.url))
	}
	page := fmt.Sprintf("%s/?url=%s&streams=4", s.DemoURL, s.HTTPSURL+"/sse/events")
	if _, err := chromedp.Run(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool {
		for _, c := range clients {
			if len(c.problems()) > 0 || c.last() == 0 {
				return false
			}
		}
		ps := pageStreams(t, ctx)
		return len(ps) == 4 && minLastID(ps) > 0
	}) {
		t.Fatal("the streams did not all start within 30 s")
	}
	newest := 0
	for _, c := range clients {
		newest = max(newest, c.last())
	}

	s.Upstreams[0].SetRestart(false) // it stays dead: its clients must move
	if err := s.Upstreams[0].Kill(); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	// Every client gets well past the kill: its replica's events, then the
	// other replica's.
	target := newest + 12
	ok := waitFor(45*time.Second, func() bool {
		for _, c := range clients {
			if c.last() < target {
				return false
			}
		}
		return minLastID(pageStreams(t, ctx)) >= target
	})
	cancel()
	reconnected := 0
	for i, c := range clients {
		c.mu.Lock()
		if c.connects > 1 {
			reconnected++
		}
		for _, st := range c.statuses {
			if st != http.StatusOK {
				t.Errorf("client %d: status %d", i, st)
			}
		}
		c.mu.Unlock()
		if p := c.problems(); len(p) > 0 {
			t.Errorf("client %d (%s): %v", i, ways[i%4].url, p)
		}
	}
	if !ok {
		t.Errorf("not every client reached id %d within 45 s of the kill", target)
	}
	// Envoy spreads streams over both replicas: some had to move.
	if reconnected == 0 {
		t.Error("no client reconnected: the kill did not hit any stream")
	}
	for i, p := range pageStreams(t, ctx) {
		if len(p.Missing) > 0 || len(p.Duplicates) > 0 || p.EverClosed || p.State == "closed" {
			t.Errorf("Chromium stream %d: %+v", i, p)
		}
	}
	t.Logf("%d of %d clients reconnected after the kill -9, all at id %d within %v; Chromium: %+v",
		reconnected, len(clients), target, time.Since(killed).Round(100*time.Millisecond), pageStreams(t, ctx))
}

// Restart every replica and NATS: ids continue, and a Last-Event-ID from
// before the restart replays exactly the events missed.
func TestRestartEveryReplica(t *testing.T) {
	s := startReplicatedStack(t, 2)
	client := httpClient(t, s, true)
	url := s.HTTPSURL + "/sse-with-tls/events"
	runCtx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	live := follow(runCtx, t, client, url)
	if !waitFor(20*time.Second, func() bool { return live.last() >= 4 }) {
		t.Fatal("no events")
	}
	// A client that leaves now and comes back after the restart.
	before := live.last()

	stopUpstreams(t, s)
	s.NATS.Stop(10 * time.Second)
	ctx, cancelStart := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancelStart()
	if err := s.NATS.Start(ctx); err != nil {
		t.Fatal(err)
	}
	startUpstreams(t, s)
	if !waitFor(30*time.Second, func() bool { return live.last() >= before+8 }) {
		t.Fatalf("ids did not continue after the restart: last %d, before %d", live.last(), before)
	}
	if p := live.problems(); len(p) > 0 {
		t.Errorf("the live client across the restart: %v (ids %v)", p, live.ids)
	}

	// Come back with the old id: exactly the missed events, then live.
	req, _ := http.NewRequestWithContext(runCtx, http.MethodGet, url, nil)
	req.Header.Set("Last-Event-ID", strconv.Itoa(before))
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	replay := resp.Header.Get("x-sse-replay")
	n, err := strconv.Atoi(strings.TrimPrefix(replay, "replayed "))
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(replay, "replayed ") || err != nil || n < 8 {
		t.Fatalf("resuming from %d: %s, x-sse-replay %q, want replayed >= 8", before, resp.Status, replay)
	}
	r := sse.NewReader(resp.Body)
	for want := before + 1; want <= before+n+2; want++ {
		e, err := r.Next()
		if err != nil {
			t.Fatalf("reading the replay: %v", err)
		}
		if e.ID != strconv.Itoa(want) {
			t.Fatalf("replay from %d: got id %s, want %d", before, e.ID, want)
		}
	}
	t.Logf("ids %d..%d across the restart; Last-Event-ID %d got %q", live.ids[0], live.last(), before, replay)
}

// Every replica down for 10 s: Chromium's EventSources never reach CLOSED
// (Envoy answers 200 + retry, not 503), and once the upstream is back they
// have every event, no gap, no duplicate.
func TestUpstreamOutageBrowser(t *testing.T) {
	ctx := browser(t)
	s := startReplicatedStack(t, 2)
	for _, stream := range []string{s.HTTPURL + "/sse/events", s.HTTPSURL + "/sse-with-tls/events"} {
		t.Run(stream, func(t *testing.T) {
			page := fmt.Sprintf("%s/?url=%s&streams=2", s.DemoURL, stream)
			if _, err := chromedp.Run(ctx, chromedp.Navigate(page)); err != nil {
				t.Fatal(err)
			}
			if !waitFor(20*time.Second, func() bool { return minLastID(pageStreams(t, ctx)) > 2 }) {
				t.Fatalf("streams did not start: %+v", pageStreams(t, ctx))
			}
			stopUpstreams(t, s)
			down := minLastID(pageStreams(t, ctx))
			for end := time.Now().Add(10 * time.Second); time.Now().Before(end); time.Sleep(500 * time.Millisecond) {
				for i, p := range pageStreams(t, ctx) {
					if p.EverClosed || p.State == "closed" {
						t.Fatalf("stream %d reached CLOSED during the outage: %+v", i, p)
					}
				}
			}
			startUpstreams(t, s)
			if !waitFor(30*time.Second, func() bool { return minLastID(pageStreams(t, ctx)) >= down+6 }) {
				t.Errorf("streams did not come back: %+v", pageStreams(t, ctx))
			}
			sawEnvoy := false
			for i, p := range pageStreams(t, ctx) {
				if len(p.Missing) > 0 || len(p.Duplicates) > 0 || p.EverClosed || p.Reconnects == 0 {
					t.Errorf("stream %d: %+v, want reconnects and no gap", i, p)
				}
				for _, r := range p.Replays {
					sawEnvoy = sawEnvoy || strings.Contains(r, "envoy: ")
				}
			}
			t.Logf("after 10 s down: %+v", pageStreams(t, ctx))
			if !sawEnvoy {
				t.Log("no probe caught Envoy's unavailable answer (timing); the EventSources stayed open regardless")
			}
		})
	}
}
