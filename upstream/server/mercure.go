package server

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/eventlog"
	"example.com/sse-on-envoy/upstream/mercure"
	"example.com/sse-on-envoy/upstream/mercure/fanout"
	"example.com/sse-on-envoy/upstream/replay"
)

// MercurePath is the Mercure hub's URL path.
const MercurePath = "/.well-known/mercure"

// MercureConfig turns on the Mercure hub. The zero values of the limits
// take the mercure package's defaults.
type MercureConfig struct {
	// Log is the Keyed stream the updates are stored in (eventlog.Sibling
	// of the events' log, or its own). Run follows it; it does not close it.
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

// Timeouts for the hub's calls to the event log.
const (
	mercurePublishTimeout = 5 * time.Second
	mercureLookupTimeout  = 5 * time.Second
	// replayChunk bounds how many stored updates one read brings into
	// memory (at most replayChunk times the largest update NATS accepts);
	// a long replay is several reads, each bounded by replayReadTimeout.
	replayChunk       = 64
	replayReadTimeout = 10 * time.Second
)

// mercureHub serves MercurePath: GET subscribes, POST publishes.
type mercureHub struct {
	cfg  MercureConfig
	fan  *fanout.Fanout
	opts HandlerOptions
	now  func() time.Time
}

func newMercureHub(cfg MercureConfig, fan *fanout.Fanout, opts HandlerOptions) *mercureHub {
	cfg.Limits = cfg.Limits.WithDefaults()
	return &mercureHub{cfg: cfg, fan: fan, opts: opts, now: time.Now}
}

func (m *mercureHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
func (m *mercureHub) refuse(w http.ResponseWriter, r *http.Request, status int, msg string) {
	if r.Method == http.MethodPost {
		m.opts.Metrics.mercurePublish(MercureRefused)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="mercure"`)
	}
	m.opts.Logger.Info("mercure request refused", "method", r.Method, "status", status, "reason", msg, "remote", r.RemoteAddr)
	http.Error(w, msg, status)
}

func (m *mercureHub) refuseErr(w http.ResponseWriter, r *http.Request, err error) {
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
func (m *mercureHub) claims(r *http.Request, key mercure.Key) (*mercure.Claims, string, error) {
	tok, from, err := mercure.TokenFrom(r)
	if err != nil || tok == "" {
		return nil, from, err
	}
	c, err := key.Verify(tok, m.now())
	return c, from, err
}

func (m *mercureHub) publish(w http.ResponseWriter, r *http.Request) {
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
	ctx, cancel := context.WithTimeout(r.Context(), mercurePublishTimeout)
	defer cancel()
	res, err := m.cfg.Log.PublishKeyed(ctx, mercure.LogKey(u.ID), data)
	if err != nil {
		// Not the client's fault, and safe to retry with the same id: the
		// log stores it once.
		m.opts.Logger.Warn("mercure publish failed", "id", truncate(u.ID, 64), "err", err)
		m.opts.Metrics.mercurePublish(MercureFailed)
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
		m.opts.Metrics.mercurePublish(MercureDuplicate)
	} else {
		m.opts.Metrics.mercurePublish(MercureStored)
	}
	m.opts.Logger.Debug("mercure update published", "id", truncate(u.ID, 64), "seq", res.Seq, "duplicate", res.Duplicate, "topics", len(u.Topics), "private", u.Private)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(u.ID))
}

// ReplayOutcomeHeader says what the subscriber's Last-Event-ID led to
// (replay.Outcome), as X-Sse-Replay does for the seed stream.
const ReplayOutcomeHeader = "X-Mercure-Replay"

func (m *mercureHub) subscribe(w http.ResponseWriter, r *http.Request) {
	raw := r.URL.Query()["topic"]
	if len(raw) == 0 {
		m.refuse(w, r, http.StatusBadRequest, "missing topic: subscribe with one or more topic query parameters")
		return
	}
	topics, err := mercure.ParseSelectors(raw, m.cfg.Limits.MaxTopics)
	if err != nil {
		m.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	c, _, err := m.claims(r, m.cfg.SubscriberKey)
	if err != nil {
		m.refuse(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	var allowed *mercure.Selectors
	if c != nil {
		allowed = c.Subscribe
	}
	id := mercure.LastEventID.FromRequest(r)
	start := time.Now()
	log := m.opts.Logger.With("proto", r.Proto, "remote", r.RemoteAddr, "topics", len(raw),
		"authenticated", c != nil, "last_event_id", truncate(id.String(), 64))

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")

	// Registered before the log's bounds are read: every update after
	// Bounds' last is then on the subscription, the seam is exact.
	sub, err := m.fan.Subscribe(topics, allowed)
	if err != nil {
		m.retryLater(w, log, "shutting down", nil)
		return
	}
	defer sub.Close()
	rp, lastID, err := m.decide(r.Context(), id, sub)
	if err != nil {
		// Without the log no replay can be decided; a live-only stream
		// would lose updates silently. An empty 200 with retry brings the
		// client back, to a healthier replica if any.
		m.retryLater(w, log, "event log unavailable", err)
		return
	}
	if lastID != "" {
		h.Set("Last-Event-ID", lastID)
	}
	h.Set(ReplayOutcomeHeader, string(rp.Outcome))
	w.WriteHeader(http.StatusOK)
	log = log.With("replay", string(rp.Outcome))
	m.opts.Metrics.mercureReplay(rp.Outcome)
	log.Info("mercure subscription open")

	st := &stream{w: w, rc: http.NewResponseController(w), timeout: m.opts.WriteTimeout}
	var expires time.Time
	if c != nil {
		expires = c.Expires
	}
	end := m.run(r, sub, rp, st, expires)
	log.Info("mercure subscription closed", "end", end, "events", st.events, "heartbeats", st.heartbeats,
		"duration", time.Since(start).Round(time.Millisecond).String())
}

func (m *mercureHub) retryLater(w http.ResponseWriter, log *slog.Logger, why string, err error) {
	w.WriteHeader(http.StatusOK)
	if m.opts.Retry > 0 {
		_, _ = w.Write(sse.AppendRetry(nil, m.opts.Retry))
	}
	log.Warn("mercure subscription refused", "reason", why, "err", err)
}

// decide reads what the log holds and where id is in it, and hands both
// to replay.Decide. lastID is the Last-Event-ID response header: the id
// of the newest update stored, "earliest" if none, "" (no header) when
// that update is private and sub is not entitled to know of it.
//
// An id naming a private update sub is not entitled to counts as unknown:
// otherwise the replay outcome would tell anyone which private ids exist.
func (m *mercureHub) decide(ctx context.Context, id replay.EventID, sub *fanout.Subscription) (rp replay.Replay, lastID string, err error) {
	ctx, cancel := context.WithTimeout(ctx, mercureLookupTimeout)
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
			at.Found = derr == nil && u.ID == id.String() && sub.Entitled(u)
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
			if u, err := mercure.UnmarshalUpdate([]byte(rec.Data)); err == nil && sub.Entitled(u) {
				lastID = u.ID
			}
		}
	}
	return rp, lastID, nil
}

// storedAs reports whether the update stored at seq is data, byte for byte.
func (m *mercureHub) storedAs(ctx context.Context, seq uint64, data []byte) (bool, error) {
	rec, found, err := m.cfg.Log.Get(ctx, seq)
	if err != nil || !found {
		return true, err
	}
	return rec.Data == string(data), nil
}

// run replays rp, then streams live updates until something ends it.
func (m *mercureHub) run(r *http.Request, sub *fanout.Subscription, rp replay.Replay, st *stream, expires time.Time) string {
	var buf []byte
	if m.opts.Retry > 0 {
		buf = sse.AppendRetry(buf, m.opts.Retry)
	}
	if err := st.write(buf); err != nil {
		return m.writeEnd(err, sub)
	}
	for from := rp.From; from <= rp.To; from += replayChunk {
		select {
		case <-sub.Done():
			// Cut (its live queue filled during a long replay): it comes
			// back with the id it last got.
			return endOfSubscription(sub.Err())
		default:
		}
		ctx, cancel := context.WithTimeout(r.Context(), replayReadTimeout)
		recs, err := m.cfg.Log.Range(ctx, from, min(from+replayChunk-1, rp.To))
		cancel()
		if err != nil {
			// The client reconnects with the id of the last update it got
			// and is replayed from there: nothing lost, nothing twice.
			m.opts.Logger.Warn("mercure replay from the event log failed", "from", from, "err", err)
			return EndWriteError
		}
		for _, rec := range recs {
			u, err := mercure.UnmarshalUpdate([]byte(rec.Data))
			if err != nil || !sub.CanReceive(u) {
				continue
			}
			if err := st.writeItem(fanout.NewItem(rec.Seq, u)); err != nil {
				return m.writeEnd(err, sub)
			}
		}
	}
	st.lastID = rp.To

	hb := time.NewTicker(m.opts.Heartbeat)
	defer hb.Stop()
	// A token expiring mid-stream ends the stream: private updates must
	// not outlive the grant.
	var expired <-chan time.Time
	if !expires.IsZero() {
		t := time.NewTimer(time.Until(expires))
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case <-r.Context().Done():
			return EndClientGone
		case <-expired:
			return EndTokenExpired
		case <-sub.Done():
			return endOfSubscription(sub.Err())
		case it := <-sub.C():
			// Replayed already, or stored before the subscription's
			// bounds were read.
			if it.Seq <= st.lastID {
				continue
			}
			if err := st.writeItem(it); err != nil {
				return m.writeEnd(err, sub)
			}
		case <-hb.C:
			if err := st.write(sse.AppendComment(nil, "heartbeat")); err != nil {
				return m.writeEnd(err, sub)
			}
			st.heartbeats++
		}
	}
}

func (st *stream) writeItem(it *fanout.Item) error {
	if err := st.write(it.Wire); err != nil {
		return err
	}
	st.lastID = it.Seq
	st.events++
	return nil
}

func (m *mercureHub) writeEnd(err error, sub *fanout.Subscription) string {
	select {
	case <-sub.Done():
		if errors.Is(sub.Err(), fanout.ErrSlowConsumer) {
			return EndSlowClient
		}
	default:
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return EndWriteTimed
	}
	return EndWriteError
}

// dispatch hands an update from the log to this process's subscribers.
// A record that does not decode is skipped (and logged): it cannot have
// been stored by a hub, and nobody could be entitled to it.
func (m *mercureHub) dispatch(rec eventlog.Record) {
	u, err := mercure.UnmarshalUpdate([]byte(rec.Data))
	if err != nil {
		m.opts.Logger.Warn("mercure: undecodable update in the event log, skipped", "seq", rec.Seq, "err", err)
		return
	}
	m.fan.Dispatch(fanout.NewItem(rec.Seq, u))
}
