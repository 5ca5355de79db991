package sse

import (
	"bytes"
	"strconv"
	"time"
)

// Default limits for a Scanner whose limits are zero.
const (
	// DefaultMaxLineBytes keeps what a proxy needs of a line (the field name
	// and an id) while bounding the bytes held for a line split across chunks.
	DefaultMaxLineBytes = 4 << 10
	// DefaultMaxDataBytes bounds the data collected for one event.
	DefaultMaxDataBytes = 1 << 20
)

var utf8BOM = [3]byte{0xEF, 0xBB, 0xBF}

// Scanner parses an event stream incrementally, chunk by chunk, as the
// WHATWG rules say a client does: lines end at CRLF, LF or CR (also when
// split across chunks), one leading BOM is skipped, lines starting with ':'
// are comments, a blank line dispatches the event. An event cut off by the
// end of the stream is never counted.
//
// The zero value counts events; set OnEvent to also collect them. A Scanner
// holds at most MaxLineBytes of a line split across chunks (and MaxDataBytes
// of an event's data when collecting), whatever the stream sends: longer
// lines and data are truncated and counted in Truncations.
type Scanner struct {
	MaxLineBytes int
	MaxDataBytes int
	// MaxIDBytes bounds a kept id and event type; 0: MaxLineBytes. A proxy
	// that reads event data keeps whole data lines (MaxLineBytes) but still
	// only a short id.
	MaxIDBytes int
	// OnEvent, when set, receives every dispatched event.
	OnEvent func(Event)
	// OnEventData, when set, receives every dispatched event's type
	// ("message" when it has none) and data without copying them: the
	// slices are only valid during the call. cut says the data went past
	// MaxDataBytes and was cut. A proxy reading values out of events uses
	// it, so an event it does not want costs no allocation.
	OnEventData func(eventType, data []byte, cut bool)
	// OnComment, when set, receives the text of every comment line (after
	// the colon and one optional space), in stream order with OnEvent. The
	// slice is only valid during the call. A load client reads the
	// upstream's send-time stamp this way.
	OnComment func(text []byte)

	bomDone    bool
	bomMatched int
	pendingCR  bool // the previous chunk ended in CR: a leading LF completes it
	line       []byte
	lineCut    bool

	idBuf     []byte // the WHATWG "last event ID buffer": survives dispatch
	lastID    []byte
	hasData   bool
	data      []byte
	dataCut   bool
	eventType []byte
	retry     time.Duration
	// reconnect is the last retry field seen, event or not: clients apply it
	// at once (WHATWG), even from a stream that carries no event.
	reconnect time.Duration

	events      uint64
	comments    uint64
	bytes       uint64
	truncations uint64
}

// Events is the number of events dispatched so far (a blank line after at
// least one data field).
func (s *Scanner) Events() uint64 { return s.events }

// Comments is the number of comment lines (heartbeats, usually).
func (s *Scanner) Comments() uint64 { return s.comments }

// Bytes is the number of bytes written to the scanner.
func (s *Scanner) Bytes() uint64 { return s.bytes }

// Truncations counts lines or event data cut to the scanner's limits.
func (s *Scanner) Truncations() uint64 { return s.truncations }

// LastEventID is the id a reconnecting client would send as Last-Event-ID.
func (s *Scanner) LastEventID() string { return string(s.lastID) }

// Retry is the last retry field seen (0 if none): the reconnection delay a
// client applies from then on.
func (s *Scanner) Retry() time.Duration { return s.reconnect }

// BufferedBytes is the memory the scanner holds between chunks (its buffers'
// capacity), which its limits bound.
func (s *Scanner) BufferedBytes() int {
	return cap(s.line) + cap(s.idBuf) + cap(s.lastID) + cap(s.data) + cap(s.eventType)
}

// Write feeds the next chunk of the stream. It never fails and never keeps p.
func (s *Scanner) Write(p []byte) (int, error) {
	n := len(p)
	s.bytes += uint64(n)
	if !s.bomDone {
		p = s.skipBOM(p)
	}
	if s.pendingCR && len(p) > 0 {
		s.pendingCR = false
		if p[0] == '\n' {
			p = p[1:]
		}
	}
	s.scan(p)
	return n, nil
}

func (s *Scanner) skipBOM(p []byte) []byte {
	for len(p) > 0 {
		if p[0] != utf8BOM[s.bomMatched] {
			s.bomDone = true
			// The bytes that looked like a BOM were content after all.
			s.scan(utf8BOM[:s.bomMatched])
			return p
		}
		s.bomMatched++
		p = p[1:]
		if s.bomMatched == len(utf8BOM) {
			s.bomDone = true
			return p
		}
	}
	return p
}

// lineEnd is the index of the first CR or LF in p, -1 if none: two
// IndexByte scans (vectorized) rather than IndexAny's loop over every byte,
// as token chunks are one long data line each.
func lineEnd(p []byte) int {
	i := bytes.IndexByte(p, '\n')
	end := i
	if i < 0 {
		end = len(p)
	}
	if cr := bytes.IndexByte(p[:end], '\r'); cr >= 0 {
		return cr
	}
	return i
}

func (s *Scanner) scan(p []byte) {
	for len(p) > 0 {
		i := lineEnd(p)
		if i < 0 {
			s.holdPartialLine(p)
			return
		}
		line := p[:i]
		if len(s.line) > 0 || s.lineCut {
			s.holdPartialLine(line)
			line = s.line
		}
		s.processLine(line)
		s.line = s.line[:0]
		s.lineCut = false
		if p[i] == '\r' {
			if i+1 == len(p) {
				s.pendingCR = true
			} else if p[i+1] == '\n' {
				i++
			}
		}
		p = p[i+1:]
	}
}

func (s *Scanner) holdPartialLine(p []byte) {
	room := s.maxLine() - len(s.line)
	if len(p) > room {
		p = p[:max(room, 0)]
		if !s.lineCut {
			s.lineCut = true
			s.truncations++
		}
	}
	s.line = append(s.line, p...)
}

func (s *Scanner) processLine(line []byte) {
	if len(line) == 0 {
		s.dispatch()
		return
	}
	if line[0] == ':' {
		s.comments++
		if s.OnComment != nil {
			text := line[1:]
			if len(text) > 0 && text[0] == ' ' {
				text = text[1:]
			}
			s.OnComment(text)
		}
		return
	}
	name, value := line, []byte(nil)
	if i := bytes.IndexByte(line, ':'); i >= 0 {
		name, value = line[:i], line[i+1:]
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
	}
	switch string(name) {
	case "data":
		s.hasData = true
		if s.collecting() {
			s.appendData(value)
		}
	case "id":
		if bytes.IndexByte(value, 0) < 0 {
			s.idBuf = append(s.idBuf[:0], s.bounded(value)...)
		}
	case "event":
		if s.collecting() {
			s.eventType = append(s.eventType[:0], s.bounded(value)...)
		}
	case "retry":
		if ms, ok := parseDigits(value); ok {
			s.reconnect = time.Duration(ms) * time.Millisecond
			if s.collecting() {
				s.retry = s.reconnect
			}
		}
	}
}

// bounded cuts an id or event type to its limit before it is kept; a cut
// is counted once, here or where the line was held.
func (s *Scanner) bounded(value []byte) []byte {
	limit := s.maxID()
	if len(value) > limit && !s.lineCut {
		s.truncations++
	}
	return value[:min(len(value), limit)]
}

func (s *Scanner) appendData(value []byte) {
	room := s.maxData() - len(s.data)
	if len(value)+1 > room {
		if !s.dataCut {
			s.truncations++
		}
		s.dataCut = true
		s.data = append(s.data, value[:max(room, 0)]...)
		return
	}
	s.data = append(s.data, value...)
	s.data = append(s.data, '\n')
}

func (s *Scanner) dispatch() {
	s.lastID = append(s.lastID[:0], s.idBuf...)
	if !s.hasData {
		s.resetEvent()
		return
	}
	s.events++
	if s.collecting() {
		data := s.data
		if n := len(data); n > 0 && data[n-1] == '\n' {
			data = data[:n-1]
		}
		typ := s.eventType
		if len(typ) == 0 {
			typ = messageType
		}
		if s.OnEventData != nil {
			s.OnEventData(typ, data, s.dataCut)
		}
		if s.OnEvent != nil {
			s.OnEvent(Event{ID: string(s.lastID), Type: string(typ), Data: string(data), Retry: s.retry})
		}
	}
	s.resetEvent()
}

// messageType is an event's type when it has no event field.
var messageType = []byte("message")

func (s *Scanner) collecting() bool { return s.OnEvent != nil || s.OnEventData != nil }

func (s *Scanner) resetEvent() {
	s.hasData = false
	s.dataCut = false
	s.data = s.data[:0]
	s.eventType = s.eventType[:0]
	s.retry = 0
}

func (s *Scanner) maxLine() int {
	if s.MaxLineBytes > 0 {
		return s.MaxLineBytes
	}
	return DefaultMaxLineBytes
}

func (s *Scanner) maxID() int {
	if s.MaxIDBytes > 0 {
		return s.MaxIDBytes
	}
	return s.maxLine()
}

func (s *Scanner) maxData() int {
	if s.MaxDataBytes > 0 {
		return s.MaxDataBytes
	}
	return DefaultMaxDataBytes
}

// parseDigits accepts only ASCII digits, as the retry field requires.
func parseDigits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil || n > int64(time.Duration(1<<63-1)/time.Millisecond) {
		return 0, false
	}
	return n, true
}
