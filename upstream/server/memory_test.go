package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"example.com/sse-on-envoy/upstream/h2server"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/mercure"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
	"example.com/sse-on-envoy/upstream/seed"
)

// BenchmarkIdleStreamMemory holds b.N idle HTTP/1.1 streams open on a real
// listener and reports the Go memory each one costs: live heap, goroutine
// stacks, and all of it as the runtime sees it (Sys, the closest to RSS).
// The clients are raw connections in the same process, a few hundred
// bytes each, so the figures slightly overstate the server.
//
// The cases are the server as it is (each stream detached from net/http,
// stream.Run), the same stream kept on net/http's goroutine (what detaching
// saves), and a shorter queue.
//
//	go test -run '^$' -bench IdleStreamMemory -benchtime 5000x ./upstream/server
func BenchmarkIdleStreamMemory(b *testing.B) {
	b.Run("detached", func(b *testing.B) { benchIdleStreams(b, Config{Interval: -1}, nil, seed.EventsPath) })
	b.Run("net-http", func(b *testing.B) {
		benchIdleStreams(b, Config{Interval: -1}, func(h *hub.Hub) http.Handler { return NewHandler(h, HandlerOptions{}) }, seed.EventsPath)
	})
	b.Run("h2-detached", func(b *testing.B) {
		b.ResetTimer()
		reportStreams(b, openIdleH2Streams(b, Config{Interval: -1}, seed.EventsPath, b.N))
	})
	b.Run("h2-net-http", func(b *testing.B) {
		b.ResetTimer()
		reportStreams(b, openIdle(b, Config{Interval: -1}, nil, seed.EventsPath, b.N, overH2NetHTTP))
	})
	b.Run("queue=8", func(b *testing.B) {
		benchIdleStreams(b, Config{Interval: -1, Hub: hub.Options{Queue: 8}}, nil, seed.EventsPath)
	})
}

// BenchmarkMercureSubscriptionOpen opens b.N Mercure subscriptions on a
// real listener (HTTP/1.1, anonymous) and reports what each keeps on the
// replica (heap and goroutine stacks, after a GC) and how long it took to
// open: an ordinary one (one template every subscriber shares) and the
// worst the default budget allows (16 templates no other subscription
// names, exact topics filling 16 KiB).
//
//	go test -run '^$' -bench MercureSubscriptionOpen -benchtime 200x ./upstream/server
func BenchmarkMercureSubscriptionOpen(b *testing.B) {
	ordinary := url.Values{"topic": {"https://example.com/books/{id}"}}
	b.Run("ordinary", func(b *testing.B) {
		benchIdleStreams(b, mercureBenchConfig(b), nil, func(int) string { return hubhttp.Path + "?" + ordinary.Encode() })
	})
	b.Run("worst", func(b *testing.B) {
		benchIdleStreams(b, mercureBenchConfig(b), nil, func(i int) string {
			return hubhttp.Path + "?" + url.Values{"topic": mercure.Limits{}.Costliest(i)}.Encode()
		})
	})
}

func mercureBenchConfig(b *testing.B) Config {
	cfg := mercureConfig(b, embeddedLog(b))
	cfg.Mercure.Limits = mercure.Limits{}
	return cfg
}

// benchIdleStreams opens b.N streams at path(i) and reports what each keeps.
func benchIdleStreams[P string | func(int) string](b *testing.B, cfg Config, handler func(*hub.Hub) http.Handler, path P) {
	b.ResetTimer()
	reportStreams(b, openIdleStreams(b, cfg, handler, path, b.N))
}

func reportStreams(b *testing.B, m streamMemory) {
	b.StopTimer()
	b.ReportMetric(m.heap, "heap-B/stream")
	b.ReportMetric(m.stack, "stack-B/stream")
	b.ReportMetric(m.sys, "sys-B/stream")
	b.ReportMetric(m.goroutines, "goroutines/stream")
	b.ReportMetric(m.kept()/1024, "kept-KiB/stream")
	b.ReportMetric(float64(m.opening.Microseconds())/float64(b.N)/1000, "open-ms/stream")
}

// streamMemory is what each of n idle streams keeps, in bytes.
type streamMemory struct {
	heap, stack, sys, goroutines float64
	opening                      time.Duration
}

// kept is heap and stacks: what the streams hold once collected.
func (m streamMemory) kept() float64 { return m.heap + m.stack }

// openIdleStreams opens n streams at path(i) on a real listener (HTTP/1.1,
// raw connections in this process), measures what each keeps, and closes
// them all.
func openIdleStreams[P string | func(int) string](tb testing.TB, cfg Config, handler func(*hub.Hub) http.Handler, path P, n int) streamMemory {
	return openIdle(tb, cfg, handler, path, n, overH1)
}

// How openIdle's streams reach the server.
const (
	overH1        = iota
	overH2        // h2server, as Run serves TLS
	overH2NetHTTP // net/http's HTTP/2 server, which h2server replaced
)

// openIdleH2Streams does the same over HTTP/2 and TLS (h2server), with
// raw frames on as few connections as the server allows: what Envoy's TLS
// leg does.
func openIdleH2Streams[P string | func(int) string](tb testing.TB, cfg Config, path P, n int) streamMemory {
	return openIdle(tb, cfg, nil, path, n, overH2)
}

func openIdle[P string | func(int) string](tb testing.TB, cfg Config, handler func(*hub.Hub) http.Handler, path P, n, over int) streamMemory {
	tb.Helper()
	h2 := over != overH1
	if h2 {
		cfg.TLS = selfSigned(tb)
	}
	s := New(cfg)
	if handler != nil {
		s.handler = handler(s.hub)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		switch over {
		case overH1:
			done <- s.Run(ctx, ln, nil)
		case overH2:
			done <- s.Run(ctx, nil, ln)
		case overH2NetHTTP:
			srv := &http.Server{Handler: s.handler, TLSConfig: cfg.TLS}
			go func() {
				<-ctx.Done()
				srv.Close()
				s.closeHubs()
			}()
			_ = srv.ServeTLS(ln, "", "")
			done <- nil
		}
	}()
	defer func() {
		cancel()
		<-done
	}()

	pathOf := func(i int) string {
		switch p := any(path).(type) {
		case string:
			return p
		case func(int) string:
			return p(i)
		}
		return ""
	}
	subscribers := func() int {
		n := s.Hub().Stats().Subscribers
		if s.mercure != nil {
			n += s.mercure.Stats().Subscribers
		}
		return n
	}
	before := memNow()
	start := time.Now()
	if h2 {
		defer openH2(tb, ln.Addr().String(), pathOf, n)()
	} else {
		defer openH1(tb, ln.Addr().String(), pathOf, n)()
	}
	opening := time.Since(start)
	if got := subscribers(); got != n {
		tb.Fatalf("%d subscribers, want %d", got, n)
	}
	after := memNow()
	f := float64(n)
	return streamMemory{
		// Live heap, not HeapInuse: after the earlier tests of a run, the
		// spans in use can shrink while these streams open.
		heap:       float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / f,
		stack:      float64(int64(after.StackInuse)-int64(before.StackInuse)) / f,
		sys:        float64(int64(after.Sys)-int64(before.Sys)) / f,
		goroutines: float64(runtime.NumGoroutine()) / f,
		opening:    opening,
	}
}

func memNow() runtime.MemStats {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

func selfSigned(tb testing.TB) *tls.Config {
	cfg, _ := testTLS(tb)
	return cfg
}

// openH1 opens n streams, one raw HTTP/1.1 connection each, and returns
// what closes them.
func openH1(tb testing.TB, addr string, pathOf func(int) string, n int) (closeAll func()) {
	conns := make([]net.Conn, 0, n)
	closeAll = func() {
		for _, c := range conns {
			c.Close()
		}
	}
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			closeAll()
			tb.Fatalf("after %d streams: %v", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET " + pathOf(len(conns)) + " HTTP/1.1\r\nHost: upstream\r\n\r\n")); err != nil {
			closeAll()
			tb.Fatal(err)
		}
		// The headers and the retry line: the handler is in its loop.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReaderSize(c, 512)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				closeAll()
				tb.Fatalf("stream %d: %v", len(conns), err)
			}
			if strings.HasPrefix(line, "retry:") || strings.HasPrefix(line, "6\r") {
				break
			}
		}
	}
	return closeAll
}

// openH2 opens n streams with raw HTTP/2 frames, as many per connection
// as h2server allows, and returns what closes them. The client keeps
// nothing per stream, so that what is measured is the server's.
func openH2(tb testing.TB, addr string, pathOf func(int) string, n int) (closeAll func()) {
	var conns []net.Conn
	closeAll = func() {
		for _, c := range conns {
			c.Close()
		}
	}
	fail := func(format string, args ...any) {
		closeAll()
		tb.Fatalf(format, args...)
	}
	var (
		fr   *http2.Framer
		hbuf bytes.Buffer
		henc = hpack.NewEncoder(&hbuf)
		id   uint32
	)
	for i := range n {
		if i%h2server.DefaultMaxConcurrentStreams == 0 {
			c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
			if err != nil {
				fail("after %d streams: %v", i, err)
			}
			conns = append(conns, c)
			c.SetDeadline(time.Now().Add(time.Minute))
			if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
				fail("preface: %v", err)
			}
			fr = http2.NewFramer(c, c)
			fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
			if err := fr.WriteSettings(); err != nil {
				fail("settings: %v", err)
			}
			hbuf.Reset()
			henc = hpack.NewEncoder(&hbuf)
			id = 1
		}
		hbuf.Reset()
		for _, f := range [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "upstream"}, {":path", pathOf(i + 1)}} {
			_ = henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
			fail("stream %d: %v", i, err)
		}
		// The retry line: the stream is in its loop.
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				fail("stream %d: %v", i, err)
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				_ = fr.WriteSettingsAck()
			}
			if rst, ok := f.(*http2.RSTStreamFrame); ok {
				fail("stream %d reset: %v", i, rst.ErrCode)
			}
			if d, ok := f.(*http2.DataFrame); ok && d.StreamID == id {
				break
			}
		}
		id += 2
	}
	return closeAll
}
