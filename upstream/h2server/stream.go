package h2server

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/net/http2"
)

// stream is one request and its response. Its windows and ended are
// guarded by the connection's mu.
type stream struct {
	c      *conn
	id     uint32
	ctx    context.Context // ends with the stream
	cancel context.CancelFunc
	body   *requestBody // nil when the request came without one

	sendWindow int32
	ended      bool
}

// connectionHeaders are HTTP/1.1's hop-by-hop headers, which an HTTP/2
// message must not carry (RFC 9113, 8.2.2).
var connectionHeaders = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

func (c *conn) handleHeaders(f *http2.MetaHeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	c.mu.Lock()
	if s := c.streams[id]; s != nil {
		c.mu.Unlock()
		// Trailers: dropped (no handler here reads them), but they end
		// the request body.
		if !f.StreamEnded() || s.body == nil {
			return http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
		}
		_, err := s.body.receive(nil, 0, true)
		return err
	}
	if id <= c.maxID {
		c.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	}
	c.maxID = id
	// Handlers count too: a stream the client reset is gone from
	// c.streams at once, its handler not always. A client resetting
	// streams as fast as it opens them (the "rapid reset" attack) would
	// otherwise start handlers without bound.
	limit := c.srv.maxStreams()
	refuse := c.goingAway || uint32(len(c.streams)) >= limit || c.handlers >= limit
	c.mu.Unlock()
	if refuse {
		// The client may retry it elsewhere: nothing of it was served.
		return http2.StreamError{StreamID: id, Code: http2.ErrCodeRefusedStream}
	}
	req, err := c.newRequest(f)
	if err != nil {
		return err
	}
	s := &stream{c: c, id: id}
	s.ctx, s.cancel = context.WithCancel(c.baseCtx)
	if !f.StreamEnded() {
		s.body = &requestBody{s: s, declared: req.ContentLength, window: initialWindow}
		s.body.cond.L = &s.body.mu
		req.Body = s.body
	}
	handler := c.handler
	if f.Truncated {
		handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "request headers too large", http.StatusRequestHeaderFieldsTooLarge)
		})
	} else if req.Method == http.MethodConnect {
		handler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "CONNECT is not served here", http.StatusMethodNotAllowed)
		})
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.cancel()
		return errConnClosed
	}
	s.sendWindow = c.peerWindow
	c.streams[id] = s
	c.handlers++
	if c.idle != nil {
		c.idle.Stop()
	}
	c.mu.Unlock()
	go c.runHandler(s, handler, req.WithContext(s.ctx))
	return nil
}

// newRequest makes the handler's request from a HEADERS frame, or says
// why the stream is malformed.
func (c *conn) newRequest(f *http2.MetaHeadersFrame) (*http.Request, error) {
	malformed := http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeProtocol}
	method, path := f.PseudoValue("method"), f.PseudoValue("path")
	authority, scheme := f.PseudoValue("authority"), f.PseudoValue("scheme")
	if method == "" || (method != http.MethodConnect && (path == "" || scheme == "")) {
		return nil, malformed
	}
	header := make(http.Header, len(f.RegularFields()))
	for _, hf := range f.RegularFields() {
		k := http.CanonicalHeaderKey(hf.Name)
		header[k] = append(header[k], hf.Value)
	}
	for _, k := range connectionHeaders {
		if _, ok := header[k]; ok {
			return nil, malformed
		}
	}
	if te := header["Te"]; len(te) > 0 && (len(te) > 1 || te[0] != "trailers") {
		return nil, malformed
	}
	if cookies := header["Cookie"]; len(cookies) > 1 {
		// HTTP/2 may split one Cookie header into several (RFC 9113, 8.2.3).
		header["Cookie"] = []string{strings.Join(cookies, "; ")}
	}
	if authority == "" {
		authority = header.Get("Host")
	}
	req := &http.Request{
		Method:     method,
		Proto:      "HTTP/2.0",
		ProtoMajor: 2,
		Header:     header,
		Host:       authority,
		RequestURI: path,
		RemoteAddr: c.remote,
		TLS:        c.tls,
		Body:       http.NoBody,
	}
	if method == http.MethodConnect {
		req.URL = &url.URL{Host: authority}
	} else {
		u, err := url.ParseRequestURI(path)
		if err != nil {
			return nil, malformed
		}
		req.URL = u
	}
	if !f.StreamEnded() {
		req.ContentLength = -1
		if cl := header.Get("Content-Length"); cl != "" {
			n, err := strconv.ParseInt(cl, 10, 64)
			if err != nil || n < 0 {
				return nil, malformed
			}
			req.ContentLength = n
		}
	}
	return req, nil
}

func (c *conn) runHandler(s *stream, h http.Handler, req *http.Request) {
	w := &responseWriter{s: s, req: req, header: http.Header{}}
	defer func() {
		c.mu.Lock()
		c.handlers--
		c.mu.Unlock()
	}()
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler {
				c.srv.logger().Error("h2server: handler panicked", "remote", c.remote, "path", req.URL.Path, "panic", v, "stack", stack())
			}
			c.resetStream(s.id, http2.ErrCodeInternal)
			return
		}
		if !w.detached {
			w.finish()
		}
	}()
	h.ServeHTTP(w, req)
}

// requestBody is a request's body as its DATA frames arrive. What the
// handler reads is given back to the client as stream window.
type requestBody struct {
	s        *stream
	mu       sync.Mutex
	cond     sync.Cond
	buf      []byte
	err      error // io.EOF once the client ended the stream
	declared int64 // Content-Length, -1 if none
	received int64
	window   int // what the client may still send
	closed   bool
}

// receive takes a DATA frame's payload (n bytes of window with padding)
// and returns how much window to give back to the client at once.
func (b *requestBody) receive(p []byte, n int, end bool) (giveBack int, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	id := b.s.id
	if b.err != nil {
		return 0, http2.StreamError{StreamID: id, Code: http2.ErrCodeStreamClosed}
	}
	if n > b.window {
		return 0, http2.StreamError{StreamID: id, Code: http2.ErrCodeFlowControl}
	}
	b.received += int64(len(p))
	if b.declared >= 0 && (b.received > b.declared || end && b.received != b.declared) {
		return 0, http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol}
	}
	if end {
		b.err = io.EOF
		b.cond.Broadcast()
	}
	if b.closed {
		// The handler is done with the body: what comes is dropped, and
		// its window given back so that the client can finish.
		return n, nil
	}
	b.buf = append(b.buf, p...)
	b.window -= len(p)
	b.cond.Broadcast()
	return n - len(p), nil // the padding
}

// giveBack returns n bytes of window to the client, unless the stream
// is over (the client sends no more on it).
func (s *stream) giveBack(n int) {
	if n <= 0 {
		return
	}
	_ = s.c.write(s.ctx.Done(), func() error { return s.c.fr.WriteWindowUpdate(s.id, uint32(n)) })
}

func (b *requestBody) fail(err error) {
	b.mu.Lock()
	if b.err == nil {
		b.err = err
	}
	b.cond.Broadcast()
	b.mu.Unlock()
}

// Read reads what the client sent.
func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	for len(b.buf) == 0 && b.err == nil {
		b.cond.Wait()
	}
	if len(b.buf) == 0 {
		err := b.err
		b.mu.Unlock()
		return 0, err
	}
	n := copy(p, b.buf)
	b.buf = b.buf[n:]
	if len(b.buf) == 0 {
		b.buf = nil
	}
	g := b.consumed(n)
	b.mu.Unlock()
	b.s.giveBack(g)
	return n, nil
}

// consumed counts n bytes as taken from the body and returns the window
// to give back for them: none once the client ended the stream. b.mu is
// held.
func (b *requestBody) consumed(n int) int {
	if b.err != nil {
		return 0
	}
	b.window += n
	return n
}

// Close drops what is left of the body.
func (b *requestBody) Close() error {
	b.mu.Lock()
	b.closed = true
	g := b.consumed(len(b.buf))
	b.buf = nil
	b.mu.Unlock()
	b.s.giveBack(g)
	return nil
}
