// Package stream is the upstream's one streaming engine. Every event
// stream the upstream serves, the seed's jokes (package seed) and the
// Mercure hub's updates (package mercure/hubhttp), goes through it:
//
//   - a Broadcaster hands items to subscribers: subscribe, dispatch, cut a
//     subscriber whose queue is full instead of waiting for it, close and
//     reset, one set of errors and counters. A Router says which
//     subscribers an item goes to (all of them, or those whose topics
//     match).
//   - a Writer writes to one client, each write bounded by a deadline that
//     is cleared once the write is done, so that a stalled client costs at
//     most one write timeout and a quiet one costs nothing.
//   - Serve runs one stream: the retry prelude, the replay, live items
//     with heartbeats in between, the end of a token's grant, and the
//     reason the stream ended. Run sends the headers and serves; it first
//     takes the stream from its server (an HTTP/1.1 connection hijacked
//     from net/http, an HTTP/2 stream detached from h2server) and serves
//     it from a goroutine of its own (Detached), at a third to a half of
//     the memory.
//
// The sources differ only in how they decide the replay and what a
// subscriber may receive; the timing rules (Options, the event log's
// Timeouts) are named here once.
package stream
