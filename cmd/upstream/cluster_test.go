package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"example.com/sse-on-envoy/internal/sse"
)

// startNATSCluster runs three nats-servers (n1..n3) clustered on loopback
// ports, JetStream on each, and returns them with the client URLs.
func startNATSCluster(t *testing.T) ([]*natsProc, string) {
	t.Helper()
	const size = 3
	ports, routes := make([]int, size), make([]int, size)
	for i := range size {
		ports[i], routes[i] = freePort(t), freePort(t)
	}
	var routeURLs, clientURLs []string
	for i := range size {
		routeURLs = append(routeURLs, fmt.Sprintf("nats://127.0.0.1:%d", routes[i]))
		clientURLs = append(clientURLs, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	servers := make([]*natsProc, size)
	for i := range size {
		dir := t.TempDir()
		p := startProc(t, "nats-"+strconv.Itoa(i+1), nil, natsServerBin(t),
			"-n", "n"+strconv.Itoa(i+1), "-a", "127.0.0.1", "-p", strconv.Itoa(ports[i]), "-js", "-sd", dir,
			"--cluster_name", "sse", "--cluster", routeURLs[i], "--routes", strings.Join(routeURLs, ","))
		servers[i] = &natsProc{proc: p, port: ports[i], storeDir: dir}
	}
	for i, s := range servers {
		waitUntil(t, "nats-server "+strconv.Itoa(i+1)+" ready", func() bool {
			if s.exited() {
				t.Fatalf("nats-server %d exited: %v\n%s", i+1, s.err, s.out.String())
			}
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.port), time.Second)
			if err != nil {
				return false
			}
			c.Close()
			return strings.Contains(s.out.String(), "Server is ready")
		})
	}
	return servers, strings.Join(clientURLs, ",")
}

// streamLeader names the server leading stream's RAFT group.
func streamLeader(ctx context.Context, js jetstream.JetStream, stream string) (string, error) {
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return "", err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return "", err
	}
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", errors.New("no leader")
	}
	return info.Cluster.Leader, nil
}

// clusterSubscriber follows topics like a browser's EventSource: when the
// stream ends it reconnects, to any replica, with the id of the last
// update it got, and records every update's id as received.
type clusterSubscriber struct {
	name    string
	query   url.Values
	token   string
	bases   []string
	mu      sync.Mutex
	got     []string
	connect int
}

func (s *clusterSubscriber) ids() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func (s *clusterSubscriber) run(ctx context.Context) {
	last := ""
	for i := 0; ctx.Err() == nil; i++ {
		last = s.once(ctx, s.bases[i%len(s.bases)], last)
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond): // EventSource's retry
		}
	}
}

func (s *clusterSubscriber) once(ctx context.Context, base, last string) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/mercure?"+s.query.Encode(), nil)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return last
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return last
	}
	s.mu.Lock()
	s.connect++
	s.mu.Unlock()
	rd := sse.NewReader(resp.Body)
	for {
		e, err := rd.Next()
		if err != nil {
			return last
		}
		s.mu.Lock()
		s.got = append(s.got, e.ID)
		s.mu.Unlock()
		last = e.ID
	}
}

// publishAcked publishes with the publisher's own id, retrying the same id
// (on any replica) until the hub acknowledges it: safe, since the log
// stores an id once within the de-duplication window.
func publishAcked(ctx context.Context, bases []string, token string, form url.Values) (attempts int, err error) {
	for i := 0; ; i++ {
		if ctx.Err() != nil {
			return i, ctx.Err()
		}
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		req, _ := http.NewRequestWithContext(actx, http.MethodPost, bases[i%len(bases)]+"/.well-known/mercure", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == form.Get("id") {
				cancel()
				return i + 1, nil
			}
			if resp.StatusCode != http.StatusServiceUnavailable {
				cancel()
				return i + 1, fmt.Errorf("publish %s: %s %s", form.Get("id"), resp.Status, body)
			}
		}
		cancel()
		time.Sleep(50 * time.Millisecond)
	}
}

// A three-node NATS cluster holds the hub's stream with three replicas.
// While updates are published and followed through two upstream replicas,
// the stream's leader is killed: every acknowledged publish reaches every
// matching subscriber, once and in order, and nothing else reaches it.
func TestMercureClusterLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a NATS cluster")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 55*time.Second)
	defer cancel()
	servers, urls := startNATSCluster(t)
	args := append(mercureArgs(urls), "-nats-replicas", "3")
	r1, r2 := startReplica(t, args...), startReplica(t, args...)
	r1.waitHealthy(t)
	r2.waitHealthy(t)
	bases := []string{r1.base, r2.base}

	nc, err := nats.Connect(urls, nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	pubTok := signHS256(t, testPublisherKey, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}})
	evenTok := signHS256(t, testSubscriberKey, jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"urn:even/{n}"}}})
	subs := []*clusterSubscriber{
		{name: "all, anonymous", query: url.Values{"topic": {"*"}}},
		{name: "even template, with claim", query: url.Values{"topic": {"urn:even/{n}", "urn:end"}}, token: evenTok},
		{name: "odd exact topics", query: url.Values{"topic": {"urn:odd/3", "urn:odd/5", "urn:odd/7", "urn:odd/9", "urn:end"}}},
	}
	// Which updates each subscriber must get: public ones matching its
	// topics, private ones (every fourth) only with a claim.
	wants := []func(n int) bool{
		func(n int) bool { return n%4 != 0 },
		func(n int) bool { return n%2 == 0 },
		func(n int) bool { return n%2 == 1 && n%10 != 1 },
	}
	var wg sync.WaitGroup
	subCtx, stopSubs := context.WithCancel(ctx)
	defer func() { stopSubs(); wg.Wait() }()
	for i, s := range subs {
		s.bases = []string{bases[i%2], bases[(i+1)%2]}
		wg.Go(func() { s.run(subCtx) })
	}
	waitUntil(t, "subscribers connected", func() bool {
		for _, s := range subs {
			s.mu.Lock()
			c := s.connect
			s.mu.Unlock()
			if c == 0 {
				return false
			}
		}
		return true
	})

	topic := func(n int) string {
		if n%2 == 0 {
			return "urn:even/" + strconv.Itoa(n%10)
		}
		return "urn:odd/" + strconv.Itoa(n%10)
	}
	const total, killAt = 150, 50
	var acked []string
	retried := 0
	for n := 1; n <= total; n++ {
		if n == killAt {
			leader, err := streamLeader(ctx, js, "MERCURE")
			if err != nil {
				t.Fatalf("stream leader: %v", err)
			}
			idx, _ := strconv.Atoi(strings.TrimPrefix(leader, "n"))
			t.Logf("killing the stream leader %s after %d acknowledged publishes", leader, len(acked))
			servers[idx-1].kill()
		}
		form := url.Values{"topic": {topic(n)}, "id": {fmt.Sprintf("u-%03d", n)}, "data": {strconv.Itoa(n)}}
		if n%4 == 0 {
			form.Set("private", "")
		}
		attempts, err := publishAcked(ctx, bases, pubTok, form)
		if err != nil {
			t.Fatalf("update %d never acknowledged: %v", n, err)
		}
		retried += attempts - 1
		acked = append(acked, form.Get("id"))
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := publishAcked(ctx, bases, pubTok, url.Values{"topic": {"urn:end"}, "id": {"end"}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d updates acknowledged, %d publishes retried", len(acked), retried)

	for i, s := range subs {
		var want []string
		for n := 1; n <= total; n++ {
			if wants[i](n) {
				want = append(want, acked[n-1])
			}
		}
		want = append(want, "end")
		waitUntil(t, s.name+" got the end marker", func() bool {
			ids := s.ids()
			return len(ids) > 0 && ids[len(ids)-1] == "end"
		})
		got := s.ids()
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s (%d connections): got %d updates, want %d\n got %q\nwant %q", s.name, s.connect, len(got), len(want), got, want)
		}
	}
}
