package stream

import (
	"fmt"
	"time"

	"example.com/sse-on-envoy/internal/routes"
)

// Defaults for zero Options.
const (
	DefaultRetry        = 3 * time.Second
	DefaultHeartbeat    = 15 * time.Second
	DefaultWriteTimeout = 10 * time.Second
)

// MaxHeartbeat is the longest heartbeat interval Validate accepts: half
// Envoy's idle timeout on the stream routes, so that one heartbeat late or
// lost on the way still leaves the stream alive at every hop.
const MaxHeartbeat = routes.StreamIdleTimeout / 2

// Options are the timing of every stream. Zero values take the defaults.
type Options struct {
	// Retry is the reconnect delay suggested to clients once per stream;
	// negative sends none.
	Retry time.Duration
	// Heartbeat is the interval of the keep-alive comments on a quiet
	// stream.
	Heartbeat time.Duration
	// WriteTimeout bounds each write to a client; the deadline is cleared
	// once the write is done. Zero takes DefaultWriteTimeout, or half the
	// heartbeat if that is not shorter than the heartbeat (see Validate).
	WriteTimeout time.Duration
	// Detached, when set, serves streams off their handlers' goroutines
	// (Run: HTTP/1.1 hijacked from net/http, HTTP/2 detached from
	// h2server); the server waits for them at shutdown. Nil serves every stream on its
	// handler's goroutine.
	Detached *Detached
}

// WithDefaults fills the zero fields.
func (o Options) WithDefaults() Options {
	if o.Retry == 0 {
		o.Retry = DefaultRetry
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = DefaultWriteTimeout
		if o.WriteTimeout >= o.Heartbeat {
			o.WriteTimeout = o.Heartbeat / 2
		}
	}
	return o
}

// Validate checks that the heartbeat and the write deadline fit together
// and fit Envoy's idle timeout. The heartbeat must come often enough for
// every idle timeout in the path, and a write must give up before the next
// heartbeat is due: a client that has not taken one heartbeat in a whole
// interval is not reading, and a deadline outliving the interval would let
// it hold its stream (and its queue) a second interval for nothing.
// The error is an *OptionError.
func (o Options) Validate() error {
	o = o.WithDefaults()
	if o.Heartbeat > MaxHeartbeat {
		return &OptionError{"heartbeat", fmt.Sprintf("%v is longer than %v, half Envoy's route idle_timeout (%v): quiet streams would be cut",
			o.Heartbeat, MaxHeartbeat, routes.StreamIdleTimeout)}
	}
	if o.WriteTimeout >= o.Heartbeat {
		return &OptionError{"write-timeout", fmt.Sprintf("%v must be shorter than the heartbeat (%v): a write blocked for a whole heartbeat interval means the client is not reading",
			o.WriteTimeout, o.Heartbeat)}
	}
	return nil
}

// OptionError is an Options field that does not fit, named as the
// upstream's flag for it is (heartbeat, write-timeout).
type OptionError struct {
	Option, Reason string
}

func (e *OptionError) Error() string { return e.Option + " " + e.Reason }

// Timeouts of the calls a stream or a publish makes to the shared event
// log: one set, for the seed stream and the Mercure hub alike. A call that
// takes longer fails, and the client is told to come back (an empty 200
// with retry, or a 503 for a publisher) rather than left waiting.
const (
	// LogLookupTimeout bounds the small reads that decide a replay: the
	// log's bounds, the position of a Last-Event-ID.
	LogLookupTimeout = 2 * time.Second
	// LogReadTimeout bounds one read of a replay's events (at most
	// ReplayChunk of them).
	LogReadTimeout = 5 * time.Second
	// LogPublishTimeout bounds one store: an event the log cannot take in
	// time is skipped (a tick) or refused with 503 (a Mercure publish).
	LogPublishTimeout = 5 * time.Second
	// ReplayChunk bounds how many stored events one replay read brings
	// into memory; a long replay is several reads.
	ReplayChunk = 64
)
