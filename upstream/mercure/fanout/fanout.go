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
	return stream.NewBroadcaster(queue, &byTopic{
		exact:    map[string]subSet{},
		prefixed: map[string]subSet{},
		lengths:  map[int]int{},
		all:      map[*Subscription]struct{}{},
		sent:     map[*Subscription]struct{}{},
	})
}

// byTopic is the Router. Subscribers are found through an index, never by
// scanning them all: by exact topic, and by the literal prefix of each
// template (the text before its first expression; a topic a template
// matches starts with it), so an update is matched only against the
// templates that could match it. Subscribers of "*" get every update they
// may see.
type byTopic struct {
	exact map[string]subSet
	// prefixed: template prefix -> subscribers; lengths: how many prefixes
	// of each length are indexed (an update's topic is looked up at each).
	prefixed map[string]subSet
	lengths  map[int]int
	all      map[*Subscription]struct{}
	// sent is Route's scratch set, reused across updates, for subscribers
	// reachable through more than one key.
	sent map[*Subscription]struct{}
}

func (r *byTopic) Add(s *Subscription) {
	w := s.Filter()
	if w.Topics.All() {
		r.all[s] = struct{}{}
		return
	}
	for _, t := range w.Topics.ExactTopics() {
		add(r.exact, t, s)
	}
	for _, p := range w.Topics.TemplatePrefixes() {
		if add(r.prefixed, p, s) {
			r.lengths[len(p)]++
		}
	}
}

// subSet is the subscribers under one key. Most keys have one (a topic
// only one subscriber names), which is held inline: no map per key.
type subSet struct {
	one  *Subscription
	many map[*Subscription]struct{} // from the second subscriber on
}

// each calls fn for every subscriber of the set (fn may remove it).
func (ss subSet) each(fn func(*Subscription)) {
	if ss.many == nil {
		if ss.one != nil {
			fn(ss.one)
		}
		return
	}
	for s := range ss.many {
		fn(s)
	}
}

// add puts s under key and reports whether the key is new.
func add(index map[string]subSet, key string, s *Subscription) bool {
	ss, ok := index[key]
	switch {
	case !ok:
		index[key] = subSet{one: s}
	case ss.many != nil:
		ss.many[s] = struct{}{}
	case ss.one != s:
		index[key] = subSet{many: map[*Subscription]struct{}{ss.one: {}, s: {}}}
	}
	return !ok
}

func (r *byTopic) Remove(s *Subscription) bool {
	if _, ok := r.all[s]; ok {
		delete(r.all, s)
		return true
	}
	w := s.Filter()
	registered := false
	for _, t := range w.Topics.ExactTopics() {
		found, _ := remove(r.exact, t, s)
		registered = registered || found
	}
	for _, p := range w.Topics.TemplatePrefixes() {
		found, gone := remove(r.prefixed, p, s)
		registered = registered || found
		if gone {
			if r.lengths[len(p)]--; r.lengths[len(p)] == 0 {
				delete(r.lengths, len(p))
			}
		}
	}
	return registered
}

// remove takes s from under key: whether it was there, and whether the key
// went with it.
func remove(index map[string]subSet, key string, s *Subscription) (found, gone bool) {
	ss, ok := index[key]
	switch {
	case !ok:
		return false, false
	case ss.many == nil:
		if ss.one != s {
			return false, false
		}
		delete(index, key)
		return true, true
	}
	if _, found = ss.many[s]; !found {
		return false, false
	}
	delete(ss.many, s)
	if len(ss.many) == 0 {
		delete(index, key)
		return true, true
	}
	return true, false
}

func (r *byTopic) Route(it *Item, d stream.Delivery[*Item, Want]) {
	topics := it.Update.Topics
	send := func(s *Subscription) {
		// A subscriber with several selectors, or an update with several
		// topics, can be reached through more than one key: it gets the
		// update once.
		if len(topics) > 1 || s.Filter().Topics.Len() > 1 {
			if _, dup := r.sent[s]; dup {
				return
			}
			r.sent[s] = struct{}{}
		}
		if s.Filter().CanReceive(it.Update) {
			d.To(s)
		}
	}
	defer func() { clear(r.sent) }()
	for _, t := range topics {
		r.exact[t].each(send)
		for n := range r.lengths {
			if n <= len(t) {
				r.prefixed[t[:n]].each(send)
			}
		}
	}
	for s := range r.all {
		if s.Filter().CanReceive(it.Update) {
			d.To(s)
		}
	}
}

func (r *byTopic) Each(fn func(*Subscription)) {
	for s := range r.all {
		fn(s)
	}
	for _, index := range []map[string]subSet{r.exact, r.prefixed} {
		for _, ss := range index {
			ss.each(fn)
		}
	}
}
