package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"example.com/sse-on-envoy/upstream/eventlog"
	"example.com/sse-on-envoy/upstream/h2server"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/jokes"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
	"example.com/sse-on-envoy/upstream/seed"
	"example.com/sse-on-envoy/upstream/stream"
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
	// Log, when set, is the shared event log: the publisher stores each
	// tick there (once across replicas) and the hub is fed from it, so ids
	// are the log's sequence. Without it the hub numbers events itself
	// (one process, ids from 1). Run does not close it.
	Log *eventlog.Log
	// Mercure, when set, serves the Mercure hub on both listeners.
	Mercure *hubhttp.Config
	// Stamp makes the publisher record its clock on each event, sent to
	// clients as a ": sent=<unix ns>" comment before the event's id line.
	Stamp bool
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
	metrics *Metrics
	mercure *hubhttp.Hub // nil without Config.Mercure
	// detached are the streams taken off their handlers' goroutines
	// (HTTP/1.1 hijacked, HTTP/2 from h2server), which
	// http.Server.Shutdown does not wait for.
	detached *stream.Detached
}

// New builds a Server; nothing runs until Run.
func New(cfg Config) *Server {
	cfg = cfg.withDefaults()
	// Streams are served off their handlers' goroutines, at a third to
	// a half of the memory; Run waits for them at shutdown.
	detached := stream.NewDetached()
	cfg.Handler.Stream.Detached = detached
	h := hub.New(cfg.Hub)
	m := newMetrics(h, cfg.Log)
	cfg.Handler.Metrics = m
	if cfg.Log != nil {
		cfg.Handler.Health = cfg.Log.Health
		cfg.Handler.Log = logReplay{cfg.Log}
	}
	var mh *hubhttp.Hub
	if cfg.Mercure != nil {
		mh = hubhttp.New(*cfg.Mercure, hubhttp.Options{
			Stream:    cfg.Handler.Stream,
			Logger:    cfg.Handler.Logger,
			OnPublish: m.mercurePublish,
			OnReplay:  m.mercureReplay,
		})
		m.addMercure(mh.Stats)
		cfg.Handler.Mercure = mh
		if events := cfg.Handler.Health; events != nil {
			cfg.Handler.Health = func() error {
				if err := events(); err != nil {
					return err
				}
				if err := mh.Health(); err != nil {
					return fmt.Errorf("mercure: %w", err)
				}
				return nil
			}
		}
	}
	return &Server{cfg: cfg, hub: h, handler: NewHandler(h, cfg.Handler), metrics: m, mercure: mh, detached: detached}
}

// logReplay reads the event log for the seed's replays.
type logReplay struct{ l *eventlog.Log }

func (r logReplay) Bounds(ctx context.Context) (first, last uint64, err error) {
	return r.l.Bounds(ctx)
}

func (r logReplay) Range(ctx context.Context, from, to uint64) ([]*hub.Message, error) {
	recs, err := r.l.Range(ctx, from, to)
	if err != nil {
		return nil, err
	}
	out := make([]*hub.Message, len(recs))
	for i, rec := range recs {
		out[i] = hub.NewMessage(rec.Seq, rec.Stored, rec.Type, rec.Data, rec.Sent)
	}
	return out, nil
}

// Hub is the server's event hub.
func (s *Server) Hub() *hub.Hub { return s.hub }

// Metrics are the server's Prometheus metrics, also served on /metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

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
	// The follower outlives the publisher so that events stored up to the
	// end still reach the streams; it stops once the hub is closed.
	followCtx, stopFollower := context.WithCancel(context.WithoutCancel(ctx))
	defer stopFollower()
	if s.mercure != nil {
		wg.Go(func() { s.mercure.Follow(followCtx) })
	}
	if s.cfg.Log != nil {
		wg.Go(func() { s.cfg.Log.Follow(followCtx, s.append, s.hub.Reset) })
		if s.cfg.Interval > 0 {
			wg.Go(func() { s.publishTicks(pubCtx) })
		}
	} else if s.cfg.Interval > 0 {
		// The first event is published before serving so that the first
		// client gets an event at once.
		next := jokes.Cycle(s.cfg.Jokes)
		if _, err := s.hub.PublishSent(seed.EventType, next(), s.stampTime()); err != nil {
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
				// NextProtos (TLSNextProto has it), so clients negotiate
				// HTTP/2 through ALPN.
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
	s.closeHubs() // in case no server was started
	if err := s.detached.Wait(sctx); err != nil {
		log.Warn("graceful shutdown incomplete, closing connections", "listener", "detached streams", "err", err)
	}
	stopFollower()
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
	if tlsConf != nil {
		// HTTP/2 through h2server, not net/http's: its streams can be
		// detached from their handlers (stream.Detached).
		h2 := &h2server.Server{IdleTimeout: s.cfg.IdleTimeout, Logger: s.cfg.Handler.Logger}
		h2.Configure(srv)
	}
	// Shutdown does not wait for streaming handlers to notice anything;
	// closing the hub (after Shutdown closed the listeners) is what makes
	// them return. Both servers may call it; it is idempotent.
	srv.RegisterOnShutdown(s.closeHubs)
	return srv
}

// closeHubs ends every stream, the seed's and the Mercure hub's.
func (s *Server) closeHubs() {
	s.hub.Close()
	if s.mercure != nil {
		s.mercure.Close()
	}
}

func (s *Server) publish(ctx context.Context, next func() string) {
	t := time.NewTicker(s.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.hub.PublishSent(seed.EventType, next(), s.stampTime()); err != nil {
				return // closed: shutting down
			}
		}
	}
}

// append hands an event from the log to the hub. After Close the hub
// refuses it, which only happens while shutting down.
func (s *Server) append(r eventlog.Record) {
	_, _ = s.hub.Append(r.Seq, r.Stored, r.Type, r.Data, r.Sent)
}

// publishTicks publishes one event per tick of the wall clock: tick n is
// [n*Interval, (n+1)*Interval) since the Unix epoch. Every replica runs
// this; the message id names the tick, so the log stores each tick once
// (de-duplication) whichever replica is first, and the joke is chosen by
// the tick number, so the content does not depend on the winner either.
// The current tick is published at once so that a fresh stream starts
// with an event instead of waiting an interval.
func (s *Server) publishTicks(ctx context.Context) {
	iv := s.cfg.Interval
	log := s.cfg.Handler.Logger
	failing := false
	for {
		tick := uint64(time.Now().UnixNano() / int64(iv))
		err := s.publishTick(ctx, tick)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && !failing:
			// Logged on the change only: an outage fails every tick.
			log.Warn("publishing to the event log failed; ticks are skipped until it is back", "tick", tick, "err", err)
		case err == nil && failing:
			log.Info("publishing to the event log again", "tick", tick)
		}
		failing = err != nil
		next := time.Unix(0, int64(tick+1)*int64(iv))
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// stampTime is the publish time an event carries with Config.Stamp, else
// zero (no stamp).
func (s *Server) stampTime() time.Time {
	if s.cfg.Stamp {
		return time.Now()
	}
	return time.Time{}
}

func (s *Server) publishTick(ctx context.Context, tick uint64) error {
	joke := s.cfg.Jokes[tick%uint64(len(s.cfg.Jokes))]
	sent := s.stampTime()
	// A tick that cannot be stored before the next one is due is skipped,
	// not retried late.
	ctx, cancel := context.WithTimeout(ctx, min(stream.LogPublishTimeout, s.cfg.Interval))
	defer cancel()
	res, err := s.cfg.Log.Publish(ctx, TickID(s.cfg.Interval, tick), seed.EventType, joke, sent)
	switch {
	case err != nil:
		s.metrics.publish(PublishFailed)
	case res.Duplicate:
		s.metrics.publish(PublishDuplicate)
	default:
		s.metrics.publish(PublishStored)
	}
	return err
}

// TickID is the de-duplication id of tick n at interval iv. The interval is
// part of it so that replicas misconfigured with different intervals do not
// swallow each other's events as duplicates.
func TickID(iv time.Duration, n uint64) string {
	return "tick/" + iv.String() + "/" + strconv.FormatUint(n, 10)
}
