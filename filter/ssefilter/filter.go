package ssefilter

import (
	"fmt"
	"runtime/debug"
	"strconv"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
)

// adapterName is the tag header's value on streams this filter tagged.
const adapterName = "golang"

// Factory creates the filter for one HTTP stream.
func Factory(c interface{}, callbacks api.FilterCallbackHandler) api.StreamFilter {
	cfg, ok := c.(*config)
	if !ok {
		// Envoy only hands back what Parse returned; this guards a wrong
		// registration, without taking traffic down.
		callbacks.Log(api.Error, "sse: unexpected filter config type; passing traffic through untouched")
		return &api.PassThroughStreamFilter{}
	}
	if cfg.invalid != nil {
		return &invalidRouteFilter{callbacks: callbacks, config: cfg}
	}
	return &filter{
		callbacks: callbacks,
		stream:    ssestream.New(cfg.policy, cfg.metrics, adapterName, cfg.now),
	}
}

// filter translates the golang filter's callbacks into the stream's life
// (ssestream.Stream) and is its ssestream.Host. Envoy runs every callback on
// the stream's worker thread, one at a time, so it needs no locks.
//
// Every callback fails open, as the dynamic module's hooks do: Envoy's shim
// answers a panic with a 500, which an EventSource takes as final, so a
// panic under a callback is logged and the stream goes on without the
// filter. Response headers fail closed for CORS: see EncodeHeaders.
type filter struct {
	api.PassThroughStreamFilter

	callbacks api.FilterCallbackHandler
	stream    *ssestream.Stream
}

// decodeStatus is what each request callback returns for the stream's
// answer: a held reply buffers the request, a sent one is Envoy's LocalReply.
var decodeStatus = [...]api.StatusType{
	ssestream.Continue:  api.Continue,
	ssestream.Hold:      api.StopAndBuffer,
	ssestream.SendReply: api.LocalReply,
}

// failOpen, deferred by a callback, turns a panic into an error line and,
// for a callback that returns one, the status Continue.
func (f *filter) failOpen(callback string, status *api.StatusType) {
	if r := recover(); r != nil {
		f.logPanic(callback, r, "")
		if status != nil {
			*status = api.Continue
		}
	}
}

func (f *filter) logPanic(callback string, r any, done string) {
	f.callbacks.Log(api.Error, fmt.Sprintf("sse: panic in %s, failing open%s: %v\n%s", callback, done, r, debug.Stack()))
}

func (f *filter) DecodeHeaders(h api.RequestHeaderMap, endStream bool) (status api.StatusType) {
	defer f.failOpen("DecodeHeaders", &status)
	return f.decoded(f.stream.OnRequestHeaders(h, endStream))
}

func (f *filter) DecodeData(_ api.BufferInstance, endStream bool) (status api.StatusType) {
	defer f.failOpen("DecodeData", &status)
	return f.decoded(f.stream.OnRequestBody(endStream))
}

func (f *filter) DecodeTrailers(api.RequestTrailerMap) (status api.StatusType) {
	defer f.failOpen("DecodeTrailers", &status)
	return f.decoded(f.stream.OnRequestTrailers())
}

func (f *filter) decoded(step ssestream.Step) api.StatusType {
	if step.Action == ssestream.SendReply {
		headers := make(map[string][]string, len(step.Reply.Headers))
		for _, kv := range step.Reply.Headers {
			headers[kv.Key] = append(headers[kv.Key], kv.Value)
		}
		f.callbacks.DecoderFilterCallbacks().SendLocalReply(step.Reply.Status, step.Reply.Body, headers, -1, step.Reply.Details)
	}
	return decodeStatus[step.Action]
}

// EncodeHeaders fails closed for CORS: should it panic half way, the
// upstream's own grant (access-control-allow-origin: *, credentials) could
// reach an origin the allow-list refuses, so a panic removes the grant
// headers before the stream goes on. If the header map cannot even do that,
// the panic goes on to Envoy's shim, whose 500 is then the safe answer.
func (f *filter) EncodeHeaders(h api.ResponseHeaderMap, endStream bool) (status api.StatusType) {
	defer func() {
		if r := recover(); r != nil {
			policy.RemoveGrant(h)
			f.logPanic("EncodeHeaders", r, " (CORS grant headers removed)")
			status = api.Continue
		}
	}()
	if f.stream.OnResponseHeaders(h, endStream) {
		info := f.callbacks.StreamInfo()
		protocol, _ := info.Protocol()
		f.stream.Open(ssestream.Info{Route: info.GetRouteName(), Protocol: protocol}, f)
	}
	return api.Continue
}

func (f *filter) EncodeData(buffer api.BufferInstance, endStream bool) (status api.StatusType) {
	if !f.stream.IsSSE() {
		// Other responses only note their end, which cannot panic: they
		// pay one check per chunk, no copy and no recover.
		f.stream.OnResponseData(nil, endStream)
		return api.Continue
	}
	defer f.failOpen("EncodeData", &status)
	// Bytes() copies the chunk into Go: only SSE bodies pay for it.
	var chunk []byte
	if buffer.Len() > 0 {
		chunk = buffer.Bytes()
	}
	f.stream.OnResponseData(chunk, endStream)
	return api.Continue
}

func (f *filter) EncodeTrailers(api.ResponseTrailerMap) (status api.StatusType) {
	defer f.failOpen("EncodeTrailers", &status)
	f.stream.OnResponseEnd()
	return api.Continue
}

// OnLogDownstreamPeriodic keeps the counts fresh in the periodic access-log
// entries of long streams (access_log_flush_interval).
func (f *filter) OnLogDownstreamPeriodic(api.RequestHeaderMap, api.RequestTrailerMap, api.ResponseHeaderMap, api.ResponseTrailerMap) {
	defer f.failOpen("OnLogDownstreamPeriodic", nil)
	f.stream.PublishMetadata(f)
}

// OnStreamComplete runs before the access log, so the final counts and the
// closing line are in place when the log is written.
func (f *filter) OnStreamComplete() {
	defer f.failOpen("OnStreamComplete", nil)
	f.stream.Finish(f)
}

// OnLog is the backstop should a stream end without OnStreamComplete.
func (f *filter) OnLog(api.RequestHeaderMap, api.RequestTrailerMap, api.ResponseHeaderMap, api.ResponseTrailerMap) {
	defer f.failOpen("OnLog", nil)
	f.stream.Finish(f)
}

// SetMetadata implements ssestream.Host.
func (f *filter) SetMetadata(key string, value any) {
	f.callbacks.StreamInfo().DynamicMetadata().Set(policy.MetadataNamespace, key, value)
}

// End implements ssestream.Host: Envoy's response code details and flags.
func (f *filter) End() ssestream.End {
	var end ssestream.End
	if details, ok := f.callbacks.StreamInfo().ResponseCodeDetails(); ok {
		end.Details = details
	}
	if flags, err := f.callbacks.GetProperty("response.flags"); err == nil {
		if v, err := strconv.ParseUint(flags, 10, 64); err == nil {
			end.ResponseFlags, end.FlagsKnown = v, true
		}
	}
	return end
}

// logLevels are Envoy's levels for the policy's.
var logLevels = ssestream.Levels[api.LogType]{api.Debug, api.Info, api.Warn, api.Error}

// Log implements ssestream.Host on Envoy's "golang" log component.
func (f *filter) Log(level policy.Level, msg string) {
	f.callbacks.Log(logLevels.Of(level), msg)
}
