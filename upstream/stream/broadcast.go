package stream

import (
	"errors"
	"sync"
)

// DefaultQueue is how many items may wait for one subscriber before it is
// cut, for a zero queue length.
const DefaultQueue = 64

// Why a Broadcaster ended a subscription (Subscription.Err).
var (
	// ErrClosed: the Broadcaster was closed (the server is shutting down).
	ErrClosed = errors.New("stream: closed")
	// ErrSlowConsumer: the subscriber's queue was full, so it was cut
	// rather than holding the others back. It reconnects with its
	// Last-Event-ID and catches up from the history.
	ErrSlowConsumer = errors.New("stream: subscriber queue full, cut")
	// ErrReset: the event log's sequence started over; the subscriber's
	// position means nothing any more.
	ErrReset = errors.New("stream: log sequence reset")
	// ErrComplete: a source with an end (one response's tokens) has sent
	// everything; the response ends normally.
	ErrComplete = errors.New("stream: complete")
)

// Router keeps a Broadcaster's subscribers and picks those an item goes
// to. Its methods are called with the Broadcaster's lock held, never
// concurrently.
type Router[T, F any] interface {
	Add(s *Subscription[T, F])
	// Remove reports whether s was registered.
	Remove(s *Subscription[T, F]) bool
	// Route hands item to every subscriber that should get it, once each.
	Route(item T, d Delivery[T, F])
	// Each calls fn for every subscriber (fn may remove it).
	Each(fn func(*Subscription[T, F]))
}

// Broadcaster hands items to subscribers without ever waiting for one.
// T is the item, F what a subscriber asked for (its Filter), which the
// Router reads. It is safe for concurrent use.
type Broadcaster[T, F any] struct {
	queue int

	mu     sync.Mutex
	router Router[T, F]
	count  int
	closed bool
	cut    uint64
}

// NewBroadcaster returns a Broadcaster whose subscribers queue up to queue
// items (DefaultQueue if queue <= 0), registered with r.
func NewBroadcaster[T, F any](queue int, r Router[T, F]) *Broadcaster[T, F] {
	if queue <= 0 {
		queue = DefaultQueue
	}
	return &Broadcaster[T, F]{queue: queue, router: r}
}

// Subscribe registers a subscriber asking for f. It fails with ErrClosed
// once the Broadcaster is closed.
func (b *Broadcaster[T, F]) Subscribe(f F) (*Subscription[T, F], error) {
	s := &Subscription[T, F]{b: b, filter: f, c: make(chan T, b.queue), done: make(chan struct{})}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	b.router.Add(s)
	b.count++
	return s, nil
}

// Dispatch queues item for every subscriber the Router picks, in the
// order of Dispatch calls; a subscriber whose queue is full is cut.
// After Close it does nothing.
func (b *Broadcaster[T, F]) Dispatch(item T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.router.Route(item, Delivery[T, F]{b: b, item: item})
}

// Delivery hands one item to the subscribers a Router picks.
type Delivery[T, F any] struct {
	b    *Broadcaster[T, F]
	item T
}

// To queues the item for s, or cuts s if its queue is full.
func (d Delivery[T, F]) To(s *Subscription[T, F]) {
	select {
	case s.c <- d.item:
	default:
		d.b.cut++
		d.b.dropLocked(s, ErrSlowConsumer)
	}
}

// Close ends every subscription with ErrClosed; later Subscribe calls fail
// and Dispatch does nothing. Calling it again does nothing.
func (b *Broadcaster[T, F]) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	b.router.Each(func(s *Subscription[T, F]) { b.dropLocked(s, ErrClosed) })
}

// Reset ends every subscription with ErrReset, for when the log's sequence
// starts over; the Broadcaster stays open.
func (b *Broadcaster[T, F]) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.router.Each(func(s *Subscription[T, F]) { b.dropLocked(s, ErrReset) })
}

// Stats is a snapshot of a Broadcaster's counters.
type Stats struct {
	Subscribers int
	Cut         uint64 // subscribers cut for being slow, since the start
}

// Stats returns the current counters.
func (b *Broadcaster[T, F]) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Stats{Subscribers: b.count, Cut: b.cut}
}

func (b *Broadcaster[T, F]) dropLocked(s *Subscription[T, F], err error) {
	if !b.router.Remove(s) {
		return
	}
	b.count--
	s.err = err
	close(s.done)
}

// Subscription is one subscriber's live feed.
type Subscription[T, F any] struct {
	b      *Broadcaster[T, F]
	filter F
	c      chan T
	done   chan struct{}
	err    error // guarded by b.mu; set before done is closed
}

// Filter is what the subscriber asked for.
func (s *Subscription[T, F]) Filter() F { return s.filter }

// C delivers live items in Dispatch order.
func (s *Subscription[T, F]) C() <-chan T { return s.c }

// Done is closed when the Broadcaster drops the subscription (see Err) or
// Close is called.
func (s *Subscription[T, F]) Done() <-chan struct{} { return s.done }

// Err says why the Broadcaster dropped the subscription: ErrSlowConsumer,
// ErrClosed or ErrReset; nil while it is live or after its own Close.
func (s *Subscription[T, F]) Err() error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	return s.err
}

// Close unsubscribes. It is safe to call more than once and after the
// Broadcaster dropped the subscription.
func (s *Subscription[T, F]) Close() {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.dropLocked(s, nil)
}

// Everyone is the Router of a Broadcaster whose items go to every
// subscriber.
type Everyone[T, F any] map[*Subscription[T, F]]struct{}

func (e Everyone[T, F]) Add(s *Subscription[T, F]) { e[s] = struct{}{} }

func (e Everyone[T, F]) Remove(s *Subscription[T, F]) bool {
	if _, ok := e[s]; !ok {
		return false
	}
	delete(e, s)
	return true
}

func (e Everyone[T, F]) Route(_ T, d Delivery[T, F]) {
	for s := range e {
		d.To(s)
	}
}

func (e Everyone[T, F]) Each(fn func(*Subscription[T, F])) {
	for s := range e {
		fn(s)
	}
}
