package e2e

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/localstack"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/ssemodule"
)

// checkModuleCounts checks what only the module can show in Envoy itself:
// the counts in the access log (dynamic metadata sse:*), the stream lines
// in Envoy's log, and the sse.* stats in Envoy's /stats, under the prefix
// Envoy gives a module's stats. entries are the two tagged streams'
// access-log entries.
func checkModuleCounts(t *testing.T, s *localstack.Stack, entries []accessLogEntry) {
	t.Helper()
	for _, e := range entries {
		if n, _ := strconv.Atoi(e.str("sse_events")); n < 1 {
			t.Errorf("%s: sse_events %v, want the counted events", e.str("path"), e["sse_events"])
		}
		if n, _ := strconv.Atoi(e.str("sse_bytes")); n < 1 {
			t.Errorf("%s: sse_bytes %v", e.str("path"), e["sse_bytes"])
		}
		if e.str("sse_last_event_id") == "" || e.str("sse_protocol") != e.str("protocol") {
			t.Errorf("%s: sse_last_event_id %v, sse_protocol %v (protocol %v)", e.str("path"), e["sse_last_event_id"], e["sse_protocol"], e["protocol"])
		}
	}
	out := s.Envoy.Output()
	for _, want := range []string{
		"sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=(none) adapter=dynamic_module",
		"sse stream opened: route=sse_tls protocol=HTTP/2 method=GET path=/sse-with-tls/events",
		"sse stream closed: route=sse_plain protocol=HTTP/1.1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("Envoy's log lacks %q:\n%s", want, out)
		}
	}
	stats := envoyStats(t, s)
	if stats[ssemodule.StatPrefix+ssestream.StatStreamsOpened] != 2 ||
		stats[ssemodule.StatPrefix+ssestream.StatEvents] < 6 ||
		stats[ssemodule.StatPrefix+ssestream.StatStreamsActive] != 0 {
		t.Errorf("Envoy's sse stats %v, want 2 streams opened and closed with their events", stats)
	}
}

// envoyStats reads Envoy's admin /stats: the sse stats, by full name.
func envoyStats(t *testing.T, s *localstack.Stack) map[string]int64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(s.AdminURL + "/stats?filter=sse%5C.")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	stats := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ": ")
		if !ok {
			continue
		}
		if n, err := strconv.ParseInt(value, 10, 64); err == nil {
			stats[name] = n
		}
	}
	return stats
}

// waitForLog polls a process's output until want appears n times.
func waitForLog(t *testing.T, p *localstack.Process, want string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.Output(), want) < n {
		if time.Now().After(deadline) {
			t.Errorf("%s's output has %q %d times after 10 s, want %d:\n%s", p.Name, want, strings.Count(p.Output(), want), n, p.Output())
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}
