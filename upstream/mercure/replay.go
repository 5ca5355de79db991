package mercure

import "net/http"

// LastEventIDParam is the query parameter that stands in for the
// Last-Event-ID header (EventSource cannot set headers on a first
// connection).
const LastEventIDParam = "lastEventID"

// EventID is the id a reconnecting subscriber names: none, the special
// "earliest", or the id of the last event it got. It is parsed in one
// place (ParseEventID) and read by one function (Decide).
type EventID struct {
	raw      string
	earliest bool
}

// ParseEventID reads the Last-Event-ID header, else the query parameter
// named param. The header wins: a browser's EventSource sends it on every
// reconnect, with the newest id, while the query keeps the first one.
func ParseEventID(r *http.Request, param string) EventID {
	v := r.Header.Get("Last-Event-ID")
	if v == "" && param != "" {
		v = r.URL.Query().Get(param)
	}
	return NewEventID(v)
}

// NewEventID is the EventID of the value v ("" for none).
func NewEventID(v string) EventID {
	return EventID{raw: v, earliest: v == Earliest}
}

// None reports no id: a new subscriber.
func (e EventID) None() bool { return e.raw == "" }

// Earliest reports the special value asking for the whole history.
func (e EventID) Earliest() bool { return e.earliest }

// String is the id as sent.
func (e EventID) String() string { return e.raw }

// Position is where an id was found in the log: its sequence, or not
// Found (never stored, expired, or not of this log's form).
type Position struct {
	Seq   uint64
	Found bool
}

// Bounds are the first and last sequences the log holds (first > last
// when it holds nothing).
type Bounds struct{ First, Last uint64 }

// Outcome names what Decide made of an id.
type Outcome string

// Outcomes.
const (
	// OutcomeNew: no id; live updates only.
	OutcomeNew Outcome = "none"
	// OutcomeEarliest: everything the log holds, then live.
	OutcomeEarliest Outcome = "earliest"
	// OutcomeResumed: everything after the id, then live (nothing to
	// replay if the subscriber is up to date).
	OutcomeResumed Outcome = "replayed"
	// OutcomeGap: the id is older than anything held: everything held,
	// then live; the updates in between are lost to the subscriber.
	OutcomeGap Outcome = "gap"
	// OutcomeUnknown: the log has no such id (never issued, or gone);
	// live only, never a guess at where the subscriber was.
	OutcomeUnknown Outcome = "unknown-last-event-id"
	// OutcomeFuture: the id's position is beyond the log's last (the log
	// was replaced or went back); live only.
	OutcomeFuture Outcome = "future-last-event-id"
)

// Replay is what a (re)connecting subscriber gets before the live feed:
// the log's sequences From..To inclusive (none when From > To), filtered by
// what the subscriber may see. Live updates at or before To must be
// dropped, since the replay covers them: that is the seam, with no gap and
// no duplicate.
type Replay struct {
	Outcome  Outcome
	From, To uint64
}

// Empty reports that nothing is replayed.
func (r Replay) Empty() bool { return r.From > r.To }

// Decide is the one place that decides a replay. id is what the subscriber
// sent, at where the log has it, held the log's bounds when the live
// subscription was already registered (so that To meets the live feed).
func Decide(id EventID, at Position, held Bounds) Replay {
	to := held.Last
	live := Replay{From: to + 1, To: to}
	switch {
	case id.None():
		live.Outcome = OutcomeNew
		return live
	case id.Earliest():
		return Replay{Outcome: OutcomeEarliest, From: max(held.First, 1), To: to}
	case !at.Found:
		live.Outcome = OutcomeUnknown
		return live
	case at.Seq > to:
		live.Outcome = OutcomeFuture
		return live
	case at.Seq+1 < held.First:
		return Replay{Outcome: OutcomeGap, From: held.First, To: to}
	}
	// Strictly after: the subscriber already has at.Seq.
	return Replay{Outcome: OutcomeResumed, From: at.Seq + 1, To: to}
}
