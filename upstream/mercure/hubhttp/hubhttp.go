// Package hubhttp serves the Mercure hub over HTTP at /.well-known/mercure:
// POST publishes an update into the event log (a keyed JetStream stream),
// GET subscribes. Subscriptions are fed by a mercure/fanout.Fanout that
// follows the log, their replays are decided by replay.Decide like the seed
// stream's, and each stream runs in upstream/stream's serve loop.
package hubhttp

import (
	"context"
	"errors"
	"iter"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"example.com/sse-on-envoy/upstream/eventlog"
	"example.com/sse-on-envoy/upstream/mercure"
	"example.com/sse-on-envoy/upstream/mercure/fanout"
	"example.com/sse-on-envoy/upstream/replay"
	"example.com/sse-on-envoy/upstream/stream"
)

// Path is the Mercure hub's URL path.
const Path = "/.well-known/mercure"

// ReplayOutcomeHeader says what the subscriber's Last-Event-ID led to
// (replay.Outcome), as X-Sse-Replay does for the seed stream.
const ReplayOutcomeHeader = "X-Mercure-Replay"

// Publish results, the values Options.OnPublish is called with.
const (
	PublishStored    = "stored"
	PublishDuplicate = "duplicate" // a retry of an id already stored
	PublishRefused   = "refused"   // a 4xx: the client's doing
	PublishFailed    = "error"     // the event log could not store it
)

// PublishResults lists every publish result, for metrics.
var PublishResults = []string{PublishStored, PublishDuplicate, PublishRefused, PublishFailed}

// Config turns on the Mercure hub. The zero values of the limits take the
// mercure package's defaults.
type Config struct {
	// Log is the Keyed stream the updates are stored in (eventlog.Sibling
	// of the events' log, or its own). Follow follows it; nothing here
	// closes it.
	Log *eventlog.Log
	// PublisherKey and SubscriberKey verify the two roles' tokens. Without
	// a publisher key nobody can publish; without a subscriber key every
	// subscriber is anonymous and any token it sends is refused.
	PublisherKey, SubscriberKey mercure.Key
	Limits                      mercure.Limits
	// CookieOrigins are the origins whose pages may publish with the
	// mercureAuthorization cookie. A browser sends the cookie with any
	// cross-site form post, so a cookie alone is no proof the publisher
	// meant to publish (CSRF); the Authorization header is.
	CookieOrigins []string
	// Queue is how many updates may wait for one subscriber before it is
	// cut (fanout.DefaultQueue if zero).
	Queue int
}

// Options are how the hub streams, logs and counts.
type Options struct {
	Stream stream.Options
	Logger *slog.Logger
	// OnPublish and OnReplay, when set, are told each publish's result
	// (PublishResults) and each subscription's replay outcome, for metrics.
	OnPublish func(result string)
	OnReplay  func(replay.Outcome)
}

// Hub serves Path: GET subscribes, POST publishes.
type Hub struct {
	cfg       Config
	fan       *fanout.Fanout
	templates *mercure.TemplateCache
	opts      Options
	now       func() time.Time
}

// New returns a Hub; its subscribers get nothing until Follow runs.
func New(cfg Config, o Options) *Hub {
	cfg.Limits = cfg.Limits.WithDefaults()
	o.Stream = o.Stream.WithDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnPublish == nil {
		o.OnPublish = func(string) {}
	}
	if o.OnReplay == nil {
		o.OnReplay = func(replay.Outcome) {}
	}
	return &Hub{cfg: cfg, fan: fanout.New(cfg.Queue), templates: mercure.NewTemplateCache(0), opts: o, now: time.Now}
}

// Follow hands every update the log stores to this process's subscribers
// until ctx is done.
func (m *Hub) Follow(ctx context.Context) {
	m.cfg.Log.Follow(ctx, m.dispatch, m.fan.Reset)
}

// Close ends every subscription (the server is shutting down); later
// subscribers are told to retry.
func (m *Hub) Close() { m.fan.Close() }

// Stats are the fan-out's counters.
func (m *Hub) Stats() stream.Stats { return m.fan.Stats() }

// Health is the event log's: an error while the hub cannot store or
// follow updates.
func (m *Hub) Health() error { return m.cfg.Log.Health() }

func (m *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		m.subscribe(w, r)
	case http.MethodPost:
		m.publish(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// refuse answers a client error. 401s say how to authenticate, as RFC
// 6750 asks.
func (m *Hub) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if r.Method == http.MethodPost {
		m.opts.OnPublish(PublishRefused)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mercure"`)
	}
	m.opts.Logger.Info("mercure request refused", "method", r.Method, "status", status, "reason", msg, "remote", r.RemoteAddr)
	http.Error(w, msg, status)
}

func (m *Hub) refuseErr(w http.ResponseWriter, r *http.Request, err error) {
	var re *mercure.RequestError
	if errors.As(err, &re) {
		m.refuse(w, r, re.Status, re.Msg)
		return
	}
	m.refuse(w, r, http.StatusBadRequest, err.Error())
}

// claims verifies the request's token with key. A request without one is
// anonymous (nil, nil); a token that does not verify is an error, never
// treated as anonymous, so that a client with an expired token learns it.
func (m *Hub) claims(r *http.Request, key mercure.Key) (*mercure.Claims, string, error) {
	tok, from, err := mercure.TokenFrom(r)
	if err != nil || tok == "" {
		return nil, from, err
	}
	c, err := key.Verify(tok, m.now())
	return c, from, err
}

func (m *Hub) publish(w http.ResponseWriter, r *http.Request) {
	c, from, err := m.claims(r, m.cfg.PublisherKey)
	switch {
	case err != nil:
		m.refuse(w, r, http.StatusUnauthorized, err.Error())
		return
	case c == nil:
		m.refuse(w, r, http.StatusUnauthorized, "publishing needs a token with a mercure.publish claim")
		return
	case from == mercure.FromQuery:
		// A publisher can send a header: its token stays out of URLs, and so
		// out of every log and history that keeps them.
		m.refuse(w, r, http.StatusBadRequest, "send the publisher token in the Authorization header, not the query string")
		return
	case from == mercure.FromCookie && !slices.Contains(m.cfg.CookieOrigins, r.Header.Get("Origin")):
		m.refuse(w, r, http.StatusForbidden, "publishing with the cookie needs an allowed Origin; send the token in the Authorization header")
		return
	}
	u, err := mercure.ParsePublish(r, m.cfg.Limits)
	if err != nil {
		m.refuseErr(w, r, err)
		return
	}
	if !c.Publish.MatchAll(u.Topics) {
		m.refuse(w, r, http.StatusForbidden, "the token's mercure.publish claim does not cover every topic of the update")
		return
	}
	if u.ID == "" {
		u.ID = mercure.NewID()
	}
	data, err := u.Marshal()
	if err != nil {
		m.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	// JSON escaping can grow data past what NATS accepts: the client's
	// doing, so a 413 rather than a failed store.
	if mp := m.cfg.Log.MaxPayload(); mp > 0 && int64(len(data)) > mp {
		m.refuse(w, r, http.StatusRequestEntityTooLarge, "update too large once encoded; send less data")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), stream.LogPublishTimeout)
	defer cancel()
	res, err := m.cfg.Log.PublishKeyed(ctx, mercure.LogKey(u.ID), data)
	if err != nil {
		// Not the client's fault, and safe to retry with the same id: the
		// log stores it once.
		m.opts.Logger.Warn("mercure publish failed", "id", stream.Clip(u.ID), "err", err)
		m.opts.OnPublish(PublishFailed)
		w.Header().Set("Retry-After", "1")
		// The id goes back even when the hub chose it: a retry under it is
		// stored once, if the first attempt was stored after all.
		http.Error(w, "event log unavailable, retry with the same id: "+u.ID, http.StatusServiceUnavailable)
		return
	}
	if res.Duplicate {
		// A retry is welcome; another update under an id already taken
		// would be acknowledged and silently dropped.
		if same, err := m.storedAs(ctx, res.Seq, data); err == nil && !same {
			m.refuse(w, r, http.StatusConflict, "an update with this id and other content is already stored; publish under a new id")
			return
		}
		m.opts.OnPublish(PublishDuplicate)
	} else {
		m.opts.OnPublish(PublishStored)
	}
	m.opts.Logger.Debug("mercure update published", "id", stream.Clip(u.ID), "seq", res.Seq, "duplicate", res.Duplicate, "topics", len(u.Topics), "private", u.Private)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(u.ID))
}

func (m *Hub) subscribe(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query()["topic"]
	if len(raw) == 0 {
		m.refuse(w, r, http.StatusBadRequest, "missing topic: subscribe with one or more topic query parameters")
		return
	}
	// Cheap checks first: a token that does not verify, or a subscription
	// over its budget, is refused before any selector is compiled.
	c, _, err := m.claims(r, m.cfg.SubscriberKey)
	if err != nil {
		m.refuse(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	topics, err := m.templates.ParseSubscription(raw, m.cfg.Limits.Budget())
	if err != nil {
		m.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	want := fanout.Want{Topics: topics}
	var expires time.Time
	if c != nil {
		want.Allowed, expires = c.Subscribe, c.Expires
	}
	id := mercure.LastEventID.FromRequest(r)
	log := m.opts.Logger.With("proto", r.Proto, "remote", r.RemoteAddr, "topics", len(raw),
		"authenticated", c != nil, "last_event_id", stream.Clip(id.String()))
	stream.SetHeaders(w.Header())

	// Registered before the log's bounds are read: every update after
	// Bounds' last is then on the subscription, the seam is exact.
	sub, err := m.fan.Subscribe(want)
	if err != nil {
		stream.RetryLater(w, m.opts.Stream)
		log.Warn("mercure subscription refused", "reason", "shutting down")
		return
	}
	rp, lastID, err := m.decide(r.Context(), id, want)
	if err != nil {
		sub.Close()
		// Without the log no replay can be decided; a live-only stream
		// would lose updates silently.
		stream.RetryLater(w, m.opts.Stream)
		log.Warn("mercure subscription refused", "reason", "event log unavailable", "err", err)
		return
	}
	if lastID != "" {
		w.Header().Set("Last-Event-ID", lastID)
	}
	w.Header().Set(ReplayOutcomeHeader, string(rp.Outcome))
	log = log.With("replay", string(rp.Outcome))
	m.opts.OnReplay(rp.Outcome)
	log.Info("mercure subscription open")

	// The replay may outlive the handler (a detached stream, stream.Run):
	// each of its reads has a timeout, and the stream stops it when the
	// client goes.
	stream.Run(w, r, stream.Session[*fanout.Item]{
		Feed:    sub,
		Replay:  m.replay(context.WithoutCancel(r.Context()), rp, want),
		Through: rp.To,
		Expires: expires,
	}, m.opts.Stream, log, func(res stream.Result) {
		sub.Close()
		log.Info("mercure subscription closed", res.LogAttrs()...)
	})
}

// replay reads what rp owes the subscriber from the log, ReplayChunk
// updates per read, and yields those it may receive. A failed read ends
// the replay with its error: the client reconnects with the id of the last
// update it got and is replayed from there, nothing lost, nothing twice.
func (m *Hub) replay(ctx context.Context, rp replay.Replay, want fanout.Want) iter.Seq2[*fanout.Item, error] {
	return func(yield func(*fanout.Item, error) bool) {
		for from := rp.From; from <= rp.To; from += stream.ReplayChunk {
			rctx, cancel := context.WithTimeout(ctx, stream.LogReadTimeout)
			recs, err := m.cfg.Log.Range(rctx, from, min(from+stream.ReplayChunk-1, rp.To))
			cancel()
			if err != nil {
				yield(nil, err)
				return
			}
			for _, rec := range recs {
				u, err := mercure.UnmarshalUpdate([]byte(rec.Data))
				if err != nil || !want.CanReceive(u) {
					continue
				}
				if !yield(fanout.NewItem(rec.Seq, u), nil) {
					return
				}
			}
		}
	}
}

// decide reads what the log holds and where id is in it, and hands both
// to replay.Decide. lastID is the Last-Event-ID response header: the id
// of the newest update stored, "earliest" if none, "" (no header) when
// that update is private and the subscriber is not entitled to know of it.
//
// An id naming a private update the subscriber is not entitled to counts
// as unknown: otherwise the replay outcome would tell anyone which private
// ids exist.
func (m *Hub) decide(ctx context.Context, id replay.EventID, want fanout.Want) (rp replay.Replay, lastID string, err error) {
	ctx, cancel := context.WithTimeout(ctx, stream.LogLookupTimeout)
	defer cancel()
	first, last, err := m.cfg.Log.Bounds(ctx)
	if err != nil {
		return rp, "", err
	}
	var at replay.Position
	if !id.None() && !id.Earliest() {
		rec, found, err := m.cfg.Log.LastByKey(ctx, mercure.LogKey(id.String()))
		if err != nil {
			return rp, "", err
		}
		if found {
			u, derr := mercure.UnmarshalUpdate([]byte(rec.Data))
			at.Found = derr == nil && u.ID == id.String() && want.Entitled(u)
			at.Seq = rec.Seq
		}
	}
	rp = replay.Decide(id, at, replay.Bounds{First: first, Last: last})
	lastID = mercure.Earliest
	switch {
	case last == 0 || last < first:
	case at.Found && at.Seq == last:
		lastID = id.String()
	default:
		rec, found, err := m.cfg.Log.Get(ctx, last)
		if err != nil {
			return rp, "", err
		}
		lastID = ""
		if found {
			if u, err := mercure.UnmarshalUpdate([]byte(rec.Data)); err == nil && want.Entitled(u) {
				lastID = u.ID
			}
		}
	}
	return rp, lastID, nil
}

// storedAs reports whether the update stored at seq is data, byte for byte.
func (m *Hub) storedAs(ctx context.Context, seq uint64, data []byte) (bool, error) {
	rec, found, err := m.cfg.Log.Get(ctx, seq)
	if err != nil || !found {
		return true, err
	}
	return rec.Data == string(data), nil
}

// dispatch hands an update from the log to this process's subscribers.
// A record that does not decode is skipped (and logged): it cannot have
// been stored by a hub, and nobody could be entitled to it.
func (m *Hub) dispatch(rec eventlog.Record) {
	u, err := mercure.UnmarshalUpdate([]byte(rec.Data))
	if err != nil {
		m.opts.Logger.Warn("mercure: undecodable update in the event log, skipped", "seq", rec.Seq, "err", err)
		return
	}
	m.fan.Dispatch(fanout.NewItem(rec.Seq, u))
}
