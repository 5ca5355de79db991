// Package mercure holds the rules of the Mercure protocol
// (draft-dunglas-mercure-08) that do not depend on HTTP plumbing or on the
// event log: topic selectors, the JWT that grants publishing and
// subscribing, the publish form and its limits, and update ids. What a
// reconnecting subscriber is replayed is decided by package replay, as
// for the seed's stream.
//
// Everything a client sends is bounded and validated here, so that the
// handler answers bad input with a 4xx and never lets a private update out.
package mercure
