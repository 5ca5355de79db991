package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/jokes"
)

// Defaults for zero Config fields that HandlerOptions does not cover.
const (
	DefaultInterval          = 2 * time.Second
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultReadHeaderTimeout = 10 * time.Second
)

// Config is everything Run needs; main fills it from flags and the
// environment, tests fill it directly.
type Config struct {
	// Interval between published events. Negative disables the publisher
	// (tests then call Hub().Publish themselves).
	Interval time.Duration
	Hub      hub.Options
	Handler  HandlerOptions
	// Jokes to publish, in order; nil means the embedded list.
	Jokes []string
	// TLS, with Certificates set, is required to serve a TLS listener.
	TLS *tls.Config
	// ShutdownTimeout bounds the graceful part of Run's shutdown.
	ShutdownTimeout time.Duration
	// IdleTimeout closes keep-alive connections with no request in flight.
	// It must stay above the idle timeout of Envoy's upstream connection
	// pool, so that Envoy, not us, closes an idle pooled connection: if we
	// did, Envoy could send a request down it as it closes (a 503 to the
	// client). We use 2m against a 1m cluster idle_timeout.
	IdleTimeout       time.Duration
	ReadHeaderTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Jokes == nil {
		c.Jokes = jokes.All()
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = DefaultIdleTimeout
	}
	if c.ReadHeaderTimeout <= 0 {
		c.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	c.Handler = c.Handler.withDefaults()
	return c
}

// Server is one hub served on up to two listeners.
type Server struct {
	cfg     Config
	hub     *hub.Hub
	handler http.Handler
}

// New builds a Server; nothing runs until Run.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	h := hub.New(cfg.Hub)
	return &Server{cfg: cfg, hub: h, handler: NewHandler(h, cfg.Handler)}
}

// Hub is the server's event hub.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Handler serves the server's routes.
func (s *Server) Handler() http.Handler { return s.handler }

// Run serves plain HTTP on plain and HTTPS (HTTP/2 and HTTP/1.1 through
// ALPN) on secure, either of which may be nil, until ctx is done. Then it
// stops accepting, ends every stream so that handlers return and responses
// end normally, and returns within ShutdownTimeout plus the time to force
// the connections closed. Run closes the listeners. A Server runs once: its
// hub is closed at the end.
func (s *Server) Run(ctx context.Context, plain, secure net.Listener) error {
	if plain == nil && secure == nil {
		return errors.New("server: no listener")
	}
	closeListeners := func() {
		for _, ln := range []net.Listener{plain, secure} {
			if ln != nil {
				_ = ln.Close()
			}
		}
	}
	if secure != nil && (s.cfg.TLS == nil || len(s.cfg.TLS.Certificates) == 0 && s.cfg.TLS.GetCertificate == nil) {
		closeListeners()
		return errors.New("server: TLS listener without a certificate")
	}
	log := s.cfg.Handler.Logger

	pubCtx, stopPublisher := context.WithCancel(ctx)
	defer stopPublisher()
	var wg sync.WaitGroup
	if s.cfg.Interval > 0 {
		// The first event is published before serving so that the first
		// client gets an event at once.
		next := jokes.Cycle(s.cfg.Jokes)
		if _, err := s.hub.Publish(EventType, next()); err != nil {
			closeListeners()
			return fmt.Errorf("server: first event (Run called twice?): %w", err)
		}
		wg.Go(func() { s.publish(pubCtx, next) })
	}

	type served struct {
		srv  *http.Server
		name string
	}
	var servers []served
	errc := make(chan error, 2)
	start := func(name string, ln net.Listener, tlsConf *tls.Config) {
		srv := s.httpServer(tlsConf)
		servers = append(servers, served{srv, name})
		log.Info("listening", "listener", name, "addr", ln.Addr().String(), "tls", tlsConf != nil)
		wg.Go(func() {
			var err error
			if tlsConf != nil {
				// The certificate is in TLSConfig; ServeTLS adds "h2" to
				// NextProtos, so clients negotiate HTTP/2 through ALPN.
				err = srv.ServeTLS(ln, "", "")
			} else {
				err = srv.Serve(ln)
			}
			if !errors.Is(err, http.ErrServerClosed) {
				errc <- fmt.Errorf("server: serve %s on %s: %w", name, ln.Addr(), err)
			}
		})
	}
	if plain != nil {
		start("plain", plain, nil)
	}
	if secure != nil {
		start("tls", secure, s.cfg.TLS.Clone())
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down", "timeout", s.cfg.ShutdownTimeout.String())
	case runErr = <-errc:
		log.Error("listener failed, shutting down", "err", runErr)
	}
	stopPublisher()

	// Detached from ctx, which is already done.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.ShutdownTimeout)
	defer cancel()
	var sw sync.WaitGroup
	for _, sv := range servers {
		sw.Go(func() {
			if err := sv.srv.Shutdown(sctx); err != nil {
				// Streams stuck in a write past the deadline: cut them.
				log.Warn("graceful shutdown incomplete, closing connections", "listener", sv.name, "err", err)
				_ = sv.srv.Close()
			}
		})
	}
	sw.Wait()
	s.hub.Close() // in case no server was started
	wg.Wait()
	log.Info("shut down")
	return runErr
}

func (s *Server) httpServer(tlsConf *tls.Config) *http.Server {
	srv := &http.Server{
		Handler:           s.handler,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		// No WriteTimeout: it bounds the whole response and would cut every
		// stream; the handler sets a deadline per write instead.
		ErrorLog: slog.NewLogLogger(s.cfg.Handler.Logger.Handler(), slog.LevelWarn),
	}
	// Shutdown does not wait for streaming handlers to notice anything;
	// closing the hub (after Shutdown closed the listeners) is what makes
	// them return. Both servers may call it; it is idempotent.
	srv.RegisterOnShutdown(s.hub.Close)
	return srv
}

func (s *Server) publish(ctx context.Context, next func() string) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.hub.Publish(EventType, next()); err != nil {
				return // closed: shutting down
			}
		}
	}
}
