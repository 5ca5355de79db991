package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"time"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/mercure/fanout"
	"example.com/sse-on-envoy/upstream/replay"
)

// Paths, header names and the event type.
const (
	EventsPath   = routes.EventsPath
	HealthPath   = routes.HealthPath
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
	// EndTokenExpired: the Mercure subscriber's token expired; what it
	// granted ends with it (the client must come back with a new one).
	EndTokenExpired = "token_expired"
)

// ReplayLog is what a replay needs of the shared event log.
type ReplayLog interface {
	// Bounds are the first and last ids the log holds.
	Bounds(ctx context.Context) (first, last uint64, err error)
	// Range reads the events with ids from..to the log still holds, in
	// order (the oldest may be missing).
	Range(ctx context.Context, from, to uint64) ([]*hub.Message, error)
}

// seedIDs is how clients of the seed's stream name their last event: the
// header, else the lastEventId query parameter; ids are the log's
// sequence numbers, and there is no "earliest".
var seedIDs = replay.Syntax{Query: LastEventIDParam}

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
	// Log, when set, is the shared event log behind the hub: a replay
	// reaching beyond this process's window (older than it, or newer: the
	// client came from a replica slightly ahead) is decided on, and read
	// from, what the log holds.
	Log ReplayLog
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
	id := seedIDs.FromRequest(r)
	start := time.Now()
	log := s.opts.Logger.With(
		"proto", r.Proto,
		"remote", r.RemoteAddr,
		"last_event_id", truncate(id.String(), 64),
	)
	if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
		log = log.With("forwarded_for", fwd)
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Tells nginx-style proxies in front of us not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")

	sub, win, err := s.hub.Subscribe()
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
	p := s.plan(r.Context(), id, win, log)
	h.Set(ReplayHeader, p.header())
	w.WriteHeader(http.StatusOK)
	log = log.With("replay", p.header())
	switch p.rp.Outcome {
	case replay.Gap:
		// Not an error of ours, but the client lost events: say so.
		log.Warn("last-event-id out of the history window: events lost to this client",
			"oldest_replayed", firstID(p.events))
	case replay.Future:
		log.Warn("last-event-id from the future: not issued by this event log; treated as a new client")
	}
	s.opts.Metrics.replay(p.outcome())
	log.Info("sse stream open")

	st := stream{w: w, rc: http.NewResponseController(w), timeout: s.opts.WriteTimeout, lastID: p.skip}
	end := s.run(r, sub, p.events, &st)
	log.Info("sse stream closed",
		"end", end,
		"events", st.events,
		"heartbeats", st.heartbeats,
		"duration", time.Since(start).Round(time.Millisecond).String(),
	)
}

// run writes the stream until something ends it and says what did.
func (s *streamer) run(r *http.Request, sub *hub.Subscription, replayed []*hub.Message, st *stream) string {
	var buf []byte
	if s.opts.Retry > 0 {
		buf = sse.AppendRetry(buf, s.opts.Retry)
	}
	// Even with nothing to replay, flushing now shows the client the
	// headers at once instead of at the first event.
	if err := st.write(buf); err != nil {
		return writeEnd(err, sub)
	}
	for _, m := range replayed {
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
			return endOfSubscription(sub.Err())
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

// seedReplay is what one client of the seed's stream gets before the
// live feed.
type seedReplay struct {
	rp replay.Replay
	// ahead: the client's id is past this replica's newest, but the log
	// has it (the client came from a replica a little ahead).
	ahead  bool
	events []*hub.Message
	// skip: live events up to this id are already sent or known to the
	// client.
	skip uint64
}

// header is the x-sse-replay value.
func (p seedReplay) header() string {
	switch p.rp.Outcome {
	case replay.Resumed:
		return "replayed " + strconv.Itoa(len(p.events))
	case replay.Gap:
		return "gap " + strconv.Itoa(len(p.events))
	case replay.Unknown:
		return "invalid-last-event-id"
	case replay.Future:
		return "future-last-event-id"
	}
	return "none"
}

// outcome names the replay in one word, for metrics.
func (p seedReplay) outcome() string {
	switch p.rp.Outcome {
	case replay.Resumed:
		if p.ahead {
			return "ahead"
		}
		return "replayed"
	case replay.Gap:
		return "gap"
	case replay.Unknown:
		return "invalid"
	case replay.Future:
		return "future"
	}
	return "none"
}

// Bounds on the calls a replay makes to the shared log.
const (
	boundsTimeout = 2 * time.Second
	rangeTimeout  = 5 * time.Second
	// maxBackfill bounds how many events one client is replayed from the
	// log beyond the hub's window: a client further behind gets a gap.
	maxBackfill = 10000
)

// plan decides with replay.Decide what the client is owed and gathers it.
// The hub's window is enough unless the client's id lies outside it; then
// the log's bounds extend it (if the log cannot say, the window decides).
func (s *streamer) plan(ctx context.Context, id replay.EventID, win hub.Window, log *slog.Logger) seedReplay {
	var at replay.Position
	if n, ok := id.Seq(); ok {
		at = replay.Position{Seq: n, Found: true}
	}
	held := replay.Bounds{First: win.First, Last: win.Last}
	if at.Found && (at.Seq > win.Last || at.Seq+1 < win.First) {
		held = s.withLog(ctx, held)
	}
	p := seedReplay{rp: replay.Decide(id, at, held)}
	switch p.rp.Outcome {
	case replay.Resumed, replay.Gap:
	default:
		// A new client (or one whose id means nothing here) gets the
		// newest event at once, not the history: curl shows output
		// immediately, and there is no replay burst on every connect.
		p.events = s.hub.Held(win.Last, win.Last)
		return p
	}
	p.ahead = at.Seq > win.Last
	p.events = s.gather(ctx, p.rp, win, log)
	// What could not be gathered (the log failed, or dropped events
	// meanwhile) is decided again on what could: a smaller replay, and a
	// gap, never a hole.
	if want := min(p.rp.To, win.Last); p.rp.From <= want {
		got := want + 1
		if len(p.events) > 0 {
			got = p.events[0].ID
		}
		if got != p.rp.From {
			held.First = got
			p.rp = replay.Decide(id, at, held)
		}
	}
	p.skip = p.rp.From - 1
	return p
}

// withLog extends the hub's bounds with the log's: newer ids the log has
// and this replica has not received yet, older ones up to maxBackfill
// before the window.
func (s *streamer) withLog(ctx context.Context, held replay.Bounds) replay.Bounds {
	if s.opts.Log == nil {
		return held
	}
	ctx, cancel := context.WithTimeout(ctx, boundsTimeout)
	defer cancel()
	first, last, err := s.opts.Log.Bounds(ctx)
	if err != nil {
		return held
	}
	out := held
	out.Last = max(held.Last, last)
	lo := max(first, 1)
	if held.First > maxBackfill {
		lo = max(lo, held.First-maxBackfill)
	}
	out.First = min(held.First, lo)
	return out
}

// gather collects the replay's events up to the hub's newest at subscribe
// time (the live feed carries the rest): from the hub's window, and from
// the log for those older than it. The result is consecutive and ends at
// the window's newest; it may start later than asked.
func (s *streamer) gather(ctx context.Context, rp replay.Replay, win hub.Window, log *slog.Logger) []*hub.Message {
	to := min(rp.To, win.Last)
	if rp.From > to {
		return nil
	}
	mem := s.hub.Held(max(rp.From, win.First), to)
	start := to + 1
	if len(mem) > 0 {
		start = mem[0].ID
	}
	if rp.From >= start || s.opts.Log == nil {
		return mem
	}
	ctx, cancel := context.WithTimeout(ctx, rangeTimeout)
	defer cancel()
	older, err := s.opts.Log.Range(ctx, rp.From, start-1)
	if err != nil {
		log.Warn("replay from the event log failed; replaying what this replica holds", "err", err)
		return mem
	}
	// Only a consecutive run ending right before the window joins it.
	i := len(older)
	for i > 0 && older[i-1].ID == start-uint64(len(older)-i)-1 {
		i--
	}
	return append(older[i:len(older):len(older)], mem...)
}

func firstID(ms []*hub.Message) uint64 {
	if len(ms) == 0 {
		return 0
	}
	return ms[0].ID
}

// truncate keeps a client-chosen value from bloating every log line.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// endOfSubscription says why a hub ended a subscription, for either hub:
// the seed stream's (upstream/hub) or the Mercure fan-out's.
func endOfSubscription(err error) string {
	switch {
	case errors.Is(err, hub.ErrSlowConsumer), errors.Is(err, fanout.ErrSlowConsumer):
		return EndSlowClient
	case errors.Is(err, hub.ErrReset), errors.Is(err, fanout.ErrReset):
		return EndLogReset
	}
	return EndShutdown
}
