package server

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

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
	m := openIdleStreams(b, cfg, handler, path, b.N)
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
	tb.Helper()
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
	go func() { done <- s.Run(ctx, ln, nil) }()
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
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			tb.Fatalf("after %d streams: %v", len(conns), err)
		}
		conns = append(conns, c)
		if _, err := c.Write([]byte("GET " + pathOf(len(conns)) + " HTTP/1.1\r\nHost: upstream\r\n\r\n")); err != nil {
			tb.Fatal(err)
		}
		// The headers and the retry line: the handler is in its loop.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReaderSize(c, 512)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				tb.Fatalf("stream %d: %v", len(conns), err)
			}
			if strings.HasPrefix(line, "retry:") || strings.HasPrefix(line, "6\r") {
				break
			}
		}
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
