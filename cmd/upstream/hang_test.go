package main

import (
	"bytes"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"example.com/sse-on-envoy/upstream/stream"
)

// A nats-server that hangs rather than dies (SIGSTOP: its sockets stay
// open, nothing answers) is the outage a client library notices last. The
// replica still says so and loses nothing: /healthz answers 503 within
// 10 s, a Mercure publish answers 503 naming its id within the publish
// timeout, open streams stay open on heartbeats, and once NATS answers
// again (SIGCONT) the seed stream goes on with no gap and the publisher's
// retry under the same id reaches the subscriber once.
func TestNATSHangs(t *testing.T) {
	const healthBound = 10 * time.Second
	n := startNATS(t, freePort(t), t.TempDir())
	r := startReplica(t, append(mercureArgs(n.url()), "-interval", "200ms", "-heartbeat", "500ms")...)
	r.waitHealthy(t)
	seed := openSSE(t, r.base, "")
	before := seed.events(t, 3)
	topic := url.Values{"topic": {"urn:hang"}}
	sub := mercureSubscribe(t, r.base, topic, "", "")
	first := mercurePublish(t, r.base, url.Values{"topic": {"urn:hang"}, "data": {"before"}})
	sub.until(t, first)

	pid := n.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// The signal is delivered asynchronously: wait until the kernel says the
	// process is stopped, or a publish may still be acknowledged.
	waitUntil(t, "nats-server stopped", func() bool { return procState(pid) == 'T' })
	resumed := false
	t.Cleanup(func() {
		if !resumed {
			_ = syscall.Kill(pid, syscall.SIGCONT)
		}
	})
	stopped := time.Now()

	// A publish during the hang: 503, its id named for the retry, within
	// the publish timeout (and some slack for a loaded machine).
	const retryID = "urn:hang:during"
	start := time.Now()
	status, body := postUpdate(t, r.base, url.Values{"topic": {"urn:hang"}, "data": {"during"}, "id": {retryID}})
	if took := time.Since(start); status != http.StatusServiceUnavailable || !strings.Contains(body, retryID) ||
		took > stream.LogPublishTimeout+3*time.Second {
		t.Errorf("publish while NATS hangs: %d %q after %v, want 503 naming %s within %v", status, body, took.Round(time.Millisecond), retryID, stream.LogPublishTimeout)
	}

	var health string
	waitUntil(t, "/healthz 503 while NATS hangs", func() bool {
		var code int
		code, health = r.health(t)
		return code == http.StatusServiceUnavailable
	})
	if took := time.Since(stopped); took > healthBound+2*time.Second {
		t.Errorf("/healthz said 503 (%q) only %v after NATS hung, want within %v", health, took.Round(time.Millisecond), healthBound)
	}
	t.Logf("NATS hung: /healthz 503 after %v (%q)", time.Since(stopped).Round(time.Millisecond), strings.TrimSpace(health))

	// The seed stream stays open: what was stored comes, then heartbeats.
	lastID := before[len(before)-1].id
	heartbeats := 0
	for window := time.After(2 * time.Second); ; {
		select {
		case it := <-seed.items:
			if it.heartbeat {
				heartbeats++
				continue
			}
			if it.id != lastID+1 {
				t.Fatalf("id %d after %d while NATS hangs", it.id, lastID)
			}
			lastID = it.id
			continue
		case err := <-seed.ended:
			t.Fatalf("seed stream ended while NATS hangs: %v", err)
		case <-window:
		}
		break
	}
	if heartbeats < 2 {
		t.Errorf("%d heartbeats in 2 s of hang at -heartbeat 500ms", heartbeats)
	}

	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	resumed = true
	r.waitHealthy(t)
	checkConsecutive(t, "seed stream across the hang", seed.events(t, 5), lastID+1)
	// The retry is stored once and reaches the subscriber right after the
	// update before the hang (if the first try was stored after all, the
	// retry is its duplicate).
	if status, body := postUpdate(t, r.base, url.Values{"topic": {"urn:hang"}, "data": {"during"}, "id": {retryID}}); status != http.StatusOK {
		t.Fatalf("retried publish after the hang: %d %q", status, body)
	}
	last := mercurePublish(t, r.base, url.Values{"topic": {"urn:hang"}, "data": {"after"}})
	if got := sub.until(t, last); strings.Join(got, " ") != retryID+" "+last {
		t.Errorf("subscriber got %q after the hang, want %s then %s", got, retryID, last)
	}
}

// procState is the state letter of pid in /proc (R, S, T...), 0 if unknown.
func procState(pid int) byte {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	// pid (comm) state ...: comm may hold spaces, the state follows its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return 0
	}
	return b[i+2]
}

// postUpdate publishes form with a publisher token and returns the status
// and body, whatever they are.
func postUpdate(t *testing.T, base string, form url.Values) (int, string) {
	t.Helper()
	tok := signHS256(t, testPublisherKey, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}})
	req, _ := http.NewRequest(http.MethodPost, base+"/.well-known/mercure", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	c := &http.Client{Timeout: procTimeout}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
