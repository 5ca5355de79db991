package sse

import (
	"bytes"
	"strconv"
	"time"
)

// SentComment is the prefix of the comment that stamps an event with its
// publish time, ": sent=<unix nanoseconds>", written right before the
// event's id line: the upstream writes it (with its stamp option) and the
// load tools read it to measure latency. Clients ignore it, as comments.
const SentComment = "sent="

// AppendSentComment appends the stamp comment for t, with its newline.
func AppendSentComment(dst []byte, t time.Time) []byte {
	dst = append(dst, ": "+SentComment...)
	dst = strconv.AppendInt(dst, t.UnixNano(), 10)
	return append(dst, '\n')
}

// ParseSentComment reads a stamp from a comment's text (what follows the
// colon and its space); ok is false for any other comment.
func ParseSentComment(text []byte) (unixNano int64, ok bool) {
	v, ok := bytes.CutPrefix(text, []byte(SentComment))
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}
