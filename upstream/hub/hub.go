// Package hub fans events out to subscribers and keeps a bounded history so
// that a reconnecting client can resume after its Last-Event-ID.
//
// Ids are decimal integers issued by one Hub, rising by one per event, so a
// process with one Hub and several listeners hands out one global sequence.
// Because ids are contiguous, the history is a ring indexed by id and a
// resume point is found without searching.
//
// Publish never blocks: a subscriber whose queue is full is cut (its Done
// channel closes with ErrSlowConsumer) rather than holding the others back.
// The client is expected to reconnect with its Last-Event-ID and catch up
// from the history.
package hub

import (
	"errors"
	"strconv"
	"sync"
	"time"

	"example.com/sse-on-envoy/internal/sse"
)

// Defaults for zero Options.
const (
	DefaultHistory = 1024
	DefaultQueue   = 64
)

var (
	// ErrClosed reports a Hub that was closed (the server is shutting down).
	ErrClosed = errors.New("hub: closed")
	// ErrSlowConsumer reports a subscriber cut because its queue was full.
	ErrSlowConsumer = errors.New("hub: subscriber queue full, cut")
)

// Options configure a Hub. Zero values take the defaults.
type Options struct {
	// History is how many of the newest events are kept for replay.
	History int
	// Queue is how many events may wait for one subscriber before it is cut.
	Queue int
	// Stamp puts a comment line ": sent=<unix nanoseconds>" (StampPrefix)
	// with the publish time before each event's id line, so a load client
	// on the same machine can measure each event's latency. Ordinary
	// clients ignore comments.
	Stamp bool
}

// StampPrefix starts the text of the send-time comment Options.Stamp adds.
const StampPrefix = "sent="

// Message is a published event. Wire is shared by every subscriber, so it
// must not be modified: encoding once per event keeps fan-out free of
// per-subscriber work.
type Message struct {
	ID    uint64
	Event sse.Event
	Wire  []byte
}

// Hub is safe for concurrent use.
type Hub struct {
	queue int
	stamp bool

	mu     sync.Mutex
	subs   map[*Subscription]struct{}
	ring   []*Message // ring[(id-1)%len(ring)] holds id while it is in range
	last   uint64     // newest id issued; 0 before the first Publish
	closed bool
	cut    uint64
}

// New returns an empty Hub.
func New(o Options) *Hub {
	if o.History <= 0 {
		o.History = DefaultHistory
	}
	if o.Queue <= 0 {
		o.Queue = DefaultQueue
	}
	return &Hub{
		queue: o.Queue,
		stamp: o.Stamp,
		subs:  make(map[*Subscription]struct{}),
		ring:  make([]*Message, o.History),
	}
}

// Publish assigns the next id to an event of type typ carrying data, keeps it
// in the history and queues it for every subscriber. It never waits for a
// subscriber.
func (h *Hub) Publish(typ, data string) (*Message, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	h.last++
	m := &Message{ID: h.last, Event: sse.Event{ID: strconv.FormatUint(h.last, 10), Type: typ, Data: data}}
	// Sized for the common single-line event so the encoding allocates once.
	m.Wire = make([]byte, 0, len(typ)+len(data)+80)
	if h.stamp {
		m.Wire = append(m.Wire, ": "+StampPrefix...)
		m.Wire = strconv.AppendInt(m.Wire, time.Now().UnixNano(), 10)
		m.Wire = append(m.Wire, '\n')
	}
	m.Wire = m.Event.AppendTo(m.Wire)
	h.ring[(m.ID-1)%uint64(len(h.ring))] = m
	// Sending while holding the lock orders every subscriber's queue by id
	// and makes Subscribe's history snapshot and live queue meet exactly.
	for s := range h.subs {
		select {
		case s.c <- m:
		default:
			h.cut++
			h.dropLocked(s, ErrSlowConsumer)
		}
	}
	return m, nil
}

// Stats is a snapshot of a Hub's counters.
type Stats struct {
	Subscribers int
	LastID      uint64 // newest id published
	Cut         uint64 // subscribers cut for being slow, since New
}

// Stats returns the current counters.
func (h *Hub) Stats() Stats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return Stats{Subscribers: len(h.subs), LastID: h.last, Cut: h.cut}
}

// Close ends every subscription with ErrClosed and makes further Publish and
// Subscribe calls fail. Calling it again does nothing.
func (h *Hub) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.closed = true
	for s := range h.subs {
		h.dropLocked(s, ErrClosed)
	}
}

func (h *Hub) dropLocked(s *Subscription, err error) {
	delete(h.subs, s)
	s.err = err
	close(s.done)
}

// Subscription is one subscriber's live feed.
type Subscription struct {
	hub  *Hub
	c    chan *Message
	done chan struct{}
	err  error // guarded by hub.mu; set before done is closed
}

// C delivers live events in id order.
func (s *Subscription) C() <-chan *Message { return s.c }

// Done is closed when the Hub drops the subscription (see Err) or Close is
// called.
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err says why the Hub dropped the subscription: ErrSlowConsumer, ErrClosed,
// or nil if it is still live or was closed by its owner.
func (s *Subscription) Err() error {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	return s.err
}

// Close unsubscribes. It is safe to call more than once and after the Hub
// dropped the subscription.
func (s *Subscription) Close() {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if _, ok := s.hub.subs[s]; ok {
		s.hub.dropLocked(s, nil)
	}
}
