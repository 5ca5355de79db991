package server

import (
	"context"
	"testing"
	"time"

	"example.com/sse-on-envoy/tools/mercureload"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
)

// The Mercure load client (tools/mercureload, make bench-load's
// SCENARIO=mercure) against the real hub: its accounting adds up. Every
// acknowledged publish reaches each subscriber of its topic once, stamped.
func TestMercureLoadClientAgainstTheHub(t *testing.T) {
	r := startMercure(t)
	token := publisherToken(t, "*")
	const subscribers, topics = 6, 3
	l, err := mercureload.Start(mercureload.Config{
		HubURL: r.plain + hubhttp.Path, Subscribers: subscribers, Topics: topics,
		Rate: 40, Token: token, Payload: 100,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if n := l.WaitAnswered(ctx); n != subscribers {
		t.Fatalf("%d of %d subscribers answered", n, subscribers)
	}
	// The hub registers a subscription as it answers; give the last one a
	// moment before publishing.
	time.Sleep(200 * time.Millisecond)
	res := l.Run(ctx, time.Second, 500*time.Millisecond)
	s := l.Close()
	if s.Opened() != subscribers || s.Failed() != 0 || len(s.Ended) != 0 {
		t.Errorf("subscribers: statuses %v, ended %v", s.Statuses, s.Ended)
	}
	if res.Published < 30 || res.Published > 40 || res.PublishErrors != nil || res.Behind != 0 {
		t.Errorf("published %d (errors %v, behind %d): want about 40, none failed", res.Published, res.PublishErrors, res.Behind)
	}
	if want := res.Published * subscribers / topics; res.Expected != want {
		t.Errorf("expected %d deliveries, want %d", res.Expected, want)
	}
	if res.Received != res.Expected || res.Lost != 0 || res.Unstamped != 0 || int64(len(res.Latencies)) != res.Received {
		t.Errorf("received %d of %d (lost %d, unstamped %d, %d latencies)", res.Received, res.Expected, res.Lost, res.Unstamped, len(res.Latencies))
	}
	for _, d := range res.Latencies {
		if d <= 0 || d > 5*time.Second {
			t.Fatalf("implausible latency %v", d)
		}
	}
	if int64(len(res.AckLatencies)) != res.Published || res.PublishRate <= 0 {
		t.Errorf("%d ack latencies for %d publishes, rate %g", len(res.AckLatencies), res.Published, res.PublishRate)
	}
}

// Without a rate, the publishers go as fast as they can: every publish is
// acknowledged and counted, none is behind.
func TestMercureLoadClientFlatOut(t *testing.T) {
	r := startMercure(t)
	token := publisherToken(t, "*")
	l, err := mercureload.Start(mercureload.Config{
		HubURL: r.plain + hubhttp.Path, Subscribers: 2, Topics: 2, Publishers: 1, Token: token,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	if n := l.WaitAnswered(ctx); n != 2 {
		t.Fatalf("%d of 2 subscribers answered", n)
	}
	time.Sleep(200 * time.Millisecond)
	res := l.Run(ctx, 300*time.Millisecond, 500*time.Millisecond)
	if res.Published == 0 || res.PublishErrors != nil || res.Behind != 0 {
		t.Errorf("published %d, errors %v, behind %d", res.Published, res.PublishErrors, res.Behind)
	}
	if res.Expected != res.Published || res.Received != res.Expected {
		t.Errorf("received %d, expected %d, for %d publishes (one subscriber a topic)", res.Received, res.Expected, res.Published)
	}
}
