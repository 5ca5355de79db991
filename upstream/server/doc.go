// Package server serves the dad-joke event stream: an http.Handler for
// GET /sse/events and GET /healthz over a hub.Hub, a publisher that feeds the
// hub on a ticker, and Run, which serves one hub on a plain and a TLS
// listener and shuts both down gracefully.
//
// With Config.Mercure it also serves the Mercure hub at
// /.well-known/mercure (mercure.go): publishes stored in a keyed JetStream
// stream, subscriptions fed by a mercure/fanout.Fanout, replays decided by
// replay.Decide like the seed stream's.
//
// # Resuming
//
// A client resumes with the Last-Event-ID header or, for clients that cannot
// set headers, the lastEventId query parameter (the header wins when both are
// present). Whatever the id, the answer is 200: any other status makes a
// browser's EventSource give up for good. The x-sse-replay response header
// says what the id led to:
//
//	none                   no id: the stream starts with the newest event, then live
//	replayed N             the N events after the id (0 if up to date), then live
//	gap N                  the id is older than the history: all N events held
//	                       are replayed, the ones in between are lost
//	invalid-last-event-id  not a decimal id: treated as a new client
//	future-last-event-id   newer than any id issued (e.g. from before a restart):
//	                       treated as a new client
//
// A new client gets the newest event at once, not the whole history, so curl
// shows output immediately without a replay burst on every connect.
//
// # Slow clients
//
// Each stream has a bounded queue in the hub. When it is full the hub cuts
// the stream instead of blocking the publisher; the handler ends the
// response at its next wake-up (a blocked write is bounded by the per-write
// deadline) and the client reconnects with its Last-Event-ID.
package server
