package ssemodule_test

import (
	"testing"

	"example.com/sse-on-envoy/module/abi"
	"example.com/sse-on-envoy/module/abi/fakeenvoy"
	"example.com/sse-on-envoy/module/ssemodule"
)

// BenchmarkResponseBodyHook is the per-chunk cost of an SSE stream in the
// module: a C caller (standing in for Envoy) calls the exported body hook,
// which is C (the Go runtime is not entered), reads the chunk through the
// ABI in place, counts the event and bumps the events counter through the
// ABI. One op is one chunk with one event.
// "rules": an OpenAI token chunk on a stream whose policy has envoy/'s
// extract rules, which the chunk fails (as all but one of a completion's).
func BenchmarkResponseBodyHook(b *testing.B) {
	for _, tc := range []struct{ name, config, chunk string }{
		{"seed", "", "id: 42\nevent: DAD_JOKE\ndata: What do you call a fish with no eyes? A fsh.\n\n"},
		{"rules", extractRules, tokenChunk},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := newCStream(b, tc.config)
			fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":method", "GET")
			fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":path", "/sse/events")
			fakeenvoy.RequestHeadersHook(h, true)
			fakeenvoy.SetHeader(fakeenvoy.ResponseHeaders, "content-type", "text/event-stream")
			fakeenvoy.ResponseHeadersHook(h, false)
			fakeenvoy.AddBody(tc.chunk)
			b.ReportAllocs()
			b.ResetTimer()
			if s := fakeenvoy.ResponseBodyHookN(h, b.N); s != int(abi.Continue) {
				b.Fatalf("status %d", s)
			}
			b.StopTimer()
			// Stat ids follow ssestream.Stats(): events is the third.
			if got := fakeenvoy.Stat(2); got != int64(b.N) {
				b.Fatalf("events counter %d after %d chunks", got, b.N)
			}
		})
	}
}

// extractRules are envoy/'s extract rules; tokenChunk is an OpenAI-style
// token chunk, which none of them reads.
const (
	extractRules = "extract: {rules: [{path: usage.total_tokens, key: total_tokens}, {path: usage.prompt_tokens, key: prompt_tokens}, {path: usage.completion_tokens, key: completion_tokens}, {event: message_delta, path: usage.output_tokens, key: output_tokens}]}"
	tokenChunk   = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764716000,"model":"dad-joke-1","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}` + "\n\n"
)

// BenchmarkTokenStream is one LLM completion through the module, hooks
// called from C as Envoy calls them: the request and response headers (Go),
// 80 token chunks, the usage chunk and [DONE] (C, the usage chunk also Go
// through the extract rules), the stream's end (Go: metadata, stats, the
// closed line). One op is one whole stream; ns/event divides by its 83
// events. "rules" is envoy/'s policy with its extract rules, "none" without.
func BenchmarkTokenStream(b *testing.B) {
	const token = tokenChunk
	const usage = `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1764716000,"model":"dad-joke-1","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":80,"total_tokens":84}}` + "\n\n"
	for _, tc := range []struct{ name, config string }{
		{"none", "stream_log_level: debug"},
		{"rules", "stream_log_level: debug\n" + extractRules},
	} {
		b.Run(tc.name, func(b *testing.B) {
			fakeenvoy.Reset()
			abi.Register(ssemodule.Module{})
			setStreamSettings(b)
			cfg := fakeenvoy.ConfigNew(tc.config)
			if cfg == 0 {
				b.Fatalf("config refused: %s", fakeenvoy.LastLog())
			}
			defer fakeenvoy.ConfigDestroy(cfg)
			fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":method", "POST")
			fakeenvoy.SetHeader(fakeenvoy.RequestHeaders, ":path", "/v1/chat/completions")
			fakeenvoy.SetHeader(fakeenvoy.ResponseHeaders, "content-type", "text/event-stream")
			b.ReportAllocs()
			for b.Loop() {
				h := fakeenvoy.FilterNew(cfg)
				fakeenvoy.RequestHeadersHook(h, true)
				fakeenvoy.ResponseHeadersHook(h, false)
				fakeenvoy.ClearBody()
				fakeenvoy.AddBody(token)
				fakeenvoy.ResponseBodyHookN(h, 80)
				fakeenvoy.ClearBody()
				fakeenvoy.AddBody(usage + "data: [DONE]\n\n")
				fakeenvoy.ResponseBodyHook(h, true)
				fakeenvoy.StreamComplete(h)
				fakeenvoy.Destroy(h)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/83, "ns/event")
		})
	}
}
