// Package h2server serves the upstream's HTTP/2 connections (TLS, ALPN
// "h2") in place of net/http's HTTP/2 server, for one reason: a stream can
// be detached from its handler (Detach). net/http keeps every open stream
// on its handler's goroutine, whose stack has grown to 8 KiB by the time a
// stream goes quiet, and on a 4 KiB write buffer; behind Envoy's TLS leg,
// where a few connections carry every stream, that is most of what a quiet
// stream costs the upstream. A detached stream is served from a fresh
// goroutine and holds no buffer between writes.
//
// The wire protocol is golang.org/x/net/http2's Framer and hpack; this
// package keeps the connection's state: settings, flow control both ways,
// stream lifecycle, GOAWAY. It serves what the upstream's handlers use
// (requests with bodies, flushed responses, write deadlines) and refuses
// the rest plainly: no server push, no trailers, no CONNECT.
package h2server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Defaults of the Server's fields.
const (
	// DefaultMaxConcurrentStreams is net/http's: Envoy's TLS leg is
	// configured below it (envoy/*.yaml, max_concurrent_streams).
	DefaultMaxConcurrentStreams = 250
	// DefaultWriteTimeout bounds one write of frames to a connection. A
	// peer that takes none of them for this long is gone.
	DefaultWriteTimeout = 10 * time.Second
)

// Server serves HTTP/2 connections to an http.Handler.
type Server struct {
	// MaxConcurrentStreams is the number of streams a client may have
	// open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
	MaxConcurrentStreams uint32
	// IdleTimeout closes a connection that has had no stream for this
	// long; zero keeps it.
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a connection (see
	// DefaultWriteTimeout); when it passes the connection is closed.
	WriteTimeout time.Duration
	// Logger gets what the protocol cannot tell the peer: handler panics,
	// connections ended on a protocol error.
	Logger *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping bool
}

// Configure makes srv hand every connection that negotiates "h2" to s, and
// makes its Shutdown send those connections a GOAWAY. ServeTLS offers
// "h2" first in ALPN.
func (s *Server) Configure(srv *http.Server) {
	srv.TLSNextProto = map[string]func(*http.Server, *tls.Conn, http.Handler){
		"h2": func(_ *http.Server, c *tls.Conn, h http.Handler) { s.ServeConn(c, h) },
	}
	srv.RegisterOnShutdown(s.GoAway)
}

// ServeConn serves one connection, whose TLS handshake is done, until it
// ends, and closes it. h may carry the connection's base context (a
// BaseContext method, as net/http's ALPN handler has).
func (s *Server) ServeConn(nc net.Conn, h http.Handler) {
	c := newConn(s, nc, h)
	if !s.track(c, true) {
		// Shutting down: no new connection.
		_ = nc.Close()
		return
	}
	defer s.track(c, false)
	c.serve()
}

// GoAway tells every connection's client that no new stream is taken
// there. A connection closes when its last stream ends; the streams
// themselves end as their handlers (or their detached owners) end them.
func (s *Server) GoAway() {
	s.mu.Lock()
	s.stopping = true
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.goAway()
	}
}

func (s *Server) track(c *conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		return true
	}
	if s.stopping {
		return false
	}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) maxStreams() uint32 {
	if s.MaxConcurrentStreams == 0 {
		return DefaultMaxConcurrentStreams
	}
	return s.MaxConcurrentStreams
}

func (s *Server) writeTimeout() time.Duration {
	if s.WriteTimeout <= 0 {
		return DefaultWriteTimeout
	}
	return s.WriteTimeout
}

func (s *Server) logger() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}
