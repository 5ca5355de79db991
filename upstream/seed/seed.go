// Package seed serves the write-up's event stream: GET /sse/events, dad
// jokes with a global, increasing id, over upstream/hub's history and
// upstream/stream's serve loop.
//
// # Resuming
//
// A client resumes with the Last-Event-ID header or, for clients that cannot
// set headers, the lastEventId query parameter (the header wins when both are
// present). Whatever the id, the answer is 200: any other status makes a
// browser's EventSource give up for good. The x-sse-replay response header
// says what the id led to:
//
//	none                   no id: the stream starts with the newest event, then live
//	replayed N             the N events after the id (0 if up to date), then live
//	gap N                  the id is older than the history: all N events held
//	                       are replayed, the ones in between are lost
//	invalid-last-event-id  not a decimal id: treated as a new client
//	future-last-event-id   newer than any id issued (e.g. from before a restart):
//	                       treated as a new client
//
// A new client gets the newest event at once, not the whole history, so curl
// shows output immediately without a replay burst on every connect.
//
// # Slow clients
//
// Each stream has a bounded queue in the hub. When it is full the hub cuts
// the stream instead of blocking the publisher; the handler ends the
// response at its next wake-up (a blocked write is bounded by the per-write
// deadline) and the client reconnects with its Last-Event-ID.
package seed

import (
	"context"
	"iter"
	"log/slog"
	"net/http"
	"strconv"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/replay"
	"example.com/sse-on-envoy/upstream/stream"
)

// Paths, header names and the event type.
const (
	EventsPath   = routes.EventsPath
	ReplayHeader = "X-Sse-Replay"
	EventType    = "DAD_JOKE"
	// LastEventIDParam is the query fallback for clients that cannot set
	// the Last-Event-ID header.
	LastEventIDParam = "lastEventId"
)

// Replay outcomes, the values Options.OnReplay is called with.
var Outcomes = []string{"none", "replayed", "gap", "invalid", "future", "ahead"}

// ReplayLog is what a replay needs of the shared event log.
type ReplayLog interface {
	// Bounds are the first and last ids the log holds.
	Bounds(ctx context.Context) (first, last uint64, err error)
	// Range reads the events with ids from..to the log still holds, in
	// order (the oldest may be missing).
	Range(ctx context.Context, from, to uint64) ([]*hub.Message, error)
}

// ids is how clients of the seed's stream name their last event: the
// header, else the lastEventId query parameter; ids are the log's
// sequence numbers, and there is no "earliest".
var ids = replay.Syntax{Query: LastEventIDParam}

// Options configure NewHandler.
type Options struct {
	Stream stream.Options
	Logger *slog.Logger
	// Log, when set, is the shared event log behind the hub: a replay
	// reaching beyond this process's window (older than it, or newer: the
	// client came from a replica slightly ahead) is decided on, and read
	// from, what the log holds.
	Log ReplayLog
	// OnReplay, when set, is told each stream's replay outcome (one of
	// Outcomes), for metrics.
	OnReplay func(outcome string)
}

// NewHandler serves the event stream of h at EventsPath.
func NewHandler(h *hub.Hub, o Options) http.Handler {
	o.Stream = o.Stream.WithDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &handler{hub: h, opts: o}
}

type handler struct {
	hub  *hub.Hub
	opts Options
}

func (s *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		// Logged so a preflight that slipped past Envoy's CORS handling shows.
		s.opts.Logger.Info("method not allowed", "method", r.Method, "path", r.URL.Path, "proto", r.Proto)
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	id := ids.FromRequest(r)
	log := s.opts.Logger.With(
		"proto", r.Proto,
		"remote", r.RemoteAddr,
		"last_event_id", stream.Clip(id.String()),
	)
	if fwd := r.Header.Get("X-Forwarded-For"); fwd != "" {
		log = log.With("forwarded_for", fwd)
	}
	stream.SetHeaders(w.Header())

	sub, win, err := s.hub.Subscribe()
	if err != nil {
		stream.RetryLater(w, s.opts.Stream)
		log.Info("sse stream refused", "end", stream.EndShutdown)
		return
	}
	p := s.plan(r.Context(), id, win, log)
	w.Header().Set(ReplayHeader, p.header())
	log = log.With("replay", p.header())
	switch p.rp.Outcome {
	case replay.Gap:
		// Not an error of ours, but the client lost events: say so.
		log.Warn("last-event-id out of the history window: events lost to this client",
			"oldest_replayed", firstID(p.events))
	case replay.Future:
		log.Warn("last-event-id from the future: not issued by this event log; treated as a new client")
	}
	if s.opts.OnReplay != nil {
		s.opts.OnReplay(p.outcome())
	}
	log.Info("sse stream open")

	stream.Run(w, r, stream.Session[*hub.Message]{
		Feed:    sub,
		Replay:  replayed(p.events),
		Through: p.skip,
	}, s.opts.Stream, log, func(res stream.Result) {
		sub.Close()
		log.Info("sse stream closed", res.LogAttrs()...)
	})
}

// replayed yields the events gathered before the stream started.
func replayed(ms []*hub.Message) iter.Seq2[*hub.Message, error] {
	return func(yield func(*hub.Message, error) bool) {
		for _, m := range ms {
			if !yield(m, nil) {
				return
			}
		}
	}
}

// plan is what one client of the seed's stream gets before the live feed.
type plan struct {
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
func (p plan) header() string {
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
func (p plan) outcome() string {
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

// maxBackfill bounds how many events one client is replayed from the log
// beyond the hub's window: a client further behind gets a gap.
const maxBackfill = 10000

// plan decides with replay.Decide what the client is owed and gathers it.
// The hub's window is enough unless the client's id lies outside it; then
// the log's bounds extend it (if the log cannot say, the window decides).
func (s *handler) plan(ctx context.Context, id replay.EventID, win hub.Window, log *slog.Logger) plan {
	var at replay.Position
	if n, ok := id.Seq(); ok {
		at = replay.Position{Seq: n, Found: true}
	}
	held := replay.Bounds{First: win.First, Last: win.Last}
	if at.Found && (at.Seq > win.Last || at.Seq+1 < win.First) {
		held = s.withLog(ctx, held)
	}
	p := plan{rp: replay.Decide(id, at, held)}
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
func (s *handler) withLog(ctx context.Context, held replay.Bounds) replay.Bounds {
	if s.opts.Log == nil {
		return held
	}
	ctx, cancel := context.WithTimeout(ctx, stream.LogLookupTimeout)
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
func (s *handler) gather(ctx context.Context, rp replay.Replay, win hub.Window, log *slog.Logger) []*hub.Message {
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
	ctx, cancel := context.WithTimeout(ctx, stream.LogReadTimeout)
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
