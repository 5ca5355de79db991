package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/hub"
)

// Paths, header names and the event type.
const (
	EventsPath   = "/sse/events"
	HealthPath   = "/healthz"
	ReplayHeader = "X-Sse-Replay"
	EventType    = "DAD_JOKE"
	// LastEventIDParam is the query fallback for clients that cannot set
	// the Last-Event-ID header.
	LastEventIDParam = "lastEventId"
)

// Defaults for zero HandlerOptions.
const (
	DefaultRetry        = 3 * time.Second
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// Reasons a stream ended, as logged (end=...).
const (
	EndClientGone = "client_gone"
	EndSlowClient = "slow_client_cut"
	EndShutdown   = "shutdown"
	EndWriteError = "write_error"
	EndWriteTimed = "write_timeout"
	// EndLogReset: the event log's sequence started over (its stream was
	// replaced); the client reconnects and starts afresh.
	EndLogReset = "log_reset"
)

// HandlerOptions configure NewHandler. Zero values take the defaults.
type HandlerOptions struct {
	// Retry is the reconnect delay suggested to clients once per stream;
	// negative sends none.
	Retry time.Duration
	// Heartbeat is the interval of the keep-alive comments.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a client.
	WriteTimeout time.Duration
	Logger       *slog.Logger
	// Health, when set, decides /healthz: an error is answered 503 with
	// its text, so that a load balancer stops sending new streams here.
	Health func() error
	// StreamLast, when set, returns the shared log's newest id. It tells a
	// Last-Event-ID this replica has not received yet but the log has
	// (the client was on a replica slightly ahead) from one that was never
	// issued.
	StreamLast func(context.Context) (uint64, error)
	// Older, when set, reads events older than the hub's window back from
	// the shared log (ids from..to), so that a client whose Last-Event-ID
	// is older than what this process keeps in memory, but still in the
	// log, is replayed in full.
	Older func(ctx context.Context, from, to uint64) ([]*hub.Message, error)
	// Metrics, when set, counts replays by outcome.
	Metrics *Metrics
	// Mercure, when set, serves the Mercure hub at MercurePath.
	Mercure http.Handler
}

func (o HandlerOptions) withDefaults() HandlerOptions {
	if o.Retry == 0 {
		o.Retry = DefaultRetry
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// NewHandler serves the event stream of h and the health check.
func NewHandler(h *hub.Hub, o HandlerOptions) http.Handler {
	s := &streamer{hub: h, opts: o.withDefaults()}
	mux := http.NewServeMux()
	// Registered without a method so that the 405 is ours and names GET
	// only: the mux's own would also allow HEAD, which makes no sense for a
	// stream.
	mux.HandleFunc(EventsPath, s.serveEvents)
	if s.opts.Mercure != nil {
		mux.Handle(MercurePath, s.opts.Mercure)
	}
	if s.opts.Metrics != nil {
		mux.Handle("GET "+MetricsPath, s.opts.Metrics.Handler())
	}
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if s.opts.Health != nil {
			if err := s.opts.Health(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("unavailable: " + err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

type streamer struct {
	hub  *hub.Hub
	opts HandlerOptions
}

func (s *streamer) serveEvents(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// Logged so a preflight that slipped past Envoy's CORS handling shows.
		s.opts.Logger.Info("method not allowed", "method", r.Method, "path", r.URL.Path, "proto", r.Proto)
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	lastID := r.Header.Get("Last-Event-ID")
	if lastID == "" {
		lastID = r.URL.Query().Get(LastEventIDParam)
	}
	start := time.Now()
	log := s.opts.Logger.With(
		"proto", r.Proto,
		"remote", r.RemoteAddr,
		"last_event_id", truncate(lastID, 64),
	)
	if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
		log = log.With("forwarded_for", fwd)
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Tells nginx-style proxies in front of us not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")

	sub, resume, err := s.hub.Subscribe(lastID)
	if err != nil {
		// Shutting down. A 503 would make browsers stop for good; an empty
		// 200 stream makes them reconnect, to another replica if any.
		w.WriteHeader(http.StatusOK)
		if s.opts.Retry > 0 {
			_, _ = w.Write(sse.AppendRetry(nil, s.opts.Retry))
		}
		log.Info("sse stream refused", "end", EndShutdown)
		return
	}
	defer sub.Close()
	var skipTo uint64
	switch resume.Status {
	case hub.ReplayFuture:
		resume, skipTo = s.checkAhead(r.Context(), lastID, resume)
	case hub.ReplayGap:
		resume = s.backfill(r.Context(), resume, log)
	}
	h.Set(ReplayHeader, resume.Header())
	w.WriteHeader(http.StatusOK)
	log = log.With("replay", resume.Header())
	switch resume.Status {
	case hub.ReplayGap:
		// Not an error of ours, but the client lost events: say so.
		log.Warn("last-event-id out of the history window: events lost to this client",
			"oldest_replayed", firstID(resume))
	case hub.ReplayFuture:
		log.Warn("last-event-id from the future: not issued by this event log; treated as a new client")
	}
	s.opts.Metrics.replay(resume.Outcome())
	log.Info("sse stream open")

	st := stream{w: w, rc: http.NewResponseController(w), timeout: s.opts.WriteTimeout, lastID: skipTo}
	end := s.run(r, sub, resume, &st)
	log.Info("sse stream closed",
		"end", end,
		"events", st.events,
		"heartbeats", st.heartbeats,
		"duration", time.Since(start).Round(time.Millisecond).String(),
	)
}

// run writes the stream until something ends it and says what did.
func (s *streamer) run(r *http.Request, sub *hub.Subscription, resume hub.Resume, st *stream) string {
	var buf []byte
	if s.opts.Retry > 0 {
		buf = sse.AppendRetry(buf, s.opts.Retry)
	}
	// Even with nothing to replay, flushing now shows the client the
	// headers at once instead of at the first event.
	if err := st.write(buf); err != nil {
		return writeEnd(err, sub)
	}
	for _, m := range resume.Events {
		if err := st.writeEvent(m); err != nil {
			return writeEnd(err, sub)
		}
	}

	hb := time.NewTicker(s.opts.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-r.Context().Done():
			return EndClientGone
		case <-sub.Done():
			switch err := sub.Err(); {
			case errors.Is(err, hub.ErrSlowConsumer):
				return EndSlowClient
			case errors.Is(err, hub.ErrReset):
				return EndLogReset
			}
			return EndShutdown
		case m := <-sub.C():
			// The hub already guarantees no overlap with the replay; the
			// check keeps a client from ever seeing an id twice even if
			// that changed.
			if m.ID <= st.lastID {
				continue
			}
			if err := st.writeEvent(m); err != nil {
				return writeEnd(err, sub)
			}
		case <-hb.C:
			if err := st.write(sse.AppendComment(nil, "heartbeat")); err != nil {
				return writeEnd(err, sub)
			}
			st.heartbeats++
		}
	}
}

// writeEnd names a failed write. A client that stops reading blocks the
// write until its deadline and meanwhile gets cut by the hub: the cut is the
// reason worth logging, the timeout only its symptom.
func writeEnd(err error, sub *hub.Subscription) string {
	select {
	case <-sub.Done():
		if errors.Is(sub.Err(), hub.ErrSlowConsumer) {
			return EndSlowClient
		}
	default:
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return EndWriteTimed
	}
	return EndWriteError
}

// stream writes to one client, each write under its own deadline and
// flushed, so that a stalled client costs at most one write timeout and
// nothing sits in a buffer.
type stream struct {
	w          http.ResponseWriter
	rc         *http.ResponseController
	timeout    time.Duration
	lastID     uint64 // newest id sent (or known to the client)
	events     int
	heartbeats int
}

func (st *stream) writeEvent(m *hub.Message) error {
	if err := st.write(m.Wire); err != nil {
		return err
	}
	st.lastID = m.ID
	st.events++
	return nil
}

func (st *stream) write(p []byte) error {
	// ErrNotSupported only comes from writers without deadlines (test
	// recorders, wrapping middleware); streaming without one is still
	// better than failing.
	if err := st.rc.SetWriteDeadline(time.Now().Add(st.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	if len(p) > 0 {
		if _, err := st.w.Write(p); err != nil {
			return err
		}
	}
	return st.rc.Flush()
}

// checkAhead asks the shared log whether a Last-Event-ID beyond this
// replica's newest was issued. If so the client is up to date (ReplayAhead)
// and gets nothing up to its id again; if not, or if the log cannot say,
// the id stays "from the future" and the client is handled as a new one.
func (s *streamer) checkAhead(ctx context.Context, lastID string, resume hub.Resume) (hub.Resume, uint64) {
	if s.opts.StreamLast == nil {
		return resume, 0
	}
	id, err := strconv.ParseUint(lastID, 10, 64)
	if err != nil {
		return resume, 0
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	last, err := s.opts.StreamLast(ctx)
	if err != nil || id > last {
		return resume, 0
	}
	return hub.Resume{Status: hub.ReplayAhead}, id
}

// maxBackfill bounds how many events one client is replayed from the log
// beyond the hub's window: a client further behind gets a gap.
const maxBackfill = 10000

// backfill completes a gap from the shared log. Live events queue on the
// subscription meanwhile, so the seam stays exact; if the log cannot say,
// the gap stands (reported as such, never a wrong replay).
func (s *streamer) backfill(ctx context.Context, resume hub.Resume, log *slog.Logger) hub.Resume {
	if s.opts.Older == nil || resume.Oldest <= resume.After+1 {
		return resume
	}
	from := resume.After + 1
	if resume.Oldest-from > maxBackfill {
		from = resume.Oldest - maxBackfill
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	older, err := s.opts.Older(ctx, from, resume.Oldest-1)
	if err != nil {
		log.Warn("replay from the event log failed; replaying what this replica holds", "err", err)
		return resume
	}
	return resume.WithOlder(older)
}

func firstID(r hub.Resume) uint64 {
	if len(r.Events) == 0 {
		return 0
	}
	return r.Events[0].ID
}

// truncate keeps a client-chosen value from bloating every log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
