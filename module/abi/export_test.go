package abi

// LiveHandles counts the objects Envoy holds handles to.
func LiveHandles() (configs, routes, streams int) {
	return filterConfigs.len(), routeConfigs.len(), filters.len()
}

// CScanner exposes ssescan.c to the tests of package abi_test.
type CScanner struct{ c *cScanner }

func NewCScanner() CScanner            { return CScanner{newCScanner()} }
func (s CScanner) Write(p []byte)      { s.c.write(p) }
func (s CScanner) Free()               { s.c.free() }
func (s CScanner) Events() uint64      { return s.c.events() }
func (s CScanner) Comments() uint64    { return s.c.comments() }
func (s CScanner) Bytes() uint64       { return s.c.bytes() }
func (s CScanner) Truncations() uint64 { return s.c.truncations() }
func (s CScanner) LastEventID() string { return s.c.lastEventID() }

// CScanMaxLine is the C scanner's line limit, as it reads it.
func CScanMaxLine() int { return cScanMaxLine() }

// StreamStateBytes is the size of a stream's C state before it grows.
const StreamStateBytes = streamStateBytes
