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
)

// Detached serves HTTP/1.1 streams off net/http's goroutines. A quiet
// HTTP/1.1 stream held by net/http keeps the connection's goroutine with
// its handler's stack, a second goroutine watching for the client to go,
// and 10 KiB of read and write buffers, about 28 KiB in all. Taken from
// net/http (Hijack) once its headers are decided, the same stream costs two
// fresh goroutines with small stacks (the stream's, and one blocked in a
// read to see the client go) and no buffer between writes
// (docs/performance.md has the figures). http.Server's
// Shutdown neither waits for hijacked connections nor closes them: Wait
// does. Its zero value is not usable: NewDetached.
type Detached struct {
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]struct{}
	waiting bool // Wait was called: no stream joins any more
}

// NewDetached returns an empty Detached.
func NewDetached() *Detached { return &Detached{conns: map[net.Conn]struct{}{}} }

// Len is the number of detached streams being served.
func (d *Detached) Len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
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
	d.mu.Lock()
	n := len(d.conns)
	for c := range d.conns {
		_ = c.Close()
	}
	d.mu.Unlock()
	<-done
	return fmt.Errorf("stream: %d detached streams cut at shutdown: %w", n, ctx.Err())
}

// add registers a stream's connection; false once Wait was called (a
// stream that slipped in during shutdown), which must not start.
func (d *Detached) add(c net.Conn) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.waiting {
		return false
	}
	d.conns[c] = struct{}{}
	d.wg.Add(1)
	return true
}

func (d *Detached) remove(c net.Conn) {
	d.mu.Lock()
	delete(d.conns, c)
	d.mu.Unlock()
	d.wg.Done()
}

// EndPanic: the stream's own code panicked (a bug); its connection is
// closed, the process goes on.
const EndPanic = "panic"

// Run answers 200 with w's headers and serves s until something ends it,
// then calls end with how it went, once, from the goroutine that served
// it. Over HTTP/1.1 with o.Detached set, the connection is taken from
// net/http and served by a goroutine of its own, and Run returns at once;
// otherwise (HTTP/2, or a ResponseWriter that cannot be hijacked) it serves
// on the caller's goroutine, as Serve does.
func Run[T Item](w http.ResponseWriter, r *http.Request, s Session[T], o Options, log *slog.Logger, end func(Result)) {
	o = o.WithDefaults()
	// HTTP/1.1 only: an HTTP/1.0 client knows no chunked encoding, and
	// net/http serves it without. Nor a request with a body (a GET may
	// carry one): its unread bytes on the connection would read as the
	// client speaking, which ends a detached stream.
	if o.Detached != nil && r.ProtoMajor == 1 && r.ProtoMinor == 1 && r.ContentLength == 0 {
		if conn, err := hijack(w, o.WriteTimeout); err == nil {
			serveDetached(o.Detached, conn, s, o, log, end)
			return
		} else if !errors.Is(err, http.ErrNotSupported) {
			end(Result{End: EndWriteError})
			return
		}
	}
	w.WriteHeader(http.StatusOK)
	end(Serve(r.Context(), NewWriter(w, o.WriteTimeout), s, o, log))
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
// context ends when the handler returns, so the stream has its own, which
// ends when the client closes the connection (or sends anything: nothing
// more is expected on it).
func serveDetached[T Item](d *Detached, conn net.Conn, s Session[T], o Options, log *slog.Logger, end func(Result)) {
	if !d.add(conn) {
		// Shutting down: the client sees its stream end and comes back
		// to another replica.
		_ = conn.Close()
		end(Result{End: EndShutdown})
		return
	}
	go func() {
		defer d.remove(conn)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			var b [1]byte
			_, _ = conn.Read(b[:])
			cancel()
		}()
		res := Result{End: EndPanic}
		defer func() {
			// net/http recovers a handler's panic; this goroutine is
			// ours, and a panic here would end the process.
			if v := recover(); v != nil {
				log.Error("stream panicked", "panic", v, "stack", string(debug.Stack()))
			}
			_ = conn.Close()
			end(res)
		}()
		w := &Writer{conn: conn, timeout: o.WriteTimeout}
		res = Serve(ctx, w, s, o, log)
		if res.End != EndWriteError && res.End != EndWriteTimed && res.End != EndClientGone {
			// The last chunk: the stream ended, not the connection.
			_ = w.writeRaw([]byte("0\r\n\r\n"))
		}
	}()
}

// chunks are the buffers a detached stream frames one write in: shared,
// so that a quiet stream holds none.
var chunks = sync.Pool{New: func() any { return new([]byte) }}

// writeChunk writes p as one HTTP/1.1 chunk, in one write to the
// connection.
func (w *Writer) writeChunk(p []byte) error {
	if len(p) == 0 {
		return nil // the headers are out already; nothing to flush
	}
	bp := chunks.Get().(*[]byte)
	b := strconv.AppendInt((*bp)[:0], int64(len(p)), 16)
	b = append(b, "\r\n"...)
	b = append(b, p...)
	b = append(b, "\r\n"...)
	err := w.writeRaw(b)
	if cap(b) <= 64<<10 {
		*bp = b[:0]
		chunks.Put(bp)
	}
	return err
}

// writeRaw writes b to the connection within the write timeout.
func (w *Writer) writeRaw(b []byte) error {
	if err := w.conn.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
		return err
	}
	if _, err := w.conn.Write(b); err != nil {
		return err
	}
	return w.conn.SetWriteDeadline(time.Time{})
}
