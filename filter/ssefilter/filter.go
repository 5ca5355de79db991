package ssefilter

import (
	"strconv"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
)

// adapterName is the tag header's value on streams this filter tagged.
const adapterName = "golang"

// metadataNamespace holds the stream's counts: %DYNAMIC_METADATA(sse:events)%.
const metadataNamespace = "sse"

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
		stream:    ssestream.New(cfg.policy, cfg.metrics, adapterName, nil),
	}
}

// filter runs every callback on the stream's worker thread, one at a time,
// so it needs no locks.
type filter struct {
	api.PassThroughStreamFilter

	callbacks     api.FilterCallbackHandler
	stream        *ssestream.Stream
	upstreamEnded bool
	finished      bool
	// pendingReply waits for the end of a request body: Envoy 1.37.1 can
	// crash when a local reply is sent while the client still sends one
	// (envoyproxy/envoy#44320). Browsers' preflights carry no body.
	pendingReply *policy.Reply
}

func (f *filter) DecodeHeaders(h api.RequestHeaderMap, endStream bool) api.StatusType {
	origin, hasOrigin := h.Get("origin")
	requestMethod, _ := h.Get("access-control-request-method")
	reply := f.stream.OnRequest(policy.Request{
		Method:                     h.Method(),
		Origin:                     origin,
		HasOrigin:                  hasOrigin,
		AccessControlRequestMethod: requestMethod,
	}, h.Path())
	switch {
	case reply == nil:
		return api.Continue
	case !endStream:
		// The body is dropped with the request; Envoy's buffer limit bounds it.
		f.pendingReply = reply
		return api.StopAndBuffer
	}
	return f.sendLocalReply(reply)
}

func (f *filter) DecodeData(_ api.BufferInstance, endStream bool) api.StatusType {
	switch {
	case f.pendingReply == nil:
		return api.Continue
	case !endStream:
		return api.StopAndBuffer
	}
	return f.sendLocalReply(f.pendingReply)
}

func (f *filter) DecodeTrailers(api.RequestTrailerMap) api.StatusType {
	if f.pendingReply == nil {
		return api.Continue
	}
	return f.sendLocalReply(f.pendingReply)
}

func (f *filter) sendLocalReply(reply *policy.Reply) api.StatusType {
	f.pendingReply = nil
	headers := make(map[string][]string, len(reply.Headers))
	for _, kv := range reply.Headers {
		headers[kv.Key] = append(headers[kv.Key], kv.Value)
	}
	f.callbacks.DecoderFilterCallbacks().SendLocalReply(reply.Status, reply.Body, headers, -1, reply.Details)
	return api.LocalReply
}

func (f *filter) EncodeHeaders(h api.ResponseHeaderMap, endStream bool) api.StatusType {
	if f.stream.OnResponseHeaders(h) {
		info := f.callbacks.StreamInfo()
		protocol, _ := info.Protocol()
		f.stream.Open(ssestream.Info{Route: info.GetRouteName(), Protocol: protocol}, f)
	}
	f.upstreamEnded = f.upstreamEnded || endStream
	return api.Continue
}

func (f *filter) EncodeData(buffer api.BufferInstance, endStream bool) api.StatusType {
	// Bytes() copies the chunk into Go: only SSE bodies pay for it.
	if f.stream.IsSSE() && buffer.Len() > 0 {
		f.stream.OnResponseData(buffer.Bytes())
	}
	f.upstreamEnded = f.upstreamEnded || endStream
	return api.Continue
}

func (f *filter) EncodeTrailers(api.ResponseTrailerMap) api.StatusType {
	f.upstreamEnded = true
	return api.Continue
}

// OnLogDownstreamPeriodic keeps the counts fresh in the periodic access-log
// entries of long streams (access_log_flush_interval).
func (f *filter) OnLogDownstreamPeriodic(api.RequestHeaderMap, api.RequestTrailerMap, api.ResponseHeaderMap, api.ResponseTrailerMap) {
	f.publishMetadata()
}

// OnStreamComplete runs before the access log, so the final counts and the
// closing line are in place when the log is written.
func (f *filter) OnStreamComplete() {
	f.finish()
}

// OnLog is the backstop should a stream end without OnStreamComplete.
func (f *filter) OnLog(api.RequestHeaderMap, api.RequestTrailerMap, api.ResponseHeaderMap, api.ResponseTrailerMap) {
	f.finish()
}

func (f *filter) finish() {
	if f.finished || !f.stream.IsSSE() {
		return
	}
	f.finished = true
	f.publishMetadata()
	end := ssestream.End{UpstreamEnded: f.upstreamEnded}
	if details, ok := f.callbacks.StreamInfo().ResponseCodeDetails(); ok {
		end.Details = details
	}
	if flags, err := f.callbacks.GetProperty("response.flags"); err == nil {
		if v, err := strconv.ParseUint(flags, 10, 64); err == nil {
			end.ResponseFlags, end.FlagsKnown = v, true
		}
	}
	f.stream.Finish(end, f)
}

func (f *filter) publishMetadata() {
	if !f.stream.IsSSE() {
		return
	}
	md := f.callbacks.StreamInfo().DynamicMetadata()
	for key, value := range f.stream.Summary().Metadata() {
		md.Set(metadataNamespace, key, value)
	}
}

// Log implements ssestream.Logger on Envoy's "golang" log component.
func (f *filter) Log(level policy.Level, msg string) {
	f.callbacks.Log(envoyLogLevel(level), msg)
}

func envoyLogLevel(l policy.Level) api.LogType {
	switch l {
	case policy.LevelDebug:
		return api.Debug
	case policy.LevelInfo:
		return api.Info
	case policy.LevelWarn:
		return api.Warn
	}
	return api.Error
}
