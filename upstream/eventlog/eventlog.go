// Package eventlog keeps the upstream's events in a NATS JetStream stream,
// so that every replica hands out the same ids: an event's id is its stream
// sequence, one durable, gap-free sequence whatever replica a client is on.
//
// A Log publishes events (de-duplicated by a message id, so that replicas
// publishing the same tick store it once) and follows the stream with one
// ordered consumer per process, handing each stored event to a sink (the
// process's in-memory hub, which fans it out to the clients). When NATS goes
// away the follower keeps trying and resumes after the last sequence it
// delivered, so nothing is skipped or delivered twice.
//
// With no URL, Open runs a NATS server inside the process with JetStream
// file storage in a data directory and no network listener at all, so one
// process needs nothing else and its ids survive a restart.
package eventlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Header names carried by every stored event.
const (
	// TypeHeader holds the SSE event type; the payload is the data.
	TypeHeader = "Sse-Event"
	// SentHeader holds the publisher's clock (Unix nanoseconds) when
	// stamping is on.
	SentHeader = "Sse-Sent"
)

// Defaults for zero Config fields.
const (
	DefaultStream     = "SSE_EVENTS"
	DefaultHistory    = 1024
	DefaultDuplicates = 2 * time.Minute
	// retryWait paces the follower's and the stream set-up's retries while
	// NATS is away.
	retryWait = 500 * time.Millisecond
)

// Config configures Open. Zero values take the defaults.
type Config struct {
	// URL of an existing NATS server or cluster (comma-separated URLs);
	// empty runs an embedded server storing under DataDir.
	URL string
	// DataDir is the embedded server's JetStream storage.
	DataDir string
	// Stream is the JetStream stream's name; its subject is derived from it.
	Stream string
	// History and MaxAge bound the stream (and so what can be replayed):
	// the oldest events go first once either is exceeded. MaxAge 0 keeps
	// events by count only.
	History int
	MaxAge  time.Duration
	// Preload is how many of the newest events Follow delivers before the
	// live ones (the sink's replay window); 0 means History.
	Preload int
	// Duplicates is the de-duplication window: a message id seen within it
	// is not stored again. It is capped at MaxAge, as JetStream requires.
	Duplicates time.Duration
	// Replicas is how many NATS servers keep a copy of the stream (1 for
	// the embedded server; 3 is usual in a cluster).
	Replicas int
	// Keyed makes each message's subject carry a key (the stream's subject
	// followed by ".<key>"), so that the newest message of a key can be
	// looked up (LastByKey): how a Mercure update id finds its sequence.
	// Keys are tokens chosen by the caller, never client text.
	Keyed  bool
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Stream == "" {
		c.Stream = DefaultStream
	}
	if c.History <= 0 {
		c.History = DefaultHistory
	}
	if c.Preload <= 0 || c.Preload > c.History {
		c.Preload = c.History
	}
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.Duplicates <= 0 {
		c.Duplicates = DefaultDuplicates
	}
	if c.MaxAge > 0 && c.Duplicates > c.MaxAge {
		c.Duplicates = c.MaxAge
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Subject is where the events of stream are published.
func Subject(stream string) string { return "sse.events." + stream }

// subjects are what the stream holds: one subject, or one per key.
func (c Config) subjects() string {
	if c.Keyed {
		return Subject(c.Stream) + ".*"
	}
	return Subject(c.Stream)
}

// Record is one stored event.
type Record struct {
	Seq    uint64
	Stored time.Time // the stream's timestamp
	Type   string
	Data   string
	Sent   time.Time // zero unless the publisher stamped it
}

// Log is a connection to the event stream. It is safe for concurrent use.
type Log struct {
	cfg      Config
	log      *slog.Logger
	embedded *server.Server
	unlock   func() // releases the data directory, with the embedded server
	// sibling: the connection belongs to another Log, which closes it.
	sibling bool
	nc      *nats.Conn
	js      jetstream.JetStream

	mu     sync.Mutex
	stream jetstream.Stream // nil until set up
	// consumerErr is why the follower is not following, "" when it is.
	consumerErr string
	// lagErr is why the follower, though running, is not keeping up
	// ("" when it is): the watcher sets it.
	lagErr string

	target    atomic.Uint64 // stream's last sequence when following began
	delivered atomic.Uint64 // newest sequence handed to the sink
	caughtUp  atomic.Bool
}

// Open starts the embedded server when cfg.URL is empty and connects. With
// an external URL it does not wait for NATS: the connection keeps retrying
// and Health says so meanwhile.
func Open(cfg Config) (*Log, error) {
	cfg = cfg.withDefaults()
	l := &Log{cfg: cfg, log: cfg.Logger.With("stream", cfg.Stream)}
	l.consumerErr = "not started"
	opts := []nats.Option{
		nats.Name("sse-upstream"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Publishing while disconnected fails at once instead of being
		// buffered and sent late: a tick missed during an outage stays
		// missed rather than appearing long after its time.
		nats.ReconnectBufSize(-1),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil { // nil: our own Close
				l.log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			l.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	url := cfg.URL
	if url == "" {
		ns, unlock, err := startEmbedded(cfg.DataDir)
		if err != nil {
			return nil, err
		}
		l.embedded, l.unlock = ns, unlock
		opts = append(opts, nats.InProcessServer(ns))
		l.log.Info("embedded NATS started", "data", cfg.DataDir)
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		l.shutdownEmbedded()
		return nil, fmt.Errorf("eventlog: connect to NATS: %w", err)
	}
	l.nc = nc
	if l.js, err = jetstream.New(nc); err != nil {
		l.Close()
		return nil, fmt.Errorf("eventlog: JetStream: %w", err)
	}
	return l, nil
}

// startEmbedded runs a JetStream server storing under dir that listens on
// no port: the process reaches it in memory, nothing else reaches it.
func startEmbedded(dir string) (_ *server.Server, unlock func(), err error) {
	if dir == "" {
		return nil, nil, errors.New("eventlog: embedded NATS needs a data directory")
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, nil, fmt.Errorf("eventlog: data directory: %w", err)
	}
	unlock, err = lockDir(dir)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			unlock()
		}
	}()
	ns, err := server.NewServer(&server.Options{
		ServerName: "sse-upstream-embedded",
		DontListen: true,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		NoLog:      true,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("eventlog: embedded NATS: %w", err)
	}
	ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, nil, fmt.Errorf("eventlog: embedded NATS with data %s not ready in 10s", dir)
	}
	return ns, unlock, nil
}

// Sibling is a Log on another stream (cfg.Stream, with cfg's limits)
// over l's connection: one NATS connection, or one embedded server, per
// process whatever the number of streams. Closing the sibling does
// nothing; closing l ends both.
func (l *Log) Sibling(cfg Config) *Log {
	cfg = cfg.withDefaults()
	s := &Log{cfg: cfg, log: cfg.Logger.With("stream", cfg.Stream), sibling: true, nc: l.nc, js: l.js}
	s.consumerErr = "not started"
	return s
}

// Close disconnects and stops the embedded server, if any.
func (l *Log) Close() {
	if l.sibling {
		return
	}
	if l.nc != nil {
		l.nc.Close()
	}
	l.shutdownEmbedded()
}

func (l *Log) shutdownEmbedded() {
	if l.embedded != nil {
		l.embedded.Shutdown()
		l.embedded.WaitForShutdown()
		l.unlock()
		l.embedded = nil
	}
}

// ensureStream creates the stream or updates its limits to ours. Replicas
// should run with the same limits: the last one to start sets them.
func (l *Log) ensureStream(ctx context.Context) (jetstream.Stream, error) {
	l.mu.Lock()
	s := l.stream
	l.mu.Unlock()
	if s != nil {
		return s, nil
	}
	s, err := l.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       l.cfg.Stream,
		Subjects:   []string{l.cfg.subjects()},
		Storage:    jetstream.FileStorage,
		Retention:  jetstream.LimitsPolicy,
		Discard:    jetstream.DiscardOld,
		MaxMsgs:    int64(l.cfg.History),
		MaxAge:     l.cfg.MaxAge,
		Duplicates: l.cfg.Duplicates,
		Replicas:   l.cfg.Replicas,
		// Lets GetMsg-style reads be answered by any replica of the stream
		// in a NATS cluster.
		AllowDirect: true,
	})
	if err != nil {
		return nil, fmt.Errorf("eventlog: create or update stream %s: %w", l.cfg.Stream, err)
	}
	l.mu.Lock()
	l.stream = s
	l.mu.Unlock()
	return s, nil
}

// forgetStream makes the next operation create the stream again (or
// update it) rather than trust a handle that failed: NATS may have lost the
// stream with its storage.
func (l *Log) forgetStream() {
	l.mu.Lock()
	l.stream = nil
	l.mu.Unlock()
}

// PublishResult says what the stream made of a Publish.
type PublishResult struct {
	Seq       uint64
	Duplicate bool // another publisher stored this message id first
}

// Publish stores an event under msgID. A msgID already stored within the
// de-duplication window is not stored again (Duplicate). A zero sent leaves
// the event unstamped.
func (l *Log) Publish(ctx context.Context, msgID, typ, data string, sent time.Time) (PublishResult, error) {
	if _, err := l.ensureStream(ctx); err != nil {
		return PublishResult{}, err
	}
	m := nats.NewMsg(Subject(l.cfg.Stream))
	m.Data = []byte(data)
	m.Header.Set(TypeHeader, typ)
	if !sent.IsZero() {
		m.Header.Set(SentHeader, strconv.FormatInt(sent.UnixNano(), 10))
	}
	ack, err := l.js.PublishMsg(ctx, m, jetstream.WithMsgID(msgID))
	if err != nil {
		l.forgetStream()
		return PublishResult{}, fmt.Errorf("eventlog: publish %s: %w", msgID, err)
	}
	return PublishResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// PublishKeyed stores data under key on a Keyed log; key is also the
// message id, so a publish retried within the de-duplication window is
// stored once (Duplicate, with the sequence of the first).
func (l *Log) PublishKeyed(ctx context.Context, key string, data []byte) (PublishResult, error) {
	if !l.cfg.Keyed {
		return PublishResult{}, errors.New("eventlog: PublishKeyed on a stream without keys")
	}
	if _, err := l.ensureStream(ctx); err != nil {
		return PublishResult{}, err
	}
	m := nats.NewMsg(Subject(l.cfg.Stream) + "." + key)
	m.Data = data
	ack, err := l.js.PublishMsg(ctx, m, jetstream.WithMsgID(key))
	if err != nil {
		l.forgetStream()
		return PublishResult{}, fmt.Errorf("eventlog: publish %s: %w", key, err)
	}
	return PublishResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// LastByKey is the newest stored message published under key; found is
// false when the stream holds none (never published, or expired).
func (l *Log) LastByKey(ctx context.Context, key string) (r Record, found bool, err error) {
	s, err := l.ensureStream(ctx)
	if err != nil {
		return Record{}, false, err
	}
	m, err := s.GetLastMsgForSubject(ctx, Subject(l.cfg.Stream)+"."+key)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return Record{}, false, nil
	case err != nil:
		return Record{}, false, fmt.Errorf("eventlog: look up %s: %w", key, err)
	}
	return rawRecord(m), true, nil
}

// Get is the message at seq; found is false when the stream does not
// hold it.
func (l *Log) Get(ctx context.Context, seq uint64) (r Record, found bool, err error) {
	s, err := l.ensureStream(ctx)
	if err != nil {
		return Record{}, false, err
	}
	m, err := s.GetMsg(ctx, seq)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return Record{}, false, nil
	case err != nil:
		return Record{}, false, fmt.Errorf("eventlog: get %d: %w", seq, err)
	}
	return rawRecord(m), true, nil
}

func rawRecord(m *jetstream.RawStreamMsg) Record {
	return Record{Seq: m.Sequence, Stored: m.Time, Type: m.Header.Get(TypeHeader), Data: string(m.Data)}
}

// Bounds are the first and last sequences the stream holds (0, 0 before
// the first event; first > last once everything expired).
func (l *Log) Bounds(ctx context.Context) (first, last uint64, err error) {
	s, err := l.ensureStream(ctx)
	if err != nil {
		return 0, 0, err
	}
	info, err := l.info(ctx, s)
	if err != nil {
		return 0, 0, err
	}
	return info.State.FirstSeq, info.State.LastSeq, nil
}

func (l *Log) info(ctx context.Context, s jetstream.Stream) (*jetstream.StreamInfo, error) {
	info, err := s.Info(ctx)
	if err != nil {
		l.forgetStream()
		return nil, fmt.Errorf("eventlog: stream info: %w", err)
	}
	return info, nil
}

// MaxPayload is the largest message NATS accepts (0 before the first
// connection), so that a caller can refuse an oversized message as the
// client's doing rather than fail to store it.
func (l *Log) MaxPayload() int64 { return l.nc.MaxPayload() }

// Connected reports whether the NATS connection is up.
func (l *Log) Connected() bool { return l.nc.IsConnected() }

// Delivered is the newest sequence handed to the sink.
func (l *Log) Delivered() uint64 { return l.delivered.Load() }

// Health is nil while this process can serve streams: connected, following
// the stream, and caught up with what the stream held when following began.
// Otherwise it says why not.
func (l *Log) Health() error {
	if !l.nc.IsConnected() {
		return fmt.Errorf("nats %s", l.nc.Status())
	}
	l.mu.Lock()
	cerr, lag := l.consumerErr, l.lagErr
	l.mu.Unlock()
	if cerr != "" {
		return fmt.Errorf("event log consumer: %s", cerr)
	}
	if lag != "" {
		return fmt.Errorf("event log consumer: %s", lag)
	}
	if !l.caughtUp.Load() {
		return fmt.Errorf("catching up with the event log: at %d of %d", l.delivered.Load(), l.target.Load())
	}
	return nil
}

func (l *Log) setLagErr(s string) {
	l.mu.Lock()
	l.lagErr = s
	l.mu.Unlock()
}

func (l *Log) setConsumerErr(s string) {
	l.mu.Lock()
	l.consumerErr = s
	l.mu.Unlock()
}

// Follow hands every event stored in the stream to sink, in sequence order
// and once each, until ctx is done. It starts with the newest Preload events
// the stream holds (so that the sink can replay them to reconnecting
// clients) and then follows live. While NATS is unavailable Follow keeps
// retrying; it resumes after the last sequence it delivered.
//
// If the stream is replaced (NATS lost its storage and the stream was
// created again, so sequences start over), Follow calls reset and starts
// over from the new stream: the sink must forget everything it was given.
// sink and reset run on one goroutine.
func (l *Log) Follow(ctx context.Context, sink func(Record), reset func()) {
	var after uint64
	var created time.Time // identifies the stream being followed
	started := false
	for ctx.Err() == nil {
		if !started {
			s, err := l.ensureStream(ctx)
			var info *jetstream.StreamInfo
			if err == nil {
				info, err = l.info(ctx, s)
			}
			if err != nil {
				l.setConsumerErr(err.Error())
				l.log.Warn("event log not ready, retrying", "err", err)
				sleep(ctx, retryWait)
				continue
			}
			first, last := info.State.FirstSeq, info.State.LastSeq
			if !created.IsZero() {
				l.log.Warn("the event log's stream was replaced or went back: sequences start over; every stream is ended",
					"was_created", created, "created", info.Created, "delivered", after)
				reset()
			}
			created = info.Created
			l.delivered.Store(0)
			l.caughtUp.Store(last == 0 || last < first)
			l.target.Store(last)
			if h := uint64(l.cfg.Preload); last > h && last-h+1 > first {
				first = last - h + 1
			}
			after = max(first, 1) - 1
			started = true
			l.log.Info("following the event log", "from", after+1, "last", last)
		}
		fctx, cancel := context.WithCancel(ctx)
		replaced := make(chan struct{})
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			l.watch(fctx, created, replaced, cancel)
		}()
		err := l.follow(fctx, &after, sink)
		cancel()
		<-watched
		select {
		case <-replaced:
			started = false
			continue
		default:
		}
		if ctx.Err() != nil {
			return
		}
		l.forgetStream()
		l.setConsumerErr(err.Error())
		l.log.Warn("event log consumer stopped, resuming", "after", after, "err", err)
		sleep(ctx, retryWait)
	}
}

// watchEvery paces the check that the stream being followed is still the
// same one.
const watchEvery = time.Second

// restartStalledAfter is how many checks in a row the consumer may be
// stalled before the follower drops it and starts a new one after the last
// sequence it delivered. An ordered consumer recovers from a lost stream
// leader by itself, with a backoff that can leave it waiting for tens of
// seconds (or for good when its reset raced the election); a new consumer
// only needs the new leader.
const restartStalledAfter = 3

// watch cancels the follower (closing replaced first) when the stream is
// no longer the one created at created, or holds less than was delivered
// from it: an ordered consumer would otherwise wait for a sequence it
// reached long ago, and skip the events that reuse the lower ones.
func (l *Log) watch(ctx context.Context, created time.Time, replaced chan<- struct{}, cancel func()) {
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	defer l.setLagErr("")
	var prevLast uint64 // the stream's last sequence at the previous check
	stalled := 0        // checks in a row that found the consumer stalled
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		delivered := l.delivered.Load()
		s, err := l.ensureStream(ctx)
		if err == nil {
			var info *jetstream.StreamInfo
			if info, err = l.info(ctx, s); err == nil {
				// A stream behind what was delivered from it lost
				// acknowledged events (a NATS without its storage, or
				// restored from an older copy): its next sequences would
				// name other events.
				if !info.Created.Equal(created) || info.State.LastSeq < delivered {
					l.log.Warn("the event log's sequence went back", "delivered", delivered, "last", info.State.LastSeq)
					close(replaced)
					cancel()
					return
				}
				// An event stored a whole check ago and still not
				// delivered: the consumer is stuck (JetStream without
				// quorum, say) although the connection is up.
				if l.caughtUp.Load() && delivered < prevLast {
					err = fmt.Errorf("stalled at %d, the stream has %d", delivered, info.State.LastSeq)
					stalled++
				} else {
					stalled = 0
				}
				prevLast = info.State.LastSeq
				if stalled >= restartStalledAfter {
					l.log.Warn("event log consumer stalled; starting a new one", "delivered", delivered, "last", info.State.LastSeq)
					l.setLagErr(err.Error())
					cancel()
					return
				}
			}
		}
		if err != nil && ctx.Err() == nil {
			l.setLagErr(err.Error())
		} else {
			l.setLagErr("")
		}
	}
}

func (l *Log) follow(ctx context.Context, after *uint64, sink func(Record)) error {
	s, err := l.ensureStream(ctx)
	if err != nil {
		return err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   *after + 1,
	})
	if err != nil {
		return fmt.Errorf("ordered consumer from %d: %w", *after+1, err)
	}
	it, err := cons.Messages(jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("consume from %d: %w", *after+1, err)
	}
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	defer it.Stop()
	l.setConsumerErr("")
	for {
		m, err := it.Next()
		if err != nil {
			return err
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("message metadata: %w", err)
		}
		seq := md.Sequence.Stream
		if seq <= *after {
			continue // redelivered after a reset
		}
		sink(record(m, md))
		*after = seq
		l.delivered.Store(seq)
		if seq >= l.target.Load() || md.NumPending == 0 {
			l.caughtUp.Store(true)
		}
	}
}

func record(m jetstream.Msg, md *jetstream.MsgMetadata) Record {
	r := Record{Seq: md.Sequence.Stream, Stored: md.Timestamp, Type: m.Headers().Get(TypeHeader), Data: string(m.Data())}
	if ns, err := strconv.ParseInt(m.Headers().Get(SentHeader), 10, 64); err == nil {
		r.Sent = time.Unix(0, ns)
	}
	return r
}

// Range reads the stored events with sequences from..to, for a replay
// older than what a process keeps in memory. Events the stream no longer
// holds are missing from the front of the result; it is in sequence order.
func (l *Log) Range(ctx context.Context, from, to uint64) ([]Record, error) {
	if from > to {
		return nil, nil
	}
	s, err := l.ensureStream(ctx)
	if err != nil {
		return nil, err
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return nil, fmt.Errorf("eventlog: range consumer from %d: %w", from, err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(min(int(to-from+1), 1000)))
	if err != nil {
		return nil, fmt.Errorf("eventlog: range from %d: %w", from, err)
	}
	defer it.Stop()
	stop := context.AfterFunc(ctx, it.Stop)
	defer stop()
	out := make([]Record, 0, to-from+1)
	for {
		m, err := it.Next()
		if err != nil {
			return nil, fmt.Errorf("eventlog: range %d..%d: %w", from, to, err)
		}
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("eventlog: range: message metadata: %w", err)
		}
		if md.Sequence.Stream > to {
			return out, nil
		}
		out = append(out, record(m, md))
		if md.Sequence.Stream == to {
			return out, nil
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
