// Package replay decides what a subscriber (re)connecting with a
// Last-Event-ID is replayed: the one event-id type (EventID, parsed once
// from the request) and the one decision (Decide), shared by the seed's
// stream and the Mercure hub. Where the events come from (memory, the
// event log) is the caller's business; what is owed is decided here.
package replay

import (
	"net/http"
	"strconv"
)

// Syntax says how a stream's clients name their last event: the query
// parameter standing in for the Last-Event-ID header (EventSource cannot
// set headers on a first connection), and whether the special value
// "earliest" asks for the whole history.
type Syntax struct {
	Query    string
	Earliest bool
}

// EarliestKeyword is the Last-Event-ID asking for everything held.
const EarliestKeyword = "earliest"

// EventID is the id a reconnecting subscriber names: none, "earliest"
// (where the syntax allows it), or the id of the last event it got.
type EventID struct {
	raw      string
	earliest bool
}

// FromRequest reads the Last-Event-ID header, else the query parameter.
// The header wins: a browser's EventSource sends it on every reconnect,
// with the newest id, while the query keeps the page's first one.
func (s Syntax) FromRequest(r *http.Request) EventID {
	v := r.Header.Get("Last-Event-ID")
	if v == "" && s.Query != "" {
		v = r.URL.Query().Get(s.Query)
	}
	return s.Parse(v)
}

// Parse is the EventID of the value v ("" for none).
func (s Syntax) Parse(v string) EventID {
	return EventID{raw: v, earliest: s.Earliest && v == EarliestKeyword}
}

// None reports no id: a new subscriber.
func (e EventID) None() bool { return e.raw == "" }

// Earliest reports the special value asking for the whole history.
func (e EventID) Earliest() bool { return e.earliest }

// String is the id as sent.
func (e EventID) String() string { return e.raw }

// Seq reads the id as a log sequence, for streams whose ids are their
// sequences: plain decimal digits only (no sign, no spaces, no overflow).
func (e EventID) Seq() (uint64, bool) {
	if e.earliest || e.raw == "" || e.raw[0] == '+' {
		return 0, false
	}
	n, err := strconv.ParseUint(e.raw, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

// Position is where an id was found in the log: its sequence, or not
// Found (never stored, expired, or not of this log's form).
type Position struct {
	Seq   uint64
	Found bool
}

// Bounds are the first and last sequences that can be replayed (first >
// last when there are none).
type Bounds struct{ First, Last uint64 }

// Outcome names what Decide made of an id.
type Outcome string

// Outcomes.
const (
	// New: no id; live events only.
	New Outcome = "none"
	// Earliest: everything held, then live.
	Earliest Outcome = "earliest"
	// Resumed: everything after the id, then live (nothing to replay
	// if the subscriber is up to date).
	Resumed Outcome = "replayed"
	// Gap: the id is older than anything held: everything held, then
	// live; the events in between are lost to the subscriber.
	Gap Outcome = "gap"
	// Unknown: no such id (never issued, gone, or not of this log's
	// form); live only, never a guess at where the subscriber was.
	Unknown Outcome = "unknown-last-event-id"
	// Future: the id's position is beyond the last (the log was replaced
	// or went back); live only.
	Future Outcome = "future-last-event-id"
)

// Replay is what a (re)connecting subscriber is owed before the live feed:
// sequences From..To (none when From > To), To being the last one held
// when the decision was made. The subscriber is owed nothing before From.
// The live feed, registered before the bounds were read, carries
// everything after To; a stream drops from it what the replay already
// sent, so replay and live meet with no gap and no duplicate.
type Replay struct {
	Outcome  Outcome
	From, To uint64
}

// Empty reports that nothing is replayed.
func (r Replay) Empty() bool { return r.From > r.To }

// Decide is the one place that decides a replay. id is what the subscriber
// sent, at is where it is, held is what can be replayed.
func Decide(id EventID, at Position, held Bounds) Replay {
	to := held.Last
	live := Replay{From: to + 1, To: to}
	switch {
	case id.None():
		live.Outcome = New
		return live
	case id.Earliest():
		return Replay{Outcome: Earliest, From: max(held.First, 1), To: to}
	case !at.Found:
		live.Outcome = Unknown
		return live
	case at.Seq > to:
		live.Outcome = Future
		return live
	case at.Seq+1 < held.First:
		return Replay{Outcome: Gap, From: held.First, To: to}
	}
	// Strictly after: the subscriber already has at.Seq.
	return Replay{Outcome: Resumed, From: at.Seq + 1, To: to}
}
