package h2server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

const (
	// prefaceTimeout bounds the client's preface and first SETTINGS.
	prefaceTimeout = 10 * time.Second
	// closeGrace is how long a connection that said GOAWAY and has no
	// stream left waits for the client to close it first: closing with
	// the client's frames unread would reset the connection and could
	// lose what was written last.
	closeGrace = time.Second
	// maxHeaderListSize is net/http's limit on a request's headers.
	maxHeaderListSize = http.DefaultMaxHeaderBytes
	// initialWindow is HTTP/2's default stream window, which we keep for
	// request bodies: a stream buffers at most this much unread.
	initialWindow = 65535
	maxWindow     = 1<<31 - 1
)

var (
	errConnClosed   = errors.New("h2server: connection closed")
	errStreamClosed = errors.New("h2server: stream closed")
)

// conn is one HTTP/2 connection. Frames are read on its serve goroutine
// and written on its writer's.
type conn struct {
	srv     *Server
	nc      net.Conn
	handler http.Handler
	baseCtx context.Context
	tls     *tls.ConnectionState
	remote  string
	fr      *http2.Framer

	// Frames are written by the connection's writer goroutine (writeLoop),
	// which owns bw, the framer's write side and the hpack encoder (whose
	// state the peer mirrors in the order header blocks are written). A
	// stream's goroutine never runs TLS: its stack stays small.
	bw    *bufio.Writer
	henc  *hpack.Encoder
	hbuf  bytes.Buffer
	wake  chan struct{} // a write is queued, or the connection closed
	qmu   sync.Mutex
	queue []writeReq
	qdone bool // the writer is gone: writes fail at once

	mu         sync.Mutex
	streams    map[uint32]*stream
	maxID      uint32 // the highest stream id the client opened
	handlers   uint32 // handlers running (a detached stream's has returned)
	sendWindow int32  // what the connection may still send
	// peerWindow is the client's SETTINGS_INITIAL_WINDOW_SIZE: where a
	// new stream's send window starts.
	peerWindow int32
	maxFrame   uint32
	// windowGrew is closed (and replaced) when a send window grows or a
	// stream or the connection ends: what a writer waiting for window
	// waits on.
	windowGrew chan struct{}
	goingAway  bool
	closed     bool
	idle       *time.Timer
}

func newConn(s *Server, nc net.Conn, h http.Handler) *conn {
	c := &conn{
		srv:        s,
		nc:         nc,
		handler:    h,
		baseCtx:    context.Background(),
		remote:     nc.RemoteAddr().String(),
		wake:       make(chan struct{}, 1),
		streams:    map[uint32]*stream{},
		sendWindow: initialWindow,
		peerWindow: initialWindow,
		maxFrame:   16384,
		windowGrew: make(chan struct{}),
	}
	if b, ok := h.(interface{ BaseContext() context.Context }); ok {
		c.baseCtx = b.BaseContext()
	}
	if tc, ok := nc.(*tls.Conn); ok {
		st := tc.ConnectionState()
		c.tls = &st
	}
	c.bw = bufio.NewWriterSize(nc, 4<<10)
	c.fr = http2.NewFramer(c.bw, nc)
	c.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	c.fr.MaxHeaderListSize = maxHeaderListSize
	c.henc = hpack.NewEncoder(&c.hbuf)
	return c
}

// serve reads the connection until it ends, then ends every stream.
func (c *conn) serve() {
	defer c.close()
	defer func() {
		if v := recover(); v != nil {
			c.srv.logger().Error("h2server: connection panicked", "remote", c.remote, "panic", v, "stack", string(debug.Stack()))
		}
	}()
	go c.writeLoop()
	if err := c.handshake(); err != nil {
		c.srv.logger().Debug("h2server: handshake failed", "remote", c.remote, "err", err)
		return
	}
	for {
		f, err := c.fr.ReadFrame()
		if err == nil {
			err = c.handle(f)
		}
		var se http2.StreamError
		var ce http2.ConnectionError
		switch {
		case err == nil:
		case errors.As(err, &se):
			c.resetStream(se.StreamID, se.Code)
		case errors.As(err, &ce):
			c.srv.logger().Debug("h2server: protocol error", "remote", c.remote, "code", http2.ErrCode(ce).String(), "detail", c.fr.ErrorDetail())
			c.writeGoAway(http2.ErrCode(ce))
			return
		default:
			return // the client closed, or the connection failed
		}
	}
}

func (c *conn) handshake() error {
	_ = c.nc.SetReadDeadline(time.Now().Add(prefaceTimeout))
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c.nc, preface); err != nil {
		return fmt.Errorf("reading the preface: %w", err)
	}
	if string(preface) != http2.ClientPreface {
		return errors.New("not an HTTP/2 preface")
	}
	err := c.write(nil, func() error {
		return c.fr.WriteSettings(
			http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: c.srv.maxStreams()},
			http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: maxHeaderListSize},
		)
	})
	if err != nil {
		return err
	}
	f, err := c.fr.ReadFrame()
	if err != nil {
		return fmt.Errorf("reading the first SETTINGS: %w", err)
	}
	sf, ok := f.(*http2.SettingsFrame)
	if !ok || sf.IsAck() {
		c.writeGoAway(http2.ErrCodeProtocol)
		return fmt.Errorf("first frame is %v, not SETTINGS", f.Header().Type)
	}
	_ = c.nc.SetReadDeadline(time.Time{})
	return c.handleSettings(sf)
}

// handle acts on one frame from the client.
func (c *conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.MetaHeadersFrame:
		return c.handleHeaders(f)
	case *http2.DataFrame:
		return c.handleData(f)
	case *http2.SettingsFrame:
		if f.IsAck() {
			return nil
		}
		return c.handleSettings(f)
	case *http2.WindowUpdateFrame:
		return c.handleWindowUpdate(f)
	case *http2.PingFrame:
		if f.IsAck() {
			return nil
		}
		return c.write(nil, func() error { return c.fr.WritePing(true, f.Data) })
	case *http2.RSTStreamFrame:
		c.mu.Lock()
		s, idle := c.streams[f.StreamID], f.StreamID > c.maxID
		c.mu.Unlock()
		if idle {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		if s != nil {
			c.endStream(s)
		}
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	// GOAWAY: we open no streams, so there is nothing to stop. PRIORITY
	// and unknown frames are ignored, as the spec allows.
	return nil
}

func (c *conn) handleSettings(f *http2.SettingsFrame) error {
	err := f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			if s.Val > maxWindow {
				return http2.ConnectionError(http2.ErrCodeFlowControl)
			}
			c.mu.Lock()
			defer c.mu.Unlock()
			delta := int64(s.Val) - int64(c.peerWindow)
			for _, st := range c.streams {
				w := int64(st.sendWindow) + delta
				if w > maxWindow {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
				st.sendWindow = int32(w)
			}
			c.peerWindow = int32(s.Val)
			c.windowChanged()
		case http2.SettingMaxFrameSize:
			if s.Val < 1<<14 || s.Val > 1<<24-1 {
				return http2.ConnectionError(http2.ErrCodeProtocol)
			}
			c.mu.Lock()
			c.maxFrame = s.Val
			c.mu.Unlock()
		case http2.SettingHeaderTableSize:
			return c.write(nil, func() error {
				c.henc.SetMaxDynamicTableSizeLimit(s.Val)
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	return c.write(nil, c.fr.WriteSettingsAck)
}

func (c *conn) handleWindowUpdate(f *http2.WindowUpdateFrame) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f.StreamID == 0 {
		w := int64(c.sendWindow) + int64(f.Increment)
		if w > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		c.sendWindow = int32(w)
		c.windowChanged()
		return nil
	}
	s := c.streams[f.StreamID]
	if s == nil {
		if f.StreamID > c.maxID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		return nil // a stream that ended: its updates may still come
	}
	w := int64(s.sendWindow) + int64(f.Increment)
	if w > maxWindow {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeFlowControl}
	}
	s.sendWindow = int32(w)
	c.windowChanged()
	return nil
}

// windowChanged wakes every writer waiting for window. c.mu is held.
func (c *conn) windowChanged() {
	close(c.windowGrew)
	c.windowGrew = make(chan struct{})
}

func (c *conn) handleData(f *http2.DataFrame) error {
	n := f.Header().Length // padding included: it counts against the window
	if n > 0 {
		// The connection's window is returned at once: what a stream may
		// buffer is bounded by its own window.
		if err := c.write(nil, func() error { return c.fr.WriteWindowUpdate(0, n) }); err != nil {
			return err
		}
	}
	c.mu.Lock()
	s, idle := c.streams[f.StreamID], f.StreamID > c.maxID
	c.mu.Unlock()
	if idle {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if s == nil || s.body == nil {
		return http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeStreamClosed}
	}
	giveBack, err := s.body.receive(f.Data(), int(n), f.StreamEnded())
	if err != nil {
		return err
	}
	s.giveBack(giveBack)
	return nil
}

// sendData writes p on s as DATA frames within the windows, the last one
// ending the stream if end. It waits for the client's window until
// deadline (none if zero): a client that stops reading holds no more than
// its stream's window, then fails the write. It gives up if the stream
// ends meanwhile.
func (c *conn) sendData(s *stream, p []byte, end bool, deadline time.Time) error {
	for {
		n, err := c.reserve(s, len(p), deadline)
		if err != nil {
			return err
		}
		chunk := p[:n]
		p = p[n:]
		last := end && len(p) == 0
		if err := c.write(s.ctx.Done(), func() error { return c.fr.WriteData(s.id, last, chunk) }); err != nil {
			return err
		}
		if len(p) == 0 {
			return nil
		}
	}
}

// reserve takes up to want bytes of both send windows and of one frame,
// waiting until at least one is free. want 0 takes nothing at once.
func (c *conn) reserve(s *stream, want int, deadline time.Time) (int, error) {
	var timeout <-chan time.Time
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, errConnClosed
		}
		if s.ended {
			c.mu.Unlock()
			return 0, errStreamClosed
		}
		n := min(int64(want), int64(s.sendWindow), int64(c.sendWindow), int64(c.maxFrame))
		if want == 0 || n > 0 {
			s.sendWindow -= int32(n)
			c.sendWindow -= int32(n)
			c.mu.Unlock()
			return int(n), nil
		}
		grew := c.windowGrew
		c.mu.Unlock()
		if timeout == nil && !deadline.IsZero() {
			t := time.NewTimer(time.Until(deadline))
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-grew:
		case <-timeout:
			return 0, fmt.Errorf("h2server: waiting for the client's flow-control window: %w", os.ErrDeadlineExceeded)
		}
	}
}

type writeReq struct {
	fn   func() error
	done chan error
}

// dones are writeReq's channels: a write that was waited for to the end
// gives its channel back.
var dones = sync.Pool{New: func() any { return make(chan error, 1) }}

// write hands fn, which writes frames, to the connection's writer and
// waits until they are flushed, or until stop is closed (fn may then still
// run, so what it reads must stay as it is). The wait needs no deadline of
// its own: the writer's is the server's WriteTimeout, past which it closes
// the connection and every wait ends. A failed write closes the
// connection: a frame may be half written.
func (c *conn) write(stop <-chan struct{}, fn func() error) error {
	done := dones.Get().(chan error)
	c.qmu.Lock()
	if c.qdone {
		c.qmu.Unlock()
		dones.Put(done)
		return errConnClosed
	}
	c.queue = append(c.queue, writeReq{fn: fn, done: done})
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // already woken
	}
	select {
	case err := <-done:
		dones.Put(done)
		return err
	case <-stop:
		return errStreamClosed
	}
}

// writeLoop writes what is queued, a batch at a time with one flush (one
// TLS record when several streams write at once), until the connection
// closes.
func (c *conn) writeLoop() {
	var batch []writeReq
	var failed error
	for {
		c.qmu.Lock()
		batch, c.queue = c.queue, batch[:0]
		if failed != nil || len(batch) == 0 && c.closedForWrites() {
			c.qdone = true
		}
		done := c.qdone
		c.qmu.Unlock()
		if done {
			for _, r := range batch {
				r.done <- errConnClosed
			}
			return
		}
		if len(batch) == 0 {
			<-c.wake
			continue
		}
		if err := c.writeBatch(batch); err != nil {
			failed = fmt.Errorf("h2server: writing to %s: %w", c.remote, err)
			_ = c.nc.Close()
		}
		for i, r := range batch {
			r.done <- failed
			batch[i] = writeReq{}
		}
	}
}

// writeBatch writes and flushes a batch. A panic (a bug of ours) is an
// error: it must not end the process, nor leave the batch's writers
// waiting.
func (c *conn) writeBatch(batch []writeReq) (err error) {
	defer func() {
		if v := recover(); v != nil {
			c.srv.logger().Error("h2server: writer panicked", "remote", c.remote, "panic", v, "stack", stack())
			err = fmt.Errorf("panic: %v", v)
		}
	}()
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.writeTimeout()))
	for _, r := range batch {
		if err = r.fn(); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

func (c *conn) closedForWrites() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// writeHeaders writes a HEADERS frame (and CONTINUATIONs) for fields.
func (c *conn) writeHeaders(s *stream, fields []hpack.HeaderField, end bool) error {
	c.mu.Lock()
	maxFrame := int(c.maxFrame)
	c.mu.Unlock()
	return c.write(s.ctx.Done(), func() error {
		c.hbuf.Reset()
		for _, f := range fields {
			if err := c.henc.WriteField(f); err != nil {
				return err
			}
		}
		block := c.hbuf.Bytes()
		first := block[:min(len(block), maxFrame)]
		rest := block[len(first):]
		err := c.fr.WriteHeaders(http2.HeadersFrameParam{
			StreamID: s.id, BlockFragment: first, EndStream: end, EndHeaders: len(rest) == 0,
		})
		for err == nil && len(rest) > 0 {
			frag := rest[:min(len(rest), maxFrame)]
			rest = rest[len(frag):]
			err = c.fr.WriteContinuation(s.id, len(rest) == 0, frag)
		}
		return err
	})
}

// resetStream tells the client a stream is over (RST_STREAM) and ends it.
func (c *conn) resetStream(id uint32, code http2.ErrCode) {
	_ = c.write(nil, func() error { return c.fr.WriteRSTStream(id, code) })
	c.mu.Lock()
	s := c.streams[id]
	c.mu.Unlock()
	if s != nil {
		c.endStream(s)
	}
}

// endStream forgets s and wakes whatever waits on it. A connection left
// with no stream closes if it said GOAWAY, or starts its idle timer.
func (c *conn) endStream(s *stream) {
	c.mu.Lock()
	if s.ended {
		c.mu.Unlock()
		return
	}
	s.ended = true
	delete(c.streams, s.id)
	last := len(c.streams) == 0
	goingAway := c.goingAway
	c.windowChanged()
	if last && !goingAway && c.srv.IdleTimeout > 0 && !c.closed {
		c.idle = time.AfterFunc(c.srv.IdleTimeout, c.idleTimeout)
	}
	c.mu.Unlock()
	s.cancel()
	if s.body != nil {
		s.body.fail(errStreamClosed)
	}
	if last && goingAway {
		time.AfterFunc(closeGrace, func() { _ = c.nc.Close() })
	}
}

func (c *conn) idleTimeout() {
	c.mu.Lock()
	idle := len(c.streams) == 0 && !c.goingAway
	c.mu.Unlock()
	if idle {
		c.goAway()
	}
}

// goAway tells the client that no new stream is taken here; the
// connection closes once its streams have ended.
func (c *conn) goAway() {
	c.mu.Lock()
	if c.goingAway || c.closed {
		c.mu.Unlock()
		return
	}
	c.goingAway = true
	if c.idle != nil {
		c.idle.Stop()
	}
	none := len(c.streams) == 0
	c.mu.Unlock()
	c.writeGoAway(http2.ErrCodeNo)
	if none {
		time.AfterFunc(closeGrace, func() { _ = c.nc.Close() })
	}
}

func (c *conn) writeGoAway(code http2.ErrCode) {
	c.mu.Lock()
	last := c.maxID
	c.mu.Unlock()
	_ = c.write(nil, func() error { return c.fr.WriteGoAway(last, code, nil) })
}

// close ends every stream and closes the connection.
func (c *conn) close() {
	c.mu.Lock()
	c.closed = true
	if c.idle != nil {
		c.idle.Stop()
	}
	streams := make([]*stream, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	c.mu.Unlock()
	for _, s := range streams {
		c.endStream(s)
	}
	_ = c.nc.Close()
	select {
	case c.wake <- struct{}{}: // the writer sees closed, and ends
	default:
	}
}
