package sse

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// ErrTruncated reports an event whose data or a line exceeded the reader's limits.
var ErrTruncated = errors.New("sse: event exceeds the reader's size limits")

// Reader reads events from a client's side of a stream.
type Reader struct {
	src       io.Reader
	scan      Scanner
	buf       []byte
	queue     []item
	onComment func(text []byte)
	err       error
}

// item is a dispatched event or, when a comment hook is set, a comment,
// queued in stream order.
type item struct {
	event     Event
	comment   []byte
	isComment bool
}

// NewReader returns a Reader with the scanner's default limits.
func NewReader(r io.Reader) *Reader { return NewReaderSize(r, 32<<10) }

// NewReaderSize is NewReader reading size bytes at a time: a client holding
// thousands of streams keeps its memory down with a small size.
func NewReaderSize(r io.Reader, size int) *Reader {
	rd := &Reader{src: r, buf: make([]byte, max(size, 64))}
	rd.scan.MaxLineBytes = DefaultMaxDataBytes
	rd.scan.OnEvent = func(e Event) { rd.queue = append(rd.queue, item{event: e}) }
	return rd
}

// Next returns the next dispatched event. At the end of the stream it returns
// io.EOF (an event without its blank line is discarded, as browsers do).
func (r *Reader) Next() (Event, error) {
	for {
		for len(r.queue) > 0 {
			it := r.queue[0]
			r.queue = r.queue[1:]
			if !it.isComment {
				return it.event, nil
			}
			r.onComment(it.comment)
		}
		if r.err != nil {
			return Event{}, r.err
		}
		n, err := r.src.Read(r.buf)
		if n > 0 {
			before := r.scan.Truncations()
			r.scan.Write(r.buf[:n])
			if r.scan.Truncations() != before {
				// Handing out a cut event would lose data silently.
				r.queue = nil
				r.err = fmt.Errorf("after event id %q: %w", r.scan.LastEventID(), ErrTruncated)
				return Event{}, r.err
			}
		}
		if err != nil && r.err == nil {
			r.err = err
		}
	}
}

// OnComment makes fn receive the text of every comment line (see
// Scanner.OnComment), in stream order with the events: from within the Next
// call that returns the event following the comment, before it returns.
// A load client reads the upstream's send-time stamp of each event so.
func (r *Reader) OnComment(fn func(text []byte)) {
	r.onComment = fn
	r.scan.OnComment = func(text []byte) {
		r.queue = append(r.queue, item{comment: append([]byte(nil), text...), isComment: true})
	}
}

// Comments is the number of comment lines read so far.
func (r *Reader) Comments() uint64 { return r.scan.Comments() }

// Retry is the last retry field read (0 if none).
func (r *Reader) Retry() time.Duration { return r.scan.Retry() }

// LastEventID is the id a reconnecting client sends.
func (r *Reader) LastEventID() string { return r.scan.LastEventID() }
