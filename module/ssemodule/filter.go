package ssemodule

import (
	"fmt"
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

// StreamSettings are what the C body hook and scanner work with, every
// value internal/ssestream's: the names the hook refreshes the counts under
// (Go writes every one of ssestream.MetadataKeys() at a stream's open and
// close; CloseOnlyMetadataKeys are the rest), and the scanner's line limit.
// The module's init hands them to C (abi.SetStreamSettings).
var StreamSettings = abi.StreamSettings{
	Namespace:    policy.MetadataNamespace,
	Events:       policy.MetadataEvents,
	Bytes:        policy.MetadataBytes,
	LastEventID:  policy.MetadataLastEventID,
	Interval:     metadataInterval,
	MaxLineBytes: ssestream.LineLimit,
}

// CloseOnlyMetadataKeys are the keys of ssestream.MetadataKeys() the C body
// hook does not refresh, written by Go at the stream's open and close: the
// protocol does not change, and the timing and the extract errors would
// cost the hook callbacks for values an access log mostly reads at the end
// (the extract rules' own keys too).
var CloseOnlyMetadataKeys = []string{
	policy.MetadataProtocol,
	policy.MetadataFirstByteMS, policy.MetadataFirstEventMS, policy.MetadataMaxGapMS,
	policy.MetadataGapP50MS, policy.MetadataGapP99MS, policy.MetadataEventsPerSec,
	policy.MetadataExtractErrors,
}

// Envoy is what the filter asks of Envoy for one stream; abi.Filter is the
// real one.
type Envoy interface {
	Header(t abi.HeaderType, key string) (string, bool)
	SetHeader(t abi.HeaderType, key, value string) bool
	RemoveHeader(t abi.HeaderType, key string) bool
	SendResponse(status int, headers []abi.Header, body, details string)
	SetMetadataString(ns, key, v string)
	SetMetadataNumber(ns, key string, v float64)
	AttributeString(a abi.Attribute) (string, bool)
	AttributeInt(a abi.Attribute) (uint64, bool)
	// CountBody hands the response body to the C body hook, which counts
	// events (and the events stat) without entering Go; BodyCounts reads
	// what it counted, UpstreamEnded says whether it saw the end of the
	// response.
	CountBody(eventsCounter uint64, ok bool)
	// ReadEvents makes the C body hook hand the filter (OnEventData) the
	// events that pass the extract rules' cheap test.
	ReadEvents(rules *abi.Rules)
	BodyCounts() abi.Counts
	UpstreamEnded() bool
	IncrementCounter(id, v uint64)
	AddGauge(id uint64, delta int64)
	RecordHistogram(id, v uint64)
	RouteConfig() any
}

var _ Envoy = abi.Filter{}

// NewFilter implements abi.FilterConfig.
func (c *filterConfig) NewFilter(f abi.Filter) abi.HTTPFilter { return c.newFilter(f) }

func (c *filterConfig) newFilter(env Envoy) *filter {
	return &filter{env: env, cfg: c}
}

// Add implements ssestream.Recorder: the ABI updates a stat through the
// stream, so the filter is its own recorder and a stream keeps no table of
// counters.
func (f *filter) Add(id ssestream.StatID, delta int64) {
	stat := f.cfg.stats[id]
	switch {
	case f.gone || !stat.defined:
		// After stream-complete Envoy's side of the stream may be gone.
	case stat.kind == ssestream.KindGauge:
		f.env.AddGauge(stat.id, delta)
	case stat.kind == ssestream.KindHistogram:
		f.env.RecordHistogram(stat.id, uint64(max(delta, 0)))
	case delta > 0:
		f.env.IncrementCounter(stat.id, uint64(delta))
	}
}

// Counted implements ssestream.BodyCounts with what the C body hook
// counted.
func (f *filter) Counted() ssestream.Counted {
	c := f.env.BodyCounts()
	return ssestream.Counted{Events: c.Events, Bytes: c.Bytes, LastEventID: c.LastEventID, Timing: c.Timing}
}

// OnEventData implements abi.EventReader: an event the C body hook found
// for the extract rules in mask.
func (f *filter) OnEventData(mask uint32, data []byte, cut bool) {
	if f.stream != nil && !f.gone {
		f.stream.ExtractEvent(mask, data, cut)
	}
}

// filter translates the ABI's hooks into the stream's life
// (ssestream.Stream) and is its ssestream.Host. Envoy calls its hooks one at
// a time on the stream's worker thread, so it needs no locks.
//
// Every hook fails open (package abi recovers a panic and returns
// Continue), except that response headers fail closed for CORS: see
// OnResponseHeaders.
type filter struct {
	env    Envoy
	cfg    *filterConfig
	stream *ssestream.Stream
	rules  *abi.Rules // the extract rules of the stream's policy

	// gone: Envoy's side of the stream may no longer be called.
	gone bool
}

var (
	_ abi.HTTPFilter       = (*filter)(nil)
	_ ssestream.Recorder   = (*filter)(nil)
	_ ssestream.BodyCounts = (*filter)(nil)
	_ abi.EventReader      = (*filter)(nil)
)

// The status each request hook returns for the stream's answer. After a
// local reply a body hook must not buffer (StopNoBuffer).
var (
	headersStatus = [...]abi.Status{ssestream.Continue: abi.Continue, ssestream.Hold: abi.StopIteration, ssestream.SendReply: abi.StopIteration}
	bodyStatus    = [...]abi.Status{ssestream.Continue: abi.Continue, ssestream.Hold: abi.StopAndBuffer, ssestream.SendReply: abi.StopNoBuffer}
)

func (f *filter) OnRequestHeaders(endOfStream bool) abi.Status {
	var p *policy.Policy
	p, f.rules = f.cfg.policy, f.cfg.rules
	if rc, ok := f.env.RouteConfig().(*routeConfig); ok {
		p, f.rules = rc.policy, rc.rules
	}
	f.stream = ssestream.New(p, f, adapterName, f.cfg.now)
	return headersStatus[f.send(f.stream.OnRequestHeaders(requestHeaders{f.env}, endOfStream))]
}

func (f *filter) OnRequestBody(endOfStream bool) abi.Status {
	if f.stream == nil {
		return abi.Continue
	}
	return bodyStatus[f.send(f.stream.OnRequestBody(endOfStream))]
}

func (f *filter) OnRequestTrailers() abi.Status {
	if f.stream == nil {
		return abi.Continue
	}
	return headersStatus[f.send(f.stream.OnRequestTrailers())]
}

// send sends the stream's local reply, if the step says so.
func (f *filter) send(step ssestream.Step) ssestream.Action {
	if step.Action == ssestream.SendReply {
		headers := make([]abi.Header, len(step.Reply.Headers))
		for i, kv := range step.Reply.Headers {
			headers[i] = abi.Header{Key: kv.Key, Value: kv.Value}
		}
		f.env.SendResponse(step.Reply.Status, headers, step.Reply.Body, step.Reply.Details)
	}
	return step.Action
}

// OnResponseHeaders fails closed for CORS: should it panic half way, the
// upstream's own grant (access-control-allow-origin: *, credentials) could
// reach an origin the allow-list refuses, so a panic removes the grant
// headers before package abi logs it and lets the stream continue.
func (f *filter) OnResponseHeaders(endOfStream bool) abi.Status {
	if f.stream == nil {
		// A response without a request hook: an Envoy local reply sent
		// before our filter ran. Nothing to apply.
		return abi.Continue
	}
	defer func() {
		if r := recover(); r != nil {
			policy.RemoveGrant(responseHeaders{f.env})
			panic(fmt.Sprintf("%v (CORS grant headers removed)", r))
		}
	}()
	if f.stream.OnResponseHeaders(responseHeaders{f.env}, endOfStream) {
		route, _ := f.env.AttributeString(abi.AttributeRouteName)
		protocol, _ := f.env.AttributeString(abi.AttributeRequestProtocol)
		f.stream.CountedBy(f)
		f.env.CountBody(f.cfg.eventsStat())
		if f.stream.Extract() != nil {
			f.env.ReadEvents(f.rules)
		}
		f.stream.Open(ssestream.Info{Route: route, Protocol: protocol}, f)
	}
	return abi.Continue
}

func (f *filter) OnResponseTrailers() abi.Status {
	if f.stream != nil {
		f.stream.OnResponseEnd()
	}
	return abi.Continue
}

// OnStreamComplete runs before the access log, so the final counts and the
// closing line are in place when it is written.
func (f *filter) OnStreamComplete() {
	if f.stream != nil {
		f.stream.Finish(f)
	}
}

// OnDestroy is the backstop should a stream end without OnStreamComplete:
// the closed line is still written, but Envoy is not called (1.40 destroys
// a filter after its stream is gone), so the active-streams gauge keeps it.
func (f *filter) OnDestroy() {
	f.gone = true
	if f.stream != nil {
		f.stream.Finish(f)
	}
}

// SetMetadata implements ssestream.Host; nothing once Envoy's side is gone.
func (f *filter) SetMetadata(key string, value any) {
	if f.gone {
		return
	}
	switch v := value.(type) {
	case float64:
		f.env.SetMetadataNumber(policy.MetadataNamespace, key, v)
	case string:
		f.env.SetMetadataString(policy.MetadataNamespace, key, v)
	default:
		f.env.SetMetadataString(policy.MetadataNamespace, key, fmt.Sprint(v))
	}
}

// End implements ssestream.Host: the C body hook's end of the response
// and, where the ABI gives them (abi.EndKnown), Envoy's flags and details.
func (f *filter) End() ssestream.End {
	if f.gone {
		return ssestream.End{}
	}
	end := ssestream.End{UpstreamEnded: f.env.UpstreamEnded()}
	if abi.EndKnown {
		end.ResponseFlags, end.FlagsKnown = f.env.AttributeInt(abi.AttributeResponseFlags)
		end.Details, _ = f.env.AttributeString(abi.AttributeResponseCodeDetails)
	}
	return end
}

// logLevels are Envoy's levels for the policy's.
var logLevels = ssestream.Levels[abi.LogLevel]{abi.LogDebug, abi.LogInfo, abi.LogWarn, abi.LogError}

// Log implements ssestream.Host on Envoy's dynamic_modules log component.
func (f *filter) Log(level policy.Level, msg string) {
	f.cfg.log(logLevels.Of(level), msg)
}

// requestHeaders is the request header map as ssestream.HeaderGetter.
type requestHeaders struct{ env Envoy }

func (h requestHeaders) Get(key string) (string, bool) {
	return h.env.Header(abi.RequestHeaders, key)
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
