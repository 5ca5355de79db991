package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"example.com/sse-on-envoy/upstream/h2server"
)

// Detached serves streams off their handlers' goroutines. A quiet stream
// held by its handler keeps that goroutine, whose stack has grown while
// deciding the stream, and the server's buffers: about 28 KiB over
// HTTP/1.1 with net/http, 20 over HTTP/2. Taken from the server once its
// headers are decided, the same stream costs a fresh goroutine with a
// small stack and no buffer between writes: over HTTP/1.1 the connection
// is hijacked from net/http (plus a goroutine blocked in a read, to see
// the client go), over HTTP/2 the stream is detached from h2server's
// handler (docs/performance.md has the figures). Servers' Shutdown waits
// for neither: Wait does. Its zero value is not usable: NewDetached.
type Detached struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	outs    map[out]struct{}
	waiting bool // Wait was called: no stream joins any more
}

// out is a stream taken from its server: h2server's, or a hijacked
// HTTP/1.1 connection.
type out interface {
	// Write sends p (never empty: Writer keeps flushes from it) at once,
	// within deadline; an error is final.
	Write(p []byte, deadline time.Time) error
	// Context ends when the client goes or End is called.
	Context() context.Context
	// End ends the stream, complete (its client sees a whole response)
	// or cut. It may be called more than once.
	End(complete bool, deadline time.Time)
}

// NewDetached returns an empty Detached.
func NewDetached() *Detached { return &Detached{outs: map[out]struct{}{}} }

// Len is the number of detached streams being served.
func (d *Detached) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.outs)
}

// Wait waits until every detached stream has ended. Streams end when their
// source closes (the hubs, at shutdown); if ctx ends first, Wait closes
// the connections still open (a stream stuck in a write) and waits for
// their goroutines, which then end at once.
func (d *Detached) Wait(ctx context.Context) error {
	d.mu.Lock()
	d.waiting = true
	d.mu.Unlock()
	done := make(chan struct{})
	go func() {
		d.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	// Ended outside d.mu: an HTTP/2 stream's End waits for its
	// connection's writer, and the streams it ends call remove.
	d.mu.Lock()
	outs := make([]out, 0, len(d.outs))
	for o := range d.outs {
		outs = append(outs, o)
	}
	d.mu.Unlock()
	for _, o := range outs {
		o.End(false, time.Time{})
	}
	n := len(outs)
	<-done
	return fmt.Errorf("stream: %d detached streams cut at shutdown: %w", n, ctx.Err())
}

// add registers a stream; false once Wait was called (a stream that
// slipped in during shutdown), which must not start.
func (d *Detached) add(o out) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.waiting {
		return false
	}
	d.outs[o] = struct{}{}
	d.wg.Add(1)
	return true
}

func (d *Detached) remove(o out) {
	d.mu.Lock()
	delete(d.outs, o)
	d.mu.Unlock()
	d.wg.Done()
}

// EndPanic: the stream's own code panicked (a bug); its connection is
// closed, the process goes on.
const EndPanic = "panic"

// Run answers 200 with w's headers and serves s until something ends it,
// then calls end with how it went, once, from the goroutine that served
// it. With o.Detached set, the stream is taken from its server (an
// HTTP/2 stream of h2server's, an HTTP/1.1 connection of net/http's) and
// served by a goroutine of its own, and Run returns at once; otherwise it
// serves on the caller's goroutine, as Serve does.
func Run[T Item](w http.ResponseWriter, r *http.Request, s Session[T], o Options, log *slog.Logger, end func(Result)) {
	o = o.WithDefaults()
	// Not a request with a body (a GET may carry one): over HTTP/1.1 its
	// unread bytes would read as the client speaking, which ends a
	// detached stream; and nothing would read it.
	if o.Detached != nil && r.ContentLength == 0 {
		if out, err := detach(w, r, o.WriteTimeout); err == nil {
			serveDetached(o.Detached, out, s, o, log, end)
			return
		} else if !errors.Is(err, http.ErrNotSupported) {
			end(Result{End: EndWriteError})
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	end(Serve(r.Context(), NewWriter(w, o.WriteTimeout), s, o, log))
}

// detacher is h2server's ResponseWriter.
type detacher interface {
	Detach(deadline time.Time) (*h2server.Stream, error)
}

// detach sends the status and w's headers and takes the stream from its
// server; http.ErrNotSupported if the server cannot give it up.
func detach(w http.ResponseWriter, r *http.Request, timeout time.Duration) (out, error) {
	for rw := w; ; {
		if d, ok := rw.(detacher); ok {
			return d.Detach(time.Now().Add(timeout))
		}
		u, ok := rw.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		rw = u.Unwrap()
	}
	// HTTP/1.1 only: an HTTP/1.0 client knows no chunked encoding, and
	// net/http serves it without.
	if r.ProtoMajor != 1 || r.ProtoMinor != 1 {
		return nil, http.ErrNotSupported
	}
	conn, err := hijack(w, timeout)
	if err != nil {
		return nil, err
	}
	return newChunked(conn), nil
}

// hijack takes the connection from net/http and writes the status line
// and w's headers on it. The stream is chunked and closes the connection
// when it ends: nothing follows a stream on it.
func hijack(w http.ResponseWriter, timeout time.Duration) (net.Conn, error) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return nil, err
	}
	// Bytes net/http buffered beyond the request (a pipelined one) are
	// dropped with the bufio.ReadWriter: the connection closes after the
	// stream, so that request is never answered, as Connection: close says.
	h := w.Header()
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	h.Set("Transfer-Encoding", "chunked")
	h.Set("Connection", "close")
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 200 OK\r\n")
	_ = h.Write(&head) // a bytes.Buffer takes every write
	head.WriteString("\r\n")
	_ = conn.SetWriteDeadline(time.Now().Add(timeout))
	if _, err := conn.Write(head.Bytes()); err != nil {
		conn.Close()
		return nil, fmt.Errorf("stream: writing the headers: %w", err)
	}
	_ = conn.SetWriteDeadline(time.Time{})
	return conn, nil
}

// serveDetached runs the stream on a goroutine of its own. The request's
// context ends when the handler returns, so the stream has its own, the
// out's.
func serveDetached[T Item](d *Detached, o out, s Session[T], opts Options, log *slog.Logger, end func(Result)) {
	if !d.add(o) {
		// Shutting down: the client sees its stream cut and comes back
		// to another replica.
		o.End(false, time.Time{})
		end(Result{End: EndShutdown})
		return
	}
	go func() {
		defer d.remove(o)
		res := Result{End: EndPanic}
		defer func() {
			// The handler's server recovers its panics; this goroutine
			// is ours, and a panic here would end the process.
			if v := recover(); v != nil {
				log.Error("stream panicked", "panic", v, "stack", string(debug.Stack()))
			}
			// A whole response unless a write failed or the client left.
			complete := res.End != EndPanic && res.End != EndWriteError && res.End != EndWriteTimed && res.End != EndClientGone
			o.End(complete, time.Now().Add(opts.WriteTimeout))
			end(res)
		}()
		res = Serve(o.Context(), &Writer{out: o, timeout: opts.WriteTimeout}, s, opts, log)
	}()
}

// chunked is a hijacked HTTP/1.1 connection carrying one chunked stream.
type chunked struct {
	conn   net.Conn
	ctx    context.Context
	cancel context.CancelFunc
}

// newChunked watches conn with a blocked read: the client sends nothing
// more on it, so a read returns only when it goes (or speaks out of turn).
func newChunked(conn net.Conn) *chunked {
	c := &chunked{conn: conn}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go func() {
		var b [1]byte
		_, _ = conn.Read(b[:])
		c.cancel()
	}()
	return c
}

func (c *chunked) Context() context.Context { return c.ctx }

func (c *chunked) End(complete bool, deadline time.Time) {
	if complete {
		// The last chunk: the stream ended, not the connection.
		_ = c.writeRaw([]byte("0\r\n\r\n"), deadline)
	}
	_ = c.conn.Close()
	c.cancel()
}

// chunks are the buffers a detached stream frames one write in: shared,
// so that a quiet stream holds none.
var chunks = sync.Pool{New: func() any { return new([]byte) }}

// Write writes p as one HTTP/1.1 chunk, in one write to the connection.
func (c *chunked) Write(p []byte, deadline time.Time) error {
	bp := chunks.Get().(*[]byte)
	b := strconv.AppendInt((*bp)[:0], int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	b = append(b, "\r\n"...)
	err := c.writeRaw(b, deadline)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		chunks.Put(bp)
	}
	return err
}

// writeRaw writes b to the connection within deadline.
func (c *chunked) writeRaw(b []byte, deadline time.Time) error {
	if err := c.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if _, err := c.conn.Write(b); err != nil {
		return err
	}
	return c.conn.SetWriteDeadline(time.Time{})
}
