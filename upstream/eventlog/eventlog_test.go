package eventlog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"
)

const testTimeout = 20 * time.Second

func openEmbedded(t *testing.T, dir string, history int) *Log {
	t.Helper()
	l, err := Open(Config{DataDir: dir, History: history})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return l
}

// follow runs Follow until the test ends and returns its records.
func follow(t *testing.T, l *Log) <-chan Record {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	recs := make(chan Record, 1024)
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.Follow(ctx, func(r Record) { recs <- r }, func() { t.Error("unexpected reset") })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return recs
}

func next(t *testing.T, recs <-chan Record) Record {
	t.Helper()
	select {
	case r := <-recs:
		return r
	case <-time.After(testTimeout):
		t.Fatal("no record in time")
		return Record{}
	}
}

// The same message id is stored once: the second publisher is told it was
// a duplicate and the sequence does not move.
func TestPublishDeduplicates(t *testing.T) {
	l := openEmbedded(t, t.TempDir(), 100)
	ctx := t.Context()
	a, err := l.Publish(ctx, "tick-1", "T", "one", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.Publish(ctx, "tick-1", "T", "one again", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := l.Publish(ctx, "tick-2", "T", "two", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Seq != 1 || a.Duplicate || b.Seq != 1 || !b.Duplicate || c.Seq != 2 || c.Duplicate {
		t.Errorf("results %+v %+v %+v, want seq 1, 1 (duplicate), 2", a, b, c)
	}
}

// Follow starts with the newest History events, delivers everything after
// in order with its headers, and reports healthy once caught up.
func TestFollow(t *testing.T) {
	l := openEmbedded(t, t.TempDir(), 3)
	ctx := t.Context()
	sent := time.Unix(0, 42)
	for i := range 10 {
		if _, err := l.Publish(ctx, "m"+strconv.Itoa(i), "T", "event "+strconv.Itoa(i), sent); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Health(); err == nil {
		t.Error("healthy before following")
	}
	recs := follow(t, l)
	for want := uint64(8); want <= 10; want++ {
		r := next(t, recs)
		if r.Seq != want || r.Type != "T" || r.Data != "event "+strconv.Itoa(int(want-1)) || !r.Sent.Equal(sent) || r.Stored.IsZero() {
			t.Fatalf("record %+v, want seq %d", r, want)
		}
	}
	deadline := time.Now().Add(testTimeout)
	for l.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("not healthy after catching up: %v", l.Health())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := l.Publish(ctx, "live", "T", "live", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if r := next(t, recs); r.Seq != 11 || !r.Sent.IsZero() {
		t.Errorf("live record %+v, want seq 11 unstamped", r)
	}
	if first, last, err := l.Bounds(ctx); err != nil || first != 9 || last != 11 {
		t.Errorf("bounds %d..%d (%v), want 9..11 with a 3-event limit", first, last, err)
	}
}

// The embedded server's file storage keeps the sequence across a reopen.
func TestEmbeddedKeepsSequence(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, dir, 100)
	for i := range 3 {
		if _, err := l.Publish(t.Context(), "m"+strconv.Itoa(i), "T", "x", time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	l = openEmbedded(t, dir, 100)
	res, err := l.Publish(t.Context(), "after", "T", "x", time.Time{})
	if err != nil || res.Seq != 4 {
		t.Errorf("first publish after reopening: %+v %v, want seq 4", res, err)
	}
}

// Range reads back stored events, from the oldest still held.
func TestRange(t *testing.T) {
	l := openEmbedded(t, t.TempDir(), 5)
	for i := range 8 { // the stream keeps 4..8
		if _, err := l.Publish(t.Context(), "m"+strconv.Itoa(i), "T", "event "+strconv.Itoa(i+1), time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		from, to uint64
		want     []uint64
	}{
		{5, 7, []uint64{5, 6, 7}},
		{1, 5, []uint64{4, 5}},
		{8, 8, []uint64{8}},
		{6, 5, nil},
	}
	for _, tc := range tests {
		ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
		recs, err := l.Range(ctx, tc.from, tc.to)
		cancel()
		if err != nil {
			t.Fatalf("Range(%d, %d): %v", tc.from, tc.to, err)
		}
		var got []uint64
		for _, r := range recs {
			got = append(got, r.Seq)
			if r.Data != "event "+strconv.Itoa(int(r.Seq)) {
				t.Errorf("seq %d holds %q", r.Seq, r.Data)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("Range(%d, %d) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}

// Two embedded servers on one data directory would corrupt it: the second
// is refused, and the directory is free again once the first closes.
func TestDataDirIsExclusive(t *testing.T) {
	dir := t.TempDir()
	l := openEmbedded(t, dir, 10)
	if _, err := Open(Config{DataDir: dir}); err == nil || !strings.Contains(err.Error(), "in use by another upstream") {
		t.Fatalf("second Open on %s: %v, want it refused", dir, err)
	}
	l.Close()
	openEmbedded(t, dir, 10)
}
