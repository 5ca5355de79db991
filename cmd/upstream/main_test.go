package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/cli"
	"example.com/sse-on-envoy/internal/sse"
)

// With UPSTREAM_TEST_RUN_MAIN set, the test binary is the upstream (its
// arguments are the upstream's: TestMain runs before test flags are parsed),
// so the signal handling in main can be tested on a real process.
func TestMain(m *testing.M) {
	if os.Getenv("UPSTREAM_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

func env(kv ...string) func(string) string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(k string) string { return m[k] }
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     func(string) string
		check   func(config) bool
		wantErr string // substring; "" means success
	}{
		{"defaults", nil, env(), func(c config) bool {
			return c.addr == ":9000" && c.tlsAddr == ":9443" && c.interval == 2*time.Second &&
				c.heartbeat == 15*time.Second && c.retry == 3*time.Second && c.history == 1024 &&
				c.queue == 64 && c.writeTimeout == 0 && c.streamOptions().WithDefaults().WriteTimeout == 10*time.Second && c.shutdownTimeout == 10*time.Second &&
				c.idleTimeout == 2*time.Minute && c.tlsCert == ""
		}, ""},
		{"env fallbacks", nil, env(
			"UPSTREAM_ADDR", ":1", "UPSTREAM_TLS_ADDR", ":2", "UPSTREAM_TLS_CERT", "c", "UPSTREAM_TLS_KEY", "k",
			"UPSTREAM_INTERVAL", "50ms", "UPSTREAM_HEARTBEAT", "10s", "UPSTREAM_RETRY", "0s",
			"UPSTREAM_HISTORY", "5", "UPSTREAM_QUEUE", "6", "UPSTREAM_WRITE_TIMEOUT", "7s",
			"UPSTREAM_SHUTDOWN_TIMEOUT", "8s", "UPSTREAM_IDLE_TIMEOUT", "9m", "UPSTREAM_LOG_FORMAT", "json",
		), func(c config) bool {
			return c.addr == ":1" && c.tlsAddr == ":2" && c.tlsCert == "c" && c.tlsKey == "k" &&
				c.interval == 50*time.Millisecond && c.heartbeat == 10*time.Second && c.retry == 0 &&
				c.history == 5 && c.queue == 6 && c.writeTimeout == 7*time.Second &&
				c.shutdownTimeout == 8*time.Second && c.idleTimeout == 9*time.Minute
		}, ""},
		{"flag beats env", []string{"-interval", "3s"}, env("UPSTREAM_INTERVAL", "1s"),
			func(c config) bool { return c.interval == 3*time.Second }, ""},
		{"flag beats a bad env value", []string{"-interval", "3s"}, env("UPSTREAM_INTERVAL", "soon"),
			func(c config) bool { return c.interval == 3*time.Second }, ""},
		{"bad env duration", nil, env("UPSTREAM_HEARTBEAT", "15"), nil, `"15" for UPSTREAM_HEARTBEAT (flag -heartbeat): want a duration`},
		{"bad env number", nil, env("UPSTREAM_QUEUE", "lots"), nil, `"lots" for UPSTREAM_QUEUE (flag -queue): want a whole number`},
		{"bad flag duration", []string{"-interval", "x"}, env(), nil, "-interval"},
		{"zero interval", []string{"-interval", "0s"}, env(), nil, "-interval (env UPSTREAM_INTERVAL) must be positive"},
		{"negative heartbeat", nil, env("UPSTREAM_HEARTBEAT", "-1s"), nil, "-heartbeat (env UPSTREAM_HEARTBEAT) must be positive"},
		// The heartbeat and the write deadline go together (stream.Options.Validate).
		{"heartbeat past Envoy's idle timeout", []string{"-heartbeat", "45s"}, env(), nil, "-heartbeat (env UPSTREAM_HEARTBEAT) 45s is longer than 30s"},
		{"write deadline outliving the heartbeat", []string{"-heartbeat", "5s", "-write-timeout", "5s"}, env(), nil,
			"-write-timeout (env UPSTREAM_WRITE_TIMEOUT) 5s must be shorter than the heartbeat (5s)"},
		{"write deadline follows a short heartbeat", []string{"-heartbeat", "1s"}, env(),
			func(c config) bool { return c.streamOptions().WithDefaults().WriteTimeout == 500*time.Millisecond }, ""},
		{"negative write timeout", []string{"-write-timeout", "-1s"}, env(), nil, "-write-timeout (env UPSTREAM_WRITE_TIMEOUT) must not be negative"},
		{"token stream pace", []string{"-token-rate", "20", "-token-chars", "3"}, env(), func(c config) bool { return c.tokenRate == 20 && c.tokenChars == 3 }, ""},
		{"token rate zero", []string{"-token-rate", "0"}, env(), nil, "-token-rate (env UPSTREAM_TOKEN_RATE) must be positive"},
		{"token answer length", []string{"-token-answer", "500"}, env(), func(c config) bool { return c.tokenAnswer == 500 }, ""},
		{"token answer negative", []string{"-token-answer", "-1"}, env(), nil, "-token-answer (env UPSTREAM_TOKEN_ANSWER) not negative"},
		{"profiler on loopback", []string{"-debug-addr", "127.0.0.1:6060"}, env(), func(c config) bool { return c.debugAddr == "127.0.0.1:6060" }, ""},
		{"profiler off loopback", []string{"-debug-addr", ":6060"}, env(), nil, "-debug-addr (env UPSTREAM_DEBUG_ADDR) must be a loopback address"},
		{"negative retry", []string{"-retry", "-1s"}, env(), nil, "-retry"},
		{"zero queue", []string{"-queue", "0"}, env(), nil, "-queue (env UPSTREAM_QUEUE) must be at least 1"},
		{"zero history", nil, env("UPSTREAM_HISTORY", "0"), nil, "-history (env UPSTREAM_HISTORY)"},
		{"bad log format", []string{"-log-format", "xml"}, env(), nil, "-log-format"},
		{"cert without key", []string{"-tls-cert", "c.pem"}, env(), nil, "give both or neither"},
		{"key without cert", nil, env("UPSTREAM_TLS_KEY", "k.pem"), nil, "give both or neither"},
		{"stray argument", []string{"extra"}, env(), nil, "unexpected arguments"},
		{"event log defaults", nil, env(), func(c config) bool {
			return c.natsURL == "" && c.dataDir == ".data/upstream" && c.natsStream == "SSE_EVENTS" &&
				c.natsReplicas == 1 && c.historyAge == 24*time.Hour && !c.stamp
		}, ""},
		{"event log from the environment", nil, env(
			"UPSTREAM_NATS_URL", "nats://127.0.0.1:4222", "UPSTREAM_DATA", "/tmp/x", "UPSTREAM_NATS_STREAM", "S",
			"UPSTREAM_NATS_REPLICAS", "3", "UPSTREAM_HISTORY_AGE", "1h", "UPSTREAM_STAMP", "true",
		), func(c config) bool {
			return c.natsURL == "nats://127.0.0.1:4222" && c.dataDir == "/tmp/x" && c.natsStream == "S" &&
				c.natsReplicas == 3 && c.historyAge == time.Hour && c.stamp
		}, ""},
		{"bad stamp", nil, env("UPSTREAM_STAMP", "sometimes"), nil, `"sometimes" for UPSTREAM_STAMP (flag -stamp): want true or false`},
		{"negative history age", []string{"-history-age", "-1s"}, env(), nil, "-history-age (env UPSTREAM_HISTORY_AGE) must not be negative"},
		{"history age below interval", []string{"-history-age", "1s", "-interval", "2s"}, env(), nil, "shorter than -interval"},
		{"no data dir for the embedded NATS", []string{"-data", ""}, env(), nil, "-data (env UPSTREAM_DATA) is needed"},
		{"stream name with a dot", []string{"-nats-stream", "a.b"}, env(), nil, "-nats-stream"},
		{"replicas without a cluster", []string{"-nats-replicas", "3"}, env(), nil, "needs a NATS cluster"},
		{"negative memory history", []string{"-memory-history", "-1"}, env(), nil, "-memory-history (env UPSTREAM_MEMORY_HISTORY) must not be negative"},
		{"memory window", []string{"-history", "50000", "-memory-history", "100"}, env(), func(c config) bool {
			return c.memoryWindow() == 100 && c.history == 50000
		}, ""},
		{"memory window capped by default", []string{"-history", "50000"}, env(), func(c config) bool { return c.memoryWindow() == 10000 }, ""},
		{"memory window within history", []string{"-history", "20", "-memory-history", "100"}, env(), func(c config) bool { return c.memoryWindow() == 20 }, ""},
		{"too many replicas", []string{"-nats-url", "nats://x", "-nats-replicas", "7"}, env(), nil, "must be 1 to 5"},
		{"mercure defaults", nil, env(), func(c config) bool {
			m := c.mercure
			return m.stream == "MERCURE" && m.history == 10000 && m.dedupWindow == 2*time.Minute &&
				m.pubAlg == "HS256" && m.pubKey == "" && m.maxTopics == 64 && m.maxData == 256<<10
		}, ""},
		{"mercure from the environment", nil, env(
			"UPSTREAM_MERCURE_PUBLISHER_JWT_KEY", "publisher-secret-0123456789abcdef",
			"UPSTREAM_MERCURE_SUBSCRIBER_JWT_KEY", "subscriber-secret-0123456789abcde",
			"UPSTREAM_MERCURE_COOKIE_ORIGINS", "https://a.example, https://b.example",
			"UPSTREAM_MERCURE_DEDUP_WINDOW", "10m",
		), func(c config) bool {
			keys, err := c.mercure.keys()
			return err == nil && keys[0].Alg() == "HS256" && keys[1].Alg() == "HS256" &&
				c.mercure.dedupWindow == 10*time.Minute &&
				strings.Join(c.mercure.origins(), " ") == "https://a.example https://b.example"
		}, ""},
		{"mercure short secret", []string{"-mercure-publisher-jwt-key", "short"}, env(), nil, "publisher key: mercure: HS256 secret of 5 bytes"},
		{"mercure RS256 key missing", []string{"-mercure-subscriber-jwt-alg", "RS256", "-mercure-subscriber-jwt-key-file", "/nonexistent.pem"}, env(), nil, "subscriber key"},
		{"mercure unknown alg", []string{"-mercure-publisher-jwt-alg", "none", "-mercure-publisher-jwt-key", "x"}, env(), nil, "unsupported JWT algorithm"},
		{"mercure stream clash", []string{"-mercure-stream", "SSE_EVENTS"}, env(), nil, "-mercure-stream (env UPSTREAM_MERCURE_STREAM) must differ"},
		{"mercure zero data", []string{"-mercure-max-data", "0"}, env(), nil, "-mercure-max-data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := parseConfig(tc.args, tc.env, io.Discard)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(c) {
				t.Errorf("config %+v", c)
			}
		})
	}
}

func TestRunExitCodes(t *testing.T) {
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  func(string) string
		code int
		out  string
	}{
		{"bad flag", []string{"-heartbeat", "often"}, env(), 2, "-heartbeat"},
		{"bad env", nil, env("UPSTREAM_INTERVAL", "2"), 2, "UPSTREAM_INTERVAL"},
		{"half a key pair", []string{"-tls-key", "k.pem"}, env(), 2, "-tls-cert"},
		{"help", []string{"-h"}, env(), 0, "UPSTREAM_TLS_CERT"},
		{"unreadable key pair", []string{"-addr", "127.0.0.1:0", "-tls-cert", junk, "-tls-key", junk, "-data", dir}, env(), 1, "load TLS certificate"},
		{"address in use or bad", []string{"-addr", "256.0.0.1:0", "-data", dir}, env(), 1, "listen on -addr"},
		{"data directory is a file", []string{"-addr", "127.0.0.1:0", "-data", junk}, env(), 1, "data directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var out bytes.Buffer
			if code := cli.Run(ctx, "upstream", run, tc.args, tc.env, &out); code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, out.String())
			}
			if !strings.Contains(out.String(), tc.out) {
				t.Errorf("output lacks %q:\n%s", tc.out, out.String())
			}
		})
	}
}

// Without a certificate the TLS listener is off, said so in the log, and
// the plain listener serves.
func TestRunPlainOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- cli.Run(ctx, "upstream", run, []string{"-addr", "127.0.0.1:0", "-log-format", "json", "-data", t.TempDir()}, env(), pw)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	var addr string
	sawDisabled := false
	for addr == "" && sc.Scan() {
		var rec map[string]any
		_ = json.Unmarshal(sc.Bytes(), &rec)
		msg, _ := rec["msg"].(string)
		if strings.HasPrefix(msg, "TLS listener disabled") {
			sawDisabled = true
		}
		if rec["msg"] == "listening" {
			if rec["listener"] != "plain" {
				t.Errorf("listening on %v", rec["listener"])
			}
			addr = rec["addr"].(string)
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if !sawDisabled {
		t.Error("no log line saying the TLS listener is disabled")
	}
	if addr == "" {
		t.Fatal("server never listened")
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/healthz", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return")
	}
}

// SIGTERM on the real process: the open stream ends normally, the process
// exits 0 well within -shutdown-timeout.
func TestSIGTERM(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0],
		"-addr", "127.0.0.1:0", "-log-format", "json", "-shutdown-timeout", "5s", "-interval", "20ms",
		"-data", t.TempDir())
	cmd.Env = append(os.Environ(), "UPSTREAM_TEST_RUN_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var addr string
	for addr == "" && sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec["msg"] == "listening" {
			addr, _ = rec["addr"].(string)
		}
	}
	logs := make(chan string, 1)
	go func() {
		var rest strings.Builder
		for sc.Scan() {
			rest.WriteString(sc.Text() + "\n")
		}
		logs <- rest.String()
	}()
	if addr == "" {
		t.Fatal("upstream never listened")
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/sse/events", nil)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := sse.NewReader(resp.Body)
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = rd.Next()
	}
	if !errors.Is(err, io.EOF) {
		t.Errorf("stream ended with %v, want a normal end (EOF)", err)
	}
	out := <-logs
	if err := cmd.Wait(); err != nil {
		t.Errorf("upstream exited with %v; log:\n%s", err, out)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("exit took %v, bound is 5s", took)
	}
	if !strings.Contains(out, `"end":"shutdown"`) {
		t.Errorf("log lacks the stream's end=shutdown:\n%s", out)
	}
}
