package stream

import (
	"bufio"
	"context"
	"errors"
	"iter"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// event is a test Item.
type event struct {
	pos  uint64
	wire []byte
}

func (e *event) Position() uint64 { return e.pos }
func (e *event) Encoded() []byte  { return e.wire }

func ev(pos uint64) *event {
	return &event{pos: pos, wire: []byte("id: " + strconv.FormatUint(pos, 10) + "\ndata: x\n\n")}
}

type everyone = Everyone[*event, struct{}]

func TestBroadcaster(t *testing.T) {
	b := NewBroadcaster(2, everyone{})
	slow, _ := b.Subscribe(struct{}{})
	fast, _ := b.Subscribe(struct{}{})
	for i := range 3 {
		b.Dispatch(ev(uint64(i + 1)))
		if i < 2 {
			<-fast.C()
		}
	}
	<-slow.Done()
	if !errors.Is(slow.Err(), ErrSlowConsumer) {
		t.Errorf("slow Err = %v, want ErrSlowConsumer", slow.Err())
	}
	if st := b.Stats(); st.Subscribers != 1 || st.Cut != 1 {
		t.Errorf("Stats = %+v, want 1 subscriber, 1 cut", st)
	}
	if got := (<-fast.C()).pos; got != 3 {
		t.Errorf("fast got %d, want 3", got)
	}

	b.Reset()
	<-fast.Done()
	if !errors.Is(fast.Err(), ErrReset) {
		t.Errorf("after Reset Err = %v, want ErrReset", fast.Err())
	}
	again, err := b.Subscribe(struct{}{})
	if err != nil {
		t.Fatalf("Subscribe after Reset: %v", err)
	}
	b.Close()
	b.Close()
	<-again.Done()
	if !errors.Is(again.Err(), ErrClosed) {
		t.Errorf("after Close Err = %v, want ErrClosed", again.Err())
	}
	if _, err := b.Subscribe(struct{}{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v, want ErrClosed", err)
	}
	b.Dispatch(ev(4)) // does nothing, must not panic

	own, _ := NewBroadcaster(1, everyone{}).Subscribe(struct{}{})
	own.Close()
	own.Close()
	if own.Err() != nil {
		t.Errorf("own Close: Err = %v, want nil", own.Err())
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name       string
		o          Options
		wantOption string // "" means valid
	}{
		{"defaults", Options{}, ""},
		{"short heartbeat takes a shorter deadline", Options{Heartbeat: time.Second}, ""},
		{"heartbeat at the limit", Options{Heartbeat: MaxHeartbeat}, ""},
		{"heartbeat past Envoy's idle timeout", Options{Heartbeat: MaxHeartbeat + time.Second}, "heartbeat"},
		{"deadline equal to the heartbeat", Options{Heartbeat: 5 * time.Second, WriteTimeout: 5 * time.Second}, "write-timeout"},
		{"deadline outliving the heartbeat", Options{Heartbeat: time.Second, WriteTimeout: 2 * time.Second}, "write-timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.o.Validate()
			var oe *OptionError
			switch {
			case tt.wantOption == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.wantOption != "" && (!errors.As(err, &oe) || oe.Option != tt.wantOption):
				t.Fatalf("Validate = %v, want an error naming %s", err, tt.wantOption)
			}
			if d := tt.o.WithDefaults(); tt.wantOption == "" && d.WriteTimeout >= d.Heartbeat {
				t.Errorf("defaults give a deadline %v not shorter than the heartbeat %v", d.WriteTimeout, d.Heartbeat)
			}
		})
	}
}

// feed is a Feed the test drives.
type feed struct {
	c    chan *event
	done chan struct{}
	err  error
}

func newFeed(items ...*event) *feed {
	f := &feed{c: make(chan *event, len(items)+1), done: make(chan struct{})}
	for _, it := range items {
		f.c <- it
	}
	return f
}

func (f *feed) C() <-chan *event      { return f.c }
func (f *feed) Done() <-chan struct{} { return f.done }
func (f *feed) Err() error            { return f.err }

func replayOf(items []*event, err error) iter.Seq2[*event, error] {
	return func(yield func(*event, error) bool) {
		for _, it := range items {
			if !yield(it, nil) {
				return
			}
		}
		if err != nil {
			yield(nil, err)
		}
	}
}

func TestServeEnds(t *testing.T) {
	ended := func(err error) *feed {
		f := newFeed()
		f.err = err
		close(f.done)
		return f
	}
	tests := []struct {
		name       string
		session    func() Session[*event]
		cancel     bool
		wantEnd    string
		wantEvents string // ids written, in order
	}{
		{"replay then live, no id twice", func() Session[*event] {
			f := newFeed(ev(2), ev(3), ev(4))
			return Session[*event]{Feed: f, Replay: replayOf([]*event{ev(2), ev(3)}, nil), Through: 1}
		}, true, EndClientGone, "2 3 4"},
		{"live at or before Through skipped", func() Session[*event] {
			return Session[*event]{Feed: newFeed(ev(5), ev(6), ev(7)), Through: 6}
		}, true, EndClientGone, "7"},
		{"replay fails", func() Session[*event] {
			return Session[*event]{Feed: newFeed(), Replay: replayOf([]*event{ev(1)}, errors.New("log down"))}
		}, false, EndReplayFailed, "1"},
		{"cut while replaying", func() Session[*event] {
			return Session[*event]{Feed: ended(ErrSlowConsumer), Replay: replayOf([]*event{ev(1)}, nil)}
		}, false, EndSlowClient, ""},
		{"log reset", func() Session[*event] { return Session[*event]{Feed: ended(ErrReset)} }, false, EndLogReset, ""},
		{"a complete source: what it queued, then the end", func() Session[*event] {
			f := newFeed(ev(1), ev(2))
			f.err = ErrComplete
			close(f.done)
			return Session[*event]{Feed: f}
		}, false, EndComplete, "1 2"},
		{"shutdown", func() Session[*event] { return Session[*event]{Feed: ended(ErrClosed)} }, false, EndShutdown, ""},
		{"token expires", func() Session[*event] {
			return Session[*event]{Feed: newFeed(), Expires: time.Now().Add(20 * time.Millisecond)}
		}, false, EndTokenExpired, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			rec := httptest.NewRecorder()
			s := tt.session()
			if tt.cancel {
				// Ends the stream once everything queued is written.
				go func() {
					for len(s.Feed.(*feed).c) > 0 {
						time.Sleep(time.Millisecond)
					}
					time.Sleep(20 * time.Millisecond)
					cancel()
				}()
			}
			res := Serve(ctx, NewWriter(rec, time.Second), s, Options{Heartbeat: time.Hour}, slog.New(slog.DiscardHandler))
			if res.End != tt.wantEnd {
				t.Errorf("end = %s, want %s", res.End, tt.wantEnd)
			}
			var ids []string
			for line := range strings.Lines(rec.Body.String()) {
				if id, ok := strings.CutPrefix(strings.TrimSpace(line), "id: "); ok {
					ids = append(ids, id)
				}
			}
			if got := strings.Join(ids, " "); got != tt.wantEvents || res.Events != len(ids) {
				t.Errorf("events %q (counted %d), want %q", got, res.Events, tt.wantEvents)
			}
			if !strings.HasPrefix(rec.Body.String(), "retry: 3000\n") {
				t.Errorf("body does not start with the retry prelude: %q", rec.Body.String())
			}
		})
	}
}

// A quiet stream must outlive its write deadline many times over, on
// HTTP/1.1 and on HTTP/2, where Go resets a stream whose deadline passes
// even with no write pending: the deadline bounds each write and is
// cleared after it.
func TestQuietStreamOutlivesTheWriteDeadline(t *testing.T) {
	const (
		writeTimeout = 40 * time.Millisecond
		heartbeat    = 150 * time.Millisecond
		quiet        = 1200 * time.Millisecond // 30 write deadlines, 8 heartbeats
	)
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			b := NewBroadcaster(4, everyone{})
			results := make(chan Result, 1)
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				sub, err := b.Subscribe(struct{}{})
				if err != nil {
					RetryLater(w, Options{})
					return
				}
				defer sub.Close()
				SetHeaders(w.Header())
				w.WriteHeader(http.StatusOK)
				o := Options{Heartbeat: heartbeat, WriteTimeout: writeTimeout}
				results <- Serve(r.Context(), NewWriter(w, o.WriteTimeout), Session[*event]{Feed: sub}, o, slog.New(slog.DiscardHandler))
			}))
			ts.EnableHTTP2 = proto == "HTTP/2.0"
			ts.StartTLS()
			defer ts.Close()
			c := ts.Client()
			defer c.CloseIdleConnections()

			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, ts.URL, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.Proto != proto {
				t.Fatalf("negotiated %s, want %s", resp.Proto, proto)
			}
			lines := make(chan string)
			readErr := make(chan error, 1)
			go func() {
				sc := bufio.NewScanner(resp.Body)
				for sc.Scan() {
					select {
					case lines <- sc.Text():
					case <-ctx.Done():
						readErr <- ctx.Err()
						return
					}
				}
				readErr <- errors.Join(sc.Err(), errors.New("stream ended"))
			}()

			heartbeats := 0
			start := time.Now()
			for wait := time.After(quiet); time.Since(start) < quiet; {
				select {
				case l := <-lines:
					if l == ": heartbeat" {
						heartbeats++
					}
				case err := <-readErr:
					t.Fatalf("quiet stream ended after %v (%d heartbeats): %v", time.Since(start).Round(time.Millisecond), heartbeats, err)
				case <-wait:
				}
			}
			if want := int(quiet/heartbeat) - 2; heartbeats < want {
				t.Errorf("%d heartbeats in %v, want at least %d", heartbeats, quiet, want)
			}
			// Still one live stream: an event reaches it.
			b.Dispatch(ev(1))
			for got := false; !got; {
				select {
				case l := <-lines:
					got = l == "id: 1"
				case err := <-readErr:
					t.Fatalf("stream ended before the event: %v", err)
				case <-ctx.Done():
					t.Fatal("event never arrived")
				}
			}
			cancel()
			if res := <-results; res.End != EndClientGone {
				t.Errorf("end = %s, want %s", res.End, EndClientGone)
			}
			<-readErr
		})
	}
}

// Once Wait was called no stream joins: one arriving during shutdown ends
// at once, its connection closed, and Wait does not wait for it.
func TestDetachedRefusesStreamsOnceWaiting(t *testing.T) {
	d := NewDetached()
	if err := d.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	server, client := net.Pipe()
	defer client.Close()
	var got Result
	serveDetached(d, newChunked(server), Session[*event]{Feed: newFeed()}, Options{}.WithDefaults(), slog.New(slog.DiscardHandler), func(r Result) { got = r })
	if got.End != EndShutdown || d.Len() != 0 {
		t.Errorf("end %q, %d detached: want %s, 0", got.End, d.Len(), EndShutdown)
	}
	if _, err := client.Read(make([]byte, 1)); err == nil {
		t.Error("the refused stream's connection is still open")
	}
}
