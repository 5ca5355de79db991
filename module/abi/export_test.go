package abi

import (
	"time"

	"example.com/sse-on-envoy/internal/sse"
)

// LiveHandles counts the objects Envoy holds handles to.
func LiveHandles() (configs, routes, streams int) {
	return filterConfigs.len(), routeConfigs.len(), filters.len()
}

// CScanner exposes ssescan.c to the tests of package abi_test.
type CScanner struct{ c *cScanner }

func NewCScanner() CScanner            { return CScanner{newCScanner()} }
func (s CScanner) Write(p []byte)      { s.c.write(p) }
func (s CScanner) Free()               { s.c.free() }
func (s CScanner) Events() uint64      { return s.c.eventCount() }
func (s CScanner) Comments() uint64    { return s.c.comments() }
func (s CScanner) Bytes() uint64       { return s.c.bytes() }
func (s CScanner) Truncations() uint64 { return s.c.truncations() }
func (s CScanner) LastEventID() string { return s.c.lastEventID() }

// Collect makes the scanner record its events; TakeEvents returns them.
func (s CScanner) Collect(maxLine, maxData int) { s.c.collect(maxLine, maxData) }
func (s CScanner) TakeEvents() []CEvent         { return s.c.takeEvents() }

// Observe and Timing are the C pace of the scanner's stream.
func (s CScanner) Observe(at time.Duration, events uint64) { s.c.observe(at, events) }
func (s CScanner) Timing() sse.Timing                      { return s.c.timing() }

// CScanMaxLine is the C scanner's line limit, as it reads it.
func CScanMaxLine() int { return cScanMaxLine() }

// StreamStateBytes is the size of a stream's C state before it grows.
const StreamStateBytes = streamStateBytes

// GoTimerSlack is slack.c's value.
func GoTimerSlack() time.Duration { return goTimerSlack() }
