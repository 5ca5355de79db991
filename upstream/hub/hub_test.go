package hub

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
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

func TestSubscribeResume(t *testing.T) {
	// History 10 after 25 events holds ids 16..25.
	tests := []struct {
		name        string
		published   int
		lastEventID string
		status      ReplayStatus
		header      string
		ids         []uint64
	}{
		{"new client gets only the newest", 25, "", ReplayNone, "none", []uint64{25}},
		{"new client before any event", 0, "", ReplayNone, "none", []uint64{}},
		{"strictly after the id", 25, "20", ReplayResumed, "replayed 5", span(21, 25)},
		{"oldest held id", 25, "16", ReplayResumed, "replayed 9", span(17, 25)},
		{"just before the oldest held is no gap", 25, "15", ReplayResumed, "replayed 10", span(16, 25)},
		{"up to date", 25, "25", ReplayResumed, "replayed 0", []uint64{}},
		{"older than history", 25, "3", ReplayGap, "gap 10", span(16, 25)},
		{"zero before history rolled", 5, "0", ReplayResumed, "replayed 5", span(1, 5)},
		{"zero after history rolled", 25, "0", ReplayGap, "gap 10", span(16, 25)},
		{"from the future", 25, "26", ReplayFuture, "future-last-event-id", []uint64{25}},
		{"future on an empty hub", 0, "1", ReplayFuture, "future-last-event-id", []uint64{}},
		{"not a number", 25, "abc", ReplayInvalid, "invalid-last-event-id", []uint64{25}},
		{"negative", 25, "-1", ReplayInvalid, "invalid-last-event-id", []uint64{25}},
		{"sign", 25, "+20", ReplayInvalid, "invalid-last-event-id", []uint64{25}},
		{"overflow", 25, "99999999999999999999999", ReplayInvalid, "invalid-last-event-id", []uint64{25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := New(Options{History: 10, Queue: 4})
			defer h.Close()
			publishN(t, h, tc.published)
			sub, res, err := h.Subscribe(tc.lastEventID)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if res.Status != tc.status || res.Header() != tc.header {
				t.Errorf("status %v header %q, want %v %q", res.Status, res.Header(), tc.status, tc.header)
			}
			if got := ids(res.Events); fmt.Sprint(got) != fmt.Sprint(tc.ids) {
				t.Errorf("events %v, want %v", got, tc.ids)
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
			sub, res, err := h.Subscribe(strconv.Itoa(i % 10))
			if err != nil {
				errs <- err
				return
			}
			defer sub.Close()
			next := uint64(i%10) + 1
			check := func(m *Message) error {
				if m.ID != next {
					return fmt.Errorf("subscriber after %d: got id %d, want %d", i%10, m.ID, next)
				}
				next++
				return nil
			}
			for _, m := range res.Events {
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
	slow, _, _ := h.Subscribe("")
	fast, _, _ := h.Subscribe("")
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
	if !errors.Is(slow.Err(), ErrSlowConsumer) {
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
	sub, _, _ := h.Subscribe("")
	h.Close()
	h.Close()
	select {
	case <-sub.Done():
	default:
		t.Fatal("Close did not end the subscription")
	}
	if !errors.Is(sub.Err(), ErrClosed) {
		t.Errorf("Err = %v, want ErrClosed", sub.Err())
	}
	if _, err := h.Publish("T", "x"); !errors.Is(err, ErrClosed) {
		t.Errorf("Publish after Close: %v", err)
	}
	if _, _, err := h.Subscribe(""); !errors.Is(err, ErrClosed) {
		t.Errorf("Subscribe after Close: %v", err)
	}
}

func TestUnsubscribe(t *testing.T) {
	h := New(Options{})
	defer h.Close()
	sub, _, _ := h.Subscribe("")
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
	_, res, _ := h.Subscribe("0")
	if got := fmt.Sprint(ids(res.Events)); got != "[998 999 1000]" {
		t.Errorf("replay %s", got)
	}
}

func FuzzResumeNeverPanics(f *testing.F) {
	for _, s := range []string{"", "0", "5", "18446744073709551615", "x", " 1"} {
		f.Add(s)
	}
	h := New(Options{History: 4})
	publishN(f, h, 10)
	f.Fuzz(func(t *testing.T, id string) {
		sub, res, err := h.Subscribe(id)
		if err != nil {
			t.Fatal(err)
		}
		sub.Close()
		if len(res.Events) > 4 || strings.TrimSpace(res.Header()) == "" {
			t.Fatalf("%q: %d events, header %q", id, len(res.Events), res.Header())
		}
	})
}

// Append takes ids from a shared log: redeliveries are ignored, and a jump
// (events gone from the log before this hub saw them) restarts the history
// there, so a client is never told it got everything when it did not.
func TestAppend(t *testing.T) {
	at := time.Unix(1000, 0)
	tests := []struct {
		name        string
		appended    []uint64
		lastEventID string
		header      string
		ids         []uint64
	}{
		{"log starting mid-sequence", []uint64{40, 41, 42}, "40", "replayed 2", span(41, 42)},
		{"before the first appended", []uint64{40, 41, 42}, "10", "gap 3", span(40, 42)},
		{"redelivery ignored", []uint64{1, 2, 2, 1, 3}, "0", "replayed 3", span(1, 3)},
		{"jump restarts the history", []uint64{1, 2, 3, 7, 8}, "2", "gap 2", span(7, 8)},
		{"jump, resuming after it", []uint64{1, 2, 3, 7, 8}, "7", "replayed 1", span(8, 8)},
		{"future", []uint64{1, 2}, "3", "future-last-event-id", []uint64{2}},
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
			sub, res, err := h.Subscribe(tc.lastEventID)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			if res.Header() != tc.header || fmt.Sprint(ids(res.Events)) != fmt.Sprint(tc.ids) {
				t.Errorf("%s with %v: %q %v, want %q %v", tc.lastEventID, tc.appended, res.Header(), ids(res.Events), tc.header, tc.ids)
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
	tests := []struct{ lastEventID, header string }{
		{"1", "gap 3"},
		{"2", "replayed 3"},
		{"4", "replayed 1"},
	}
	for _, tc := range tests {
		sub, res, err := h.Subscribe(tc.lastEventID)
		if err != nil {
			t.Fatal(err)
		}
		sub.Close()
		if res.Header() != tc.header {
			t.Errorf("Last-Event-ID %s: %q, want %q", tc.lastEventID, res.Header(), tc.header)
		}
	}
	now = time.Unix(2000, 0) // everything expired
	sub, res, _ := h.Subscribe("")
	sub.Close()
	if len(res.Events) != 0 {
		t.Errorf("a new client got %v from an expired history", ids(res.Events))
	}
	sub, res, _ = h.Subscribe("5")
	sub.Close()
	if res.Header() != "replayed 0" {
		t.Errorf("an up-to-date client with an expired history: %q", res.Header())
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

// WithOlder completes a gap only with consecutive events ending right
// before the hub's window, and closes it when they reach the client's id.
func TestWithOlder(t *testing.T) {
	h := New(Options{History: 3})
	defer h.Close()
	for id := uint64(1); id <= 10; id++ { // the hub holds 8..10
		if _, err := h.Append(id, time.Now(), "T", "x", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	sub, gap, err := h.Subscribe("2")
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	msgs := func(ids ...uint64) []*Message {
		var out []*Message
		for _, id := range ids {
			out = append(out, NewMessage(id, time.Now(), "T", "x", time.Time{}))
		}
		return out
	}
	tests := []struct {
		name   string
		older  []*Message
		header string
		ids    []uint64
	}{
		{"closes the gap", msgs(3, 4, 5, 6, 7), "replayed 8", span(3, 10)},
		{"narrows the gap", msgs(5, 6, 7), "gap 6", span(5, 10)},
		{"none found", nil, "gap 3", span(8, 10)},
		{"hole in the middle", msgs(3, 4, 6, 7), "gap 3", span(8, 10)},
		{"not ending before the window", msgs(3, 4, 5), "gap 3", span(8, 10)},
		{"reaching before the client's id", msgs(2, 3, 4, 5, 6, 7), "gap 3", span(8, 10)},
	}
	for _, tc := range tests {
		got := gap.WithOlder(tc.older)
		if got.Header() != tc.header || fmt.Sprint(ids(got.Events)) != fmt.Sprint(tc.ids) {
			t.Errorf("%s: %q %v, want %q %v", tc.name, got.Header(), ids(got.Events), tc.header, tc.ids)
		}
	}
}
