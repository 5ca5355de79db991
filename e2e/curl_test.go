package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/ssemodule"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/tools/writeup"
)

// The write-up's four transcripts: both ports, both upstream clusters.
func TestWriteUpCurlTranscripts(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		writeup.CheckTranscripts(t, s.HTTPURL, s.HTTPSURL, s.CAFile, tagOf(a))
	})
}

// Each event must reach the client about when the upstream wrote it: the
// same ids read straight from the upstream and through Envoy arrive within
// a small bound of each other. A buffering proxy would deliver them late,
// in bulk.
func TestEventsAreNotBuffered(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		const window = 3 * time.Second
		// A buffering proxy holds events for seconds (until a buffer fills or
		// the stream ends); 500 ms leaves room for a loaded CI machine.
		const bound = 500 * time.Millisecond
		type arrivals map[string]time.Time
		read := func(client *http.Client, url string, out chan<- arrivals) {
			got := arrivals{}
			defer func() { out <- got }()
			ctx, cancel := context.WithTimeout(context.Background(), window)
			defer cancel()
			readStream(ctx, client, url, func(e sse.Event) { got[e.ID] = time.Now() })
		}
		direct, h1, h2 := make(chan arrivals, 1), make(chan arrivals, 1), make(chan arrivals, 1)
		go read(httpClient(t, s, false), s.UpstreamURL+"/sse/events", direct)
		go read(httpClient(t, s, false), s.HTTPURL+"/sse/events", h1)
		go read(httpClient(t, s, true), s.HTTPSURL+"/sse-with-tls/events", h2)
		base := <-direct
		for name, ch := range map[string]chan arrivals{"8080 (HTTP/1.1)": h1, "8443 (HTTP/2, TLS upstream)": h2} {
			via := <-ch
			common := 0
			var worst time.Duration
			for id, at := range via {
				d, ok := base[id]
				if !ok {
					continue
				}
				common++
				lag := at.Sub(d)
				worst = max(worst, lag, -lag)
				if lag > bound || lag < -bound {
					t.Errorf("%s: event %s arrived %v apart from the direct read (bound %v)", name, id, lag, bound)
				}
			}
			t.Logf("%s: %d events, largest gap to the direct read %v", name, common, worst)
			if common < 5 {
				t.Errorf("%s: only %d events seen both ways in %v", name, common, window)
			}
		}
	})
}

func TestPreflightAndOrigins(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		for _, base := range []string{s.HTTPURL, s.HTTPSURL} {
			t.Run(base, func(t *testing.T) {
				status, h, _ := writeup.Curl(t, "--max-time", "5", "--cacert", s.CAFile, "-X", "OPTIONS",
					"-H", "Origin: https://localhost:8080", "-H", "Access-Control-Request-Method: GET",
					"-H", "Access-Control-Request-Headers: last-event-id", base+"/sse/events")
				if !strings.Contains(status, " 204") || h.Get("access-control-allow-origin") != "https://localhost:8080" ||
					h.Get("access-control-max-age") == "" || h.Get("vary") != "Origin" {
					t.Errorf("allowed preflight: %s %v", status, h)
				}
				status, h, _ = writeup.Curl(t, "--max-time", "5", "--cacert", s.CAFile, "-X", "OPTIONS",
					"-H", "Origin: https://evil.example", "-H", "Access-Control-Request-Method: GET", base+"/sse/events")
				if !strings.Contains(status, " 403") || h.Get("access-control-allow-origin") != "" {
					t.Errorf("refused preflight: %s %v", status, h)
				}
				status, h, body := writeup.Curl(t, "--max-time", "1", "--cacert", s.CAFile, "-H", "Origin: https://evil.example", base+"/sse/events")
				if !strings.Contains(status, " 200") || h.Get("access-control-allow-origin") != "" || h.Get("access-control-allow-credentials") != "" {
					t.Errorf("disallowed origin got CORS headers: %s %v", status, h)
				}
				if len(writeup.ParseEvents(t, body)) == 0 {
					t.Error("a disallowed origin's stream still streams (the browser, not Envoy, enforces CORS)")
				}
				// Not a preflight (no Origin): this one goes to the upstream,
				// which answers 405 and logs it; it proves the check below sees.
				status, _, _ = writeup.Curl(t, "--max-time", "5", "--cacert", s.CAFile, "-X", "OPTIONS", base+"/sse/events")
				if !strings.Contains(status, " 405") {
					t.Errorf("plain OPTIONS: %s, want the upstream's 405", status)
				}
			})
		}
		// No preflight reached the upstream: Envoy's access log shows them
		// answered locally, with no upstream host.
		entries := waitForAccessLog(t, s, func(e accessLogEntry) bool {
			return e.str("method") == "OPTIONS" && (e.str("response_code") == "204" || e.str("response_code") == "403")
		}, 4)
		for _, e := range entries {
			if e["upstream_host"] != nil && e["upstream_host"] != "-" && e["upstream_host"] != "" {
				t.Errorf("a preflight reached the upstream: %v", e)
			}
		}
		if n := strings.Count(s.Upstream.Output(), "method=OPTIONS"); n != 2 {
			t.Errorf("the upstream saw %d OPTIONS requests, want only the 2 plain ones:\n%s", n, s.Upstream.Output())
		}
	})
}

func TestLastEventIDReplayThroughEnvoy(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		for _, base := range []string{s.HTTPURL + "/sse/events", s.HTTPSURL + "/sse-with-tls/events"} {
			t.Run(base, func(t *testing.T) {
				_, _, body := writeup.Curl(t, "--max-time", "1", "--cacert", s.CAFile, base)
				first := writeup.ParseEvents(t, body)
				if len(first) < 2 {
					t.Fatalf("only %d events", len(first))
				}
				seen, _ := strconv.Atoi(first[1].ID)
				time.Sleep(time.Second) // the client is away while events go by
				_, h, body := writeup.Curl(t, "--max-time", "1", "--cacert", s.CAFile, "-H", "Last-Event-ID: "+first[1].ID, base)
				again := writeup.ParseEvents(t, body)
				if len(again) < 4 {
					t.Fatalf("only %d events after reconnecting", len(again))
				}
				for i, e := range again {
					if id, _ := strconv.Atoi(e.ID); id != seen+1+i {
						t.Fatalf("after Last-Event-ID %d, event %d has id %s; want %d (no gap, no repeat); replay header %q",
							seen, i, e.ID, seen+1+i, h.Get("x-sse-replay"))
					}
				}
			})
		}
	})
}

func TestAccessLogTagsStreamsAndShowsUpstreamProtocols(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackWith(t, a)
		writeup.Curl(t, "--max-time", "1", "--cacert", s.CAFile, s.HTTPURL+"/sse/events")
		writeup.Curl(t, "--max-time", "1", "--cacert", s.CAFile, s.HTTPSURL+"/sse-with-tls/events")
		entries := waitForAccessLog(t, s, func(e accessLogEntry) bool { return e["sse_tag"] == tagOf(a) }, 2)
		byPath := map[string]accessLogEntry{}
		for _, e := range entries {
			byPath[e.str("path")] = e
		}
		for path, want := range map[string][2]string{
			"/sse/events":          {"HTTP/1.1", "HTTP/1.1"},
			"/sse-with-tls/events": {"HTTP/2", "HTTP/2"},
		} {
			e, ok := byPath[path]
			if !ok {
				t.Errorf("no tagged entry for %s in %v", path, entries)
				continue
			}
			if e.str("protocol") != want[0] || e.str("upstream_protocol") != want[1] {
				t.Errorf("%s: downstream %q upstream %q, want %q and %q", path, e["protocol"], e["upstream_protocol"], want[0], want[1])
			}
			if n, _ := strconv.Atoi(e.str("bytes_sent")); n == 0 {
				t.Errorf("%s: bytes_sent %v", path, e["bytes_sent"])
			}
		}
		// The upstream saw the same protocols arrive.
		out := s.Upstream.Output()
		if !strings.Contains(out, "HTTP/2.0") || !strings.Contains(out, "HTTP/1.1") {
			t.Errorf("the upstream's log does not show both protocols:\n%s", out)
		}
		if a == localstack.AdapterModule {
			checkModuleCounts(t, s, entries)
			return
		}
		// The ext_proc observer's lines and stats carry the counts.
		if xp := s.ExtProc.Output(); !strings.Contains(xp, "sse stream closed") || !strings.Contains(xp, "events=") {
			t.Errorf("ext_proc log:\n%s", xp)
		}
		stats := extProcStats(t, s)
		if stats[ssestream.StatStreamsOpened] != 2 || stats[ssestream.StatEvents] < 6 {
			t.Errorf("ext_proc stats %v, want 2 streams opened with their events", stats)
		}
	})
}

// ext_proc fails open: with the server down, streams keep flowing (without
// the policy's headers) instead of answering 500, which browsers treat as
// final.
func TestExtProcDownFailsOpen(t *testing.T) {
	s := startStackWith(t, localstack.AdapterExtProc)
	s.ExtProc.Stop(5 * time.Second)
	status, h, body := writeup.Curl(t, "--max-time", "1.5", "--cacert", s.CAFile, s.HTTPURL+"/sse/events")
	if !strings.Contains(status, " 200") || h.Get("x-sse-stream") != "" {
		t.Errorf("with ext_proc down: %s, tag %q", status, h.Get("x-sse-stream"))
	}
	if n := len(writeup.ParseEvents(t, body)); n < 3 {
		t.Errorf("%d events with ext_proc down", n)
	}
}

// extProcStats reads the ext_proc server's /stats, by ssestream's names.
func extProcStats(t *testing.T, s *localstack.Stack) map[string]int64 {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(s.ExtProcAdminURL + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var stats map[string]int64
	if err := json.NewDecoder(resp.Body).Decode(&stats); err != nil {
		t.Fatal(err)
	}
	return stats
}

// streamsOpened is the adapter's sse.streams_opened: Envoy's own stat for
// the module, the server's for ext_proc.
func streamsOpened(t *testing.T, s *localstack.Stack, a localstack.Adapter) int64 {
	t.Helper()
	if a == localstack.AdapterExtProc {
		return extProcStats(t, s)[ssestream.StatStreamsOpened]
	}
	return envoyStats(t, s)[ssemodule.StatPrefix+ssestream.StatStreamsOpened]
}
