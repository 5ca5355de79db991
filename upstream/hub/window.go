package hub

import (
	"time"

	"example.com/sse-on-envoy/upstream/stream"
)

// NewMessage builds a message the Hub did not fan out (read back from the
// event log for a replay older than the Hub's window), encoded as the Hub
// encodes its own.
func NewMessage(id uint64, stored time.Time, typ, data string, sent time.Time) *Message {
	m := &Message{ID: id, Stored: stored, Sent: sent}
	m.Event, m.Wire = encode(id, typ, data, sent)
	return m
}

// Window is the ids a Hub holds for replay: First..Last, none when First >
// Last. What a reconnecting client is owed is decided elsewhere (package
// replay); the Hub only says what it has.
type Window struct{ First, Last uint64 }

// Subscribe registers a subscriber and returns the Hub's window at that
// moment. The registration and the window are taken under the lock Publish
// holds while it fans out: every event after Last is on the
// subscription's C, every event up to Last is not.
func (h *Hub) Subscribe() (*Subscription, Window, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, Window{}, stream.ErrClosed
	}
	s, err := h.fan.Subscribe(struct{}{})
	if err != nil {
		return nil, Window{}, err
	}
	return s, Window{First: h.oldestLocked(), Last: h.last}, nil
}

// Held returns the events with ids from..to that the Hub still holds, in id
// order and consecutive. It starts later than from if the oldest of them
// were dropped meanwhile (by count or age); the caller finds those
// elsewhere or reports them lost.
func (h *Hub) Held(from, to uint64) []*Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rangeLocked(max(from, h.oldestLocked()), min(to, h.last))
}

// oldestLocked is the oldest id still in the history: within the count
// limit, not older than MaxAge, not before a jump in the sequence. It is
// last+1 when the history is empty.
func (h *Hub) oldestLocked() uint64 {
	if n := uint64(len(h.ring)); h.last >= n && h.last-n+1 > h.first {
		h.first = h.last - n + 1
	}
	if h.maxAge > 0 {
		// Expired events leave from the front, so advancing first once
		// keeps this amortised O(1).
		cutoff := h.now().Add(-h.maxAge)
		for h.first <= h.last && h.ring[(h.first-1)%uint64(len(h.ring))].Stored.Before(cutoff) {
			h.first++
		}
	}
	return h.first
}

func (h *Hub) rangeLocked(from, to uint64) []*Message {
	if from > to {
		return nil
	}
	out := make([]*Message, 0, to-from+1)
	for id := from; id <= to; id++ {
		out = append(out, h.ring[(id-1)%uint64(len(h.ring))])
	}
	return out
}
