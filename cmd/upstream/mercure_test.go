package main

import (
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"example.com/sse-on-envoy/internal/sse"
)

const (
	testPublisherKey  = "publisher-secret-0123456789abcdef"
	testSubscriberKey = "subscriber-secret-0123456789abcde"
)

func mercureArgs(natsURL string) []string {
	return []string{"-nats-url", natsURL, "-interval", "1h",
		"-mercure-publisher-jwt-key", testPublisherKey, "-mercure-subscriber-jwt-key", testSubscriberKey}
}

func signHS256(t *testing.T, key string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(key))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// mercurePublish publishes form on base with a publisher token for every
// topic and returns the update's id.
func mercurePublish(t *testing.T, base string, form url.Values) string {
	t.Helper()
	tok := signHS256(t, testPublisherKey, jwt.MapClaims{"mercure": map[string]any{"publish": []string{"*"}}})
	req, _ := http.NewRequest(http.MethodPost, base+"/.well-known/mercure", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("publish %v: %s %s", form, resp.Status, body)
	}
	return string(body)
}

type mercureSub struct {
	resp *http.Response
	rd   *sse.Reader
}

func mercureSubscribe(t *testing.T, base string, query url.Values, lastEventID, token string) *mercureSub {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, base+"/.well-known/mercure?"+query.Encode(), nil)
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("subscribe: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	return &mercureSub{resp: resp, rd: sse.NewReader(resp.Body)}
}

// until reads event ids up to and including marker.
func (s *mercureSub) until(t *testing.T, marker string) []string {
	t.Helper()
	var ids []string
	for {
		e, err := s.rd.Next()
		if err != nil {
			t.Fatalf("reading: %v (after %q)", err, ids)
		}
		ids = append(ids, e.ID)
		if e.ID == marker {
			return ids
		}
	}
}

// Two replicas share one log: an update published on one reaches a
// subscriber on the other, and a subscriber that leaves and comes back
// after every replica and NATS restarted, on the other replica, is
// replayed exactly what it missed (matching and allowed), once, in order.
func TestMercureAcrossReplicasAndRestarts(t *testing.T) {
	n := startNATS(t, freePort(t), t.TempDir())
	args := mercureArgs(n.url())
	r1, r2 := startReplica(t, args...), startReplica(t, args...)
	r1.waitHealthy(t)
	r2.waitHealthy(t)

	subTok := signHS256(t, testSubscriberKey, jwt.MapClaims{"mercure": map[string]any{"subscribe": []string{"urn:a"}}})
	q := url.Values{"topic": {"urn:a", "urn:marker"}}
	s := mercureSubscribe(t, r2.base, q, "", subTok)
	seen := []string{
		mercurePublish(t, r1.base, url.Values{"topic": {"urn:a"}, "data": {"1"}}),
		mercurePublish(t, r1.base, url.Values{"topic": {"urn:a"}, "data": {"2"}, "private": {""}}),
	}
	if got := s.until(t, seen[1]); !slices.Equal(got, seen) {
		t.Fatalf("subscriber on replica 2 got %q, want %q", got, seen)
	}
	s.resp.Body.Close()

	missed := []string{
		mercurePublish(t, r2.base, url.Values{"topic": {"urn:a"}, "data": {"3"}}),
		mercurePublish(t, r1.base, url.Values{"topic": {"urn:a"}, "data": {"4"}, "private": {""}}),
		mercurePublish(t, r2.base, url.Values{"topic": {"urn:a"}, "id": {"own-id-5"}}),
	}
	mercurePublish(t, r1.base, url.Values{"topic": {"urn:b"}, "data": {"not followed"}})
	r1.stop(t, syscall.SIGTERM)
	r2.stop(t, syscall.SIGTERM)
	n = n.restart(t, syscall.SIGTERM)
	args = mercureArgs(n.url())
	r1, r2 = startReplica(t, args...), startReplica(t, args...)
	r1.waitHealthy(t)
	r2.waitHealthy(t)

	back := mercureSubscribe(t, r1.base, q, seen[1], subTok)
	if got := back.resp.Header.Get("X-Mercure-Replay"); got != "replayed" {
		t.Errorf("X-Mercure-Replay %q, want replayed", got)
	}
	marker := mercurePublish(t, r2.base, url.Values{"topic": {"urn:marker"}})
	want := append(slices.Clone(missed), marker)
	if got := back.until(t, marker); !slices.Equal(got, want) {
		t.Fatalf("after the restart got %q, want %q", got, want)
	}
}
