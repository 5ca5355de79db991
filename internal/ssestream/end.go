package ssestream

import "strings"

// End describes how a stream ended, from what the adapter could observe.
type End struct {
	// UpstreamEnded: the upstream finished the response (end of stream seen).
	UpstreamEnded bool
	// ResponseFlags is Envoy's legacy response-flags bitmask (attribute
	// response.flags); FlagsKnown says whether the adapter could read it.
	ResponseFlags uint64
	FlagsKnown    bool
	// Details is Envoy's response code details, when known.
	Details string
}

// Envoy's legacy response-flag bits (the order of StreamInfo's
// CoreResponseFlag): UR, UC, DC, SI and DR.
const (
	flagUpstreamRemoteReset     = 0x10
	flagUpstreamConnTermination = 0x40
	flagDownstreamConnTerm      = 0x4000
	flagStreamIdleTimeout       = 0x10000
	flagDownstreamRemoteReset   = 0x10000000
)

// Reasons a stream ended, as they appear in logs (end=...).
const (
	ReasonUpstreamEnd   = "upstream_end"
	ReasonClientGone    = "client_gone"
	ReasonUpstreamReset = "upstream_reset"
	ReasonIdleTimeout   = "idle_timeout"
	ReasonReset         = "reset"
)

// Reason names how the stream ended: the upstream finished it, the client
// went away, the upstream reset it, an idle timeout fired, or Envoy reset it
// for another reason.
func (e End) Reason() string {
	switch {
	case e.UpstreamEnded:
		return ReasonUpstreamEnd
	case e.FlagsKnown && e.ResponseFlags&(flagDownstreamConnTerm|flagDownstreamRemoteReset) != 0,
		strings.Contains(e.Details, "downstream_remote_disconnect"),
		strings.Contains(e.Details, "downstream_remote_reset"):
		return ReasonClientGone
	case e.FlagsKnown && e.ResponseFlags&flagStreamIdleTimeout != 0,
		strings.Contains(e.Details, "idle_timeout"):
		return ReasonIdleTimeout
	case e.FlagsKnown && e.ResponseFlags&(flagUpstreamRemoteReset|flagUpstreamConnTermination) != 0,
		strings.HasPrefix(e.Details, "upstream_reset"):
		return ReasonUpstreamReset
	}
	return ReasonReset
}
