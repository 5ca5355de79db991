// Package fanout hands each Mercure update from the event log to the
// subscribers of one process that may see it. It is upstream/stream's
// Broadcaster with a Router that matches topics: matching is the cost of
// fan-out (subscribers × selectors per update), so subscribers whose
// selectors are all exact topics are found through an index by topic;
// only those with templates or "*" are scanned.
//
// Dispatch never blocks: a subscriber whose queue is full is cut (Done
// closes, Err is stream.ErrSlowConsumer) and reconnects with its
// Last-Event-ID.
package fanout

import (
	"example.com/sse-on-envoy/upstream/mercure"
	"example.com/sse-on-envoy/upstream/stream"
)

// DefaultQueue is the queue length for a zero queue.
const DefaultQueue = stream.DefaultQueue

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

// Position is the item's place in the log (stream.Item).
func (it *Item) Position() uint64 { return it.Seq }

// Encoded is the item's wire bytes (stream.Item).
func (it *Item) Encoded() []byte { return it.Wire }

// Want is what a subscriber asked for: its topic selectors, and the
// private topics its token grants (nil: anonymous, public updates only).
type Want struct {
	Topics, Allowed *mercure.Selectors
}

// CanReceive is the dispatch rule: one of u's topics matches the
// subscriber's selectors, and, for a private update, one of them matches
// what its token grants. Replay uses it too, so replayed and live updates
// follow the same rule.
func (w Want) CanReceive(u *mercure.Update) bool {
	return w.Topics.MatchAny(u.Topics) && w.Entitled(u)
}

// Entitled reports whether the subscriber's token lets it know of u at
// all: u is public, or one of its topics is granted. Whatever names an
// update to a subscriber (its id in a response header, whether its id
// resumes a replay) must check this first.
func (w Want) Entitled(u *mercure.Update) bool {
	return !u.Private || w.Allowed.MatchAny(u.Topics)
}

// Subscription is one subscriber's live feed, in log order.
type Subscription = stream.Subscription[*Item, Want]

// Fanout is safe for concurrent use.
type Fanout = stream.Broadcaster[*Item, Want]

// New returns a Fanout whose subscribers queue up to queue items
// (DefaultQueue if queue <= 0).
func New(queue int) *Fanout {
	return stream.NewBroadcaster(queue, &byTopic{exact: map[string]map[*Subscription]struct{}{}, scan: map[*Subscription]struct{}{}})
}

// byTopic is the Router: an index by exact topic, and the rest scanned.
type byTopic struct {
	exact map[string]map[*Subscription]struct{}
	scan  map[*Subscription]struct{}
	// sent is Route's scratch set, reused across updates.
	sent map[*Subscription]struct{}
}

func (r *byTopic) Add(s *Subscription) {
	w := s.Filter()
	if !w.Topics.ExactOnly() {
		r.scan[s] = struct{}{}
		return
	}
	for _, t := range w.Topics.ExactTopics() {
		m := r.exact[t]
		if m == nil {
			m = map[*Subscription]struct{}{}
			r.exact[t] = m
		}
		m[s] = struct{}{}
	}
}

func (r *byTopic) Remove(s *Subscription) bool {
	if _, ok := r.scan[s]; ok {
		delete(r.scan, s)
		return true
	}
	registered := false
	for _, t := range s.Filter().Topics.ExactTopics() {
		if m, ok := r.exact[t]; ok {
			if _, in := m[s]; in {
				registered = true
				delete(m, s)
				if len(m) == 0 {
					delete(r.exact, t)
				}
			}
		}
	}
	return registered
}

func (r *byTopic) Route(it *Item, d stream.Delivery[*Item, Want]) {
	topics := it.Update.Topics
	// An update with several topics can reach one indexed subscriber
	// through each: it must get the update once.
	multi := len(topics) > 1
	if multi {
		if r.sent == nil {
			r.sent = map[*Subscription]struct{}{}
		}
		defer clear(r.sent)
	}
	for _, t := range topics {
		for s := range r.exact[t] {
			if multi {
				if _, dup := r.sent[s]; dup {
					continue
				}
				r.sent[s] = struct{}{}
			}
			if s.Filter().CanReceive(it.Update) {
				d.To(s)
			}
		}
	}
	for s := range r.scan {
		if s.Filter().CanReceive(it.Update) {
			d.To(s)
		}
	}
}

func (r *byTopic) Each(fn func(*Subscription)) {
	for s := range r.scan {
		fn(s)
	}
	for _, m := range r.exact {
		for s := range m {
			fn(s)
		}
	}
}
