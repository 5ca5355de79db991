package sse

import (
	"strings"
	"testing"
	"time"
)

func TestSentCommentRoundTrips(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	wire := AppendSentComment(nil, at)
	var got int64
	var ok bool
	rd := NewReader(strings.NewReader(string(wire) + "id: 1\ndata: x\n\n"))
	rd.OnComment(func(text []byte) { got, ok = ParseSentComment(text) })
	if _, err := rd.Next(); err != nil {
		t.Fatal(err)
	}
	if !ok || got != at.UnixNano() {
		t.Errorf("stamp %d (%v), want %d from %q", got, ok, at.UnixNano(), wire)
	}
	if _, ok := ParseSentComment([]byte("heartbeat")); ok {
		t.Error("a heartbeat read as a stamp")
	}
}
