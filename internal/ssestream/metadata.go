package ssestream

// The dynamic metadata every adapter writes a stream's counts under:
// %DYNAMIC_METADATA(sse:events)% in an access log.
const (
	MetadataNamespace   = "sse"
	MetadataEvents      = "events"
	MetadataBytes       = "bytes"
	MetadataLastEventID = "last_event_id"
	MetadataProtocol    = "protocol"
)

// metadataDefs is each key with its value from a Summary; numbers are
// float64 as protobuf Struct wants them. A new key is a constant above and a
// line here: adapters write what Metadata returns, and the lifecycle table
// (lifecycletest) checks it through all three.
var metadataDefs = [...]struct {
	key   string
	value func(Summary) any
}{
	{MetadataEvents, func(s Summary) any { return float64(s.Events) }},
	{MetadataBytes, func(s Summary) any { return float64(s.Bytes) }},
	{MetadataLastEventID, func(s Summary) any { return s.LastEventID }},
	{MetadataProtocol, func(s Summary) any { return s.Protocol }},
}

// MetadataKeys lists the keys a stream's metadata has, in MetadataNamespace.
func MetadataKeys() []string {
	keys := make([]string, len(metadataDefs))
	for i, d := range metadataDefs {
		keys[i] = d.key
	}
	return keys
}

// Metadata is the Summary as the values of Envoy dynamic metadata (namespace
// MetadataNamespace), by key.
func (sum Summary) Metadata() map[string]any {
	m := make(map[string]any, len(metadataDefs))
	for _, d := range metadataDefs {
		m[d.key] = d.value(sum)
	}
	return m
}

// eachMetadata calls set for every key in MetadataKeys order.
func (sum Summary) eachMetadata(set func(key string, value any)) {
	for _, d := range metadataDefs {
		set(d.key, d.value(sum))
	}
}
