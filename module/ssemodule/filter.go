package ssemodule

import (
	"time"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
)

// adapterName is the tag header's value on streams this adapter tagged.
const adapterName = "dynamic_module"

// metadataNamespace holds the stream's counts: %DYNAMIC_METADATA(sse:events)%.
const metadataNamespace = "sse"

// metadataInterval bounds how often a long stream refreshes its metadata
// from the body hook: the 1.37 ABI has no access-log hook, so this is what
// keeps the periodic access-log entries (access_log_flush_interval) close to
// the truth, without paying three callbacks on every chunk.
const metadataInterval = time.Second

// Envoy is what the filter asks of Envoy for one stream; abi.Filter is the
// real one.
type Envoy interface {
	Header(t abi.HeaderType, key string) (string, bool)
	SetHeader(t abi.HeaderType, key, value string) bool
	RemoveHeader(t abi.HeaderType, key string) bool
	SendResponse(status int, headers []abi.Header, body, details string)
	BodyChunks(t abi.BodyType, fn func([]byte))
	SetMetadataNumber(ns, key string, v float64)
	SetMetadataString(ns, key, v string)
	AttributeString(a abi.Attribute) (string, bool)
	IncrementCounter(id, v uint64)
	AddGauge(id uint64, delta int64)
	RouteConfig() any
}

var _ Envoy = abi.Filter{}

// NewFilter implements abi.FilterConfig.
func (c *filterConfig) NewFilter(f abi.Filter) abi.HTTPFilter { return c.newFilter(f) }

func (c *filterConfig) newFilter(env Envoy) *filter {
	f := &filter{env: env, cfg: c}
	f.metrics = ssestream.DefineMetrics(func(s ssestream.Stat) ssestream.Counter {
		for i, def := range ssestream.Stats() {
			if def.Name == s.Name {
				f.stats[i] = envoyStat{env: env, id: c.statIDs[i], gauge: s.Kind == ssestream.KindGauge}
				return &f.stats[i]
			}
		}
		return nil
	})
	return f
}

// envoyStat is one of Envoy's stats, updated through the stream that
// counts (the ABI takes the filter, not the config, to update a stat).
type envoyStat struct {
	env   Envoy
	id    uint64
	gauge bool
}

func (s *envoyStat) Increment(delta int64) {
	switch {
	case s.gauge:
		s.env.AddGauge(s.id, delta)
	case delta > 0:
		s.env.IncrementCounter(s.id, uint64(delta))
	}
}

// filter follows one stream. Envoy calls its hooks one at a time on the
// stream's worker thread, so it needs no locks.
type filter struct {
	env     Envoy
	cfg     *filterConfig
	stats   [5]envoyStat
	metrics *ssestream.Metrics
	stream  *ssestream.Stream
	// onChunk is stream.OnResponseData, bound once per stream: a method
	// value made in the body hook would cost an allocation per chunk.
	onChunk func([]byte)

	upstreamEnded bool
	finished      bool
	published     time.Time
	// pendingReply waits for the end of a request body, as in the golang
	// filter: a local reply while the client still sends one can crash
	// Envoy 1.37 (envoyproxy/envoy#44320). Browsers' preflights carry none.
	pendingReply *policy.Reply
}

var _ abi.HTTPFilter = (*filter)(nil)

func (f *filter) now() time.Time {
	if f.cfg.now != nil {
		return f.cfg.now()
	}
	return time.Now()
}

func (f *filter) OnRequestHeaders(endOfStream bool) abi.Status {
	p := f.cfg.policy
	if rc, ok := f.env.RouteConfig().(*routeConfig); ok {
		p = rc.policy
	}
	f.stream = ssestream.New(p, f.metrics, adapterName, f.cfg.now)
	f.onChunk = f.stream.OnResponseData
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
		f.env.SetMetadataString(metadataNamespace, "protocol", protocol)
		f.publishCounts()
	}
	f.upstreamEnded = f.upstreamEnded || endOfStream
	return abi.Continue
}

// OnResponseBody counts events in Envoy's own buffer, chunk by chunk, and
// never holds the body back.
func (f *filter) OnResponseBody(endOfStream bool) abi.Status {
	if f.stream != nil && f.stream.IsSSE() {
		f.env.BodyChunks(abi.ReceivedResponseBody, f.onChunk)
		if now := f.now(); now.Sub(f.published) >= metadataInterval {
			f.published = now
			f.publishCounts()
		}
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
func (f *filter) OnStreamComplete() { f.finish() }

// OnDestroy is the backstop should a stream end without OnStreamComplete.
func (f *filter) OnDestroy() { f.finish() }

func (f *filter) finish() {
	if f.finished || f.stream == nil || !f.stream.IsSSE() {
		return
	}
	f.finished = true
	f.publishCounts()
	// The 1.37 ABI gives neither response flags nor response code details:
	// a stream the upstream did not finish ends as "reset".
	f.stream.Finish(ssestream.End{UpstreamEnded: f.upstreamEnded}, f)
}

func (f *filter) publishCounts() {
	sum := f.stream.Summary()
	f.env.SetMetadataNumber(metadataNamespace, "events", float64(sum.Events))
	f.env.SetMetadataNumber(metadataNamespace, "bytes", float64(sum.Bytes))
	f.env.SetMetadataString(metadataNamespace, "last_event_id", sum.LastEventID)
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
