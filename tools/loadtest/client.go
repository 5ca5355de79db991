// Package loadtest opens many SSE streams at once and measures what they
// receive: status codes, events, id gaps and duplicates, and each event's
// latency from the upstream's send-time stamp (upstream -stamp) to the moment
// the client read it. It also samples processes' CPU and memory from /proc,
// so a benchmark can charge each event to the process that spent on it.
package loadtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http2"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/envoyconfig"
)

// Config says what to open.
type Config struct {
	URL     string
	Streams int
	// OpenRate is streams opened per second; 0 opens them as fast as the
	// client can.
	OpenRate float64
	// HTTP2 speaks h2 (URL must be https), StreamsPerConn streams on each
	// connection, as a browser multiplexes an origin's EventSources;
	// otherwise HTTP/1.1, one connection per stream.
	HTTP2 bool
	// StreamsPerConn is how many streams share one HTTP/2 connection;
	// default DefaultStreamsPerConn.
	StreamsPerConn int
	// CAFile is the PEM CA to trust for https; ServerName overrides the
	// name checked in the certificate (the upstream's is "upstream").
	CAFile, ServerName string
	// NoRead streams never read their body: slow consumers.
	NoRead bool
	// HeaderTimeout bounds the wait for response headers; default 30s.
	HeaderTimeout time.Duration
	// StreamURL, when set, is stream i's URL (from 0) instead of URL: a
	// Mercure load spreads its subscribers over topics with it.
	StreamURL func(i int) string
	// Stamp, when set, reads an event's send time (Unix nanoseconds, 0:
	// none) from the event itself, for servers that carry it in the data
	// (a Mercure publisher's updates) instead of a "sent=" comment.
	Stamp func(e sse.Event) int64
	// NewRequest, when set, makes each request (n counts every request of
	// the load from 0) instead of a GET of the URL: an LLM client POSTs.
	NewRequest func(ctx context.Context, url string, n int64) (*http.Request, error)
	// Repeat makes each stream ask again as soon as its response ends: a
	// token stream's client asking for the next completion. The stream's
	// first answer is its status; a later failure counts in Ended.
	Repeat bool
	// OnEvent, when set, sees every event with the number of the request
	// it came in (the one NewRequest made). Called concurrently.
	OnEvent func(n int64, e sse.Event)
}

// DefaultStreamsPerConn is Envoy's max_concurrent_streams on the
// listeners (envoy/*.yaml), which is also what a browser gets: every
// EventSource of an origin on one connection, up to the server's limit.
const DefaultStreamsPerConn = 100

// Load is a set of streams being opened or open. Its methods are safe for
// concurrent use.
type Load struct {
	cfg    Config
	client *http.Client
	// h2, over HTTP/2: stream i's requests go to h2[i/StreamsPerConn],
	// each a transport of one connection. net/http's own pool would dial
	// a connection for every request waiting while its connections are
	// full: thousands of handshakes at once when a server is slow for a
	// few seconds under 100,000 streams, the load tool then the bottleneck.
	h2     []*http.Client
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	answered  atomic.Int64 // streams that got a status or an error
	requests  atomic.Int64 // requests made: numbers them for NewRequest
	completed atomic.Int64 // responses read to their end (Repeat)
	measuring atomic.Bool
	// window numbers the measurement windows from 1, so that a stream
	// counts itself in Window.Streams once per window.
	window atomic.Int64

	mu        sync.Mutex
	statuses  map[string]int // "200", "503", "error: connection refused"
	ended     map[string]int // why open streams ended before Close
	latencies []time.Duration
	events    int64 // in the window
	gaps      int64 // ids missing between consecutive events
	dups      int64 // ids seen again or going backwards
	unstamped int64 // events without a stamp in the window
	reached   int   // streams with an event in the window
}

// Start begins opening cfg.Streams streams in the background.
func Start(cfg Config) (*Load, error) {
	if cfg.Streams < 1 {
		return nil, errors.New("loadtest: at least one stream")
	}
	if cfg.HeaderTimeout <= 0 {
		cfg.HeaderTimeout = 30 * time.Second
	}
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: -1,
		// Small buffers: the client holds thousands of streams.
		ReadBufferSize:  4 << 10,
		WriteBufferSize: 1 << 10,
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("loadtest: CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("loadtest: no certificate in %s", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, ServerName: cfg.ServerName, MinVersion: tls.VersionTLS12}
	}
	// A non-nil empty map turns HTTP/2 off: HTTP/2 goes through l.h2.
	tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Load{
		cfg:      cfg,
		client:   &http.Client{Transport: tr},
		ctx:      ctx,
		cancel:   cancel,
		statuses: map[string]int{},
		ended:    map[string]int{},
	}
	if cfg.HTTP2 {
		if cfg.StreamsPerConn <= 0 {
			cfg.StreamsPerConn = DefaultStreamsPerConn
		}
		l.cfg = cfg
		tlsConf := &tls.Config{MinVersion: tls.VersionTLS12}
		if tr.TLSClientConfig != nil {
			tlsConf = tr.TLSClientConfig.Clone()
		}
		tlsConf.NextProtos = []string{"h2"}
		for range (cfg.Streams + cfg.StreamsPerConn - 1) / cfg.StreamsPerConn {
			l.h2 = append(l.h2, &http.Client{Transport: &http2.Transport{
				TLSClientConfig: tlsConf,
				DialTLSContext: func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
					d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second}, Config: cfg}
					return d.DialContext(ctx, network, addr)
				},
				// One connection: a request past the server's stream limit
				// waits for a slot instead of dialing another.
				StrictMaxConcurrentStreams: true,
			}})
		}
	}
	l.wg.Go(l.open)
	return l, nil
}

func (l *Load) open() {
	start := time.Now()
	for i := range l.cfg.Streams {
		if l.cfg.OpenRate > 0 {
			// Paced against the start, so a late wake-up catches up
			// instead of lowering the rate.
			due := start.Add(time.Duration(float64(i) / l.cfg.OpenRate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-l.ctx.Done():
					return
				case <-time.After(d):
				}
			}
		}
		if l.ctx.Err() != nil {
			return
		}
		url := l.cfg.URL
		if l.cfg.StreamURL != nil {
			url = l.cfg.StreamURL(i)
		}
		c := l.client
		if l.h2 != nil {
			c = l.h2[i/l.cfg.StreamsPerConn]
		}
		l.wg.Go(func() { l.stream(c, url) })
	}
}

// WaitAnswered waits until every stream has its status (or failed), or ctx
// ends; it returns how many have.
func (l *Load) WaitAnswered(ctx context.Context) int {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		n := int(l.answered.Load())
		if n >= l.cfg.Streams {
			return n
		}
		select {
		case <-ctx.Done():
			return n
		case <-t.C:
		}
	}
}

// StartWindow starts counting events and latencies.
func (l *Load) StartWindow() {
	l.mu.Lock()
	l.latencies, l.events, l.unstamped, l.reached = l.latencies[:0], 0, 0, 0
	l.window.Add(1)
	l.mu.Unlock()
	l.measuring.Store(true)
}

// Window is what the streams received in the measurement window.
type Window struct {
	Events    int64
	Unstamped int64
	Latencies []time.Duration // one per stamped event
	// Streams counts the streams that received at least one event.
	Streams int
}

// EndWindow stops counting and returns the window's figures.
func (l *Load) EndWindow() Window {
	l.measuring.Store(false)
	l.mu.Lock()
	defer l.mu.Unlock()
	return Window{Events: l.events, Unstamped: l.unstamped, Streams: l.reached, Latencies: append([]time.Duration(nil), l.latencies...)}
}

// Summary is the streams' fate over the whole run.
type Summary struct {
	Streams  int
	Statuses map[string]int // by status code, or "error: ..." for no answer
	// Ended counts streams that ended before Close, by reason.
	Ended map[string]int
	Gaps  int64
	Dups  int64
}

// Opened is the number of streams answered 200.
func (s Summary) Opened() int { return s.Statuses["200"] }

// RetryAnswer starts the status of a stream that Envoy answered itself with
// a 200 and a retry field (no upstream could take it): "200+retry UO". It is
// not an open stream, and the browser comes back after the retry delay.
const RetryAnswer = "200+retry"

// Failed is the number of streams not answered 200.
func (s Summary) Failed() int {
	n := 0
	for k, v := range s.Statuses {
		if k != "200" {
			n += v
		}
	}
	return n
}

// Snapshot returns the streams' fate so far.
func (l *Load) Snapshot() Summary {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := Summary{Streams: l.cfg.Streams, Statuses: map[string]int{}, Ended: map[string]int{}, Gaps: l.gaps, Dups: l.dups}
	for k, v := range l.statuses {
		s.Statuses[k] = v
	}
	for k, v := range l.ended {
		s.Ended[k] = v
	}
	return s
}

// Close ends every stream and returns the summary.
func (l *Load) Close() Summary {
	s := l.Snapshot()
	l.cancel()
	l.wg.Wait()
	l.client.CloseIdleConnections()
	for _, c := range l.h2 {
		c.CloseIdleConnections()
	}
	return s
}

func (l *Load) count(m map[string]int, key string) {
	l.mu.Lock()
	m[key]++
	l.mu.Unlock()
}

// Completed is the number of responses read to their end, which a Repeat
// load counts as done (a completion's).
func (l *Load) Completed() int64 { return l.completed.Load() }

func (l *Load) stream(c *http.Client, url string) {
	for first := true; ; first = false {
		ok := l.request(c, url, first)
		if !l.cfg.Repeat || !ok || l.ctx.Err() != nil {
			return
		}
	}
}

// request makes one request of a stream and reads its response; ok says
// the response was a 200 read to its end.
func (l *Load) request(c *http.Client, url string, first bool) (ok bool) {
	// A failure after the stream's first answer ends the stream.
	fail := func(reason string) {
		switch {
		case first:
			l.count(l.statuses, reason)
			l.answered.Add(1)
		case l.ctx.Err() == nil:
			l.count(l.ended, reason)
		}
	}
	n := l.requests.Add(1) - 1
	// The HTTP/2 transport has no ResponseHeaderTimeout: the same bound,
	// for both, from the request's context.
	ctx, cancel := context.WithCancelCause(l.ctx)
	defer cancel(nil)
	headerTimer := time.AfterFunc(l.cfg.HeaderTimeout, func() { cancel(errHeaderTimeout) })
	var req *http.Request
	var err error
	if l.cfg.NewRequest != nil {
		req, err = l.cfg.NewRequest(ctx, url, n)
	} else {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	}
	if err != nil {
		fail("error: " + err.Error())
		return false
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	headerTimer.Stop()
	if err != nil {
		if first && l.ctx.Err() != nil {
			l.answered.Add(1)
			return false
		}
		if context.Cause(ctx) == errHeaderTimeout {
			err = errHeaderTimeout
		}
		fail("error: " + Classify(err))
		return false
	}
	defer resp.Body.Close()
	status := strconv.Itoa(resp.StatusCode)
	if flags := resp.Header.Get(envoyconfig.LocalReplyHeader); flags != "" {
		// Envoy's own answer, made a 200 so that EventSource retries: no
		// stream opened, and the table must not say it did.
		status = RetryAnswer + " " + flags
	}
	if status != "200" {
		fail(status)
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return false
	}
	if first {
		l.count(l.statuses, status)
		l.answered.Add(1)
	}
	if l.cfg.NoRead {
		<-l.ctx.Done()
		return false
	}
	return l.read(resp.Body, n)
}

// read reads a response's events until it ends; it reports whether it
// ended complete (EOF) while the load ran, which a Repeat load counts as a
// completion and answers with the next request.
func (l *Load) read(body io.Reader, n int64) bool {
	rd := sse.NewReaderSize(body, 2<<10)
	// The hook runs inside the Next that returns the event after the
	// comment: sent is that event's stamp, or 0 if it has none.
	var sent int64
	rd.OnComment(func(text []byte) {
		if v, ok := sse.ParseSentComment(text); ok {
			sent = v
		}
	})
	var last uint64
	var counted int64 // the window this stream counted itself in
	for {
		e, err := rd.Next()
		if err != nil {
			if l.ctx.Err() != nil {
				return false
			}
			if l.cfg.Repeat && errors.Is(err, io.EOF) {
				l.completed.Add(1)
				return true
			}
			l.count(l.ended, Classify(err))
			return false
		}
		if l.cfg.OnEvent != nil {
			l.cfg.OnEvent(n, e)
		}
		now := time.Now().UnixNano()
		id, _ := strconv.ParseUint(e.ID, 10, 64)
		var gap, dup int64
		switch {
		case last == 0:
		case id == last+1:
		case id > last+1:
			gap = int64(id - last - 1)
		default:
			dup = 1
		}
		if id > last {
			last = id
		}
		stamp := sent
		sent = 0
		if l.cfg.Stamp != nil {
			stamp = l.cfg.Stamp(e)
		}
		measuring := l.measuring.Load()
		if gap == 0 && dup == 0 && !measuring {
			continue
		}
		l.mu.Lock()
		l.gaps += gap
		l.dups += dup
		if measuring {
			if w := l.window.Load(); counted != w {
				counted = w
				l.reached++
			}
			l.events++
			if stamp > 0 {
				l.latencies = append(l.latencies, time.Duration(now-stamp))
			} else {
				l.unstamped++
			}
		}
		l.mu.Unlock()
	}
}

// errHeaderTimeout: no response headers within Config.HeaderTimeout.
var errHeaderTimeout = timeoutError("no response headers in time")

type timeoutError string

func (e timeoutError) Error() string   { return string(e) }
func (e timeoutError) Timeout() bool   { return true }
func (e timeoutError) Temporary() bool { return false }

// Classify turns an error into a short, countable reason: what the load
// clients count failures by.
func Classify(err error) string {
	var errno syscall.Errno
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "EOF"
	case errors.As(err, &errno):
		return errno.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, sse.ErrTruncated):
		return "truncated event"
	}
	s := err.Error()
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// Latency is a latency distribution's summary.
type Latency struct {
	P50, P90, P99, Max time.Duration
	N                  int
}

// Summarize sorts d in place and summarizes it (nearest-rank percentiles).
func Summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	at := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(d)))) - 1
		return d[max(i, 0)]
	}
	return Latency{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: d[len(d)-1], N: len(d)}
}
