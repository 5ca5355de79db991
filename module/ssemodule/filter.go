package ssemodule

import (
	"time"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
)

// adapterName is the tag header's value on streams this adapter tagged.
const adapterName = "dynamic_module"

// metadataInterval bounds how often the C body hook refreshes a long
// stream's metadata: the ABI has no access-log hook for HTTP filters, so this
// is what keeps the periodic access-log entries (access_log_flush_interval)
// close to the truth, without paying three callbacks on every chunk.
const metadataInterval = time.Second

// MetadataKeys are the names the C body hook writes the counts under.
var MetadataKeys = abi.MetadataKeys{
	Namespace:   ssestream.MetadataNamespace,
	Events:      ssestream.MetadataEvents,
	Bytes:       ssestream.MetadataBytes,
	LastEventID: ssestream.MetadataLastEventID,
	Interval:    metadataInterval,
}

// Envoy is what the filter asks of Envoy for one stream; abi.Filter is the
// real one.
type Envoy interface {
	Header(t abi.HeaderType, key string) (string, bool)
	SetHeader(t abi.HeaderType, key, value string) bool
	RemoveHeader(t abi.HeaderType, key string) bool
	SendResponse(status int, headers []abi.Header, body, details string)
	SetMetadataString(ns, key, v string)
	AttributeString(a abi.Attribute) (string, bool)
	AttributeInt(a abi.Attribute) (uint64, bool)
	// CountBody hands the response body to the C body hook, which counts
	// events (and the events stat) without entering Go; BodyCounts reads
	// what it counted, PublishCounts writes that as metadata, UpstreamEnded
	// says whether it saw the end of the response.
	CountBody(eventsCounter uint64, ok bool)
	BodyCounts() abi.Counts
	PublishCounts()
	UpstreamEnded() bool
	IncrementCounter(id, v uint64)
	AddGauge(id uint64, delta int64)
	RouteConfig() any
}

var _ Envoy = abi.Filter{}

// NewFilter implements abi.FilterConfig.
func (c *filterConfig) NewFilter(f abi.Filter) abi.HTTPFilter { return c.newFilter(f) }

func (c *filterConfig) newFilter(env Envoy) *filter {
	f := &filter{env: env, cfg: c, stats: make([]envoyStat, len(c.stats))}
	i := 0
	f.metrics = ssestream.DefineMetrics(func(s ssestream.Stat) ssestream.Counter {
		f.stats[i] = envoyStat{f: f, id: c.stats[i].id, gauge: s.Kind == ssestream.KindGauge}
		i++
		return &f.stats[i-1]
	})
	return f
}

// envoyStat is one of Envoy's stats, updated through the stream that
// counts (the ABI takes the filter, not the config, to update a stat).
type envoyStat struct {
	f     *filter
	id    uint64
	gauge bool
}

func (s *envoyStat) Increment(delta int64) {
	switch {
	case s.f.gone:
		// After stream-complete Envoy's side of the stream may be gone.
	case s.gauge:
		s.f.env.AddGauge(s.id, delta)
	case delta > 0:
		s.f.env.IncrementCounter(s.id, uint64(delta))
	}
}

// bodyCounts is the C body hook's count as ssestream.BodyCounts.
type bodyCounts struct{ env Envoy }

func (b bodyCounts) Events() uint64      { return b.env.BodyCounts().Events }
func (b bodyCounts) Bytes() uint64       { return b.env.BodyCounts().Bytes }
func (b bodyCounts) LastEventID() string { return b.env.BodyCounts().LastEventID }

// filter follows one stream. Envoy calls its hooks one at a time on the
// stream's worker thread, so it needs no locks.
type filter struct {
	env     Envoy
	cfg     *filterConfig
	stats   []envoyStat // in ssestream.Stats() order
	metrics *ssestream.Metrics
	stream  *ssestream.Stream

	upstreamEnded bool
	finished      bool
	// gone: Envoy's side of the stream may no longer be called.
	gone bool
	// pendingReply waits for the end of a request body, as in the golang
	// filter: a local reply while the client still sends one can crash
	// Envoy 1.37 (envoyproxy/envoy#44320). Browsers' preflights carry none.
	pendingReply *policy.Reply
}

var _ abi.HTTPFilter = (*filter)(nil)

func (f *filter) OnRequestHeaders(endOfStream bool) abi.Status {
	p := f.cfg.policy
	if rc, ok := f.env.RouteConfig().(*routeConfig); ok {
		p = rc.policy
	}
	f.stream = ssestream.New(p, f.metrics, adapterName, f.cfg.now)
	method, _ := f.env.Header(abi.RequestHeaders, ":method")
	path, _ := f.env.Header(abi.RequestHeaders, ":path")
	origin, hasOrigin := f.env.Header(abi.RequestHeaders, "origin")
	requestMethod, _ := f.env.Header(abi.RequestHeaders, "access-control-request-method")
	reply := f.stream.OnRequest(policy.Request{
		Method:                     method,
		Origin:                     origin,
		HasOrigin:                  hasOrigin,
		AccessControlRequestMethod: requestMethod,
	}, path)
	switch {
	case reply == nil:
		return abi.Continue
	case !endOfStream:
		// The body is dropped with the request; Envoy's buffer limit bounds it.
		f.pendingReply = reply
		return abi.StopIteration
	}
	f.sendLocalReply(reply)
	return abi.StopIteration
}

func (f *filter) OnRequestBody(endOfStream bool) abi.Status {
	switch {
	case f.pendingReply == nil:
		return abi.Continue
	case !endOfStream:
		return abi.StopAndBuffer
	}
	f.sendLocalReply(f.pendingReply)
	return abi.StopNoBuffer
}

func (f *filter) OnRequestTrailers() abi.Status {
	if f.pendingReply == nil {
		return abi.Continue
	}
	f.sendLocalReply(f.pendingReply)
	return abi.StopIteration
}

func (f *filter) sendLocalReply(reply *policy.Reply) {
	f.pendingReply = nil
	headers := make([]abi.Header, len(reply.Headers))
	for i, kv := range reply.Headers {
		headers[i] = abi.Header{Key: kv.Key, Value: kv.Value}
	}
	f.env.SendResponse(reply.Status, headers, reply.Body, reply.Details)
}

func (f *filter) OnResponseHeaders(endOfStream bool) abi.Status {
	if f.stream == nil {
		// A response without a request hook: an Envoy local reply sent
		// before our filter ran. Nothing to apply.
		return abi.Continue
	}
	if f.stream.OnResponseHeaders(responseHeaders{f.env}) {
		route, _ := f.env.AttributeString(abi.AttributeRouteName)
		protocol, _ := f.env.AttributeString(abi.AttributeRequestProtocol)
		f.stream.Open(ssestream.Info{Route: route, Protocol: protocol}, f)
		f.stream.CountedBy(bodyCounts{f.env})
		f.env.CountBody(f.cfg.eventsStat())
		f.env.SetMetadataString(ssestream.MetadataNamespace, ssestream.MetadataProtocol, protocol)
		f.env.PublishCounts()
	}
	f.upstreamEnded = f.upstreamEnded || endOfStream
	return abi.Continue
}

func (f *filter) OnResponseTrailers() abi.Status {
	f.upstreamEnded = true
	return abi.Continue
}

// OnStreamComplete runs before the access log, so the final counts and the
// closing line are in place when it is written.
func (f *filter) OnStreamComplete() {
	if f.finished || f.stream == nil || !f.stream.IsSSE() {
		return
	}
	f.finished = true
	f.env.PublishCounts()
	end := ssestream.End{UpstreamEnded: f.upstreamEnded || f.env.UpstreamEnded()}
	if abi.EndKnown {
		end.ResponseFlags, end.FlagsKnown = f.env.AttributeInt(abi.AttributeResponseFlags)
		end.Details, _ = f.env.AttributeString(abi.AttributeResponseCodeDetails)
	}
	f.stream.Finish(end, f)
}

// OnDestroy is the backstop should a stream end without OnStreamComplete:
// the closed line is still written, but Envoy is not called (1.40 destroys
// a filter after its stream is gone), so the active-streams gauge keeps it.
func (f *filter) OnDestroy() {
	f.gone = true
	if f.finished || f.stream == nil || !f.stream.IsSSE() {
		return
	}
	f.finished = true
	f.stream.Finish(ssestream.End{UpstreamEnded: f.upstreamEnded}, f)
}

// Log implements ssestream.Logger on Envoy's dynamic_modules log component.
func (f *filter) Log(level policy.Level, msg string) {
	f.cfg.log(envoyLogLevel(level), msg)
}

func envoyLogLevel(l policy.Level) abi.LogLevel {
	switch {
	case l < policy.LevelInfo:
		return abi.LogDebug
	case l < policy.LevelWarn:
		return abi.LogInfo
	case l < policy.LevelError:
		return abi.LogWarn
	}
	return abi.LogError
}

// responseHeaders is the response header map as policy.HeaderEditor.
type responseHeaders struct{ env Envoy }

func (h responseHeaders) Get(key string) (string, bool) {
	return h.env.Header(abi.ResponseHeaders, key)
}

// Set with an empty value removes the header: what the 1.37 ABI does, and
// what the policy never asks for (its values are validated non-empty).
func (h responseHeaders) Set(key, value string) { h.env.SetHeader(abi.ResponseHeaders, key, value) }
func (h responseHeaders) Del(key string)        { h.env.RemoveHeader(abi.ResponseHeaders, key) }
