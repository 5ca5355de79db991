package ssefilter

import (
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

func (f *filter) DecodeHeaders(h api.RequestHeaderMap, endStream bool) api.StatusType {
	return f.decoded(f.stream.OnRequestHeaders(h, endStream))
}

func (f *filter) DecodeData(_ api.BufferInstance, endStream bool) api.StatusType {
	return f.decoded(f.stream.OnRequestBody(endStream))
}

func (f *filter) DecodeTrailers(api.RequestTrailerMap) api.StatusType {
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

func (f *filter) EncodeHeaders(h api.ResponseHeaderMap, endStream bool) api.StatusType {
	if f.stream.OnResponseHeaders(h, endStream) {
		info := f.callbacks.StreamInfo()
		protocol, _ := info.Protocol()
		f.stream.Open(ssestream.Info{Route: info.GetRouteName(), Protocol: protocol}, f)
	}
	return api.Continue
}

func (f *filter) EncodeData(buffer api.BufferInstance, endStream bool) api.StatusType {
	// Bytes() copies the chunk into Go: only SSE bodies pay for it.
	var chunk []byte
	if f.stream.IsSSE() && buffer.Len() > 0 {
		chunk = buffer.Bytes()
	}
	f.stream.OnResponseData(chunk, endStream)
	return api.Continue
}

func (f *filter) EncodeTrailers(api.ResponseTrailerMap) api.StatusType {
	f.stream.OnResponseEnd()
	return api.Continue
}

// OnLogDownstreamPeriodic keeps the counts fresh in the periodic access-log
// entries of long streams (access_log_flush_interval).
func (f *filter) OnLogDownstreamPeriodic(api.RequestHeaderMap, api.RequestTrailerMap, api.ResponseHeaderMap, api.ResponseTrailerMap) {
	f.stream.PublishMetadata(f)
}

// OnStreamComplete runs before the access log, so the final counts and the
// closing line are in place when the log is written.
func (f *filter) OnStreamComplete() { f.stream.Finish(f) }

// OnLog is the backstop should a stream end without OnStreamComplete.
func (f *filter) OnLog(api.RequestHeaderMap, api.RequestTrailerMap, api.ResponseHeaderMap, api.ResponseTrailerMap) {
	f.stream.Finish(f)
}

// SetMetadata implements ssestream.Host.
func (f *filter) SetMetadata(key string, value any) {
	f.callbacks.StreamInfo().DynamicMetadata().Set(ssestream.MetadataNamespace, key, value)
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
