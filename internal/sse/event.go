package sse

import (
	"strconv"
	"strings"
	"time"
)

// Event is one server-sent event.
type Event struct {
	// ID becomes the client's last event ID. Empty means "no id line".
	ID string
	// Type is the event type; empty means the default type "message".
	Type string
	// Data may hold several lines; each becomes its own data line.
	Data string
	// Retry, when positive, tells the client how long to wait before reconnecting.
	Retry time.Duration
}

// AppendTo appends the wire form of e, ending with the blank line that makes
// the client dispatch it.
//
// CR, LF and NUL cannot be carried in an id or a type (they would end the
// line, or make clients ignore the id), so they are dropped there; in Data
// every line break starts a new data line, so multi-line data round-trips.
func (e Event) AppendTo(dst []byte) []byte {
	if e.ID != "" {
		dst = append(dst, "id: "...)
		dst = appendSingleLine(dst, e.ID)
		dst = append(dst, '\n')
	}
	if e.Type != "" {
		dst = append(dst, "event: "...)
		dst = appendSingleLine(dst, e.Type)
		dst = append(dst, '\n')
	}
	if e.Retry > 0 {
		dst = append(dst, "retry: "...)
		dst = strconv.AppendInt(dst, e.Retry.Milliseconds(), 10)
		dst = append(dst, '\n')
	}
	for line := range splitLines(e.Data) {
		dst = append(dst, "data: "...)
		dst = append(dst, line...)
		dst = append(dst, '\n')
	}
	return append(dst, '\n')
}

// AppendComment appends text as comment lines. Clients ignore comments; they
// exist to keep idle connections alive through proxies and load balancers.
func AppendComment(dst []byte, text string) []byte {
	for line := range splitLines(text) {
		dst = append(dst, ':')
		if line != "" {
			dst = append(dst, ' ')
			dst = append(dst, line...)
		}
		dst = append(dst, '\n')
	}
	return dst
}

// AppendRetry appends a retry field on its own. It takes effect on the client
// immediately and fires no event.
func AppendRetry(dst []byte, d time.Duration) []byte {
	dst = append(dst, "retry: "...)
	dst = strconv.AppendInt(dst, d.Milliseconds(), 10)
	return append(dst, '\n', '\n')
}

func appendSingleLine(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\r', '\n', 0:
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

// splitLines yields the lines of s split at CRLF, CR or LF, the line ends a
// client recognises. An empty s yields one empty line.
func splitLines(s string) func(yield func(string) bool) {
	return func(yield func(string) bool) {
		for {
			i := strings.IndexAny(s, "\r\n")
			if i < 0 {
				yield(s)
				return
			}
			if !yield(s[:i]) {
				return
			}
			if s[i] == '\r' && i+1 < len(s) && s[i+1] == '\n' {
				i++
			}
			s = s[i+1:]
		}
	}
}
