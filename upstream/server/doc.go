// Package server wires the upstream together: the routes (the seed stream
// of package seed, the Mercure hub of package mercure/hubhttp, /metrics
// and /healthz), the publisher that feeds the seed's hub on a ticker, the
// event log's followers, and Run, which serves it all on a plain and a TLS
// listener and shuts both down gracefully. Every stream itself runs in
// package stream.
package server
