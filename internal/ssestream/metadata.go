package ssestream

import (
	"math"
	"time"

	"example.com/sse-on-envoy/internal/policy"
)

// metadataDefs is each of the stream's own keys (in policy.MetadataNamespace)
// with its value from a Summary: float64 for numbers, as protobuf Struct
// wants them; nil, and the key not written, when the stream has no value
// yet (no first event). A new key is a constant in policy (metadata.go) and
// a line here: adapters write what eachMetadata gives, and the lifecycle
// table (lifecycletest) checks it through all three.
var metadataDefs = [...]struct {
	key   string
	value func(Summary) any
}{
	{policy.MetadataEvents, func(s Summary) any { return float64(s.Events) }},
	{policy.MetadataBytes, func(s Summary) any { return float64(s.Bytes) }},
	{policy.MetadataLastEventID, func(s Summary) any { return s.LastEventID }},
	{policy.MetadataProtocol, func(s Summary) any { return s.Protocol }},
	{policy.MetadataFirstByteMS, func(s Summary) any { return msIf(s.Timing.HasFirstByte, s.Timing.FirstByte) }},
	{policy.MetadataFirstEventMS, func(s Summary) any { return msIf(s.Timing.HasFirstEvent, s.Timing.FirstEvent) }},
	{policy.MetadataMaxGapMS, func(s Summary) any { return msIf(s.Events > 1, s.Timing.MaxGap) }},
	{policy.MetadataGapP50MS, func(s Summary) any { return msIf(s.Events > 1, s.Timing.GapQuantile(0.5)) }},
	{policy.MetadataGapP99MS, func(s Summary) any { return msIf(s.Events > 1, s.Timing.GapQuantile(0.99)) }},
	{policy.MetadataEventsPerSec, func(s Summary) any { return s.eventsPerSecond() }},
	{policy.MetadataExtractErrors, func(s Summary) any { return countIf(s.extracting, s.ExtractErrors) }},
}

// MetadataKeys lists the keys a stream's metadata may have of its own, in
// policy.MetadataNamespace; extract rules add theirs.
func MetadataKeys() []string {
	keys := make([]string, len(metadataDefs))
	for i, d := range metadataDefs {
		keys[i] = d.key
	}
	return keys
}

// Metadata is the Summary as the values of Envoy dynamic metadata (namespace
// policy.MetadataNamespace), by key: the keys with a value.
func (sum Summary) Metadata() map[string]any {
	m := make(map[string]any, len(metadataDefs))
	sum.eachMetadata(func(k string, v any) { m[k] = v })
	return m
}

// eachMetadata calls set for every key with a value, in MetadataKeys order.
func (sum Summary) eachMetadata(set func(key string, value any)) {
	for _, d := range metadataDefs {
		if v := d.value(sum); v != nil {
			set(d.key, v)
		}
	}
}

// ms is a duration in milliseconds, to the microsecond.
func ms(d time.Duration) float64 { return math.Round(float64(d)/float64(time.Microsecond)) / 1000 }

func msIf(ok bool, d time.Duration) any {
	if !ok {
		return nil
	}
	return ms(d)
}

func countIf(ok bool, n uint64) any {
	if !ok {
		return nil
	}
	return float64(n)
}

// eventsPerSecond is the rate from the first event to the last: for a
// token stream, the tokens per second once they flow, whatever the wait for
// the first and the idle end.
func (sum Summary) eventsPerSecond() any {
	span := sum.Timing.LastEvent - sum.Timing.FirstEvent
	if sum.Events < 2 || span <= 0 {
		return nil
	}
	return math.Round(float64(sum.Events-1)/span.Seconds()*1000) / 1000
}
