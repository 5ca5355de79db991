package policy

import "slices"

// The dynamic metadata a stream is tagged with: %DYNAMIC_METADATA(sse:events)%
// in an access log. The policy names them because its extract rules write
// keys of their own beside them (and may not take one of these);
// internal/ssestream writes them.
const (
	MetadataNamespace   = "sse"
	MetadataEvents      = "events"
	MetadataBytes       = "bytes"
	MetadataLastEventID = "last_event_id"
	MetadataProtocol    = "protocol"
	// The stream's timing (internal/sse.Pace), in milliseconds from the
	// request: first body byte, first complete event, the longest gap
	// between two events and two quantiles of the gaps; and the events per
	// second from the first event to the last.
	MetadataFirstByteMS   = "first_byte_ms"
	MetadataFirstEventMS  = "first_event_ms"
	MetadataMaxGapMS      = "max_gap_ms"
	MetadataGapP50MS      = "gap_p50_ms"
	MetadataGapP99MS      = "gap_p99_ms"
	MetadataEventsPerSec  = "events_per_second"
	MetadataExtractErrors = "extract_errors"
)

var builtinMetadataKeys = []string{
	MetadataEvents, MetadataBytes, MetadataLastEventID, MetadataProtocol,
	MetadataFirstByteMS, MetadataFirstEventMS, MetadataMaxGapMS, MetadataGapP50MS, MetadataGapP99MS,
	MetadataEventsPerSec, MetadataExtractErrors,
}

// IsBuiltinMetadataKey reports whether a stream writes key itself.
func IsBuiltinMetadataKey(key string) bool { return slices.Contains(builtinMetadataKeys, key) }
