package h2server

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// serve runs h behind h2server on a loopback TLS listener and returns its
// URL and an HTTP/2 client for it.
func serve(t *testing.T, s *Server, h http.Handler) (string, *http.Client) {
	t.Helper()
	ts := httptest.NewUnstartedServer(h)
	ts.TLS = &tls.Config{NextProtos: []string{"h2"}}
	s.Configure(ts.Config)
	ts.StartTLS()
	t.Cleanup(ts.Close)
	tr := &http2.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	return ts.URL, &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func TestRequestsAndResponses(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB: past a window
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/echo":
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			w.Header().Set("X-Cookie", r.Header.Get("Cookie"))
			w.Header().Set("X-Proto", r.Proto)
			_, _ = w.Write(b)
		case "/big":
			_, _ = io.WriteString(w, big)
		case "/status":
			w.WriteHeader(http.StatusTeapot)
		case "/panic":
			panic("a handler's bug")
		}
	})
	url, client := serve(t, &Server{}, h)
	tests := []struct {
		name, method, path, body string
		header                   http.Header
		status                   int
		want                     string
		wantHeader               map[string]string
	}{
		{name: "get", method: "GET", path: "/echo", status: 200, want: "",
			wantHeader: map[string]string{"Content-Length": "0", "X-Proto": "HTTP/2.0"}},
		{name: "post past the stream window", method: "POST", path: "/echo", body: big, status: 200, want: big,
			wantHeader: map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{name: "cookies joined", method: "GET", path: "/echo", header: http.Header{"Cookie": {"a=1", "b=2"}}, status: 200,
			wantHeader: map[string]string{"X-Cookie": "a=1; b=2"}},
		{name: "response past the window", method: "GET", path: "/big", status: 200, want: big},
		{name: "status only", method: "GET", path: "/status", status: http.StatusTeapot,
			wantHeader: map[string]string{"Content-Length": "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, url+tt.path, strings.NewReader(tt.body))
			if tt.body == "" {
				req.Body = nil
			}
			for k, vs := range tt.header {
				req.Header[k] = vs
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.status || string(got) != tt.want {
				t.Errorf("got %d with %d bytes, want %d with %d", resp.StatusCode, len(got), tt.status, len(tt.want))
			}
			if resp.Header.Get("Date") == "" {
				t.Error("no Date header")
			}
			for k, v := range tt.wantHeader {
				if g := resp.Header.Get(k); g != v {
					t.Errorf("%s: %q, want %q", k, g, v)
				}
			}
		})
	}
	// A panicking handler resets its stream; the connection goes on.
	if resp, err := client.Get(url + "/panic"); err == nil {
		resp.Body.Close()
		t.Error("a panicking handler's stream was answered")
	}
	resp, err := client.Get(url + "/status")
	if err != nil {
		t.Fatalf("after a panic: %v", err)
	}
	resp.Body.Close()
}

// detaching is a handler that answers an event stream by detaching it,
// and the streams it detached.
func detaching(t *testing.T) (http.Handler, <-chan *Stream) {
	detached := make(chan *Stream, 1)
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		st, err := w.(interface {
			Detach(time.Time) (*Stream, error)
		}).Detach(time.Now().Add(time.Second))
		if err != nil {
			t.Errorf("Detach: %v", err)
			return
		}
		detached <- st
	}), detached
}

// A detached stream outlives its handler: its writes reach the client as
// they are made, its end is the response's, and a client that goes ends
// its context.
func TestDetach(t *testing.T) {
	h, detached := detaching(t)
	url, client := serve(t, &Server{}, h)

	for _, cut := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
			t.Errorf("content-type %q", ct)
		}
		st := <-detached
		buf := make([]byte, 64)
		for _, msg := range []string{"data: 1\n\n", "data: 2\n\n"} {
			if err := st.Write([]byte(msg), time.Now().Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			n, err := io.ReadAtLeast(resp.Body, buf, len(msg))
			if err != nil || string(buf[:n]) != msg {
				t.Fatalf("read %q, %v; want %q", buf[:n], err, msg)
			}
		}
		if cut {
			cancel()
			select {
			case <-st.Context().Done():
			case <-time.After(5 * time.Second):
				t.Fatal("the client reset its stream; the detached stream did not see it")
			}
			st.End(true, time.Now().Add(time.Second)) // after a reset: harmless
		} else {
			st.End(true, time.Now().Add(time.Second))
			if n, err := resp.Body.Read(buf); n != 0 || err != io.EOF {
				t.Errorf("after End: %d bytes, %v; want EOF", n, err)
			}
		}
		resp.Body.Close()
		cancel()
	}
}

// rawClient speaks HTTP/2 frames to a server, to do what a well-behaved
// client does not: hold its window shut, open too many streams.
type rawClient struct {
	t    *testing.T
	fr   *http2.Framer
	henc *hpack.Encoder
	hbuf bytes.Buffer
}

func dialRaw(t *testing.T, url string, settings ...http2.Setting) *rawClient {
	t.Helper()
	c, err := tls.Dial("tcp", strings.TrimPrefix(url, "https://"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	rc := &rawClient{t: t, fr: http2.NewFramer(c, c)}
	rc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rc.henc = hpack.NewEncoder(&rc.hbuf)
	if err := rc.fr.WriteSettings(settings...); err != nil {
		t.Fatal(err)
	}
	return rc
}

func (rc *rawClient) get(id uint32, path string) {
	rc.headers(id, [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "test"}, {":path", path}})
}

// headers sends a request's header block, ending the stream.
func (rc *rawClient) headers(id uint32, fields [][2]string) {
	rc.hbuf.Reset()
	for _, f := range fields {
		_ = rc.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: rc.hbuf.Bytes(), EndStream: true, EndHeaders: true}); err != nil {
		rc.t.Fatal(err)
	}
}

// next returns the next frame that is not about the connection's
// settings or window.
func (rc *rawClient) next() http2.Frame {
	for {
		f, err := rc.fr.ReadFrame()
		if err != nil {
			rc.t.Fatalf("reading a frame: %v", err)
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = rc.fr.WriteSettingsAck()
			}
			continue
		case *http2.WindowUpdateFrame:
			continue
		}
		return f
	}
}

// A client that grants no window stalls a detached stream's writes until
// their deadline (os.ErrDeadlineExceeded); granting it lets them through.
func TestFlowControlBoundsWrites(t *testing.T) {
	h, detached := detaching(t)
	url, _ := serve(t, &Server{}, h)
	rc := dialRaw(t, url, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 4})
	rc.get(1, "/")
	if f, ok := rc.next().(*http2.MetaHeadersFrame); !ok || f.PseudoValue("status") != "200" {
		t.Fatalf("want the response's headers, got %v", f)
	}
	st := <-detached
	start := time.Now()
	err := st.Write([]byte("data: 12345\n\n"), time.Now().Add(200*time.Millisecond))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past a shut window: %v, want a deadline error", err)
	}
	if took := time.Since(start); took < 150*time.Millisecond {
		t.Errorf("gave up after %v, before its deadline", took)
	}
	// The 4 bytes the window allowed went out first.
	if f, ok := rc.next().(*http2.DataFrame); !ok || string(f.Data()) != "data" {
		t.Fatalf("want the first 4 bytes, got %v", f)
	}
	done := make(chan error, 1)
	go func() { done <- st.Write([]byte("data: 6\n\n"), time.Now().Add(5*time.Second)) }()
	if err := rc.fr.WriteWindowUpdate(1, 100); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("write after the window opened: %v", err)
	}
}

// Past MaxConcurrentStreams a stream is refused (the client may retry it
// elsewhere); after GoAway none is taken, and the connection closes once
// its streams end.
func TestStreamLimitAndGoAway(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.(http.Flusher).Flush()
		<-release
	})
	srv := &Server{MaxConcurrentStreams: 2}
	url, _ := serve(t, srv, h)
	rc := dialRaw(t, url)
	for _, id := range []uint32{1, 3} {
		rc.get(id, "/")
		if f, ok := rc.next().(*http2.MetaHeadersFrame); !ok || f.StreamID != id {
			t.Fatalf("stream %d: want its headers, got %v", id, f)
		}
	}
	rc.get(5, "/")
	if f, ok := rc.next().(*http2.RSTStreamFrame); !ok || f.StreamID != 5 || f.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("third stream: want RST_STREAM REFUSED_STREAM, got %v", f)
	}
	srv.GoAway()
	if f, ok := rc.next().(*http2.GoAwayFrame); !ok || f.LastStreamID != 5 || f.ErrCode != http2.ErrCodeNo {
		t.Fatalf("want GOAWAY naming stream 5, got %v", f)
	}
	rc.get(7, "/")
	if f, ok := rc.next().(*http2.RSTStreamFrame); !ok || f.StreamID != 7 {
		t.Fatalf("a stream after GOAWAY: want it refused, got %v", f)
	}
	close(release)
	ended := map[uint32]bool{}
	for len(ended) < 2 {
		if f, ok := rc.next().(*http2.DataFrame); ok && f.StreamEnded() {
			ended[f.StreamID] = true
		}
	}
	// Then the server closes the connection (after closeGrace).
	if _, err := rc.fr.ReadFrame(); err == nil {
		t.Error("the connection is still open after GOAWAY and its last stream")
	}
}

// What a client gets wrong gets the answer the spec names: a malformed
// request resets its stream and the connection goes on; a connection
// error ends the connection with GOAWAY naming it.
func TestProtocolErrors(t *testing.T) {
	url, _ := serve(t, &Server{}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	get := [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "test"}, {":path", "/"}}
	tests := []struct {
		name      string
		send      func(rc *rawClient)
		wantReset http2.ErrCode // on stream 1, then the connection still answers
		wantAway  http2.ErrCode
	}{
		{name: "no :path", send: func(rc *rawClient) {
			rc.headers(1, [][2]string{{":method", "GET"}, {":scheme", "https"}})
		}, wantReset: http2.ErrCodeProtocol},
		{name: "a connection header", send: func(rc *rawClient) {
			rc.headers(1, append(get[:4:4], [2]string{"connection", "keep-alive"}))
		}, wantReset: http2.ErrCodeProtocol},
		{name: "a bad path", send: func(rc *rawClient) {
			rc.headers(1, [][2]string{{":method", "GET"}, {":scheme", "https"}, {":path", "no-slash"}})
		}, wantReset: http2.ErrCodeProtocol},
		{name: "an even stream id", send: func(rc *rawClient) { rc.get(2, "/") }, wantAway: http2.ErrCodeProtocol},
		{name: "data on an idle stream", send: func(rc *rawClient) {
			_ = rc.fr.WriteData(9, true, []byte("x"))
		}, wantAway: http2.ErrCodeProtocol},
		{name: "a stream id going back", send: func(rc *rawClient) {
			rc.get(5, "/")
			rc.get(3, "/")
		}, wantAway: http2.ErrCodeStreamClosed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, url)
			tt.send(rc)
			for {
				switch f := rc.next().(type) {
				case *http2.RSTStreamFrame:
					if f.ErrCode != tt.wantReset || f.StreamID != 1 {
						t.Fatalf("RST_STREAM %v on %d, want %v on 1", f.ErrCode, f.StreamID, tt.wantReset)
					}
					// The connection goes on: a ping is answered.
					_ = rc.fr.WritePing(false, [8]byte{1, 2, 3})
					for {
						if p, ok := rc.next().(*http2.PingFrame); ok {
							if !p.IsAck() || p.Data != [8]byte{1, 2, 3} {
								t.Errorf("ping answered with %v", p)
							}
							return
						}
					}
				case *http2.GoAwayFrame:
					if f.ErrCode != tt.wantAway {
						t.Fatalf("GOAWAY %v, want %v", f.ErrCode, tt.wantAway)
					}
					return
				}
			}
		})
	}
}

// A stream the client reset still counts against the limit until its
// handler returns: resetting streams as fast as they open (rapid reset)
// cannot start handlers without bound.
func TestResetStreamsCountUntilTheirHandlersReturn(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.(http.Flusher).Flush()
		<-release // a handler that does not watch its context
	})
	url, _ := serve(t, &Server{MaxConcurrentStreams: 1}, h)
	rc := dialRaw(t, url)
	rc.get(1, "/")
	if f, ok := rc.next().(*http2.MetaHeadersFrame); !ok || f.StreamID != 1 {
		t.Fatalf("want stream 1's headers, got %v", f)
	}
	if err := rc.fr.WriteRSTStream(1, http2.ErrCodeCancel); err != nil {
		t.Fatal(err)
	}
	rc.get(3, "/")
	if f, ok := rc.next().(*http2.RSTStreamFrame); !ok || f.StreamID != 3 || f.ErrCode != http2.ErrCodeRefusedStream {
		t.Fatalf("a stream while a reset one's handler runs: want REFUSED_STREAM, got %v", f)
	}
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for id := uint32(5); ; id += 2 {
		rc.get(id, "/")
		for answered := false; !answered; {
			switch f := rc.next().(type) {
			case *http2.MetaHeadersFrame:
				if f.StreamID == id {
					return // the handler returned: streams are taken again
				}
			case *http2.RSTStreamFrame:
				answered = f.StreamID == id
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %d still refused 5 s after the handler returned", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A client that stops reading at the TCP level (not only its window)
// stalls the connection's writer; after WriteTimeout the connection is
// closed and the stream's writes fail instead of hanging.
func TestStalledConnectionIsClosed(t *testing.T) {
	h, detached := detaching(t)
	url, _ := serve(t, &Server{WriteTimeout: 300 * time.Millisecond}, h)
	// Windows wide open: only the sockets' buffers stop the writes.
	rc := dialRaw(t, url, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	if err := rc.fr.WriteWindowUpdate(0, 1<<30); err != nil {
		t.Fatal(err)
	}
	rc.get(1, "/")
	st := <-detached
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	start := time.Now()
	for written := 0; ; written += len(chunk) {
		err := st.Write(chunk, time.Time{}) // no deadline of its own
		if err != nil {
			t.Logf("write failed after %d bytes and %v: %v", written, time.Since(start).Round(time.Millisecond), err)
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("still writing after %d bytes and 30 s to a client that reads nothing", written)
		}
	}
	select {
	case <-st.Context().Done():
	case <-time.After(5 * time.Second):
		t.Error("the stream's context is not done after its connection closed")
	}
}

// What the handler is not given: CONNECT is answered 405; headers past
// the 1 MiB limit end the connection (x/net's framer stops reading a
// header block that large rather than buffer it: a CONTINUATION flood).
func TestRefusedRequests(t *testing.T) {
	url, _ := serve(t, &Server{}, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the handler was called")
	}))
	tests := []struct {
		name   string
		fields [][2]string
		status string        // the answer, or
		away   http2.ErrCode // the GOAWAY
	}{
		{name: "CONNECT", fields: [][2]string{{":method", "CONNECT"}, {":authority", "example.com:443"}}, status: "405"},
		{name: "headers past 1 MiB", fields: [][2]string{{":method", "GET"}, {":scheme", "https"}, {":authority", "test"}, {":path", "/"},
			{"x-big", strings.Repeat("a", maxHeaderListSize+1)}}, away: http2.ErrCodeCompression},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := dialRaw(t, url)
			rc.hbuf.Reset()
			for _, f := range tt.fields {
				_ = rc.henc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
			}
			// A block past one frame goes on in CONTINUATION frames.
			block := rc.hbuf.Bytes()
			const frame = 16 << 10
			first := block[:min(len(block), frame)]
			rest := block[len(first):]
			if err := rc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: true, EndHeaders: len(rest) == 0}); err != nil {
				t.Fatal(err)
			}
			for len(rest) > 0 {
				frag := rest[:min(len(rest), frame)]
				rest = rest[len(frag):]
				if err := rc.fr.WriteContinuation(1, len(rest) == 0, frag); err != nil {
					break // the server may close before it has read them all
				}
			}
			switch f := rc.next().(type) {
			case *http2.MetaHeadersFrame:
				if tt.status == "" || f.StreamID != 1 || f.PseudoValue("status") != tt.status {
					t.Fatalf("stream %d answered %s, want %q", f.StreamID, f.PseudoValue("status"), tt.status)
				}
			case *http2.GoAwayFrame:
				if tt.status != "" || f.ErrCode != tt.away {
					t.Fatalf("GOAWAY %v, want status %q or GOAWAY %v", f.ErrCode, tt.status, tt.away)
				}
			default:
				t.Fatalf("got %v", f)
			}
		})
	}
}
