package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"example.com/sse-on-envoy/upstream/eventlog"
)

// Two replicas on one external NATS: every client gets the same ids with
// the same content, and the stream holds one event per tick although both
// replicas publish every tick.
func TestReplicasShareOneSequence(t *testing.T) {
	n := startNATS(t, freePort(t), t.TempDir())
	const interval = 200 * time.Millisecond
	args := []string{"-nats-url", n.url(), "-interval", interval.String()}
	r1, r2 := startReplica(t, args...), startReplica(t, args...)
	r1.waitHealthy(t)
	r2.waitHealthy(t)

	c1, c2 := openSSE(t, r1.base, ""), openSSE(t, r2.base, "")
	const count = 12
	e1, e2 := c1.events(t, count), c2.events(t, count)
	checkConsecutive(t, "client on replica 1", e1, e1[0].id)
	checkConsecutive(t, "client on replica 2", e2, e2[0].id)
	byID := map[uint64]string{}
	for _, e := range e1 {
		byID[e.id] = e.data
	}
	common := 0
	for _, e := range e2 {
		if d, ok := byID[e.id]; ok {
			common++
			if d != e.data {
				t.Errorf("id %d: replica 1 sent %q, replica 2 %q", e.id, d, e.data)
			}
		}
	}
	if common < count-2 {
		t.Errorf("the clients share only %d ids: %v and %v", common, idsOf(e1), idsOf(e2))
	}
	// The first event is the newest held, sent at once; from the second on
	// they come one per tick. Two per tick (no de-duplication) would take
	// half the time.
	elapsed := e1[count-1].at.Sub(e1[1].at)
	if min := time.Duration(count-2) * interval * 3 / 4; elapsed < min {
		t.Errorf("%d events took %v, want about %v: more than one event per tick", count-1, elapsed, time.Duration(count-2)*interval)
	}

	// Both replicas publish every tick: together they stored each sequence
	// once and were told "duplicate" for most of the rest.
	m1, m2 := r1.metrics(t), r2.metrics(t)
	stored := m1[`sse_upstream_events_published_total{result="stored"}`] + m2[`sse_upstream_events_published_total{result="stored"}`]
	dups := m1[`sse_upstream_events_published_total{result="duplicate"}`] + m2[`sse_upstream_events_published_total{result="duplicate"}`]
	last := max(m1["sse_upstream_last_sequence"], m2["sse_upstream_last_sequence"])
	if stored < last-1 || stored > last+1 {
		t.Errorf("replicas stored %v events, the stream's last sequence is %v", stored, last)
	}
	if dups < stored/2 {
		t.Errorf("only %v duplicates for %v stored: are both replicas publishing every tick?", dups, stored)
	}
	for i, m := range []map[string]float64{m1, m2} {
		if m["sse_upstream_nats_connected"] != 1 || m["sse_upstream_healthy"] != 1 || m["sse_upstream_subscribers"] != 1 {
			t.Errorf("replica %d metrics: connected %v healthy %v subscribers %v", i+1,
				m["sse_upstream_nats_connected"], m["sse_upstream_healthy"], m["sse_upstream_subscribers"])
		}
		if m[`sse_upstream_replays_total{outcome="none"}`] != 1 {
			t.Errorf("replica %d counted %v new clients, want 1", i+1, m[`sse_upstream_replays_total{outcome="none"}`])
		}
	}
}

// Every replica and NATS itself restart: ids continue where they were, and
// a Last-Event-ID from before the restart replays exactly what the client
// missed, then joins the live feed without a gap.
func TestRestartEverything(t *testing.T) {
	n := startNATS(t, freePort(t), t.TempDir())
	args := []string{"-nats-url", n.url(), "-interval", "100ms"}
	r1, r2 := startReplica(t, args...), startReplica(t, args...)
	r1.waitHealthy(t)
	r2.waitHealthy(t)

	c := openSSE(t, r1.base, "")
	seen := c.events(t, 3)[2].id
	c.close()
	// Events the client misses before everything stops.
	waitUntil(t, "events after the client left", func() bool {
		return r2.metrics(t)["sse_upstream_last_sequence"] >= float64(seen+5)
	})
	r1.stop(t, syscall.SIGTERM)
	r2.stop(t, syscall.SIGTERM)
	n = n.restart(t, syscall.SIGTERM)
	r1, r2 = startReplica(t, args...), startReplica(t, args...)
	r1.waitHealthy(t)
	r2.waitHealthy(t)

	fresh := openSSE(t, r1.base, "")
	if first := fresh.next(t); first.id <= seen+5 {
		t.Errorf("a new client's first id after the restart is %d, want above %d: ids restarted", first.id, seen+5)
	}
	back := openSSE(t, r2.base, strconv.FormatUint(seen, 10))
	var replayed int
	if _, err := fmt.Sscanf(back.replay(), "replayed %d", &replayed); err != nil || replayed < 5 {
		t.Fatalf("x-sse-replay %q, want replayed 5 or more", back.replay())
	}
	// The replay, then live events across the seam.
	evs := back.events(t, replayed+5)
	checkConsecutive(t, "resumed client", evs, seen+1)
}

// The embedded NATS keeps its ids across an upstream restart with the same
// -data.
func TestEmbeddedKeepsIDsAcrossRestart(t *testing.T) {
	data := t.TempDir()
	args := []string{"-data", data, "-interval", "100ms"}
	r := startReplica(t, args...)
	r.waitHealthy(t)
	c := openSSE(t, r.base, "")
	seen := c.events(t, 3)[2].id
	c.close()
	waitUntil(t, "events after the client left", func() bool {
		return r.metrics(t)["sse_upstream_last_sequence"] >= float64(seen+3)
	})
	r.stop(t, syscall.SIGTERM)

	r = startReplica(t, args...)
	r.waitHealthy(t)
	back := openSSE(t, r.base, strconv.FormatUint(seen, 10))
	var replayed int
	if _, err := fmt.Sscanf(back.replay(), "replayed %d", &replayed); err != nil || replayed < 3 {
		t.Fatalf("x-sse-replay %q, want replayed 3 or more", back.replay())
	}
	checkConsecutive(t, "resumed client", back.events(t, replayed+3), seen+1)
}

// Clients resume (replay from the history, then live) while events are
// stored at about 1,000 per second: every one gets each id exactly once,
// in order, across the seam.
func TestSeamUnderLoad(t *testing.T) {
	n := startNATS(t, freePort(t), t.TempDir())
	// The replica's own ticker publishes once at start and then hardly
	// ever: the test is the publisher.
	r := startReplica(t, "-nats-url", n.url(), "-interval", "1h", "-history", "100000", "-queue", "4096")
	r.waitHealthy(t)

	nc, err := nats.Connect(n.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	var lastSeq atomic.Uint64
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	pubDone := make(chan error, 1)
	var published atomic.Int64
	start := time.Now()
	go func() { pubDone <- publishAtRate(ctx, js, 1000, &lastSeq, &published) }()

	const clients, perClient = 20, 500
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := range clients {
		time.Sleep(100 * time.Millisecond)
		from := lastSeq.Load()
		if back := uint64(i * 20); from > back {
			from -= back // some resume far back, some at the head
		}
		c := openSSE(t, r.base, strconv.FormatUint(from, 10))
		if !strings.HasPrefix(c.replay(), "replayed ") {
			t.Fatalf("client %d: x-sse-replay %q", i, c.replay())
		}
		wg.Go(func() {
			defer c.close()
			want := from + 1
			timeout := time.After(procTimeout)
			for got := 0; got < perClient; {
				select {
				case it := <-c.items:
					if it.heartbeat {
						continue
					}
					if it.id != want {
						errs <- fmt.Errorf("client %d resuming after %d: got id %d, want %d", i, from, it.id, want)
						return
					}
					want++
					got++
				case <-timeout:
					errs <- fmt.Errorf("client %d: only up to id %d in time", i, want-1)
					return
				}
			}
		})
	}
	wg.Wait()
	stop()
	if err := <-pubDone; err != nil && ctx.Err() == nil {
		t.Fatal(err)
	}
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	rate := float64(published.Load()) / time.Since(start).Seconds()
	t.Logf("published %d events at %.0f/s", published.Load(), rate)
	if rate < 500 {
		t.Errorf("publish rate %.0f/s: the seam was not tested under load", rate)
	}
}

// publishAtRate stores perSecond events a second (in batches every 10ms,
// acknowledged before the next batch) until ctx is done.
func publishAtRate(ctx context.Context, js jetstream.JetStream, perSecond int, lastSeq *atomic.Uint64, published *atomic.Int64) error {
	const every = 10 * time.Millisecond
	batch := perSecond * int(every) / int(time.Second)
	tick := time.NewTicker(every)
	defer tick.Stop()
	subject := eventlog.Subject(eventlog.DefaultStream)
	for i := 0; ; {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		futures := make([]jetstream.PubAckFuture, 0, batch)
		for range batch {
			m := nats.NewMsg(subject)
			m.Header.Set(eventlog.TypeHeader, "LOAD")
			m.Data = []byte("load " + strconv.Itoa(i))
			f, err := js.PublishMsgAsync(m, jetstream.WithMsgID("load-"+strconv.Itoa(i)))
			if err != nil {
				return err
			}
			futures = append(futures, f)
			i++
		}
		for _, f := range futures {
			select {
			case ack := <-f.Ok():
				lastSeq.Store(max(lastSeq.Load(), ack.Sequence))
				published.Add(1)
			case err := <-f.Err():
				return err
			case <-ctx.Done():
				return nil
			}
		}
	}
}

// A Last-Event-ID older than the history window, or never issued: still
// 200, an x-sse-replay value that says so, a log line, and no wrong replay.
func TestLastEventIDOutsideTheLog(t *testing.T) {
	r := startReplica(t, "-data", t.TempDir(), "-interval", "50ms", "-history", "5")
	r.waitHealthy(t)
	waitUntil(t, "the history to roll over", func() bool {
		return r.metrics(t)["sse_upstream_last_sequence"] >= 12
	})

	old := openSSE(t, r.base, "2")
	if !strings.HasPrefix(old.replay(), "gap ") {
		t.Errorf("x-sse-replay %q for an id out of the window, want gap N", old.replay())
	}
	first := old.next(t)
	if first.id <= 3 {
		t.Errorf("replayed from id %d, which is out of a 5-event window", first.id)
	}
	checkConsecutive(t, "client out of the window", append([]item{first}, old.events(t, 6)...), first.id)
	waitUntil(t, "a log line for the lost events", func() bool {
		return len(r.out.records("last-event-id out of the history window: events lost to this client")) == 1
	})

	future := openSSE(t, r.base, "1000000")
	if got := future.replay(); got != "future-last-event-id" {
		t.Errorf("x-sse-replay %q for an id never issued", got)
	}
	last := uint64(r.metrics(t)["sse_upstream_last_sequence"])
	got := future.events(t, 3)
	if got[0].id > last+1 {
		t.Errorf("a client from the future got id %d first; the newest is %d", got[0].id, last)
	}
	checkConsecutive(t, "client from the future", got, got[0].id)
	waitUntil(t, "a log line for the future id", func() bool {
		return len(r.out.records("last-event-id from the future: not issued by this event log; treated as a new client")) == 1
	})
	m := r.metrics(t)
	if m[`sse_upstream_replays_total{outcome="gap"}`] != 1 || m[`sse_upstream_replays_total{outcome="future"}`] != 1 {
		t.Errorf("replay metrics: gap %v, future %v; want 1 each",
			m[`sse_upstream_replays_total{outcome="gap"}`], m[`sse_upstream_replays_total{outcome="future"}`])
	}
}

// NATS goes away: the open stream stays open with heartbeats and no
// invented events, /healthz says 503 with the reason, and once NATS is
// back the events stored from then on reach the stream with no gap.
func TestNATSOutage(t *testing.T) {
	n := startNATS(t, freePort(t), t.TempDir())
	r := startReplica(t, "-nats-url", n.url(), "-interval", "100ms", "-heartbeat", "200ms")
	r.waitHealthy(t)
	c := openSSE(t, r.base, "")
	before := c.events(t, 3)

	n.stop(t, syscall.SIGKILL)
	var body string
	waitUntil(t, "/healthz 503 while NATS is down", func() bool {
		var code int
		code, body = r.health(t)
		return code == http.StatusServiceUnavailable
	})
	if !strings.Contains(body, "nats") {
		t.Errorf("/healthz body %q does not name NATS", body)
	}
	if r.metrics(t)["sse_upstream_nats_connected"] != 0 {
		t.Error("metrics say NATS is connected while it is down")
	}
	// Drain what was stored before the kill, then watch the outage.
	lastID := before[len(before)-1].id
	heartbeats := 0
	window := time.After(1500 * time.Millisecond)
watch:
	for {
		select {
		case it := <-c.items:
			if it.heartbeat {
				heartbeats++
				continue
			}
			if it.id != lastID+1 {
				t.Fatalf("id %d after %d during the outage", it.id, lastID)
			}
			lastID = it.id
		case err := <-c.ended:
			t.Fatalf("stream ended during the outage: %v", err)
		case <-window:
			break watch
		}
	}
	if heartbeats < 3 {
		t.Errorf("%d heartbeats in 1.5s of outage at -heartbeat 200ms", heartbeats)
	}
	stalled := lastID

	n = startNATS(t, n.port, n.storeDir)
	r.waitHealthy(t)
	after := c.events(t, 5)
	checkConsecutive(t, "stream across the outage", after, lastID+1)
	if after[0].id != stalled+1 {
		t.Errorf("first id after the outage %d, want %d", after[0].id, stalled+1)
	}
}

// A client that never reads is cut once its -queue is full, while a client
// reading along keeps getting every event at the publishing pace; the cut
// shows in the log and in /metrics. The test publishes big events into the
// log itself, so that the kernel's socket buffers (megabytes on loopback)
// fill within seconds and the upstream's writes to the stalled client block.
func TestNeverReadingClientIsCut(t *testing.T) {
	n := startNATS(t, freePort(t), t.TempDir())
	r := startReplica(t, "-nats-url", n.url(), "-interval", "1h", "-queue", "4", "-write-timeout", "1s")
	r.waitHealthy(t)
	nc, err := nats.Connect(n.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 32<<10)
	publish := func(i int) {
		m := nats.NewMsg(eventlog.Subject(eventlog.DefaultStream))
		m.Header.Set(eventlog.TypeHeader, "BIG")
		m.Data = []byte(big)
		ctx, cancel := context.WithTimeout(t.Context(), procTimeout)
		defer cancel()
		if _, err := js.PublishMsg(ctx, m, jetstream.WithMsgID("big-"+strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}

	// A tiny receive buffer: the kernel holds little for the client that
	// stops reading.
	slowTransport := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(2 << 10)
		}
		return c, err
	}}
	defer slowTransport.CloseIdleConnections()
	req, _ := http.NewRequest(http.MethodGet, r.base+"/sse/events", nil)
	slow, err := (&http.Client{Transport: slowTransport}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Body.Close() // never read

	fast := openSSE(t, r.base, "")
	prev := fast.next(t)
	var worst time.Duration
	deadline := time.Now().Add(procTimeout)
	for i := 0; r.metrics(t)["sse_upstream_slow_client_cuts_total"] == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatalf("the never-reading client was not cut within %v (%d events of %d bytes)", procTimeout, i, len(big))
		}
		published := time.Now()
		publish(i)
		// Waiting for the reading client keeps it from being cut however
		// slowly this machine runs; the other one is never waited for.
		e := fast.next(t)
		if e.id != prev.id+1 {
			t.Fatalf("the reading client got id %d after %d", e.id, prev.id)
		}
		worst = max(worst, e.at.Sub(published))
		prev = e
	}
	waitUntil(t, "the slow stream logged as cut", func() bool {
		for _, rec := range r.out.records("sse stream closed") {
			if rec["end"] == "slow_client_cut" {
				return true
			}
		}
		return false
	})
	// The reader keeps its pace after the cut too.
	for i := range 20 {
		publish(1000 + i)
		if e := fast.next(t); e.id != prev.id+1 {
			t.Fatalf("the reading client got id %d after %d", e.id, prev.id)
		} else {
			prev = e
		}
	}
	m := r.metrics(t)
	if m["sse_upstream_slow_client_cuts_total"] != 1 || m["sse_upstream_subscribers"] != 1 {
		t.Errorf("cuts %v, subscribers %v: want exactly the never-reading client cut",
			m["sse_upstream_slow_client_cuts_total"], m["sse_upstream_subscribers"])
	}
	t.Logf("worst publish-to-delivery time for the reading client before the cut: %v", worst)
	if worst > 2*time.Second {
		t.Errorf("the reading client waited %v for an event while the other one stalled", worst)
	}
}

// With -stamp every event carries its publish time as a comment before its
// id line; ordinary clients see nothing of it.
func TestStamp(t *testing.T) {
	r := startReplica(t, "-data", t.TempDir(), "-interval", "50ms", "-stamp")
	r.waitHealthy(t)
	c := openSSE(t, r.base, "")
	for _, e := range c.events(t, 4) {
		ns, err := strconv.ParseInt(e.sent, 10, 64)
		if err != nil {
			t.Fatalf("event %d: sent stamp %q: %v", e.id, e.sent, err)
		}
		if age := e.at.Sub(time.Unix(0, ns)); age < 0 || age > 10*time.Second {
			t.Errorf("event %d stamped %v before it arrived", e.id, age)
		}
	}
	plain := startReplica(t, "-data", t.TempDir(), "-interval", "50ms")
	plain.waitHealthy(t)
	if e := openSSE(t, plain.base, "").next(t); e.sent != "" {
		t.Errorf("unstamped upstream sent a stamp %q", e.sent)
	}
}

// A Last-Event-ID older than what the replica keeps in memory but still in
// the stream is replayed in full from the stream, seamlessly into the
// in-memory window and the live feed; one older than the stream is a gap.
func TestReplayOlderThanMemoryFromTheStream(t *testing.T) {
	r := startReplica(t, "-data", t.TempDir(), "-interval", "20ms", "-history", "40", "-memory-history", "5")
	r.waitHealthy(t)
	waitUntil(t, "the stream to roll over", func() bool {
		return r.metrics(t)["sse_upstream_last_sequence"] >= 50
	})
	last := uint64(r.metrics(t)["sse_upstream_last_sequence"])

	from := last - 30 // older than memory (5), within the stream (40)
	c := openSSE(t, r.base, strconv.FormatUint(from, 10))
	var n int
	if _, err := fmt.Sscanf(c.replay(), "replayed %d", &n); err != nil || n < 30 {
		t.Fatalf("x-sse-replay %q for an id 30 back with 5 in memory and 40 in the stream, want replayed 30 or more", c.replay())
	}
	checkConsecutive(t, "client replayed from the stream", c.events(t, n+5), from+1)

	old := openSSE(t, r.base, "1")
	if !strings.HasPrefix(old.replay(), "gap ") {
		t.Errorf("x-sse-replay %q for an id older than the stream, want gap N", old.replay())
	}
	first := old.next(t)
	if first.id < last-40 {
		t.Errorf("replayed from id %d, older than the stream's 40-event window ending near %d", first.id, last)
	}
	checkConsecutive(t, "client with a gap", append([]item{first}, old.events(t, 10)...), first.id)
}

// NATS loses its storage and the stream is created again, so sequences
// start over: open streams end (clients reconnect), an old Last-Event-ID is
// "future-last-event-id" instead of a replay from the wrong sequence, and
// the replica serves the new sequence.
func TestStreamReplaced(t *testing.T) {
	n := startNATS(t, freePort(t), t.TempDir())
	r := startReplica(t, "-nats-url", n.url(), "-interval", "100ms")
	r.waitHealthy(t)
	waitUntil(t, "some history", func() bool { return r.metrics(t)["sse_upstream_last_sequence"] >= 40 })
	c := openSSE(t, r.base, "")
	seen := c.next(t).id

	n.stop(t, syscall.SIGTERM)
	n = startNATS(t, n.port, t.TempDir()) // empty storage
	select {
	case err := <-c.ended:
		t.Logf("open stream ended: %v", err)
	case <-time.After(procTimeout):
		t.Fatal("the open stream was not ended when the sequence started over")
	}
	waitUntil(t, "the reset logged", func() bool {
		for _, rec := range r.out.records("sse stream closed") {
			if rec["end"] == "log_reset" {
				return true
			}
		}
		return false
	})
	r.waitHealthy(t)
	back := openSSE(t, r.base, strconv.FormatUint(seen, 10))
	if got := back.replay(); got != "future-last-event-id" {
		t.Errorf("x-sse-replay %q for an id from the old sequence", got)
	}
	if first := back.next(t); first.id >= seen {
		t.Errorf("first id %d on the new sequence, want below %d", first.id, seen)
	}
}

// NATS comes back with an older copy of its storage (the same stream,
// fewer events): the sequences after the copy's last would name other
// events than the ones clients saw. Open streams end and the old ids are
// "future-last-event-id", as for a replaced stream.
func TestStreamWentBack(t *testing.T) {
	n := startNATS(t, freePort(t), t.TempDir())
	r := startReplica(t, "-nats-url", n.url(), "-interval", "50ms")
	r.waitHealthy(t)
	waitUntil(t, "some history", func() bool { return r.metrics(t)["sse_upstream_last_sequence"] >= 5 })

	n.stop(t, syscall.SIGTERM)
	backup := t.TempDir()
	if err := os.CopyFS(backup, os.DirFS(n.storeDir)); err != nil {
		t.Fatal(err)
	}
	n = startNATS(t, n.port, n.storeDir)
	r.waitHealthy(t)
	c := openSSE(t, r.base, "")
	seen := c.next(t).id
	waitUntil(t, "events beyond the copy", func() bool { return r.metrics(t)["sse_upstream_last_sequence"] >= float64(seen+100) })
	last := uint64(r.metrics(t)["sse_upstream_last_sequence"])

	n.stop(t, syscall.SIGTERM)
	restored := t.TempDir()
	if err := os.CopyFS(restored, os.DirFS(backup)); err != nil {
		t.Fatal(err)
	}
	n = startNATS(t, n.port, restored)
	select {
	case err := <-c.ended:
		t.Logf("open stream ended: %v", err)
	case <-time.After(procTimeout):
		t.Fatal("the open stream was not ended when the sequence went back")
	}
	r.waitHealthy(t)
	back := openSSE(t, r.base, strconv.FormatUint(last, 10))
	if got := back.replay(); got != "future-last-event-id" {
		t.Errorf("x-sse-replay %q for an id the restored stream never issued", got)
	}
	if first := back.next(t); first.id >= last {
		t.Errorf("first id %d after the restore, want below %d", first.id, last)
	}
}
