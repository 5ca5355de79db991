package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	dynmodcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/dynamic_modules/v3"
	dynmodv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/dynamic_modules/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abiinfo"
	"example.com/sse-on-envoy/module/ssemodule"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/tools/writeup"
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
	checkModuleLoaded(t, out)
	// The stream the test's client left: on 1.40 the module reads Envoy's
	// response flags and details, and says so.
	if abiinfo.EndKnown && !closedByClient.MatchString(out) {
		t.Errorf("Envoy's log has no closed line with end=client_gone for the stream the client left:\n%s", out)
	}
	stats := envoyStats(t, s)
	if stats[ssemodule.StatPrefix+ssestream.StatStreamsOpened] != 2 ||
		stats[ssemodule.StatPrefix+ssestream.StatEvents] < 6 ||
		stats[ssemodule.StatPrefix+ssestream.StatStreamsActive] != 0 {
		t.Errorf("Envoy's sse stats %v, want 2 streams opened and closed with their events", stats)
	}
}

var closedByClient = regexp.MustCompile(`sse stream closed: route=sse_plain [^\n]* end=client_gone`)

// checkModuleLoaded checks that Envoy took the module as built for its own
// ABI: no "deprecated" warning, and on 1.40 the line that says it matched.
func checkModuleLoaded(t *testing.T, envoyLog string) {
	t.Helper()
	if strings.Contains(envoyLog, "is deprecated") {
		t.Errorf("Envoy warns about the module's ABI (built for %s):\n%s", abiinfo.Release, envoyLog)
	}
	if want := "Dynamic module ABI version " + abiinfo.Version + " matched"; abiinfo.Release != "1.37" && !strings.Contains(envoyLog, want) {
		t.Errorf("Envoy's log lacks %q:\n%s", want, envoyLog)
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
func waitForLog(t *testing.T, p *localstack.Service, want string, n int) {
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

// A route's own filter_config (DynamicModuleFilterPerRoute) replaces the
// filter-level policy on that route, in the real Envoy: the per-route hooks
// and Envoy's most-specific-config lookup run here.
func TestModulePerRouteConfig(t *testing.T) {
	const routeOrigin = "https://route.example"
	s := startStackOptions(t, localstack.Options{
		Adapter: localstack.AdapterModule,
		EditEnvoyConfig: func(b *bootstrapv3.Bootstrap) error {
			cfg, err := anypb.New(wrapperspb.String("allowed_origins: [" + routeOrigin + "]\ntag_header: x-route-sse\n"))
			if err != nil {
				return err
			}
			perRoute, err := anypb.New(&dynmodv3.DynamicModuleFilterPerRoute{
				DynamicModuleConfig: &dynmodcommonv3.DynamicModuleConfig{Name: ssemodule.ModuleName},
				PerRouteConfigName:  "sse_tls",
				FilterConfig:        cfg,
			})
			if err != nil {
				return err
			}
			found := 0
			err = envoyconfig.EditHTTPConnectionManagers(b, func(h *hcmv3.HttpConnectionManager) error {
				for _, vh := range h.GetRouteConfig().GetVirtualHosts() {
					for _, r := range vh.GetRoutes() {
						if r.GetName() == "sse_tls" {
							r.TypedPerFilterConfig = map[string]*anypb.Any{envoyconfig.ModuleFilter: perRoute}
							found++
						}
					}
				}
				return nil
			})
			if err == nil && found == 0 {
				err = errors.New("no route sse_tls")
			}
			return err
		},
	})
	tests := []struct {
		path        string
		wantOrigin  string // access-control-allow-origin
		wantTag     string // header that carries the tag
		wantNoTagIn string
	}{
		{"/sse-with-tls/events", routeOrigin, "x-route-sse", "x-sse-stream"},
		{"/sse/events", "", "x-sse-stream", "x-route-sse"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			status, h, _ := writeup.Curl(t, "--max-time", "1", "-H", "Origin: "+routeOrigin, s.HTTPURL+tc.path)
			if !strings.Contains(status, " 200") || h.Get("access-control-allow-origin") != tc.wantOrigin {
				t.Errorf("%s: allow-origin %q, want %q", status, h.Get("access-control-allow-origin"), tc.wantOrigin)
			}
			if h.Get(tc.wantTag) != "dynamic_module" || h.Get(tc.wantNoTagIn) != "" {
				t.Errorf("tags: %s=%q %s=%q", tc.wantTag, h.Get(tc.wantTag), tc.wantNoTagIn, h.Get(tc.wantNoTagIn))
			}
		})
	}
}

// A preflight that carries a body (browsers never send one) is answered
// once the body is in; a body over the listener's 32 KiB buffer limit gets
// Envoy's 413 instead. Envoy stays up either way.
func TestModulePreflightWithABody(t *testing.T) {
	s := startStackWith(t, localstack.AdapterModule)
	for _, tc := range []struct {
		body   string
		status string
	}{
		{"x", " 204"},
		{strings.Repeat("y", 100_000), " 413"},
	} {
		status, h, _ := writeup.Curl(t, "--max-time", "5", "-X", "OPTIONS", "-H", "Origin: https://localhost:8080",
			"-H", "Access-Control-Request-Method: GET", "--data-binary", tc.body, s.HTTPURL+"/sse/events")
		if !strings.Contains(status, tc.status) || h.Get("access-control-allow-origin") != "https://localhost:8080" {
			t.Errorf("%d-byte preflight: %s %v, want%s", len(tc.body), status, h, tc.status)
		}
	}
	// Envoy is supervised: a crash shows as an exited process or a restart.
	if exited, err := s.Envoy.Process().Exited(); exited || s.Envoy.Restarts() != 0 {
		t.Fatalf("Envoy crashed (exited=%v %v, restarts %d)", exited, err, s.Envoy.Restarts())
	}
	if status, _, _ := writeup.Curl(t, "--max-time", "1", s.HTTPURL+"/sse/events"); !strings.Contains(status, " 200") {
		t.Errorf("a stream after the preflights: %s", status)
	}
}

// The counts reach the periodic access-log entries of a long stream: the
// module refreshes them from the body hook (the ABI has no access-log hook
// for HTTP filters, on 1.37 as on 1.40). The flush interval is cut to 1 s
// for the test.
func TestModuleCountsInPeriodicAccessLogEntries(t *testing.T) {
	s := startStackOptions(t, localstack.Options{
		Adapter: localstack.AdapterModule,
		EditEnvoyConfig: func(b *bootstrapv3.Bootstrap) error {
			return envoyconfig.EditHTTPConnectionManagers(b, func(h *hcmv3.HttpConnectionManager) error {
				h.GetAccessLogOptions().AccessLogFlushInterval = durationpb.New(time.Second)
				return nil
			})
		},
	})
	writeup.Curl(t, "--max-time", "3.5", s.HTTPURL+"/sse/events")
	entries := waitForAccessLog(t, s, func(e accessLogEntry) bool {
		return e.str("log_type") == "DownstreamPeriodic" && e.str("path") == "/sse/events"
	}, 2)
	last := 0
	for _, e := range entries {
		n, _ := strconv.Atoi(e.str("sse_events"))
		if n < last {
			t.Errorf("sse_events went from %d down to %d", last, n)
		}
		last = n
	}
	// Events come every 250 ms: by the last periodic entry, after at least
	// two seconds, several have been counted.
	if last < 3 {
		t.Errorf("the last periodic entry counts %d events, want the stream's events so far: %v", last, entries)
	}
}

// The module raises the Go runtime's timer slack (module/abi/slack.c) and
// nothing else's: Envoy's main thread and its workers keep their own, the
// Go runtime's threads (sysmon among them) have abiinfo.GoTimerSlack.
func TestModuleRaisesOnlyGosTimerSlack(t *testing.T) {
	s := startStack(t)
	pid := s.Envoy.Process().PID()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	goThreads := 0
	for _, task := range tasks {
		comm, err1 := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/comm", pid, task.Name()))
		slack, err2 := os.ReadFile(fmt.Sprintf("/proc/%s/timerslack_ns", task.Name()))
		if err1 != nil || err2 != nil {
			continue // a thread that just ended
		}
		ns, _ := strconv.ParseInt(strings.TrimSpace(string(slack)), 10, 64)
		raised := time.Duration(ns) == abiinfo.GoTimerSlack
		name := strings.TrimSpace(string(comm))
		switch {
		case raised && (task.Name() == strconv.Itoa(pid) || strings.HasPrefix(name, "wrk:")):
			t.Errorf("Envoy's thread %s (%s) has Go's timer slack %v", task.Name(), name, abiinfo.GoTimerSlack)
		case raised:
			goThreads++
		}
	}
	if goThreads == 0 {
		t.Errorf("no thread of Envoy has the Go runtime's timer slack %v: slack.c's constructor did not run before Go's", abiinfo.GoTimerSlack)
	}
}
