package hub

import (
	"strconv"
	"time"
)

// ReplayStatus says what a Last-Event-ID led to.
type ReplayStatus int

const (
	// ReplayNone: no Last-Event-ID; a new client.
	ReplayNone ReplayStatus = iota
	// ReplayResumed: the id is within the history; every newer event held
	// is replayed (possibly none, if the client is up to date).
	ReplayResumed
	// ReplayGap: the id is older than the history; everything held is
	// replayed, and the events in between are lost to this client.
	ReplayGap
	// ReplayInvalid: the id is not one this Hub could have issued (not a
	// plain decimal number).
	ReplayInvalid
	// ReplayFuture: the id is newer than any issued, typically because the
	// client saw a previous process whose ids ran higher.
	ReplayFuture
	// ReplayAhead: the id is newer than this Hub's newest but the shared
	// log has it: the client saw it on a replica that is a little ahead.
	// It is up to date; the Hub's events up to its id are not sent again.
	// Only the caller can tell this from ReplayFuture (it asks the log).
	ReplayAhead
)

// Resume is where a new subscription starts.
type Resume struct {
	Status ReplayStatus
	// Events come before anything on the subscription's C, in id order,
	// with no gap or overlap between the two.
	Events []*Message
	// After is the client's Last-Event-ID, for ReplayResumed and ReplayGap.
	After uint64
	// Oldest is the start of the Hub's window when it resumed: for
	// ReplayGap, the ids after After and before Oldest are the ones the Hub
	// could not replay (an older copy, such as the event log, may have them).
	Oldest uint64
}

// NewMessage builds a message the Hub did not fan out (read back from the
// event log for a replay older than the Hub's window), encoded as the Hub
// encodes its own.
func NewMessage(id uint64, stored time.Time, typ, data string, sent time.Time) *Message {
	m := &Message{ID: id, Stored: stored, Sent: sent}
	m.Event, m.Wire = encode(id, typ, data, sent)
	return m
}

// WithOlder completes a ReplayGap with older events: they must be
// consecutive and end right before Oldest. If they reach back to the
// client's id the gap is closed (ReplayResumed); otherwise it is smaller.
// Anything else leaves r as it is: never a replay with a hole in it.
func (r Resume) WithOlder(older []*Message) Resume {
	if r.Status != ReplayGap || len(older) == 0 || older[len(older)-1].ID != r.Oldest-1 || older[0].ID <= r.After {
		return r
	}
	for i := 1; i < len(older); i++ {
		if older[i].ID != older[i-1].ID+1 {
			return r
		}
	}
	out := r
	out.Events = append(append(make([]*Message, 0, len(older)+len(r.Events)), older...), r.Events...)
	out.Oldest = older[0].ID
	if older[0].ID == r.After+1 {
		out.Status = ReplayResumed
	}
	return out
}

// Header is the value of the x-sse-replay response header:
// "none", "replayed N", "gap N", "invalid-last-event-id" or
// "future-last-event-id". N counts the replayed events.
func (r Resume) Header() string {
	switch r.Status {
	case ReplayResumed:
		return "replayed " + strconv.Itoa(len(r.Events))
	case ReplayAhead:
		return "replayed 0"
	case ReplayGap:
		return "gap " + strconv.Itoa(len(r.Events))
	case ReplayInvalid:
		return "invalid-last-event-id"
	case ReplayFuture:
		return "future-last-event-id"
	default:
		return "none"
	}
}

// Outcome names the status in one word, for logs and metrics.
func (r Resume) Outcome() string {
	switch r.Status {
	case ReplayResumed:
		return "replayed"
	case ReplayGap:
		return "gap"
	case ReplayInvalid:
		return "invalid"
	case ReplayFuture:
		return "future"
	case ReplayAhead:
		return "ahead"
	default:
		return "none"
	}
}

// Replayed is the number of history events in Events: 0 for the statuses
// that start a client live.
func (r Resume) Replayed() int {
	if r.Status == ReplayResumed || r.Status == ReplayGap {
		return len(r.Events)
	}
	return 0
}

// Subscribe registers a subscriber resuming after lastEventID ("" for a new
// client) and returns what to send it before its live feed.
//
// A client that has no usable Last-Event-ID (none, invalid, from the future)
// is not given the history: replaying up to History events to every new
// client is a burst nobody asked for. It gets only the newest event, so that
// a user running curl sees an event at once instead of waiting an interval.
//
// The history snapshot and the registration happen under one lock, the same
// lock Publish holds while it fans out, so every event is either in the
// snapshot or on C, never both and never neither.
func (h *Hub) Subscribe(lastEventID string) (*Subscription, Resume, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, Resume{}, ErrClosed
	}
	s := &Subscription{hub: h, c: make(chan *Message, h.queue), done: make(chan struct{})}
	h.subs[s] = struct{}{}
	return s, h.resumeLocked(lastEventID), nil
}

func (h *Hub) resumeLocked(lastEventID string) Resume {
	if lastEventID == "" {
		return Resume{Status: ReplayNone, Events: h.newestLocked()}
	}
	id, err := strconv.ParseUint(lastEventID, 10, 64)
	switch {
	case err != nil:
		return Resume{Status: ReplayInvalid, Events: h.newestLocked()}
	case id > h.last:
		return Resume{Status: ReplayFuture, Events: h.newestLocked()}
	}
	oldest := h.oldestLocked()
	status := ReplayResumed
	from := id + 1 // strictly after: the client already has id
	if from < oldest {
		status, from = ReplayGap, oldest
	}
	return Resume{Status: status, Events: h.rangeLocked(from, h.last), After: id, Oldest: oldest}
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

func (h *Hub) newestLocked() []*Message {
	if h.last == 0 || h.oldestLocked() > h.last {
		return nil
	}
	return h.rangeLocked(h.last, h.last)
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
