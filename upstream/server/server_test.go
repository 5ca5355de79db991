package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/seed"
	"example.com/sse-on-envoy/upstream/stream"
)

// running is a Server under Run on loopback listeners.
type running struct {
	srv    *Server
	plain  string // base URLs
	secure string
	h2     *http.Client
	logs   *logBuffer
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, cfg Config, wrap func(net.Listener) net.Listener) *running {
	t.Helper()
	tlsConf, h2 := testTLS(t)
	logs := &logBuffer{}
	cfg.TLS = tlsConf
	cfg.Handler.Logger = logs.logger()
	srv := New(cfg)
	listen := func() net.Listener {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if wrap != nil {
			ln = wrap(ln)
		}
		return ln
	}
	plain, secure := listen(), listen()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{
		srv: srv, h2: h2, logs: logs, cancel: cancel, done: make(chan error, 1),
		plain:  "http://" + plain.Addr().String(),
		secure: "https://" + secure.Addr().String(),
	}
	go func() { r.done <- srv.Run(ctx, plain, secure) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(testTimeout):
			t.Error("Run did not return")
		}
	})
	return r
}

// stop cancels Run and returns how long it took to return.
func (r *running) stop(t *testing.T) (time.Duration, error) {
	t.Helper()
	start := time.Now()
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err // for the cleanup
		return time.Since(start), err
	case <-time.After(testTimeout):
		t.Fatal("Run did not return after cancel")
		return 0, nil
	}
}

// One hub behind both listeners: clients on HTTP/1.1 and on HTTP/2 over TLS
// see the same ids for the same events, and ids keep rising across
// reconnects.
func TestGlobalIDsAcrossListeners(t *testing.T) {
	r := startServer(t, Config{Interval: 20 * time.Millisecond}, nil)
	ctx := testContext(t)
	h1 := h1Client(t)

	a := openStream(ctx, t, h1, r.plain+seed.EventsPath, nil)
	b := openStream(ctx, t, r.h2, r.secure+seed.EventsPath, nil)
	if a.resp.ProtoMajor != 1 || b.resp.ProtoMajor != 2 {
		t.Fatalf("protocols %s and %s, want HTTP/1.1 and HTTP/2.0", a.resp.Proto, b.resp.Proto)
	}
	data := map[string]string{}
	check := func(name string, s *clientStream) uint64 {
		var prev uint64
		for range 10 {
			e := s.next(t)
			var id uint64
			fmt.Sscan(e.ID, &id)
			if id <= prev {
				t.Errorf("%s: id %d after %d", name, id, prev)
			}
			if d, ok := data[e.ID]; ok && d != e.Data {
				t.Errorf("id %s is %q on one listener and %q on the other", e.ID, d, e.Data)
			}
			data[e.ID] = e.Data
			prev = id
		}
		return prev
	}
	lastA := check("plain", a)
	check("tls", b)
	a.resp.Body.Close()

	// The log tells which protocol each stream arrived with.
	protos := map[any]bool{}
	for _, rec := range r.logs.records("sse stream open") {
		protos[rec["proto"]] = true
	}
	if !protos["HTTP/1.1"] || !protos["HTTP/2.0"] {
		t.Errorf("logged protocols %v, want HTTP/1.1 and HTTP/2.0", protos)
	}

	// A new connection, on the other listener this time, continues the
	// sequence rather than starting again.
	c := openStream(ctx, t, r.h2, r.secure+seed.EventsPath, nil)
	if id := c.nextID(t); id < lastA {
		t.Errorf("reconnected client got id %d, below the %d seen before", id, lastA)
	}
}

// The first event reaches a client at once, not after an interval.
func TestFirstEventWithoutWaiting(t *testing.T) {
	r := startServer(t, Config{Interval: time.Hour}, nil)
	ctx := testContext(t)
	s := openStream(ctx, t, h1Client(t), r.plain+seed.EventsPath, nil)
	if e := s.next(t); e.ID != "1" || e.Type != seed.EventType || e.Data == "" {
		t.Errorf("first event %+v", e)
	}
}

// The per-write deadline must not turn into a deadline for the whole
// stream, as a server-wide WriteTimeout would.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	r := startServer(t, Config{
		Interval: 20 * time.Millisecond,
		Handler:  HandlerOptions{Stream: stream.Options{WriteTimeout: 100 * time.Millisecond}},
	}, nil)
	ctx := testContext(t)
	for _, s := range []*clientStream{
		openStream(ctx, t, h1Client(t), r.plain+seed.EventsPath, nil),
		openStream(ctx, t, r.h2, r.secure+seed.EventsPath, nil),
	} {
		start := time.Now()
		for time.Since(start) < 400*time.Millisecond {
			s.next(t)
		}
	}
}

func TestHTTPServerTimeouts(t *testing.T) {
	srv := New(Config{}).httpServer(nil)
	if srv.WriteTimeout != 0 || srv.ReadTimeout != 0 {
		t.Errorf("WriteTimeout %v ReadTimeout %v: either would cut streams", srv.WriteTimeout, srv.ReadTimeout)
	}
	// Above Envoy's upstream idle timeout (1m in our config): Envoy must be
	// the side that closes idle pooled connections.
	if srv.IdleTimeout <= time.Minute {
		t.Errorf("IdleTimeout %v, want above 1m", srv.IdleTimeout)
	}
	if srv.ReadHeaderTimeout <= 0 {
		t.Error("no ReadHeaderTimeout")
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	// Without the hub closing the streams, Shutdown would wait out the
	// whole ShutdownTimeout.
	r := startServer(t, Config{Interval: 20 * time.Millisecond, ShutdownTimeout: 10 * time.Second}, nil)
	ctx := testContext(t)
	streams := []*clientStream{
		openStream(ctx, t, h1Client(t), r.plain+seed.EventsPath, nil),
		openStream(ctx, t, r.h2, r.secure+seed.EventsPath, nil),
	}
	for _, s := range streams {
		s.next(t)
	}
	// Both streams are served off their servers' goroutines (net/http's
	// over HTTP/1.1, h2server's over HTTP/2), which do not wait for them:
	// Run must.
	if n := r.srv.detached.Len(); n != 2 {
		t.Errorf("%d detached streams, want 2 (HTTP/1.1 and HTTP/2)", n)
	}
	took, err := r.stop(t)
	if err != nil {
		t.Errorf("Run: %v", err)
	}
	// Handlers return at once; only a stuck client could use up the bound.
	if took > 7*time.Second {
		t.Errorf("shutdown took %v", took)
	}
	for _, s := range streams {
		// The response ends normally: the client sees EOF, not a reset, and
		// reconnects.
		var err error
		for err == nil {
			_, err = s.rd.Next()
		}
		if !errors.Is(err, io.EOF) {
			t.Errorf("%s stream ended with %v, want EOF", s.resp.Proto, err)
		}
	}
	ends := r.logs.records("sse stream closed")
	if len(ends) != 2 {
		t.Fatalf("%d streams logged as closed, want 2", len(ends))
	}
	for _, rec := range ends {
		if rec["end"] != stream.EndShutdown {
			t.Errorf("stream ended %v, want %s", rec["end"], stream.EndShutdown)
		}
	}
	if _, err := http.Get(r.plain + HealthPath); err == nil {
		t.Error("still accepting after shutdown")
	}
}

// smallBuffers makes the kernel hold little for a client that stops
// reading, so that the server's writes block after a few events.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

func smallReadBufferClient(t *testing.T) *http.Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4 << 10)
		}
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// writeWatch is a listener whose connections tell when a Write has been
// blocked for a while: the proof that a handler is stuck on a client that
// stopped reading.
type writeWatch struct {
	net.Listener
	since atomic.Int64 // unix nanoseconds when the pending Write began; 0: none
}

func (l *writeWatch) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(8 << 10)
	}
	return &watchedConn{Conn: c, l: l}, nil
}

func (l *writeWatch) blockedFor() time.Duration {
	if since := l.since.Load(); since != 0 {
		return time.Since(time.Unix(0, since))
	}
	return 0
}

type watchedConn struct {
	net.Conn
	l *writeWatch
}

func (c *watchedConn) Write(p []byte) (int, error) {
	c.l.since.Store(time.Now().UnixNano())
	defer c.l.since.Store(0)
	return c.Conn.Write(p)
}

// A shutdown bounded by ShutdownTimeout even when a client stopped reading
// and its handler is stuck in a write with a long deadline.
func TestShutdownBoundedWithStuckClient(t *testing.T) {
	const bound = 300 * time.Millisecond
	var watch *writeWatch // the plain listener's, which the client uses
	r := startServer(t, Config{
		Interval:        -1,
		ShutdownTimeout: bound,
		Hub:             hub.Options{Queue: 1 << 10},
		Handler:         HandlerOptions{Stream: stream.Options{WriteTimeout: time.Minute}},
	}, func(ln net.Listener) net.Listener {
		w := &writeWatch{Listener: ln}
		if watch == nil {
			watch = w
		}
		return w
	})
	ctx := testContext(t)
	s := openStream(ctx, t, smallReadBufferClient(t), r.plain+seed.EventsPath, nil)
	_ = s // never read from again
	big := strings.Repeat("x", 32<<10)
	for range 50 {
		if _, err := r.srv.Hub().Publish(seed.EventType, big); err != nil {
			t.Fatal(err)
		}
	}
	// Without this the handler may still be between writes, and the
	// shutdown is quick whatever the bound does.
	waitFor(t, "the handler blocked in a write for 200ms", func() bool { return watch.blockedFor() > 200*time.Millisecond })
	took, _ := r.stop(t)
	if took < bound {
		t.Errorf("shutdown took %v, under the %v bound, with a handler stuck in a write", took, bound)
	}
	if took > 5*time.Second {
		t.Errorf("shutdown took %v with a stuck client, bound is %v plus closing", took, bound)
	}
}

// A client that stops reading is cut when its queue fills, while a fast
// client on the same hub keeps receiving every event; the cut client then
// resumes from its Last-Event-ID without losing anything.
func TestSlowClientIsCut(t *testing.T) {
	r := startServer(t, Config{
		Interval: -1,
		Hub:      hub.Options{Queue: 4, History: 1 << 10},
		Handler:  HandlerOptions{Stream: stream.Options{WriteTimeout: 500 * time.Millisecond}},
	}, func(ln net.Listener) net.Listener { return smallBuffers{ln} })
	h := r.srv.Hub()
	ctx := testContext(t)
	if _, err := h.Publish(seed.EventType, "first"); err != nil {
		t.Fatal(err)
	}
	slow := openStream(ctx, t, smallReadBufferClient(t), r.plain+seed.EventsPath, nil)
	fast := openStream(ctx, t, h1Client(t), r.plain+seed.EventsPath, nil)
	slow.next(t)
	fast.next(t)

	big := strings.Repeat("y", 16<<10)
	var last uint64
	for i := 0; h.Stats().Cut == 0; i++ {
		if i == 500 {
			t.Fatal("slow client never cut")
		}
		m := publishWithin(t, h, big)
		last = m.ID
		// Waiting for the fast client keeps it from being cut however
		// slowly this machine runs; the slow client is never waited for.
		if id := fast.nextID(t); id != m.ID {
			t.Fatalf("fast client got id %d, want %d", id, m.ID)
		}
	}
	for range 3 {
		m := publishWithin(t, h, "after the cut")
		last = m.ID
		if id := fast.nextID(t); id != m.ID {
			t.Fatalf("fast client got id %d, want %d", id, m.ID)
		}
	}
	if st := h.Stats(); st.Cut != 1 || st.Subscribers != 1 {
		t.Errorf("stats %+v, want exactly the slow client cut", st)
	}

	// The slow client's stream ends (within its write deadline), and a
	// reconnect with its Last-Event-ID replays the rest.
	var err error
	for err == nil {
		_, err = slow.rd.Next()
	}
	waitFor(t, "slow stream logged as closed", func() bool { return len(r.logs.records("sse stream closed")) == 1 })
	if end := r.logs.records("sse stream closed")[0]["end"]; end != stream.EndSlowClient {
		t.Errorf("slow stream ended %v, want %s", end, stream.EndSlowClient)
	}
	seen := slow.rd.LastEventID()
	again := openStream(ctx, t, h1Client(t), r.plain+seed.EventsPath, http.Header{"Last-Event-Id": {seen}})
	if got := again.resp.Header.Get("X-Sse-Replay"); !strings.HasPrefix(got, "replayed ") {
		t.Errorf("x-sse-replay %q after a cut", got)
	}
	var from uint64
	fmt.Sscan(seen, &from)
	if got := again.readIDs(t, int(last-from)); fmt.Sprint(got) != fmt.Sprint(span(from+1, last)) {
		t.Errorf("resumed with %v, want %d..%d", got, from+1, last)
	}
}

// publishWithin fails the test instead of hanging if Publish ever blocks.
func publishWithin(t *testing.T, h *hub.Hub, data string) *hub.Message {
	t.Helper()
	type result struct {
		m   *hub.Message
		err error
	}
	c := make(chan result, 1)
	go func() {
		m, err := h.Publish(seed.EventType, data)
		c <- result{m, err}
	}()
	select {
	case r := <-c:
		if r.err != nil {
			t.Fatal(r.err)
		}
		return r.m
	case <-time.After(testTimeout):
		t.Fatal("Publish blocked")
		return nil
	}
}

// A detached HTTP/1.1 stream on the wire, as a proxy reads it: a 200 with
// the stream's headers, chunked, Connection: close (nothing follows a
// stream on its connection), then the retry line and the events; when the
// client hangs up, the stream ends at once (heartbeats are a minute apart).
func TestDetachedStreamOnTheWire(t *testing.T) {
	r := startServer(t, Config{Interval: 20 * time.Millisecond,
		Handler: HandlerOptions{Stream: stream.Options{Heartbeat: time.Minute}}}, nil)
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.plain, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(testTimeout))
	req, err := http.NewRequest(http.MethodGet, r.plain+seed.EventsPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	for name, want := range map[string]string{
		"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no",
		seed.ReplayHeader: "none",
	} {
		if got := resp.Header.Get(name); got != want {
			t.Errorf("%s: %q, want %q", name, got, want)
		}
	}
	if resp.StatusCode != http.StatusOK || !resp.Close || !slices.Equal(resp.TransferEncoding, []string{"chunked"}) || resp.Header.Get("Date") == "" {
		t.Errorf("status %d, close %t, transfer-encoding %v, date %q: want 200, close, chunked, a date",
			resp.StatusCode, resp.Close, resp.TransferEncoding, resp.Header.Get("Date"))
	}
	rd := sse.NewReader(resp.Body)
	var ids []string
	for len(ids) < 3 {
		e, err := rd.Next()
		if err != nil {
			t.Fatalf("after %v: %v", ids, err)
		}
		ids = append(ids, e.ID)
	}
	if rd.Retry() != stream.DefaultRetry {
		t.Errorf("retry %v, want %v", rd.Retry(), stream.DefaultRetry)
	}
	if n := r.srv.detached.Len(); n != 1 {
		t.Errorf("%d detached streams, want 1", n)
	}
	conn.Close()
	waitFor(t, "the stream ended with its client", func() bool {
		return r.srv.detached.Len() == 0 && r.srv.Hub().Stats().Subscribers == 0
	})
	if ends := r.logs.records("sse stream closed"); len(ends) != 1 || ends[0]["end"] != stream.EndClientGone {
		t.Errorf("closing log lines %v, want one with end=%s", ends, stream.EndClientGone)
	}
}

// Streams stay on net/http where detaching would break them: an HTTP/1.0
// client knows no chunked encoding (net/http streams it unchunked until the
// connection closes), and a request's unread body would read as the client
// speaking, which ends a detached stream.
func TestStreamsNotDetached(t *testing.T) {
	r := startServer(t, Config{Interval: 20 * time.Millisecond}, nil)
	tests := []struct {
		name, request string
		proto         int // minor version
		chunked       bool
	}{
		{"HTTP/1.0", "GET " + seed.EventsPath + " HTTP/1.0\r\nHost: upstream\r\n\r\n", 0, false},
		{"a GET with a body", "GET " + seed.EventsPath + " HTTP/1.1\r\nHost: upstream\r\nContent-Length: 3\r\n\r\nabc", 1, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", strings.TrimPrefix(r.plain, "http://"))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(testTimeout))
			if _, err := conn.Write([]byte(tt.request)); err != nil {
				t.Fatal(err)
			}
			req := &http.Request{Method: http.MethodGet, ProtoMajor: 1, ProtoMinor: tt.proto}
			resp, err := http.ReadResponse(bufio.NewReader(conn), req)
			if err != nil {
				t.Fatal(err)
			}
			// Not resp.Body.Close, which would read the stream to its end.
			if resp.StatusCode != http.StatusOK || (len(resp.TransferEncoding) != 0) != tt.chunked {
				t.Errorf("status %d, transfer-encoding %v: want 200, chunked %t", resp.StatusCode, resp.TransferEncoding, tt.chunked)
			}
			// The stream goes on: three events, not an end.
			rd := sse.NewReader(resp.Body)
			for i := range 3 {
				if _, err := rd.Next(); err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
			}
			if n := r.srv.detached.Len(); n != 0 {
				t.Errorf("%d detached streams, want 0", n)
			}
		})
	}
}
