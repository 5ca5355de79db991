package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Helpers for the tests that run the upstream and nats-server as real
// processes on loopback.

// procTimeout bounds every wait on a process: generous for a loaded
// two-core machine, never reached when things work.
const procTimeout = 30 * time.Second

var natsBuild struct {
	once sync.Once
	bin  string
	err  error
}

// natsServerBin builds the real nats-server from the module version in
// go.mod, once per test binary.
func natsServerBin(t *testing.T) string {
	t.Helper()
	natsBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "nats-server-bin-")
		if err != nil {
			natsBuild.err = err
			return
		}
		natsBuild.bin = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", natsBuild.bin, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			natsBuild.err = fmt.Errorf("go build nats-server: %v\n%s", err, out)
		}
	})
	if natsBuild.err != nil {
		t.Fatal(natsBuild.err)
	}
	return natsBuild.bin
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// records returns the JSON log records whose msg is msg.
func (b *lockedBuffer) records(msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(b.String()) {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// proc is a child process whose output is kept for assertions.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	done chan struct{}
	err  error
}

func startProc(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &lockedBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		if strings.Contains(p.out.String(), "WARNING: DATA RACE") {
			t.Errorf("%s: the race detector found a data race", name)
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, p.out.String())
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends sig and waits for the exit, killing after the bound.
func (p *proc) stop(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(procTimeout):
		p.kill()
		t.Errorf("%s did not exit on %v", p.name, sig)
	}
}

func (p *proc) kill() {
	if !p.exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// natsProc is a nats-server with JetStream on a fixed loopback port, so that
// it can be restarted where clients expect it.
type natsProc struct {
	*proc
	port     int
	storeDir string
}

func (n *natsProc) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", n.port) }

func startNATS(t *testing.T, port int, storeDir string) *natsProc {
	t.Helper()
	p := startProc(t, "nats-server", nil, natsServerBin(t),
		"-a", "127.0.0.1", "-p", strconv.Itoa(port), "-js", "-sd", storeDir)
	n := &natsProc{proc: p, port: port, storeDir: storeDir}
	waitUntil(t, "nats-server accepting connections", func() bool {
		if p.exited() {
			t.Fatalf("nats-server exited: %v\n%s", p.err, p.out.String())
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err != nil {
			return false
		}
		c.Close()
		return strings.Contains(p.out.String(), "Server is ready")
	})
	return n
}

// restart stops the server (sig) and starts it again on the same port and
// storage.
func (n *natsProc) restart(t *testing.T, sig syscall.Signal) *natsProc {
	t.Helper()
	n.stop(t, sig)
	return startNATS(t, n.port, n.storeDir)
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// replica is the upstream running as its own process (this test binary
// with UPSTREAM_TEST_RUN_MAIN=1 runs main).
type replica struct {
	*proc
	base string // http://127.0.0.1:port
}

func startReplica(t *testing.T, args ...string) *replica {
	t.Helper()
	args = append([]string{"-addr", "127.0.0.1:0", "-log-format", "json", "-shutdown-timeout", "3s"}, args...)
	p := startProc(t, "upstream", []string{"UPSTREAM_TEST_RUN_MAIN=1"}, os.Args[0], args...)
	r := &replica{proc: p}
	waitUntil(t, "upstream listening", func() bool {
		if p.exited() {
			t.Fatalf("upstream exited: %v\n%s", p.err, p.out.String())
		}
		recs := p.out.records("listening")
		if len(recs) == 0 {
			return false
		}
		r.base = "http://" + recs[0]["addr"].(string)
		return true
	})
	return r
}

// health returns /healthz's status and body.
func (r *replica) health(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(r.base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func (r *replica) waitHealthy(t *testing.T) {
	t.Helper()
	waitUntil(t, "upstream healthy", func() bool {
		code, _ := r.health(t)
		return code == http.StatusOK
	})
}

// metrics scrapes /metrics into "name{labels}" -> value.
func (r *replica) metrics(t *testing.T) map[string]float64 {
	t.Helper()
	resp, err := http.Get(r.base + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	return parseMetrics(t, resp.Body)
}

func parseMetrics(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(procTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// item is what a client reads: an event or a heartbeat comment.
type item struct {
	id        uint64
	data      string
	sent      string // the ": sent=" stamp before the event, if any
	heartbeat bool
	at        time.Time
}

// sseClient reads one stream line by line on its own goroutine, so that
// a test can wait for events with a bound and see heartbeats.
type sseClient struct {
	resp   *http.Response
	items  chan item
	ended  chan error
	cancel context.CancelFunc
}

func openSSE(t *testing.T, base, lastEventID string) *sseClient {
	t.Helper()
	return openSSEWith(t, http.DefaultClient, base, lastEventID)
}

func openSSEWith(t *testing.T, hc *http.Client, base, lastEventID string) *sseClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/sse/events", nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	resp, err := hc.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET %s/sse/events: %v", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		t.Fatalf("GET /sse/events with Last-Event-ID %q: status %d", lastEventID, resp.StatusCode)
	}
	c := &sseClient{resp: resp, items: make(chan item, 1<<16), ended: make(chan error, 1), cancel: cancel}
	t.Cleanup(c.close)
	go c.read()
	return c
}

func (c *sseClient) close() {
	c.cancel()
	c.resp.Body.Close()
}

func (c *sseClient) replay() string { return c.resp.Header.Get("X-Sse-Replay") }

func (c *sseClient) read() {
	sc := bufio.NewScanner(c.resp.Body)
	var cur item
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == ": heartbeat":
			c.items <- item{heartbeat: true, at: time.Now()}
		case strings.HasPrefix(line, ": sent="):
			cur.sent = strings.TrimPrefix(line, ": sent=")
		case strings.HasPrefix(line, "id: "):
			cur.id, _ = strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 64)
		case strings.HasPrefix(line, "data: "):
			data = append(data, strings.TrimPrefix(line, "data: "))
		case line == "":
			if cur.id != 0 {
				cur.data, cur.at = strings.Join(data, "\n"), time.Now()
				c.items <- cur
			}
			cur, data = item{}, nil
		}
	}
	err := sc.Err()
	if err == nil {
		err = io.EOF
	}
	c.ended <- err
}

// next returns the next event, skipping heartbeats.
func (c *sseClient) next(t *testing.T) item {
	t.Helper()
	timeout := time.After(procTimeout)
	for {
		select {
		case it := <-c.items:
			if !it.heartbeat {
				return it
			}
		case err := <-c.ended:
			c.ended <- err
			t.Fatalf("stream ended: %v", err)
		case <-timeout:
			t.Fatal("no event within the bound")
		}
	}
}

// events reads n events.
func (c *sseClient) events(t *testing.T, n int) []item {
	t.Helper()
	out := make([]item, n)
	for i := range out {
		out[i] = c.next(t)
	}
	return out
}

// checkConsecutive fails unless the events' ids are from, from+1, ...
func checkConsecutive(t *testing.T, what string, evs []item, from uint64) {
	t.Helper()
	for i, e := range evs {
		if want := from + uint64(i); e.id != want {
			t.Fatalf("%s: event %d has id %d, want %d (ids %v)", what, i, e.id, want, idsOf(evs))
		}
	}
}

func idsOf(evs []item) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.id
	}
	return out
}
