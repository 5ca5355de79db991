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

func TestStampPrecedesTheEvent(t *testing.T) {
	h := New(Options{Stamp: true})
	defer h.Close()
	before := time.Now().UnixNano()
	m, err := h.Publish("DAD_JOKE", "joke")
	if err != nil {
		t.Fatal(err)
	}
	after := time.Now().UnixNano()
	stamp, event, ok := strings.Cut(string(m.Wire), "\n")
	if !ok || !strings.HasPrefix(stamp, ": "+StampPrefix) {
		t.Fatalf("wire %q does not start with the stamp comment", m.Wire)
	}
	sent, err := strconv.ParseInt(strings.TrimPrefix(stamp, ": "+StampPrefix), 10, 64)
	if err != nil || sent < before || sent > after {
		t.Errorf("stamp %q not a time in [%d, %d]: %v", stamp, before, after, err)
	}
	if want := "id: 1\nevent: DAD_JOKE\ndata: joke\n\n"; event != want {
		t.Errorf("event after the stamp %q, want %q", event, want)
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
