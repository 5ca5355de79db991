package stream

import (
	"errors"
	"net/http"
	"time"
)

// Writer writes one stream to its client. Each write is flushed at once
// and bounded by a deadline, which is cleared as soon as the write is
// done: a stalled client costs at most one timeout, and a quiet stream
// carries no deadline at all. The clearing matters on net/http's HTTP/2
// server, which resets the stream when a deadline passes even with no
// write pending.
type Writer struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	// noDeadline: the ResponseWriter cannot take one (a test recorder, a
	// wrapping middleware); streaming without is still better than failing.
	noDeadline bool
	// out, when set, is a detached stream (Run): each write goes to it,
	// w and rc are unused.
	out out
}

// NewWriter writes to w, each write bounded by timeout.
func NewWriter(w http.ResponseWriter, timeout time.Duration) *Writer {
	return &Writer{w: w, rc: http.NewResponseController(w), timeout: timeout}
}

// Write sends p (possibly empty: a flush) and flushes it.
func (w *Writer) Write(p []byte) error {
	if w.out != nil {
		if len(p) == 0 {
			return nil // the headers are out already; nothing to flush
		}
		return w.out.Write(p, time.Now().Add(w.timeout))
	}
	if !w.noDeadline {
		if err := w.rc.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
			if !errors.Is(err, http.ErrNotSupported) {
				return err
			}
			w.noDeadline = true
		}
	}
	if len(p) > 0 {
		if _, err := w.w.Write(p); err != nil {
			return err
		}
	}
	if err := w.rc.Flush(); err != nil {
		return err
	}
	if w.noDeadline {
		return nil
	}
	return w.rc.SetWriteDeadline(time.Time{})
}
