package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/upstream/stream"
)

// Quiet streams over time, not over events (issue 17): a seed stream whose
// events come every 30 s, a subscription to a Mercure topic nobody
// publishes to, and an LLM completion whose next token is 100 s away, on
// both Envoy ports and both upstream legs, held idle
// longer than every timeout in their path (the upstream's write deadline,
// its heartbeat, Envoy's route idle_timeout), each stay one open response:
// heartbeats arrive, nothing ends, nothing reconnects, and the stream still
// delivers at the end.
func TestQuietStreamsStayOpen(t *testing.T) {
	const (
		interval  = 30 * time.Second
		heartbeat = stream.DefaultHeartbeat
	)
	// Longer than every timeout in the path.
	hold := max(routes.StreamIdleTimeout, stream.DefaultWriteTimeout, heartbeat, interval) + 10*time.Second
	for _, a := range stockAdapters {
		t.Run(string(a), func(t *testing.T) {
			t.Parallel()
			s := startStackOptions(t, localstack.Options{
				Adapter: a,
				UpstreamArgs: []string{"-interval", interval.String(), "-heartbeat", heartbeat.String(), "-retry", "500ms",
					"-token-rate", "0.01"},
			})
			h1, h2 := httpClient(t, s, false), httpClient(t, s, true)
			quiet := mercurePath + "?" + url.Values{"topic": {"https://example.com/quiet"}}.Encode()
			const completion = `{"model":"dad-joke-1","stream":true,"messages":[{"role":"user","content":"a joke, slowly"}]}`
			streams := []struct {
				name   string
				client *http.Client
				url    string
				post   string // a JSON body to POST; "" GETs
			}{
				{"seed plain leg, 8080", h1, s.HTTPURL + routes.EventsPath, ""},
				{"seed TLS leg, 8080", h1, s.HTTPURL + routes.TLS(routes.EventsPath), ""},
				{"seed plain leg, 8443", h2, s.HTTPSURL + routes.EventsPath, ""},
				{"seed TLS leg, 8443", h2, s.HTTPSURL + routes.TLS(routes.EventsPath), ""},
				{"mercure quiet topic, 8080", h1, s.HTTPURL + quiet, ""},
				{"mercure quiet topic, 8443", h2, s.HTTPSURL + quiet, ""},
				{"slow completion, 8080", h1, s.HTTPURL + routes.CompletionsPath, completion},
				{"slow completion, 8443", h2, s.HTTPSURL + routes.CompletionsPath, completion},
			}
			ctx, cancel := context.WithTimeout(context.Background(), hold+time.Minute)
			defer cancel()
			results := make([]*quietStream, len(streams))
			var wg sync.WaitGroup
			for i, st := range streams {
				results[i] = &quietStream{lines: make(chan string, 64)}
				wg.Go(func() { results[i].read(ctx, st.client, st.url, st.post) })
			}
			t.Logf("holding %d quiet streams for %v", len(streams), hold)
			deadline := time.After(hold)
		hold:
			for {
				select {
				case <-deadline:
					break hold
				case <-ctx.Done():
					t.Fatal("timed out")
				case <-time.After(time.Second):
					for i, r := range results {
						if err := r.ended(); err != nil {
							t.Fatalf("%s ended after %v: %v", streams[i].name, time.Since(r.start).Round(time.Second), err)
						}
					}
				}
			}
			// Still live: a publish on the quiet topic reaches both
			// subscribers.
			pubTok := mercureToken(t, localstack.DevPublisherKey, []string{"*"}, nil)
			if st, id := curlPublish(t, s, s.HTTPURL, pubTok, "topic=https://example.com/quiet", "data=at last"); !statusIs(st, 200) {
				t.Fatalf("publish: %s %s", st, id)
			} else {
				for i, st := range streams {
					if strings.HasPrefix(st.name, "mercure") {
						results[i].waitFor(t, st.name, "id: "+id, 15*time.Second)
					}
				}
			}
			cancel()
			wg.Wait()

			for i, st := range streams {
				r := results[i]
				if r.status != http.StatusOK || r.responses != 1 {
					t.Errorf("%s: status %d, %d responses, want one 200", st.name, r.status, r.responses)
				}
				if want := int(hold/heartbeat) - 1; r.heartbeats < want {
					t.Errorf("%s: %d heartbeats in %v, want at least %d", st.name, r.heartbeats, hold, want)
				}
				t.Logf("%s: %s, one response, %d heartbeats, %d events in %v", st.name, r.proto, r.heartbeats, r.events, hold)
			}
			// Every stream opened once: nothing reconnected behind the
			// client's back.
			out := s.Upstream.Output()
			opened := strings.Count(out, `msg="sse stream open"`) + strings.Count(out, `msg="mercure subscription open"`) +
				strings.Count(out, `msg="token stream open"`)
			if opened != len(streams) {
				t.Errorf("the upstream opened %d streams, want %d (a reconnect?):\n%s", opened, len(streams), out)
			}
		})
	}
}

// quietStream reads one stream, counting what arrives.
type quietStream struct {
	start      time.Time
	lines      chan string
	mu         sync.Mutex
	err        error // why the stream ended early, if it did
	status     int
	proto      string
	responses  int
	heartbeats int
	events     int
}

func (q *quietStream) read(ctx context.Context, client *http.Client, rawURL, post string) {
	q.start = time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if post != "" {
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader(post))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
	}
	if err == nil {
		var resp *http.Response
		if resp, err = client.Do(req); err == nil {
			q.mu.Lock()
			q.status, q.proto, q.responses = resp.StatusCode, resp.Proto, q.responses+1
			q.mu.Unlock()
			err = q.scan(ctx, resp)
		}
	}
	if ctx.Err() == nil {
		q.mu.Lock()
		q.err = fmt.Errorf("stream ended: %v", err)
		q.mu.Unlock()
	}
}

func (q *quietStream) scan(ctx context.Context, resp *http.Response) error {
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		q.mu.Lock()
		switch {
		case line == ": heartbeat":
			q.heartbeats++
		case strings.HasPrefix(line, "id: "):
			q.events++
		}
		q.mu.Unlock()
		select {
		case q.lines <- line:
		default: // nobody waits for lines yet
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("EOF")
}

func (q *quietStream) ended() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.err
}

func (q *quietStream) waitFor(t *testing.T, name, line string, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l := <-q.lines:
			if l == line {
				return
			}
		case <-timer.C:
			t.Fatalf("%s: no %q within %v (ended: %v)", name, line, d, q.ended())
		}
	}
}
