package loadtest

import (
	"context"
	"encoding/pem"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/envoyconfig"
)

const testTimeout = 15 * time.Second

// The client against the real upstream is tested in upstream/server
// (TestLoadClientAgainstTheUpstream): nothing under internal/ imports
// upstream/.

func TestLoadCountsStatusesGapsAndDuplicates(t *testing.T) {
	// The streams' events wait for the window to start: readers begin as
	// soon as Start returns, and could otherwise read everything before
	// the test calls StartWindow.
	windowStarted := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/busy":
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		case "/mapped":
			// What Envoy's local_reply_config makes of its own 503.
			w.Header().Set("Content-Type", "text/event-stream")
			w.Header().Set(envoyconfig.LocalReplyHeader, "UO")
			w.Write([]byte("retry: 2000\n: envoy: UO\n\n"))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-windowStarted:
		case <-r.Context().Done():
			return
		}
		// ids 1, 2, 5 (2 missing), 5 again and 4 (2 duplicates); then end.
		w.Write([]byte("id: 1\ndata: a\n\nid: 2\ndata: b\n\n: sent=1\nid: 5\ndata: c\n\nid: 5\ndata: d\n\nid: 4\ndata: e\n\n"))
	}))
	defer srv.Close()

	l, err := Start(Config{URL: srv.URL + "/busy", Streams: 3})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	l.WaitAnswered(ctx)
	if s := l.Close(); s.Statuses["503"] != 3 || s.Failed() != 3 || s.Opened() != 0 {
		t.Errorf("statuses %v, want 3 x 503", s.Statuses)
	}

	// A 200 that Envoy made of its own 503 is no open stream.
	l, err = Start(Config{URL: srv.URL + "/mapped", Streams: 2})
	if err != nil {
		t.Fatal(err)
	}
	l.WaitAnswered(ctx)
	if s := l.Close(); s.Statuses[RetryAnswer+" UO"] != 2 || s.Failed() != 2 || s.Opened() != 0 {
		t.Errorf("statuses %v, want 2 x %s UO, none opened", s.Statuses, RetryAnswer)
	}

	l, err = Start(Config{URL: srv.URL + "/stream", Streams: 2})
	if err != nil {
		t.Fatal(err)
	}
	l.StartWindow()
	close(windowStarted)
	l.WaitAnswered(ctx)
	deadline := time.Now().Add(testTimeout)
	for l.Snapshot().Ended["EOF"] < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	w := l.EndWindow()
	// A window after the streams ended counts none of them.
	l.StartWindow()
	quiet := l.EndWindow()
	s := l.Close()
	if s.Gaps != 4 || s.Dups != 4 || s.Ended["EOF"] != 2 {
		t.Errorf("gaps %d, dups %d, ended %v; want 4, 4, 2 x EOF", s.Gaps, s.Dups, s.Ended)
	}
	if w.Events != 10 || w.Unstamped != 8 || len(w.Latencies) != 2 {
		t.Errorf("window: %d events, %d unstamped, %d latencies; want 10, 8, 2", w.Events, w.Unstamped, len(w.Latencies))
	}
	if w.Streams != 2 || quiet.Streams != 0 {
		t.Errorf("streams with events: %d in the window, %d in the one after; want 2, 0", w.Streams, quiet.Streams)
	}
}

func TestSampleProc(t *testing.T) {
	rusage := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before, err := SampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ruBefore := rusage()
	// Burn enough CPU to cross many clock ticks, however loaded the machine.
	for rusage()-ruBefore < 200*time.Millisecond {
	}
	after, err := SampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	used, want := after.CPU-before.CPU, rusage()-ruBefore
	// /proc counts in 10 ms ticks, getrusage more finely.
	if d := used - want; d < -30*time.Millisecond || d > 30*time.Millisecond || after.RSS < 1<<20 {
		t.Errorf("CPU %v by /proc, %v by getrusage; RSS %d", used, want, after.RSS)
	}
	m1, err := SampleMachine()
	if err != nil {
		t.Fatal(err)
	}
	for start := rusage(); rusage()-start < 50*time.Millisecond; {
	}
	m2, _ := SampleMachine()
	if f := BusyFraction(m1, m2); f <= 0 || f > 1 {
		t.Errorf("busy fraction %v, want in (0, 1] while spinning", f)
	}
}

// A Repeat load asks again as soon as a response ends, as a token stream's
// client asks for the next completion: every request is numbered, its
// events are seen with its number, and a completed response is no failure.
func TestRepeatAsksAgain(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("x-n") == "" {
			http.Error(w, "want a numbered POST", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.Write([]byte("data: " + r.Header.Get("x-n") + "\n\ndata: [DONE]\n\n"))
	}))
	defer srv.Close()
	var mu sync.Mutex
	seen := map[int64][]string{}
	l, err := Start(Config{URL: srv.URL, Streams: 2, Repeat: true,
		NewRequest: func(ctx context.Context, url string, n int64) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
			if err == nil {
				req.Header.Set("x-n", strconv.FormatInt(n, 10))
			}
			return req, err
		},
		OnEvent: func(n int64, e sse.Event) {
			mu.Lock()
			seen[n] = append(seen[n], e.Data)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testTimeout)
	for l.Completed() < 10 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	s := l.Close()
	if l.Completed() < 10 || s.Opened() != 2 || s.Failed() != 0 || len(s.Ended) != 0 {
		t.Fatalf("completed %d, summary %+v: want 10 or more completions of 2 streams, no failure", l.Completed(), s)
	}
	mu.Lock()
	defer mu.Unlock()
	for n, data := range seen {
		if data[0] != strconv.FormatInt(n, 10) || (len(data) == 2 && data[1] != "[DONE]") {
			t.Errorf("request %d read %q", n, data)
		}
	}
}

// Over HTTP/2 the streams share connections, StreamsPerConn each, as a
// browser's EventSources share one per origin: a load of 250 streams holds
// 3 connections, however slowly the server answers, and a stream that gets
// no headers in time counts as a timeout.
func TestHTTP2StreamsShareConnections(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/never" {
			<-r.Context().Done()
			return
		}
		// Headers only once every stream has asked: meanwhile net/http's
		// own pool would have dialed a connection per waiting request.
		select {
		case <-release:
		case <-r.Context().Done():
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	var mu sync.Mutex
	conns := 0
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}

	const streams = 250
	l, err := Start(Config{URL: srv.URL + "/stream", Streams: streams, HTTP2: true, CAFile: ca, ServerName: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(testTimeout)
	for l.requests.Load() < streams && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for any extra dial to show
	close(release)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	l.WaitAnswered(ctx)
	s := l.Close()
	mu.Lock()
	defer mu.Unlock()
	if s.Opened() != streams || conns != 3 {
		t.Errorf("%d of %d streams opened over %d connections, want all over 3 (%v)", s.Opened(), streams, conns, s.Statuses)
	}

	l, err = Start(Config{URL: srv.URL + "/never", Streams: 2, HTTP2: true, CAFile: ca, ServerName: "example.com", HeaderTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	l.WaitAnswered(ctx)
	if s := l.Close(); s.Statuses["error: timeout"] != 2 {
		t.Errorf("statuses %v, want 2 header timeouts", s.Statuses)
	}
}
