// Package hub fans events out to subscribers and keeps a bounded history so
// that a reconnecting client can resume after its Last-Event-ID.
//
// Ids are decimal integers rising by one per event. They are either issued
// by the Hub itself (Publish: one process, one sequence) or given to it
// (Append: the sequence of a shared event log, so that every replica feeding
// its Hub from the same log hands out the same ids). Because ids are
// contiguous, the history is a ring indexed by id: any part of it is found
// without searching. What a reconnecting client is owed is decided by
// package replay; the Hub says what it holds (Subscribe's Window, Held).
//
// Fan-out is upstream/stream's Broadcaster: Publish never blocks, and a
// subscriber whose queue is full is cut (its Done channel closes with
// stream.ErrSlowConsumer) rather than holding the others back. The client
// is expected to reconnect with its Last-Event-ID and catch up from the
// history.
package hub

import (
	"strconv"
	"sync"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/stream"
)

// Defaults for zero Options.
const (
	DefaultHistory = 1024
	DefaultQueue   = stream.DefaultQueue
)

// Options configure a Hub. Zero values take the defaults.
type Options struct {
	// History is how many of the newest events are kept for replay.
	History int
	// Queue is how many events may wait for one subscriber before it is cut.
	Queue int
	// MaxAge, when positive, also drops events stored longer ago than this
	// from the history, as the event log's age limit does.
	MaxAge time.Duration
	// Now is the clock for MaxAge; nil means time.Now.
	Now func() time.Time
}

// Message is a published event. Wire is shared by every subscriber, so it
// must not be modified: encoding once per event keeps fan-out free of
// per-subscriber work.
type Message struct {
	ID    uint64
	Event sse.Event
	Wire  []byte
	// Stored is when the event entered the log (for the age limit).
	Stored time.Time
	// Sent, when not zero, is the publisher's clock at publish time; it goes
	// on the wire as a comment for latency measurements.
	Sent time.Time
}

// Position is the message's id (stream.Item).
func (m *Message) Position() uint64 { return m.ID }

// Encoded is the message's wire bytes (stream.Item).
func (m *Message) Encoded() []byte { return m.Wire }

// SentComment is the prefix of the comment that carries Message.Sent
// (sse.SentComment, the wire format's fact).
const SentComment = sse.SentComment

// encode is the one place an event's wire bytes are built.
func encode(id uint64, typ, data string, sent time.Time) (sse.Event, []byte) {
	e := sse.Event{ID: strconv.FormatUint(id, 10), Type: typ, Data: data}
	// Sized for the common single-line event so the encoding allocates once.
	size := len(typ) + len(data) + 48
	if !sent.IsZero() {
		size += len(": "+SentComment) + 20
	}
	wire := make([]byte, 0, size)
	if !sent.IsZero() {
		wire = sse.AppendSentComment(wire, sent)
	}
	return e, e.AppendTo(wire)
}

// Subscription is one subscriber's live feed, in id order.
type Subscription = stream.Subscription[*Message, struct{}]

// Hub is safe for concurrent use.
type Hub struct {
	maxAge time.Duration
	now    func() time.Time
	// fan is locked inside mu (never the other way round): publishing and
	// subscribing hold mu so that the history and the live feed meet
	// exactly.
	fan *stream.Broadcaster[*Message, struct{}]

	mu       sync.Mutex
	ring     []*Message // ring[(id-1)%len(ring)] holds id while it is in range
	first    uint64     // oldest id that may be held: ids before it are gone
	last     uint64     // newest id held; 0 before the first event
	closed   bool
	received uint64
}

// New returns an empty Hub.
func New(o Options) *Hub {
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Hub{
		maxAge: o.MaxAge,
		now:    o.Now,
		fan:    stream.NewBroadcaster(o.Queue, stream.Everyone[*Message, struct{}]{}),
		ring:   make([]*Message, o.History),
		first:  1,
	}
}

// Publish assigns the next id to an event of type typ carrying data, keeps it
// in the history and queues it for every subscriber. It never waits for a
// subscriber.
func (h *Hub) Publish(typ, data string) (*Message, error) {
	return h.PublishSent(typ, data, time.Time{})
}

// PublishSent is Publish for an event stamped with its publish time sent
// (see Message.Sent); a zero sent stamps nothing.
func (h *Hub) PublishSent(typ, data string, sent time.Time) (*Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, stream.ErrClosed
	}
	return h.appendLocked(h.last+1, h.now(), typ, data, sent), nil
}

// Append adds an event whose id was assigned elsewhere (a shared log's
// sequence), stored at stored, like Publish. An id at or below the newest
// held is a redelivery and is ignored (nil, nil). An id beyond the next one
// means the events in between are gone from the log: the history restarts at
// id, so that no client is told it got everything when it did not.
func (h *Hub) Append(id uint64, stored time.Time, typ, data string, sent time.Time) (*Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, stream.ErrClosed
	}
	if id == 0 || id <= h.last {
		return nil, nil
	}
	if id != h.last+1 {
		clear(h.ring)
		h.first = id
	}
	return h.appendLocked(id, stored, typ, data, sent), nil
}

func (h *Hub) appendLocked(id uint64, stored time.Time, typ, data string, sent time.Time) *Message {
	h.last = id
	h.received++
	m := NewMessage(id, stored, typ, data, sent)
	h.ring[(m.ID-1)%uint64(len(h.ring))] = m
	// Sending while holding the lock orders every subscriber's queue by id
	// and makes Subscribe's window and live queue meet exactly.
	h.fan.Dispatch(m)
	return m
}

// Stats is a snapshot of a Hub's counters.
type Stats struct {
	Subscribers int
	LastID      uint64 // newest id published
	Received    uint64 // events published or appended, since New
	Cut         uint64 // subscribers cut for being slow, since New
}

// Stats returns the current counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	fs := h.fan.Stats()
	return Stats{Subscribers: fs.Subscribers, LastID: h.last, Cut: fs.Cut, Received: h.received}
}

// Close ends every subscription with stream.ErrClosed and makes further
// Publish and Subscribe calls fail. Calling it again does nothing.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	h.fan.Close()
}

// Reset forgets every event and ends every subscription with
// stream.ErrReset,
// for when the shared log's sequence starts over: the next Append may
// start at 1 again. Clients reconnect, and their old ids count as never
// issued rather than being replayed from the wrong sequence.
func (h *Hub) Reset() {
	h.mu.Lock()
	defer h.mu.Unlock()
	clear(h.ring)
	h.first, h.last = 1, 0
	h.fan.Reset()
}
