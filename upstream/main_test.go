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
				c.queue == 64 && c.writeTimeout == 10*time.Second && c.shutdownTimeout == 10*time.Second &&
				c.idleTimeout == 2*time.Minute && c.logFormat == "text" && c.tlsCert == "" && !c.stamp
		}, ""},
		{"stamp from env", nil, env("UPSTREAM_STAMP", "true"), func(c config) bool { return c.stamp }, ""},
		{"bad env bool", nil, env("UPSTREAM_STAMP", "maybe"), nil, `"maybe" for UPSTREAM_STAMP (flag -stamp): want true or false`},
		{"env fallbacks", nil, env(
			"UPSTREAM_ADDR", ":1", "UPSTREAM_TLS_ADDR", ":2", "UPSTREAM_TLS_CERT", "c", "UPSTREAM_TLS_KEY", "k",
			"UPSTREAM_INTERVAL", "50ms", "UPSTREAM_HEARTBEAT", "1s", "UPSTREAM_RETRY", "0s",
			"UPSTREAM_HISTORY", "5", "UPSTREAM_QUEUE", "6", "UPSTREAM_WRITE_TIMEOUT", "7s",
			"UPSTREAM_SHUTDOWN_TIMEOUT", "8s", "UPSTREAM_IDLE_TIMEOUT", "9m", "UPSTREAM_LOG_FORMAT", "json",
		), func(c config) bool {
			return c.addr == ":1" && c.tlsAddr == ":2" && c.tlsCert == "c" && c.tlsKey == "k" &&
				c.interval == 50*time.Millisecond && c.heartbeat == time.Second && c.retry == 0 &&
				c.history == 5 && c.queue == 6 && c.writeTimeout == 7*time.Second &&
				c.shutdownTimeout == 8*time.Second && c.idleTimeout == 9*time.Minute && c.logFormat == "json"
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
		{"negative retry", []string{"-retry", "-1s"}, env(), nil, "-retry"},
		{"zero queue", []string{"-queue", "0"}, env(), nil, "-queue (env UPSTREAM_QUEUE) must be at least 1"},
		{"zero history", nil, env("UPSTREAM_HISTORY", "0"), nil, "-history (env UPSTREAM_HISTORY)"},
		{"bad log format", []string{"-log-format", "xml"}, env(), nil, "-log-format"},
		{"cert without key", []string{"-tls-cert", "c.pem"}, env(), nil, "give both or neither"},
		{"key without cert", nil, env("UPSTREAM_TLS_KEY", "k.pem"), nil, "give both or neither"},
		{"stray argument", []string{"extra"}, env(), nil, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseConfig(tc.args, tc.env, io.Discard)
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
		{"unreadable key pair", []string{"-addr", "127.0.0.1:0", "-tls-cert", junk, "-tls-key", junk}, env(), 1, "load TLS certificate"},
		{"address in use or bad", []string{"-addr", "256.0.0.1:0"}, env(), 1, "listen on -addr"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			var out bytes.Buffer
			if code := run(ctx, tc.args, tc.env, &out); code != tc.code {
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
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-log-format", "json"}, env(), pw)
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
		"-addr", "127.0.0.1:0", "-log-format", "json", "-shutdown-timeout", "5s", "-interval", "20ms")
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
