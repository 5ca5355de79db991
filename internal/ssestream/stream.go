// Package ssestream owns one HTTP stream's whole life for every adapter: the
// golang filter (filter/ssefilter), the dynamic module (module/ssemodule)
// and the ext_proc server (extproc/processor). It reads the request headers
// into a policy request, decides preflights and local replies and holds a
// reply until the request ends, applies the policy to the response headers,
// watches an SSE body go by without holding it, keeps the stats (by StatID)
// and the counts, and writes the metadata (under MetadataKeys) and the lines
// that say when a stream opened and how it ended, once. Adapters only
// translate their Envoy API into its calls and the Host interface; the
// lifecycle table in lifecycletest runs the same streams through all three.
package ssestream

import (
	"log/slog"
	"time"

	"example.com/sse-on-envoy/internal/extract"
	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/sse"
)

// BodyCounts is what a scanner of the response body has counted so far.
// The stream's own sse.Scanner is one; the dynamic module, which scans in
// C, hands its own to CountedBy (read once per Summary: from C, each read
// is a copy).
type BodyCounts interface {
	Counted() Counted
}

// Counted is what a body scanner counted.
type Counted struct {
	Events, Bytes uint64
	LastEventID   string
	// Timing is when the chunks and events came (sse.Pace), from the
	// request.
	Timing sse.Timing
}

// Logger writes one line at a level.
type Logger interface {
	Log(level policy.Level, msg string)
}

// Host is what a stream asks of its adapter's Envoy API.
type Host interface {
	Logger
	// SetMetadata sets one of MetadataKeys in MetadataNamespace. An adapter
	// that cannot write metadata (the ext_proc observer) does nothing.
	SetMetadata(key string, value any)
	// End says how Envoy ended the stream, as far as the adapter can tell.
	// It is called once, when an SSE stream closes; the stream adds the end
	// of the response it saw itself.
	End() End
}

// Info is what the adapter knows of the stream when the response starts.
type Info struct {
	Route    string
	Protocol string // downstream protocol: "HTTP/1.1", "HTTP/2"...
}

// LineLimit bounds the bytes of a line a stream's scanner holds across
// chunks and the longest last event id it keeps, and so per-stream memory.
// The dynamic module's C scanner gets this value at the module's init
// (module/ssemodule.StreamSettings); it has no limit of its own.
const LineLimit = 256

// Stream is the state of one HTTP stream. It is not safe for concurrent use;
// each adapter drives it from one goroutine or thread at a time.
type Stream struct {
	policy  *policy.Policy
	metrics Recorder
	adapter string
	now     func() time.Time

	decision    policy.Decision
	method      string
	path        string // as the log lines print it
	requestPath string
	hold        replyHold

	info          Info
	isSSE         bool
	requested     time.Time
	started       time.Time
	scanner       *scannedBody    // made by the first OnResponseData
	body          BodyCounts      // nil: the scanner counts
	counted       uint64          // events already added to Metrics.Events
	extracted     *extract.Values // made with the first event read
	upstreamEnded bool
	finished      bool
}

// scannedBody is the counts of a body the stream scans itself.
type scannedBody struct {
	sse.Scanner
	pace sse.Pace
}

func (b *scannedBody) Counted() Counted {
	return Counted{Events: b.Events(), Bytes: b.Bytes(), LastEventID: b.LastEventID(), Timing: b.pace.Timing()}
}

// New starts following a stream. adapter names the tagging adapter (the tag
// header's value); m may be nil, recording nothing.
func New(p *policy.Policy, m Recorder, adapter string, now func() time.Time) *Stream {
	if m == nil {
		m = (*Metrics)(nil)
	}
	if now == nil {
		now = time.Now
	}
	return &Stream{policy: p, metrics: m, adapter: adapter, now: now}
}

// OnRequestHeaders applies CORS to the request headers. endOfStream says
// that the request has no body: a reply is then sent at once; otherwise it
// waits for the end of the body (see replyHold).
func (s *Stream) OnRequestHeaders(h HeaderGetter, endOfStream bool) Step {
	s.requested = s.now()
	req, path := ReadRequest(h, s.policy.RedactQueryParams())
	s.method, s.path, s.requestPath = req.Method, path, req.Path
	s.decision = s.policy.Decide(req)
	if s.decision.Preflight {
		s.metrics.Add(Preflights, 1)
	}
	if s.decision.RejectedOrigin {
		s.metrics.Add(RejectedOrigins, 1)
	}
	return s.hold.headers(s.decision.Reply, endOfStream)
}

// OnRequestBody is a chunk of the request body; endOfStream: the last one.
func (s *Stream) OnRequestBody(endOfStream bool) Step { return s.hold.body(endOfStream) }

// OnRequestTrailers ends the request.
func (s *Stream) OnRequestTrailers() Step { return s.hold.trailers() }

// ObserveRequest records the request for the log lines of an adapter that
// only watches (the ext_proc observer), without applying the policy.
func (s *Stream) ObserveRequest(h HeaderGetter) {
	s.requested = s.now()
	req, path := ReadRequest(h, s.policy.RedactQueryParams())
	s.method, s.path, s.requestPath, s.decision.Origin = req.Method, path, req.Path, req.Origin
}

// OnResponseHeaders edits the response headers as the policy says and
// reports whether they start an SSE stream. It does not open the stream:
// adapters that also count call Open.
//
// Envoy's own answer when no upstream can take a stream (UnavailableHeader)
// gets the same headers, CORS included, so a cross-origin page reads it and
// EventSource retries; but it is not a stream: it is neither counted nor
// logged as one, or every retry of every browser would be during an outage.
func (s *Stream) OnResponseHeaders(h policy.HeaderEditor, endOfStream bool) (isSSE bool) {
	s.upstreamEnded = s.upstreamEnded || endOfStream
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

// Open starts counting an SSE stream: stats, metadata and the "opened"
// line. Later calls do nothing, so a response that passes twice opens once.
func (s *Stream) Open(info Info, h Host) {
	if s.isSSE {
		return
	}
	s.isSSE, s.info, s.started = true, info, s.now()
	s.metrics.Add(StreamsOpened, 1)
	s.metrics.Add(StreamsActive, 1)
	s.PublishMetadata(h)
	h.Log(s.policy.StreamLogLevel(), logLine("sse stream opened:",
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

// OnResponseData watches a chunk of an SSE body go by; endOfStream: the
// upstream ended the response with it (the chunk may be empty).
func (s *Stream) OnResponseData(chunk []byte, endOfStream bool) {
	s.upstreamEnded = s.upstreamEnded || endOfStream
	if !s.isSSE || s.finished || len(chunk) == 0 {
		return
	}
	if s.scanner == nil {
		s.scanner = s.newScanner()
	}
	s.scanner.Write(chunk)
	n := s.scanner.Events()
	s.scanner.pace.Observe(s.now().Sub(s.requested), n-s.counted)
	if n != s.counted {
		s.metrics.Add(Events, int64(n-s.counted))
		s.counted = n
	}
}

// newScanner is a scanner with the stream's limits: with extract rules it
// keeps whole data lines, up to the rules' event size, and hands each event
// to ExtractEvent.
func (s *Stream) newScanner() *scannedBody {
	b := &scannedBody{}
	b.MaxLineBytes = LineLimit
	if rules := s.Extract(); rules != nil {
		b.MaxLineBytes = max(rules.MaxEventBytes(), LineLimit)
		b.MaxIDBytes = LineLimit
		b.MaxDataBytes = rules.MaxEventBytes()
		b.OnEventData = func(eventType, data []byte, cut bool) {
			s.ExtractEvent(rules.Match(eventType, data), data, cut)
		}
	}
	return b
}

// Extract is the extract rules that apply to this stream (its policy's,
// if they cover its path), nil if none: the dynamic module hands its C body
// hook these, and no others.
func (s *Stream) Extract() *extract.Rules {
	if rules := s.policy.Extract(); rules.AppliesTo(s.requestPath) {
		return rules
	}
	return nil
}

// ExtractEvent reads an event's data for the extract rules in mask (those
// whose cheap test it passed: extract.Rules.Match). cut: the data went past
// the rules' event size, and is not read. The dynamic module's C body hook
// calls it through its adapter, after the same test.
func (s *Stream) ExtractEvent(mask uint32, data []byte, cut bool) {
	rules := s.Extract()
	if mask == 0 || rules == nil {
		return
	}
	if s.extracted == nil {
		s.extracted = &extract.Values{}
	}
	switch {
	case cut:
		s.extracted.Skipped++
		s.metrics.Add(ExtractErrors, 1)
	default:
		before := s.extracted.Errors
		rules.Apply(s.extracted, mask, data, nil)
		if n := s.extracted.Errors - before; n > 0 {
			s.metrics.Add(ExtractErrors, int64(n))
		}
	}
}

// OnResponseEnd says the upstream ended the response without a body chunk
// the stream saw: its trailers, or an end the adapter's body scanner saw.
func (s *Stream) OnResponseEnd() { s.upstreamEnded = true }

// UpstreamEnded reports whether the upstream ended the response.
func (s *Stream) UpstreamEnded() bool { return s.upstreamEnded }

// CountedBy says that the adapter scans the body itself and will not call
// OnResponseData with chunks: c is where the counts are, and it also
// updates the events stat.
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
var nothingScanned scannedBody

// Summary is what a stream did.
type Summary struct {
	Events      uint64
	Bytes       uint64
	LastEventID string
	Protocol    string
	Duration    time.Duration
	Timing      sse.Timing
	// Extracted are the values the extract rules found, in rule order.
	Extracted []Extracted
	// ExtractErrors counts matched events that were not read: bad JSON, a
	// value of another type than its rule's, data past the event size.
	ExtractErrors uint64
	extracting    bool
}

// Extracted is a value an extract rule found.
type Extracted struct {
	Key   string
	Value any
}

// Summary reports the counts so far.
func (s *Stream) Summary() Summary {
	d := time.Duration(0)
	if s.isSSE {
		d = s.now().Sub(s.started)
	}
	c := s.counts().Counted()
	sum := Summary{
		Events:      c.Events,
		Bytes:       c.Bytes,
		LastEventID: c.LastEventID,
		Protocol:    s.info.Protocol,
		Duration:    d,
		Timing:      c.Timing,
	}
	rules := s.Extract()
	sum.extracting = rules != nil
	if rules != nil && s.extracted != nil {
		sum.ExtractErrors = s.extracted.Errors + s.extracted.Skipped
		for i := range rules.Len() {
			if v := s.extracted.Value(i); v != nil {
				sum.Extracted = append(sum.Extracted, Extracted{rules.Key(i), v})
			}
		}
	}
	return sum
}

// PublishMetadata writes the Summary as the stream's dynamic metadata, for
// an SSE stream only: at its open and close, and periodically for long
// streams where the adapter has a hook for it.
func (s *Stream) PublishMetadata(h Host) {
	if s.isSSE {
		s.Summary().publish(h)
	}
}

func (sum Summary) publish(h Host) {
	sum.eachMetadata(h.SetMetadata)
	for _, e := range sum.Extracted {
		h.SetMetadata(e.Key, e.Value)
	}
}

// Finish closes an SSE stream once: the final metadata, the gauge down, and
// the "closed" line saying how it ended (h.End, with the upstream's end the
// stream saw). It is a no-op for other responses and later calls; adapters
// call it from every hook that may be a stream's last.
func (s *Stream) Finish(h Host) {
	if !s.isSSE || s.finished {
		return
	}
	s.finished = true
	sum := s.Summary()
	sum.publish(h)
	if t := sum.Timing; t.HasFirstEvent {
		s.metrics.Add(FirstEventMS, t.FirstEvent.Milliseconds())
		if sum.Events > 1 {
			s.metrics.Add(MaxGapMS, t.MaxGap.Milliseconds())
		}
	}
	end := h.End()
	end.UpstreamEnded = end.UpstreamEnded || s.upstreamEnded
	s.metrics.Add(StreamsActive, -1)
	h.Log(s.policy.StreamLogLevel(), logLine("sse stream closed:",
		slog.String("route", orDash(s.info.Route)),
		slog.Any("", sum),
		slog.Any("", end)))
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
