package hub

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/sse-on-envoy/upstream/stream"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func publishN(t testing.TB, h *Hub, n int) {
	t.Helper()
	for i := range n {
		if _, err := h.Publish("T", fmt.Sprint("event ", i)); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(ms []*Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func span(from, to uint64) []uint64 {
	out := []uint64{}
	for id := from; id <= to; id++ {
		out = append(out, id)
	}
	return out
}

// The window is what the Hub holds; Held returns any part of it.
func TestWindowAndHeld(t *testing.T) {
	tests := []struct {
		name      string
		published int
		window    Window
		from, to  uint64
		held      []uint64
	}{
		{"history 10 after 25 events", 25, Window{16, 25}, 20, 25, span(20, 25)},
		{"before the window", 25, Window{16, 25}, 1, 17, span(16, 17)},
		{"beyond the newest", 25, Window{16, 25}, 24, 99, span(24, 25)},
		{"newest only", 25, Window{16, 25}, 25, 25, span(25, 25)},
		{"empty range", 25, Window{16, 25}, 26, 25, []uint64{}},
		{"before the history rolled", 5, Window{1, 5}, 0, 5, span(1, 5)},
		{"no event yet", 0, Window{1, 0}, 1, 1, []uint64{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Options{History: 10, Queue: 4})
			defer h.Close()
			publishN(t, h, tc.published)
			sub, win, err := h.Subscribe()
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if win != tc.window {
				t.Errorf("window %+v, want %+v", win, tc.window)
			}
			if got := ids(h.Held(tc.from, tc.to)); fmt.Sprint(got) != fmt.Sprint(tc.held) {
				t.Errorf("Held(%d, %d) = %v, want %v", tc.from, tc.to, got, tc.held)
			}
		})
	}
}

func TestWireIsEncodedOnce(t *testing.T) {
	h := New(Options{})
	defer h.Close()
	m, err := h.Publish("DAD_JOKE", "line one\nline two")
	if err != nil {
		t.Fatal(err)
	}
	want := "id: 1\nevent: DAD_JOKE\ndata: line one\ndata: line two\n\n"
	if string(m.Wire) != want {
		t.Errorf("wire %q, want %q", m.Wire, want)
	}
}

// Publishers racing with subscribers: every subscriber must see a contiguous
// run of ids from its resume point, with no event both replayed and live.
func TestNoGapNoDuplicateBetweenReplayAndLive(t *testing.T) {
	const total = 2000
	h := New(Options{History: total, Queue: total})
	defer h.Close()
	publishN(t, h, 10)

	var wg sync.WaitGroup
	wg.Go(func() { publishN(t, h, total-10) })
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			sub, win, err := h.Subscribe()
			if err != nil {
				errs <- err
				return
			}
			defer sub.Close()
			replayed := h.Held(uint64(i%10)+1, win.Last)
			next := uint64(i%10) + 1
			check := func(m *Message) error {
				if m.ID != next {
					return fmt.Errorf("subscriber after %d: got id %d, want %d", i%10, m.ID, next)
				}
				next++
				return nil
			}
			for _, m := range replayed {
				if err := check(m); err != nil {
					errs <- err
					return
				}
			}
			deadline := time.After(10 * time.Second)
			for next <= total {
				select {
				case m := <-sub.C():
					if err := check(m); err != nil {
						errs <- err
						return
					}
				case <-deadline:
					errs <- fmt.Errorf("timed out at id %d", next)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestPublishNeverBlocksAndCutsSlowSubscriber(t *testing.T) {
	h := New(Options{Queue: 2})
	defer h.Close()
	slow, _, _ := h.Subscribe()
	fast, _, _ := h.Subscribe()
	defer fast.Close()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 100 {
			if _, err := h.Publish("T", "x"); err != nil {
				t.Error(err)
				return
			}
			// The fast subscriber keeps up; the slow one never reads.
			select {
			case m := <-fast.C():
				if m.ID != uint64(i+1) {
					t.Errorf("fast got %d, want %d", m.ID, i+1)
				}
			case <-time.After(5 * time.Second):
				t.Error("fast subscriber starved")
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("publish blocked on a slow subscriber")
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("slow subscriber was not cut")
	}
	if !errors.Is(slow.Err(), stream.ErrSlowConsumer) {
		t.Errorf("slow Err = %v, want ErrSlowConsumer", slow.Err())
	}
	select {
	case <-fast.Done():
		t.Errorf("fast subscriber cut: %v", fast.Err())
	default:
	}
	if st := h.Stats(); st.Cut != 1 || st.Subscribers != 1 || st.LastID != 100 {
		t.Errorf("stats %+v, want cut 1, subscribers 1, last id 100", st)
	}
	slow.Close() // after a cut: must not panic
}

func TestCloseEndsSubscriptions(t *testing.T) {
	h := New(Options{})
	sub, _, _ := h.Subscribe()
	h.Close()
	h.Close()
	select {
	case <-sub.Done():
	default:
		t.Fatal("Close did not end the subscription")
	}
	if !errors.Is(sub.Err(), stream.ErrClosed) {
		t.Errorf("Err = %v, want ErrClosed", sub.Err())
	}
	if _, err := h.Publish("T", "x"); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, _, err := h.Subscribe(); !errors.Is(err, stream.ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
}

func TestUnsubscribe(t *testing.T) {
	h := New(Options{})
	defer h.Close()
	sub, _, _ := h.Subscribe()
	sub.Close()
	sub.Close()
	if n := h.Stats().Subscribers; n != 0 {
		t.Fatalf("%d subscribers after Close", n)
	}
	if sub.Err() != nil {
		t.Errorf("Err after own Close = %v, want nil", sub.Err())
	}
	publishN(t, h, 3) // must not touch the closed subscription
}

func TestHistoryIsBounded(t *testing.T) {
	h := New(Options{History: 3})
	defer h.Close()
	publishN(t, h, 1000)
	n := 0
	for _, m := range h.ring {
		if m != nil {
			n++
		}
	}
	if n != 3 {
		t.Fatalf("history holds %d events, want 3", n)
	}
	_, win, _ := h.Subscribe()
	if got := fmt.Sprint(ids(h.Held(0, win.Last))); win != (Window{998, 1000}) || got != "[998 999 1000]" {
		t.Errorf("window %+v, held %s", win, got)
	}
}

func FuzzHeldNeverPanics(f *testing.F) {
	for _, r := range [][2]uint64{{0, 0}, {1, 10}, {5, 3}, {0, 18446744073709551615}, {18446744073709551615, 18446744073709551615}} {
		f.Add(r[0], r[1])
	}
	h := New(Options{History: 4})
	publishN(f, h, 10)
	f.Fuzz(func(t *testing.T, from, to uint64) {
		got := h.Held(from, to)
		if len(got) > 4 {
			t.Fatalf("Held(%d, %d): %d events from a history of 4", from, to, len(got))
		}
		for i, m := range got {
			if m.ID < from || m.ID > to || (i > 0 && m.ID != got[i-1].ID+1) {
				t.Fatalf("Held(%d, %d) = %v", from, to, ids(got))
			}
		}
	})
}

// Append takes ids from a shared log: redeliveries are ignored, and a jump
// (events gone from the log before this hub saw them) restarts the history
// there, so a client is never told it got everything when it did not.
func TestAppend(t *testing.T) {
	at := time.Unix(1000, 0)
	tests := []struct {
		name     string
		appended []uint64
		window   Window
	}{
		{"log starting mid-sequence", []uint64{40, 41, 42}, Window{40, 42}},
		{"redelivery ignored", []uint64{1, 2, 2, 1, 3}, Window{1, 3}},
		{"jump restarts the history", []uint64{1, 2, 3, 7, 8}, Window{7, 8}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Options{History: 10})
			defer h.Close()
			for _, id := range tc.appended {
				if _, err := h.Append(id, at, "T", "x", time.Time{}); err != nil {
					t.Fatal(err)
				}
			}
			sub, win, err := h.Subscribe()
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			held := ids(h.Held(0, win.Last))
			if win != tc.window || fmt.Sprint(held) != fmt.Sprint(span(tc.window.First, tc.window.Last)) {
				t.Errorf("%v: window %+v holding %v, want %+v", tc.appended, win, held, tc.window)
			}
		})
	}
}

// MaxAge drops events from the history as the log's age limit does.
func TestHistoryMaxAge(t *testing.T) {
	now := time.Unix(1000, 0)
	h := New(Options{History: 100, MaxAge: 10 * time.Second, Now: func() time.Time { return now }})
	defer h.Close()
	for i := range uint64(5) {
		// ids 1..5 stored at 990, 993, 996, 999, 1002
		if _, err := h.Append(i+1, time.Unix(990+3*int64(i), 0), "T", "x", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	now = time.Unix(1004, 0) // cutoff 994: ids 1 and 2 expired
	sub, win, _ := h.Subscribe()
	sub.Close()
	if win != (Window{3, 5}) {
		t.Errorf("window %+v, want 3..5", win)
	}
	now = time.Unix(2000, 0) // everything expired
	sub, win, _ = h.Subscribe()
	sub.Close()
	if win != (Window{6, 5}) || len(h.Held(0, 5)) != 0 {
		t.Errorf("an expired history: window %+v, held %v", win, ids(h.Held(0, 5)))
	}
}

// A stamped event carries ": sent=<unix ns>" right before its id line.
func TestStampedWire(t *testing.T) {
	h := New(Options{})
	defer h.Close()
	sent := time.Unix(0, 1234567890123456789)
	m, err := h.Append(7, time.Now(), "T", "a\nb", sent)
	if err != nil {
		t.Fatal(err)
	}
	want := ": sent=1234567890123456789\nid: 7\nevent: T\ndata: a\ndata: b\n\n"
	if string(m.Wire) != want {
		t.Errorf("wire %q, want %q", m.Wire, want)
	}
	if m, _ = h.Append(8, time.Now(), "T", "c", time.Time{}); string(m.Wire) != "id: 8\nevent: T\ndata: c\n\n" {
		t.Errorf("unstamped wire %q", m.Wire)
	}
}
