package e2e

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/tools/writeup"
)

// With no upstream at all, Envoy's own 503 would end every EventSource for
// good. On the SSE routes it must answer 200 text/event-stream instead, with
// a retry field (EventSource reconnects by itself) and a comment naming the
// cause, and the CORS headers a cross-origin page needs to read it. Other
// routes keep their 503.
func TestLocalReplyKeepsEventSourceReconnecting(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		stopUpstreams(t, s)
		const origin = "https://localhost:8443" // in envoy/sse-policy.yaml
		urls := []string{
			s.HTTPURL + "/sse/events", s.HTTPURL + "/sse-with-tls/events",
			s.HTTPSURL + "/sse/events", s.HTTPSURL + "/sse-with-tls/events",
		}
		// Health checks need a moment to mark the replicas down; the answer
		// must be the same before and after.
		for _, when := range []string{"at once", "once health checks failed"} {
			if when != "at once" {
				waitForFailedHealthChecks(t, s, 30*time.Second)
			}
			for _, url := range urls {
				status, h, body := writeup.Curl(t, "--max-time", "5", "--cacert", s.CAFile, "-H", "Origin: "+origin, url)
				if !strings.HasSuffix(status, " 200") && !strings.HasSuffix(status, " 200 OK") {
					t.Errorf("%s %s: status %q, want 200", when, url, status)
				}
				if ct := h.Get("content-type"); ct != "text/event-stream" {
					t.Errorf("%s %s: content-type %q", when, url, ct)
				}
				if h.Get(envoyconfig.LocalReplyHeader) == "" {
					t.Errorf("%s %s: no %s header naming the flags: %v", when, url, envoyconfig.LocalReplyHeader, h)
				}
				if got := h.Get("access-control-allow-origin"); got != origin {
					t.Errorf("%s %s: access-control-allow-origin %q, want %q (else the page cannot read the answer)", when, url, got, origin)
				}
				if !strings.Contains(body, "retry: 2000\n") || !strings.Contains(body, ": envoy: ") || strings.Contains(body, "id:") {
					t.Errorf("%s %s: body %q, want a retry field and a comment naming the cause, and no id", when, url, body)
				}
				t.Logf("%s %s: %s %s %q", when, url, status, h.Get(envoyconfig.LocalReplyHeader), body)
				if events := writeup.ParseEvents(t, body); len(events) != 0 {
					t.Errorf("%s %s: the local reply dispatched events %v", when, url, events)
				}
			}
		}
		// Eight answers that EventSource retries, none of them a stream: the
		// stats must not count an outage's retries as streams.
		if n := streamsOpened(t, s, a); n != 0 {
			t.Errorf("%d streams counted as opened, want 0: Envoy's unavailable answer is no stream", n)
		}
		status, _, _ := writeup.Curl(t, "--max-time", "5", s.HTTPURL+"/upstream/healthz")
		if !strings.HasSuffix(status, " 503 Service Unavailable") {
			t.Errorf("non-SSE route: %q, want Envoy's 503 unchanged", status)
		}
	})
}

// waitForFailedHealthChecks waits until Envoy's admin /clusters shows every
// upstream host (clusters upstream_plain and upstream_tls) with the
// failed_active_hc health flag: Envoy's health checks have marked them all
// down. With interval 2s (no_traffic_interval 5s) and unhealthy_threshold 2
// that takes up to ~12 s; the bound fails the test with what Envoy said.
func waitForFailedHealthChecks(t *testing.T, s *localstack.Stack, bound time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(bound)
	var flags []string
	for {
		flags = upstreamHealthFlags(t, client, s.AdminURL)
		down := len(flags) > 0
		for _, f := range flags {
			down = down && strings.Contains(f, "failed_active_hc")
		}
		if down {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the upstream hosts are not all marked down by health checks after %v:\n%s", bound, strings.Join(flags, "\n"))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// upstreamHealthFlags are the health_flags lines of the upstream clusters'
// hosts in Envoy's admin /clusters ("upstream_plain::127.0.0.1:9000::health_flags::/failed_active_hc").
func upstreamHealthFlags(t *testing.T, client *http.Client, adminURL string) []string {
	t.Helper()
	resp, err := client.Get(adminURL + "/clusters")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "upstream_") && strings.Contains(line, "::health_flags::") {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
