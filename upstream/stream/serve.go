package stream

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"net/http"
	"os"
	"time"

	"example.com/sse-on-envoy/internal/sse"
)

// Reasons a stream ended, as logged (end=...).
const (
	EndClientGone = "client_gone"
	EndSlowClient = "slow_client_cut"
	EndShutdown   = "shutdown"
	EndWriteError = "write_error"
	EndWriteTimed = "write_timeout"
	// EndReplayFailed: the event log could not be read for the replay; the
	// client reconnects with the id it last got and is replayed from there.
	EndReplayFailed = "replay_failed"
	// EndLogReset: the event log's sequence started over (its stream was
	// replaced); the client reconnects and starts afresh.
	EndLogReset = "log_reset"
	// EndTokenExpired: the subscriber's token expired; what it granted
	// ends with it (the client must come back with a new one).
	EndTokenExpired = "token_expired"
	// EndComplete: the source sent everything it had (ErrComplete).
	EndComplete = "complete"
)

// Item is what a stream sends: a position in the event log and the
// event's SSE encoding, shared by every subscriber (never modified).
type Item interface {
	Position() uint64
	Encoded() []byte
}

// Feed is a subscriber's live items (a *Subscription).
type Feed[T any] interface {
	C() <-chan T
	Done() <-chan struct{}
	Err() error
}

// Session is one client's stream, decided by its source before Serve.
type Session[T Item] struct {
	Feed Feed[T]
	// Replay yields what the client is owed before live items, in order;
	// an error ends the stream (EndReplayFailed). Nil replays nothing.
	Replay iter.Seq2[T, error]
	// Through is the newest position the client has or the replay covers:
	// live items at or before it are skipped, so that no client sees an
	// event twice where the replay and the live feed meet.
	Through uint64
	// Expires, when not zero, ends the stream (EndTokenExpired).
	Expires time.Time
}

// Result is how a stream went, for its closing log line.
type Result struct {
	End        string
	Events     int
	Heartbeats int
	Duration   time.Duration
}

// LogAttrs are the closing log line's attributes.
func (r Result) LogAttrs() []any {
	return []any{"end", r.End, "events", r.Events, "heartbeats", r.Heartbeats,
		"duration", r.Duration.Round(time.Millisecond).String()}
}

// SetHeaders sets the headers every event stream answers with.
func SetHeaders(h http.Header) {
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// Tells nginx-style proxies in front of us not to buffer the stream.
	h.Set("X-Accel-Buffering", "no")
}

// RetryLater answers a stream that cannot be served now (shutting down,
// the event log unavailable) with an empty 200 carrying retry: a 503 would
// make a browser's EventSource stop for good, this brings it back, to a
// healthier replica if any. The headers must be set already.
func RetryLater(w http.ResponseWriter, o Options) {
	w.WriteHeader(http.StatusOK)
	if o = o.WithDefaults(); o.Retry > 0 {
		_, _ = w.Write(sse.AppendRetry(nil, o.Retry))
	}
}

// heartbeat is the keep-alive comment, the same bytes for every stream.
var heartbeat = sse.AppendComment(nil, "heartbeat")

// Serve writes s to w (its status and headers already sent) until
// something ends it: the retry prelude, the replay, then live items, with a
// heartbeat every interval.
// log gets a warning if the replay fails.
func Serve[T Item](ctx context.Context, w *Writer, s Session[T], o Options, log *slog.Logger) Result {
	start := time.Now()
	st := state[T]{w: w, feed: s.Feed, through: s.Through}
	st.end = st.serve(ctx, s, o.WithDefaults(), log)
	return Result{End: st.end, Events: st.events, Heartbeats: st.heartbeats, Duration: time.Since(start)}
}

type state[T Item] struct {
	w          *Writer
	feed       Feed[T]
	through    uint64
	events     int
	heartbeats int
	end        string
}

func (st *state[T]) serve(ctx context.Context, s Session[T], o Options, log *slog.Logger) string {
	var prelude []byte
	if o.Retry > 0 {
		prelude = sse.AppendRetry(prelude, o.Retry)
	}
	// Even with nothing to replay, flushing now shows the client the
	// headers at once instead of at the first event.
	if err := st.w.Write(prelude); err != nil {
		return st.writeEnd(ctx, err)
	}
	if s.Replay != nil {
		for it, err := range s.Replay {
			if err != nil {
				log.Warn("replay from the event log failed; the client comes back for the rest", "err", err)
				return EndReplayFailed
			}
			// Cut while replaying (its live queue filled during a long
			// replay): it comes back with the id it last got.
			select {
			case <-st.feed.Done():
				return endOf(st.feed.Err())
			case <-ctx.Done():
				return EndClientGone
			default:
			}
			if err := st.send(it); err != nil {
				return st.writeEnd(ctx, err)
			}
		}
	}

	var expired <-chan time.Time
	if !s.Expires.IsZero() {
		// A token expiring mid-stream ends the stream: what it granted
		// must not outlive the grant.
		t := time.NewTimer(time.Until(s.Expires))
		defer t.Stop()
		expired = t.C
	}
	hb := time.NewTicker(o.Heartbeat)
	defer hb.Stop()
	for {
		select {
		case <-ctx.Done():
			return EndClientGone
		case <-expired:
			return EndTokenExpired
		case <-st.feed.Done():
			if err := st.feed.Err(); errors.Is(err, ErrComplete) {
				return st.drain(ctx)
			}
			return endOf(st.feed.Err())
		case it := <-st.feed.C():
			if it.Position() <= st.through {
				continue
			}
			if err := st.send(it); err != nil {
				return st.writeEnd(ctx, err)
			}
		case <-hb.C:
			if err := st.w.Write(heartbeat); err != nil {
				return st.writeEnd(ctx, err)
			}
			st.heartbeats++
		}
	}
}

// drain writes what a complete source queued before it said so.
func (st *state[T]) drain(ctx context.Context) string {
	for {
		select {
		case it := <-st.feed.C():
			if it.Position() <= st.through {
				continue
			}
			if err := st.send(it); err != nil {
				return st.writeEnd(ctx, err)
			}
		default:
			return EndComplete
		}
	}
}

func (st *state[T]) send(it T) error {
	if err := st.w.Write(it.Encoded()); err != nil {
		return err
	}
	st.through = max(st.through, it.Position())
	st.events++
	return nil
}

// writeEnd names a failed write. A client that stops reading blocks the
// write until its deadline and meanwhile gets cut by the broadcaster: the
// cut is the reason worth logging, the timeout only its symptom. A client
// that left while a write was under way failed that write: it left.
func (st *state[T]) writeEnd(ctx context.Context, err error) string {
	select {
	case <-st.feed.Done():
		if errors.Is(st.feed.Err(), ErrSlowConsumer) {
			return EndSlowClient
		}
	default:
	}
	if ctx.Err() != nil {
		return EndClientGone
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return EndWriteTimed
	}
	return EndWriteError
}

// endOf names why a broadcaster ended a subscription.
func endOf(err error) string {
	switch {
	case errors.Is(err, ErrSlowConsumer):
		return EndSlowClient
	case errors.Is(err, ErrReset):
		return EndLogReset
	}
	return EndShutdown
}

// Clip keeps a client-chosen value (an id, a token's claim) from bloating
// every log line.
func Clip(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
