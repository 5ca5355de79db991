// Package routes names the HTTP paths the upstream serves and Envoy routes,
// for the upstream (upstream/server) and everything that reaches it through
// Envoy or directly: the load tools, the local stack, the tests.
package routes

import "time"

// StreamIdleTimeout is Envoy's idle_timeout on the SSE routes: a stream
// with no byte in either direction for this long is reset (flag SI). The
// upstream's heartbeat must come well within it (upstream/stream's
// MaxHeartbeat); envoy/ and the generated configs use this value.
const StreamIdleTimeout = 60 * time.Second

const (
	// EventsPath is the upstream's SSE stream; Envoy routes PlainPrefix to
	// it as it is.
	EventsPath = "/sse/events"
	// HealthPath is the upstream's health check.
	HealthPath = "/healthz"
	// PlainPrefix is Envoy's route to the upstream over plain HTTP/1.1.
	PlainPrefix = "/sse"
	// TLSPrefix is Envoy's route to the upstream over TLS (h2 through
	// ALPN); Envoy rewrites it to PlainPrefix.
	TLSPrefix = "/sse-with-tls"
	// CompletionsPath is the upstream's token stream, answered as an LLM
	// API answers a chat completion (OpenAI's path and chunk format).
	CompletionsPath = "/v1/chat/completions"
)

// TLS is path (under PlainPrefix) as Envoy's TLS route serves it.
func TLS(path string) string {
	if len(path) >= len(PlainPrefix) && path[:len(PlainPrefix)] == PlainPrefix {
		return TLSPrefix + path[len(PlainPrefix):]
	}
	return path
}
