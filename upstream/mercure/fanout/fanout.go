// Package fanout hands each Mercure update from the event log to the
// subscribers of one process that may see it. Matching is the cost of
// fan-out (subscribers × selectors per update), so subscribers whose
// selectors are all exact topics are found through an index by topic;
// only those with templates or "*" are scanned.
//
// Dispatch never blocks: a subscriber whose queue is full is cut (Done
// closes, Err is ErrSlowConsumer) and reconnects with its Last-Event-ID.
package fanout

import (
	"errors"
	"sync"

	"example.com/sse-on-envoy/upstream/mercure"
)

// DefaultQueue is the queue length for a zero Options.Queue.
const DefaultQueue = 64

var (
	// ErrClosed: the Fanout was closed (shutting down).
	ErrClosed = errors.New("fanout: closed")
	// ErrSlowConsumer: the subscriber's queue was full.
	ErrSlowConsumer = errors.New("fanout: subscriber queue full, cut")
	// ErrReset: the log's sequence started over; positions mean nothing.
	ErrReset = errors.New("fanout: log sequence reset")
)

// Item is one stored update with its position in the log. Wire is its SSE
// encoding, shared by every subscriber: it must not be modified.
type Item struct {
	Seq    uint64
	Update *mercure.Update
	Wire   []byte
}

// NewItem encodes u once, for every subscriber.
func NewItem(seq uint64, u *mercure.Update) *Item {
	return &Item{Seq: seq, Update: u, Wire: u.Event().AppendTo(nil)}
}

// Fanout is safe for concurrent use.
type Fanout struct {
	queue int

	mu     sync.Mutex
	exact  map[string]map[*Subscription]struct{}
	scan   map[*Subscription]struct{}
	count  int
	closed bool
	cut    uint64
}

// New returns a Fanout whose subscribers queue up to queue items
// (DefaultQueue if queue <= 0).
func New(queue int) *Fanout {
	if queue <= 0 {
		queue = DefaultQueue
	}
	return &Fanout{queue: queue, exact: map[string]map[*Subscription]struct{}{}, scan: map[*Subscription]struct{}{}}
}

// Subscription is one subscriber's live feed.
type Subscription struct {
	f *Fanout
	// topics are the subscriber's selectors; allowed the private topics
	// its token grants (nil: anonymous, public updates only).
	topics, allowed *mercure.Selectors
	c               chan *Item
	done            chan struct{}
	err             error // guarded by f.mu
}

// CanReceive is the dispatch rule: one of u's topics matches the
// subscriber's selectors, and, for a private update, one of them matches
// what its token grants. Replay uses it too, so replayed and live updates
// follow the same rule.
func (s *Subscription) CanReceive(u *mercure.Update) bool {
	return s.topics.MatchAny(u.Topics) && s.Entitled(u)
}

// Entitled reports whether the subscriber's token lets it know of u at
// all: u is public, or one of its topics is granted. Whatever names an
// update to a subscriber (its id in a response header, whether its id
// resumes a replay) must check this first.
func (s *Subscription) Entitled(u *mercure.Update) bool {
	return !u.Private || s.allowed.MatchAny(u.Topics)
}

// C delivers live items in log order.
func (s *Subscription) C() <-chan *Item { return s.c }

// Done closes when the Fanout drops the subscription (see Err).
func (s *Subscription) Done() <-chan struct{} { return s.done }

// Err is why the subscription was dropped, nil while live or after Close.
func (s *Subscription) Err() error {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.err
}

// Close unsubscribes; safe to call more than once.
func (s *Subscription) Close() {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	s.f.dropLocked(s, nil)
}

// Subscribe registers a subscriber following topics, allowed to see the
// private updates matching allowed (nil for none).
func (f *Fanout) Subscribe(topics, allowed *mercure.Selectors) (*Subscription, error) {
	s := &Subscription{f: f, topics: topics, allowed: allowed, c: make(chan *Item, f.queue), done: make(chan struct{})}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, ErrClosed
	}
	if topics.ExactOnly() {
		for _, t := range topics.ExactTopics() {
			m := f.exact[t]
			if m == nil {
				m = map[*Subscription]struct{}{}
				f.exact[t] = m
			}
			m[s] = struct{}{}
		}
	} else {
		f.scan[s] = struct{}{}
	}
	f.count++
	return s, nil
}

// Dispatch queues it for every subscriber that can receive it.
func (f *Fanout) Dispatch(it *Item) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	send := func(s *Subscription) {
		if !s.CanReceive(it.Update) {
			return
		}
		select {
		case s.c <- it:
		default:
			f.cut++
			f.dropLocked(s, ErrSlowConsumer)
		}
	}
	// An update with several topics can reach one indexed subscriber
	// through each: it must get the update once.
	var sent map[*Subscription]struct{}
	for i, t := range it.Update.Topics {
		for s := range f.exact[t] {
			if i > 0 {
				if _, dup := sent[s]; dup {
					continue
				}
			}
			if len(it.Update.Topics) > 1 {
				if sent == nil {
					sent = map[*Subscription]struct{}{}
				}
				sent[s] = struct{}{}
			}
			send(s)
		}
	}
	for s := range f.scan {
		send(s)
	}
}

// Stats are a snapshot of the counters.
type Stats struct {
	Subscribers int
	Cut         uint64
}

// Stats returns the current counters.
func (f *Fanout) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return Stats{Subscribers: f.count, Cut: f.cut}
}

// Close ends every subscription with ErrClosed; later Subscribe calls fail.
func (f *Fanout) Close() { f.dropAll(ErrClosed, true) }

// Reset ends every subscription with ErrReset: the log started over.
func (f *Fanout) Reset() { f.dropAll(ErrReset, false) }

func (f *Fanout) dropAll(err error, closing bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if closing {
		f.closed = true
	}
	for s := range f.scan {
		f.dropLocked(s, err)
	}
	for _, m := range f.exact {
		for s := range m {
			f.dropLocked(s, err)
		}
	}
}

// dropLocked removes s if it is still registered.
func (f *Fanout) dropLocked(s *Subscription, err error) {
	registered := false
	if _, ok := f.scan[s]; ok {
		delete(f.scan, s)
		registered = true
	} else {
		for _, t := range s.topics.ExactTopics() {
			if m, ok := f.exact[t]; ok {
				if _, in := m[s]; in {
					registered = true
					delete(m, s)
					if len(m) == 0 {
						delete(f.exact, t)
					}
				}
			}
		}
	}
	if !registered {
		return
	}
	f.count--
	s.err = err
	close(s.done)
}
