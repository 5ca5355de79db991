package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/ssemodule"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/upstream/tokens"
)

// A token stream through stock Envoy, measured as LLM gateways measure it
// (issue 19): a POST answered by the upstream's OpenAI-style chunks at
// 50 tokens a second, on the TLS leg. What the policy measured is where
// each adapter can put it: the module in Envoy's access log (dynamic
// metadata), the ext_proc observer in its closed line (Envoy ignores an
// observer's answers, so it cannot write metadata). Both carry the time to
// the first event, the largest gap and the total tokens the upstream
// reported in its usage chunk.
func TestTokenStreamMeasured(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackOptions(t, localstack.Options{Adapter: a,
			UpstreamArgs: append([]string{"-token-rate", "50"}, fastUpstream...)})
		usage := postCompletion(t, httpClient(t, s, true), s.HTTPSURL+routes.CompletionsPath)
		t.Logf("the upstream reported usage %+v", usage)
		want := strconv.Itoa(usage.TotalTokens)
		if a == localstack.AdapterModule {
			e := waitForAccessLog(t, s, func(e accessLogEntry) bool { return e.str("path") == routes.CompletionsPath }, 1)[0]
			if e.str("sse_tag") != "dynamic_module" || e.str("sse_total_tokens") != want || e.str("sse_extract_errors") != "0" {
				t.Errorf("access log entry %v: want the tag, total tokens %s and no extract error", e, want)
			}
			t.Logf("access log: %v", e)
			checkTiming(t, e.str("sse_first_event_ms"), e.str("sse_max_gap_ms"))
			if n, _ := strconv.ParseFloat(e.str("sse_events_per_second"), 64); n < 20 || n > 200 {
				t.Errorf("events per second %v, want about 50", e["sse_events_per_second"])
			}
			// And Envoy's histograms (merged at its stats flush, every 5 s).
			for _, h := range []string{ssestream.StatFirstEventMS, ssestream.StatMaxGapMS} {
				// Envoy's Prometheus names: "envoy_" and the stat's, dots as "_".
				waitForPrometheus(t, s, "envoy_"+strings.ReplaceAll(ssemodule.StatPrefix+h, ".", "_")+"_count{} 1")
			}
			return
		}
		line := waitForLine(t, s.ExtProc, "sse stream closed: route=completions")
		if !strings.Contains(line, " total_tokens="+want+" ") || !strings.Contains(line, "extract_errors=0") {
			t.Errorf("ext_proc's closed line %q: want total_tokens=%s and extract_errors=0", line, want)
		}
		t.Logf("ext_proc: %s", line)
		fields := map[string]string{}
		for _, f := range strings.Fields(line) {
			if k, v, ok := strings.Cut(f, "="); ok {
				fields[k] = v
			}
		}
		first, _ := time.ParseDuration(fields["first_event"])
		gap, _ := time.ParseDuration(fields["max_gap"])
		checkTiming(t, strconv.FormatFloat(float64(first)/1e6, 'f', 3, 64), strconv.FormatFloat(float64(gap)/1e6, 'f', 3, 64))
	})
}

// postCompletion asks for a streamed completion as an LLM UI does and
// returns the usage its last chunk reported.
func postCompletion(t *testing.T, c *http.Client, url string) tokens.Usage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := `{"model":"dad-joke-1","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"tell me a joke"}]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://localhost:3000")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
		resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("POST %s: %s %v", url, resp.Status, resp.Header)
	}
	var usage tokens.Usage
	done := false
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		var chunk tokens.Chunk
		if err := json.Unmarshal([]byte(data), &chunk); err != nil {
			t.Fatalf("chunk %q: %v", data, err)
		}
		if chunk.Usage != nil {
			usage = *chunk.Usage
		}
	}
	if !done || usage.TotalTokens == 0 {
		t.Fatalf("stream ended (%v) without [DONE] (%v) or usage (%+v)", sc.Err(), done, usage)
	}
	return usage
}

// checkTiming checks the time to the first event and the largest gap (in
// ms) a 50-tokens-a-second stream gives: a first event well within a
// second, a largest gap about a token's 20 ms, never above a second.
func checkTiming(t *testing.T, firstMS, maxGapMS string) {
	t.Helper()
	first, err1 := strconv.ParseFloat(firstMS, 64)
	gap, err2 := strconv.ParseFloat(maxGapMS, 64)
	if err1 != nil || err2 != nil || first <= 0 || first > 2000 || gap < 5 || gap > 1000 {
		t.Errorf("first event %q ms, largest gap %q ms: want a first event within 2 s and a gap of about 20 ms", firstMS, maxGapMS)
	}
}

// waitForPrometheus polls Envoy's /stats/prometheus for a line.
func waitForPrometheus(t *testing.T, s *localstack.Stack, want string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	body := ""
	for time.Now().Before(deadline) {
		resp, err := client.Get(s.AdminURL + "/stats/prometheus")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if body = string(b); strings.Contains(body, want+"\n") {
				return
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	var near []string
	name, _, _ := strings.Cut(want, "_count")
	for _, l := range strings.Split(body, "\n") {
		if strings.Contains(l, name) && !strings.Contains(l, "_bucket") {
			near = append(near, l)
		}
	}
	t.Errorf("Envoy's /stats/prometheus has no line %q after 20 s; it has %q", want, near)
}

// waitForLine polls a process's output for a line containing want.
func waitForLine(t *testing.T, p *localstack.Service, want string) string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(p.Output(), "\n") {
			if strings.Contains(l, want) {
				return l
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no line with %q in:\n%s", want, p.Output())
	return ""
}
