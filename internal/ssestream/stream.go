// Package ssestream follows one HTTP stream through an adapter (the golang
// filter, the dynamic module or the ext_proc server): it applies
// the policy to the request and response headers, watches an SSE body go by
// without holding it, keeps the counts, and writes the lines and metadata
// that say when a stream opened and how it ended. Adapters only translate
// their callbacks into it.
package ssestream

import (
	"log/slog"
	"time"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/sse"
)

// Counter is a stat; Envoy's golang counters and gauges fit it as they are.
type Counter interface {
	Increment(delta int64)
}

// Metrics are the stats a stream updates; nil fields are not recorded.
type Metrics struct {
	StreamsOpened   Counter
	StreamsActive   Counter
	Events          Counter
	Preflights      Counter
	RejectedOrigins Counter
}

// The dynamic metadata every adapter writes a stream's counts under:
// %DYNAMIC_METADATA(sse:events)% in an access log.
const (
	MetadataNamespace   = "sse"
	MetadataEvents      = "events"
	MetadataBytes       = "bytes"
	MetadataLastEventID = "last_event_id"
	MetadataProtocol    = "protocol"
)

// BodyCounts is what a scanner of the response body has counted so far.
// The stream's own sse.Scanner is one; the dynamic module, which scans in
// C, hands its own to CountedBy.
type BodyCounts interface {
	Events() uint64
	Bytes() uint64
	LastEventID() string
}

// Logger writes one line at a level.
type Logger interface {
	Log(level policy.Level, msg string)
}

// Info is what the adapter knows of the stream when the response starts.
type Info struct {
	Route    string
	Protocol string // downstream protocol: "HTTP/1.1", "HTTP/2"...
}

// idLimit bounds the last event id kept per stream, and so per-stream memory.
const idLimit = 256

// Stream is the state of one HTTP stream. It is not safe for concurrent use;
// each adapter drives it from one goroutine or thread at a time.
type Stream struct {
	policy  *policy.Policy
	metrics *Metrics
	adapter string
	now     func() time.Time

	decision policy.Decision
	method   string
	path     string

	info     Info
	isSSE    bool
	started  time.Time
	scanner  *sse.Scanner // made by the first OnResponseData
	body     BodyCounts   // nil: the scanner counts
	counted  uint64       // events already added to Metrics.Events
	finished bool
}

// New starts following a stream. adapter names the tagging adapter (the tag
// header's value).
func New(p *policy.Policy, m *Metrics, adapter string, now func() time.Time) *Stream {
	if m == nil {
		m = &Metrics{}
	}
	if now == nil {
		now = time.Now
	}
	return &Stream{policy: p, metrics: m, adapter: adapter, now: now}
}

// OnRequest applies CORS to the request headers. A non-nil reply must be
// sent instead of forwarding the request.
func (s *Stream) OnRequest(req policy.Request, path string) *policy.Reply {
	s.method, s.path = req.Method, path
	s.decision = s.policy.Decide(req)
	if s.decision.Preflight {
		inc(s.metrics.Preflights, 1)
	}
	if s.decision.RejectedOrigin {
		inc(s.metrics.RejectedOrigins, 1)
	}
	return s.decision.Reply
}

// OnResponseHeaders edits the response headers as the policy says and
// reports whether they start an SSE stream. It does not open the stream:
// adapters that also count call Open.
//
// Envoy's own answer when no upstream can take a stream (UnavailableHeader)
// gets the same headers, CORS included, so a cross-origin page reads it and
// EventSource retries; but it is not a stream: it is neither counted nor
// logged as one, or every retry of every browser would be during an outage.
func (s *Stream) OnResponseHeaders(h policy.HeaderEditor) (isSSE bool) {
	if !s.policy.ApplyResponse(s.decision, h) {
		return false
	}
	s.policy.SetTag(h, s.adapter)
	return IsStream(h)
}

// UnavailableHeader marks Envoy's own answer to a stream request that no
// upstream could take: local_reply_config makes it a 200 text/event-stream
// with a retry field, and this header carries Envoy's response flags.
const UnavailableHeader = "x-sse-unavailable"

// HeaderGetter reads a header.
type HeaderGetter interface {
	Get(key string) (string, bool)
}

// IsStream reports whether response headers start an SSE stream: an event
// stream that is not Envoy's unavailable answer.
func IsStream(h HeaderGetter) bool {
	ct, _ := h.Get("content-type")
	if !policy.IsEventStream(ct) {
		return false
	}
	_, unavailable := h.Get(UnavailableHeader)
	return !unavailable
}

// Observe records the request for the log lines of an adapter that only
// watches (the ext_proc observer), without applying the policy.
func (s *Stream) Observe(method, path, origin string) {
	s.method, s.path, s.decision.Origin = method, path, origin
}

// Open starts counting an SSE stream: stats and the "opened" line. Later
// calls do nothing, so a response that passes twice opens once.
func (s *Stream) Open(info Info, log Logger) {
	if s.isSSE {
		return
	}
	s.isSSE, s.info, s.started = true, info, s.now()
	inc(s.metrics.StreamsOpened, 1)
	inc(s.metrics.StreamsActive, 1)
	log.Log(s.policy.StreamLogLevel(), logLine("sse stream opened:",
		slog.String("route", orDash(info.Route)),
		slog.String("protocol", orDash(info.Protocol)),
		slog.String("method", orDash(s.method)),
		slog.String("path", s.path),
		slog.String("origin", originForLog(s.decision.Origin)),
		slog.String("adapter", s.adapter)))
}

// IsSSE reports whether the response is an SSE stream; adapters check it
// before they copy a body chunk, so other responses cost nothing more.
func (s *Stream) IsSSE() bool { return s.isSSE }

// OnResponseData watches a chunk of an SSE body go by.
func (s *Stream) OnResponseData(chunk []byte) {
	if !s.isSSE || s.finished {
		return
	}
	if s.scanner == nil {
		s.scanner = &sse.Scanner{MaxLineBytes: idLimit}
	}
	s.scanner.Write(chunk)
	if n := s.scanner.Events(); n != s.counted {
		inc(s.metrics.Events, int64(n-s.counted))
		s.counted = n
	}
}

// CountedBy says that the adapter scans the body itself and will not call
// OnResponseData: c is where the counts are, and it also updates the events
// stat.
func (s *Stream) CountedBy(c BodyCounts) { s.body = c }

func (s *Stream) counts() BodyCounts {
	switch {
	case s.body != nil:
		return s.body
	case s.scanner != nil:
		return s.scanner
	}
	return &nothingScanned
}

// nothingScanned counts a stream that has had no body yet; it is only read.
var nothingScanned sse.Scanner

// Summary is what a stream did.
type Summary struct {
	Events      uint64
	Bytes       uint64
	LastEventID string
	Protocol    string
	Duration    time.Duration
}

// Summary reports the counts so far; it is what adapters publish as dynamic
// metadata, also periodically for long streams.
func (s *Stream) Summary() Summary {
	d := time.Duration(0)
	if s.isSSE {
		d = s.now().Sub(s.started)
	}
	c := s.counts()
	return Summary{
		Events:      c.Events(),
		Bytes:       c.Bytes(),
		LastEventID: c.LastEventID(),
		Protocol:    s.info.Protocol,
		Duration:    d,
	}
}

// Metadata is the Summary as the values of Envoy dynamic metadata (namespace
// "sse"); numbers are float64 as protobuf Struct wants them.
func (sum Summary) Metadata() map[string]any {
	return map[string]any{
		MetadataEvents:      float64(sum.Events),
		MetadataBytes:       float64(sum.Bytes),
		MetadataLastEventID: sum.LastEventID,
		MetadataProtocol:    sum.Protocol,
	}
}

// Finish closes an SSE stream once: the gauge goes down and the "closed"
// line says how it ended. It is a no-op for other responses and later calls.
func (s *Stream) Finish(end End, log Logger) {
	if !s.isSSE || s.finished {
		return
	}
	s.finished = true
	inc(s.metrics.StreamsActive, -1)
	log.Log(s.policy.StreamLogLevel(), logLine("sse stream closed:",
		slog.String("route", orDash(s.info.Route)),
		slog.Any("", s.Summary()),
		slog.Any("", end)))
}

func inc(c Counter, delta int64) {
	if c != nil {
		c.Increment(delta)
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func originForLog(origin string) string {
	if origin == "" {
		return "(none)"
	}
	return origin
}
