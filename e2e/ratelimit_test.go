package e2e

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/localstack"
)

// Mercure subscriptions are limited per client address (issue 21). With
// the bucket lowered to 3 for the test: three subscriptions from one
// address open, the fourth gets Envoy's refusal as a 200 stream that only
// sets a long retry and names the cause (EventSource comes back later, never stops for good),
// with the CORS grant a page needs to see it; another address is not
// refused, and publishes are not counted.
func TestMercureSubscriptionsLimitedPerClient(t *testing.T) {
	forEachAdapter(t, func(t *testing.T, a localstack.Adapter) {
		s := startStackOptions(t, localstack.Options{Adapter: a,
			EditEnvoyConfig: func(b *bootstrapv3.Bootstrap) error { return envoyconfig.SetSubscriptionLimit(b, 3, 1) }})
		h1 := httpClient(t, s, false)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		sub := s.HTTPURL + mercurePath + "?" + url.Values{"topic": {"https://example.com/limited"}}.Encode()
		for i := range 3 {
			got := mercureSubscribe(ctx, t, "subscription", h1, sub, nil)
			if u := got.resp.Header.Get(envoyconfig.LocalReplyHeader); u != "" {
				t.Fatalf("subscription %d refused (%s), want the first 3 open", i+1, u)
			}
		}

		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, sub, nil)
		req.Header.Set("Origin", s.DemoURL)
		resp, err := h1.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") ||
			resp.Header.Get(envoyconfig.LocalReplyHeader) != "local_rate_limited" || !strings.HasPrefix(string(body), "retry: 10000\n") {
			t.Errorf("the 4th subscription: %s %q %s=%q body %q, want a 200 stream with retry: 10000, local_rate_limited",
				resp.Status, resp.Header.Get("Content-Type"), envoyconfig.LocalReplyHeader, resp.Header.Get(envoyconfig.LocalReplyHeader), body)
		}
		if got := resp.Header.Get("Access-Control-Allow-Origin"); got != s.DemoURL {
			t.Errorf("the refusal's access-control-allow-origin %q, want %q: the page could not read it", got, s.DemoURL)
		}

		// Another client address has its own bucket.
		other := httpClient(t, s, false)
		other.Transport.(*http.Transport).DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext
		if got := mercureSubscribe(ctx, t, "another address", other, sub, nil); got.resp.Header.Get(envoyconfig.LocalReplyHeader) != "" {
			t.Errorf("a subscription from 127.0.0.2 was refused")
		}
		// Publishing is not limited.
		pubTok := mercureToken(t, localstack.DevPublisherKey, []string{"*"}, nil)
		for i := range 5 {
			if st, id := curlPublish(t, s, s.HTTPURL, pubTok, "topic=https://example.com/limited", "data=x"); !statusIs(st, 200) {
				t.Fatalf("publish %d from the limited address: %s %s", i+1, st, id)
			}
		}
	})
}
