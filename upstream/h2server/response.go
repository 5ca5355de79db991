package h2server

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// bufferSize is what a response buffers between flushes: the buffer is
// taken at the first Write and given back at each flush, so that a quiet
// stream holds none.
const bufferSize = 4 << 10

var buffers = sync.Pool{New: func() any { b := make([]byte, 0, bufferSize); return &b }}

// responseWriter is a handler's http.ResponseWriter. It also answers
// http.ResponseController (Flush, SetWriteDeadline) and Detach.
type responseWriter struct {
	s        *stream
	req      *http.Request
	header   http.Header
	status   int // 0 until the handler (or its first write) decides it
	sent     bool
	buf      *[]byte
	deadline time.Time
	detached bool
	err      error // the first failed write: every later one fails too
}

func (w *responseWriter) Header() http.Header { return w.header }

func (w *responseWriter) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if w.status != 0 || code < 200 {
		return // informational answers are not sent; a second status is moot
	}
	w.status = code
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.req.Method == http.MethodHead {
		return len(p), nil
	}
	if w.err != nil {
		return 0, w.err
	}
	if w.buf == nil {
		w.buf = buffers.Get().(*[]byte)
	}
	*w.buf = append(*w.buf, p...)
	if len(*w.buf) >= bufferSize {
		if err := w.FlushError(); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (w *responseWriter) WriteString(s string) (int, error) {
	// Through a []byte: Write buffers it, the conversion does not escape.
	return w.Write([]byte(s))
}

func (w *responseWriter) Flush() { _ = w.FlushError() }

// FlushError sends the headers if not yet sent and what is buffered.
func (w *responseWriter) FlushError() error {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	return w.flush(false)
}

// SetWriteDeadline bounds the writes that follow (zero: no bound).
func (w *responseWriter) SetWriteDeadline(t time.Time) error {
	w.deadline = t
	return nil
}

// flush writes the headers if not yet written and the buffer, ending the
// stream if end.
func (w *responseWriter) flush(end bool) error {
	if w.err != nil {
		return w.err
	}
	var data []byte
	if w.buf != nil {
		data = *w.buf
	}
	if !w.sent {
		w.sent = true
		headersEnd := end && len(data) == 0
		if err := w.s.c.writeHeaders(w.s, w.fields(data, end), headersEnd); err != nil {
			w.err = err
			return err
		}
		if headersEnd {
			return nil
		}
	}
	if len(data) > 0 || end {
		if err := w.s.c.sendData(w.s, data, end, w.deadline); err != nil {
			w.err = err
			return err
		}
	}
	if w.buf != nil {
		*w.buf = (*w.buf)[:0]
		buffers.Put(w.buf)
		w.buf = nil
	}
	return nil
}

// fields are the response's header fields, with what net/http adds: a
// Date, a sniffed Content-Type, and a Content-Length when the whole body
// is known (complete).
func (w *responseWriter) fields(body []byte, complete bool) []hpack.HeaderField {
	h := w.header
	fields := make([]hpack.HeaderField, 0, len(h)+4)
	fields = append(fields, hpack.HeaderField{Name: ":status", Value: strconv.Itoa(w.status)})
	for k, vs := range h {
		if isConnectionHeader(k) || strings.HasPrefix(k, http.TrailerPrefix) || k == "Trailer" {
			continue
		}
		name := strings.ToLower(k)
		for _, v := range vs {
			fields = append(fields, hpack.HeaderField{Name: name, Value: v})
		}
	}
	if _, ok := h["Date"]; !ok {
		fields = append(fields, hpack.HeaderField{Name: "date", Value: time.Now().UTC().Format(http.TimeFormat)})
	}
	if bodyAllowed(w.status) {
		if _, ok := h["Content-Type"]; !ok && len(body) > 0 {
			fields = append(fields, hpack.HeaderField{Name: "content-type", Value: http.DetectContentType(body)})
		}
		if _, ok := h["Content-Length"]; !ok && complete && w.req.Method != http.MethodHead {
			fields = append(fields, hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
		}
	}
	return fields
}

// finish ends the response when its handler returns.
func (w *responseWriter) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	s := w.s
	if err := w.flush(true); err != nil {
		if s.ctx.Err() == nil { // not reset by the client already
			s.c.resetStream(s.id, http2.ErrCodeCancel)
		}
		return
	}
	if s.body != nil {
		s.body.mu.Lock()
		unread := s.body.err == nil
		s.body.mu.Unlock()
		if unread {
			// The response is complete; the client need not send the
			// rest of its request (RFC 9113, 8.1).
			s.c.resetStream(s.id, http2.ErrCodeNo)
			return
		}
	}
	s.c.endStream(s)
}

// Detach sends the response's headers (200 unless the handler chose
// another status) with what it wrote so far, within deadline, and hands the stream to the
// caller: when the handler returns, the stream stays open, and the
// caller writes it through the Stream returned until it ends it. Its
// handler's goroutine and buffer are then free.
func (w *responseWriter) Detach(deadline time.Time) (*Stream, error) {
	w.deadline = deadline
	if err := w.FlushError(); err != nil {
		return nil, err
	}
	w.detached = true
	return (*Stream)(w.s), nil
}

// Stream is a detached response: its writes are flushed DATA frames.
type Stream stream

// Write sends p, waiting for the client's flow-control window until
// deadline (zero: no bound). An error is final; one that is a deadline
// matches os.ErrDeadlineExceeded.
func (st *Stream) Write(p []byte, deadline time.Time) error {
	s := (*stream)(st)
	if len(p) == 0 {
		return nil
	}
	return s.c.sendData(s, p, false, deadline)
}

// Context ends when the stream is over: the client reset it, the
// connection ended, or End was called.
func (st *Stream) Context() context.Context { return st.ctx }

// End ends the stream: complete, as a response that is whole (END_STREAM,
// written within deadline); otherwise cut (RST_STREAM).
func (st *Stream) End(complete bool, deadline time.Time) {
	s := (*stream)(st)
	if s.ctx.Err() != nil {
		return // over already: reset by the client, or ended
	}
	if complete && s.c.sendData(s, nil, true, deadline) == nil {
		s.c.endStream(s)
		return
	}
	s.c.resetStream(s.id, http2.ErrCodeCancel)
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func isConnectionHeader(k string) bool {
	for _, h := range connectionHeaders {
		if k == h {
			return true
		}
	}
	return false
}

func stack() string { return string(debug.Stack()) }
