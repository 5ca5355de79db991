// Tests of the settings that keep browsers' EventSources alive through
// upstream outages, replica deaths and reconnect storms (issue 6). Real Envoy
// proves the behaviour in e2e/; these pin the settings in both configs.
package envoy_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"

	"example.com/sse-on-envoy/tools/benchload"
	"example.com/sse-on-envoy/tools/envoyconfig"
)

// stormClients is the reconnect storm the limits are sized for.
const stormClients = 10000

func routesByName(t *testing.T, b *bootstrapv3.Bootstrap) (*routev3.VirtualHost, map[string]*routev3.Route) {
	t.Helper()
	vhs := hcms(t, b, envoyconfig.ListenerHTTP)[0].GetRouteConfig().GetVirtualHosts()
	if len(vhs) != 1 {
		t.Fatalf("%d virtual hosts, want 1", len(vhs))
	}
	out := map[string]*routev3.Route{}
	for _, r := range vhs[0].GetRoutes() {
		out[r.GetName()] = r
	}
	return vhs[0], out
}

// pathOf is a request path the route matches.
func pathOf(r *routev3.Route) string {
	if p := r.GetMatch().GetPath(); p != "" {
		return p
	}
	return r.GetMatch().GetPrefix() + "events"
}

// mapperApplies evaluates the subset of AccessLogFilter the mapper uses
// (and_filter, or_filter, status code comparisons, a :path prefix and an
// exact :method), so the test checks which replies are rewritten rather than
// how the YAML is spelled.
func mapperApplies(t *testing.T, f *accesslogv3.AccessLogFilter, status uint32, method, path string) bool {
	t.Helper()
	switch f := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_AndFilter:
		for _, sub := range f.AndFilter.GetFilters() {
			if !mapperApplies(t, sub, status, method, path) {
				return false
			}
		}
		return true
	case *accesslogv3.AccessLogFilter_OrFilter:
		for _, sub := range f.OrFilter.GetFilters() {
			if mapperApplies(t, sub, status, method, path) {
				return true
			}
		}
		return false
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		c := f.StatusCodeFilter.GetComparison()
		v := c.GetValue().GetDefaultValue()
		switch c.GetOp() {
		case accesslogv3.ComparisonFilter_GE:
			return status >= v
		case accesslogv3.ComparisonFilter_LE:
			return status <= v
		case accesslogv3.ComparisonFilter_EQ:
			return status == v
		}
	case *accesslogv3.AccessLogFilter_HeaderFilter:
		h := f.HeaderFilter.GetHeader()
		switch {
		case h.GetName() == ":path" && h.GetStringMatch().GetPrefix() != "":
			return strings.HasPrefix(path, h.GetStringMatch().GetPrefix())
		case h.GetName() == ":method" && h.GetStringMatch().GetExact() != "":
			return method == h.GetStringMatch().GetExact()
		}
		t.Fatalf("header filter %v: the test knows only a :path prefix and an exact :method", h)
	}
	t.Fatalf("filter %T: unknown to the test", f.GetFilterSpecifier())
	return false
}

func TestLocalReplyMapping(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			_, routes := routesByName(t, b)
			for _, listener := range []string{envoyconfig.ListenerHTTP, envoyconfig.ListenerHTTPS} {
				// The outage answer (502-504) and the Mercure subscription
				// refused by the per-client limit (429, flag RL); Envoy applies
				// the first mapper that matches.
				mappers := hcms(t, b, listener)[0].GetLocalReplyConfig().GetMappers()
				if len(mappers) != 2 {
					t.Fatalf("%s: %d local reply mappers, want 2", listener, len(mappers))
				}
				tests := []struct {
					route  string
					method string
					status uint32
					want   bool
				}{
					{"sse_plain", "GET", 503, true}, // UH, UF, UO, URX
					{"sse_plain", "GET", 502, true},
					{"sse_plain", "GET", 504, true},
					{"sse_tls", "GET", 503, true},
					{"sse_tls", "GET", 502, true},
					{"sse_plain", "GET", 500, false}, // a filter's own error: not an upstream fault
					{"sse_plain", "GET", 404, false},
					{"sse_plain", "GET", 429, false},
					{"upstream_health", "GET", 503, false}, // not an SSE route
					// Mercure: a subscription is an EventSource; a publish is not.
					{"mercure", "GET", 503, true},
					{"mercure", "GET", 502, true},
					{"mercure", "GET", 504, true},
					{"mercure", "POST", 503, false}, // the publisher must see it and retry
					{"mercure", "POST", 502, false},
					{"mercure", "POST", 504, false},
					{"mercure", "OPTIONS", 503, false},
					{"sse_plain", "POST", 503, false},
					{"mercure", "GET", 429, true},   // a subscription over the per-client limit
					{"mercure", "POST", 429, false}, // publishes are not limited, and a 429 stays one
				}
				// A bad or expired token, a body over the limit, not a form:
				// final answers, never turned into "reconnect".
				for _, st := range []uint32{400, 401, 403, 413, 415} {
					for _, method := range []string{"GET", "POST"} {
						tests = append(tests, struct {
							route  string
							method string
							status uint32
							want   bool
						}{"mercure", method, st, false})
					}
				}
				for _, tc := range tests {
					r, ok := routes[tc.route]
					if !ok {
						t.Fatalf("no route %s", tc.route)
					}
					got := false
					for _, m := range mappers {
						got = got || mapperApplies(t, m.GetFilter(), tc.status, tc.method, pathOf(r))
					}
					if got != tc.want {
						t.Errorf("%s: %s %d on %s (%s) mapped = %v, want %v", listener, tc.method, tc.status, tc.route, pathOf(r), got, tc.want)
					}
				}
				for _, m := range mappers {
					checkMappedReply(t, listener, m)
				}
			}
		})
	}
}

// checkMappedReply holds what every mapped reply must be for EventSource.
func checkMappedReply(t *testing.T, listener string, m *hcmv3.ResponseMapper) {
	t.Helper()
	if m.GetStatusCode().GetValue() != 200 {
		t.Errorf("%s: mapped status %v, want 200 (EventSource retries only after a 200)", listener, m.GetStatusCode())
	}
	bf := m.GetBodyFormatOverride()
	body := bf.GetTextFormatSource().GetInlineString()
	if bf.GetContentType() != "text/event-stream" {
		t.Errorf("%s: content type %q", listener, bf.GetContentType())
	}
	// A retry field, a comment naming the cause, and no id line (it would
	// move the client's Last-Event-ID), no data line (an event the page
	// would see).
	if !regexp.MustCompile(`(?m)^retry: [0-9]+$`).MatchString(body) ||
		!regexp.MustCompile(`(?m)^: .*%RESPONSE_(FLAGS|CODE_DETAILS)%`).MatchString(body) ||
		regexp.MustCompile(`(?m)^(id|data)`).MatchString(body) || !strings.HasSuffix(body, "\n\n") {
		t.Errorf("%s: body %q", listener, body)
	}
	found := false
	for _, h := range m.GetHeadersToAdd() {
		if v := h.GetHeader().GetValue(); strings.EqualFold(h.GetHeader().GetKey(), envoyconfig.LocalReplyHeader) &&
			(v == "%RESPONSE_FLAGS%" || v == "%RESPONSE_CODE_DETAILS%") {
			found = true
		}
	}
	if !found {
		t.Errorf("%s: the mapped reply lacks %s naming the cause (%%RESPONSE_FLAGS%% or %%RESPONSE_CODE_DETAILS%%)", listener, envoyconfig.LocalReplyHeader)
	}
}

func TestRetryPolicy(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			vh, routes := routesByName(t, load(t, name))
			for _, rn := range []string{"sse_plain", "sse_tls", "mercure"} {
				rp := routes[rn].GetRoute().GetRetryPolicy()
				if rp == nil {
					rp = vh.GetRetryPolicy()
				}
				on := strings.Split(rp.GetRetryOn(), ",")
				want := map[string]bool{"connect-failure": true, "refused-stream": true, "reset-before-request": true}
				for _, cond := range on {
					if !want[cond] {
						// 5xx, reset, gateway-error... could retry a request whose
						// response the client has begun to see, or hide faults.
						t.Errorf("%s: retry_on %q, unexpected", rn, cond)
					}
					delete(want, cond)
				}
				if len(want) != 0 {
					t.Errorf("%s: retry_on %q lacks %v", rn, rp.GetRetryOn(), want)
				}
				if n := rp.GetNumRetries().GetValue(); n == 0 || n > 5 {
					t.Errorf("%s: num_retries %d, want 1..5", rn, n)
				}
				preds := rp.GetRetryHostPredicate()
				if len(preds) != 1 || preds[0].GetName() != "envoy.retry_host_predicates.previous_hosts" {
					t.Errorf("%s: retry host predicate %v, want previous_hosts (another replica)", rn, preds)
				}
				bo := rp.GetRetryBackOff()
				if bo.GetBaseInterval().AsDuration() == 0 || bo.GetMaxInterval().AsDuration() == 0 || bo.GetMaxInterval().AsDuration() > 2*time.Second {
					t.Errorf("%s: back-off %v, want bounded and short", rn, bo)
				}
			}
		})
	}
}

func TestCircuitBreakersFitAStorm(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			for _, cn := range []string{envoyconfig.ClusterPlain, envoyconfig.ClusterTLS} {
				c, err := envoyconfig.Cluster(b, cn)
				if err != nil {
					t.Fatal(err)
				}
				th := c.GetCircuitBreakers().GetThresholds()[0]
				if th.GetMaxPendingRequests().GetValue() < stormClients {
					t.Errorf("%s: max_pending_requests %d: a storm of %d new streams waits for connections all at once", cn, th.GetMaxPendingRequests().GetValue(), stormClients)
				}
				if th.GetMaxRequests().GetValue() < stormClients {
					t.Errorf("%s: max_requests %d below the storm", cn, th.GetMaxRequests().GetValue())
				}
				// On the multiplexed leg a stream costs no connection: the
				// breaker must not be what caps the scale curve's largest step.
				if most := slices.Max(benchload.CurveSteps); cn == envoyconfig.ClusterTLS && th.GetMaxRequests().GetValue() < uint32(most) {
					t.Errorf("%s: max_requests %d below the %d streams one Envoy is measured holding (make bench-load SCENARIO=curve)", cn, th.GetMaxRequests().GetValue(), most)
				}
				if th.GetMaxRetries().GetValue() < 100 {
					t.Errorf("%s: max_retries %d: the default 3 fails the clients of a dead replica", cn, th.GetMaxRetries().GetValue())
				}
				if cn == envoyconfig.ClusterPlain && th.GetMaxConnections().GetValue() <= th.GetMaxRequests().GetValue() {
					t.Errorf("%s: max_connections %d must exceed max_requests %d: every HTTP/1.1 stream holds one, and a request pending on the connection limit waits forever (timeout 0s)",
						cn, th.GetMaxConnections().GetValue(), th.GetMaxRequests().GetValue())
				}
			}
		})
	}
}

func TestOverloadManager(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			var found bool
			for _, rm := range b.GetOverloadManager().GetResourceMonitors() {
				if rm.GetName() != "envoy.resource_monitors.global_downstream_max_connections" {
					continue
				}
				var cfg downstreamv3.DownstreamConnectionsConfig
				if err := rm.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
					t.Fatal(err)
				}
				if max := cfg.GetMaxActiveDownstreamConnections(); max < 2*stormClients || max > 60000 {
					t.Errorf("max_active_downstream_connections %d: want room for the storm, below a 65536 file limit", max)
				}
				found = true
			}
			if !found {
				t.Error("no global_downstream_max_connections: over capacity Envoy should refuse connections (EventSource retries), not run out of files")
			}
		})
	}
}

func TestEdgeHardening(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			for _, listener := range []string{envoyconfig.ListenerHTTP, envoyconfig.ListenerHTTPS} {
				h := hcms(t, b, listener)[0]
				if !h.GetNormalizePath().GetValue() || !h.GetMergeSlashes() {
					t.Errorf("%s: normalize_path %v merge_slashes %v", listener, h.GetNormalizePath(), h.GetMergeSlashes())
				}
				if h.GetPathWithEscapedSlashesAction() != hcmv3.HttpConnectionManager_UNESCAPE_AND_REDIRECT {
					t.Errorf("%s: path_with_escaped_slashes_action %v", listener, h.GetPathWithEscapedSlashesAction())
				}
				if a := h.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction().String(); a != "REJECT_REQUEST" {
					t.Errorf("%s: headers_with_underscores_action %s", listener, a)
				}
				if !h.GetUseRemoteAddress().GetValue() {
					t.Errorf("%s: use_remote_address off at the edge", listener)
				}
			}
		})
	}
}

func TestClustersListReplicas(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			var hosts [2][]string
			for i, cn := range []string{envoyconfig.ClusterPlain, envoyconfig.ClusterTLS} {
				c, _ := envoyconfig.Cluster(b, cn)
				for _, lb := range c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints() {
					hosts[i] = append(hosts[i], lb.GetEndpoint().GetAddress().GetSocketAddress().GetAddress())
				}
				if len(hosts[i]) < 2 {
					t.Errorf("%s: endpoints %q, want at least two replicas", cn, hosts[i])
				}
				hc := c.GetHealthChecks()[0]
				if hc.GetInterval().AsDuration() > 5*time.Second || hc.GetNoTrafficInterval().AsDuration() == 0 || hc.GetNoTrafficInterval().AsDuration() > 10*time.Second {
					t.Errorf("%s: health check interval %v, no-traffic %v: a dead replica must leave within seconds", cn, hc.GetInterval().AsDuration(), hc.GetNoTrafficInterval().AsDuration())
				}
			}
			if strings.Join(hosts[0], ",") != strings.Join(hosts[1], ",") {
				t.Errorf("both clusters must list the same replicas: %q vs %q", hosts[0], hosts[1])
			}
		})
	}
}

// minSubscriptionBurst is the reconnect storm one client address must
// never be refused in: a browser's own EventSources, and an office of
// browsers behind one NAT reconnecting at once.
const minSubscriptionBurst = 200

// Mercure subscriptions are limited per client address, on the Mercure
// route only, GETs only, each address with its own bucket; the filter is
// off everywhere else, so the SSE routes never pay for it.
func TestMercureSubscriptionLimit(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			for _, listener := range []string{envoyconfig.ListenerHTTP, envoyconfig.ListenerHTTPS} {
				for _, f := range hcms(t, b, listener)[0].GetHttpFilters() {
					if f.GetName() == envoyconfig.RateLimitFilter && !f.GetDisabled() {
						t.Errorf("%s: %s is on for every route, want disabled: true", listener, f.GetName())
					}
				}
			}
			_, routes := routesByName(t, b)
			for name, r := range routes {
				rl, err := envoyconfig.SubscriptionLimit(r)
				if err != nil {
					t.Fatal(err)
				}
				if name != envoyconfig.MercureRoute {
					if rl != nil {
						t.Errorf("route %s has a rate limit", name)
					}
					continue
				}
				if rl == nil {
					t.Fatalf("route %s has no subscription limit", name)
				}
				if rl.GetFilterEnabled().GetDefaultValue().GetNumerator() != 100 || rl.GetFilterEnforced().GetDefaultValue().GetNumerator() != 100 ||
					rl.GetAlwaysConsumeDefaultTokenBucket().GetValue() || rl.GetAlwaysConsumeDefaultTokenBucket() == nil {
					t.Errorf("the limit is not enabled and enforced on every request, or consumes the shared bucket: %v", rl)
				}
				acts := rl.GetRateLimits()
				if len(acts) != 1 || len(acts[0].GetActions()) != 2 ||
					acts[0].GetActions()[0].GetHeaderValueMatch().GetDescriptorValue() != "GET" ||
					acts[0].GetActions()[1].GetRemoteAddress() == nil {
					t.Fatalf("descriptors from %v, want the GET method and the client address", acts)
				}
				ds := rl.GetDescriptors()
				if len(ds) != 1 || len(ds[0].GetEntries()) != 2 || ds[0].GetEntries()[1].GetKey() != "remote_address" || ds[0].GetEntries()[1].GetValue() != "" {
					t.Fatalf("descriptors %v, want one bucket per client address", ds)
				}
				if tb := ds[0].GetTokenBucket(); tb.GetMaxTokens() < minSubscriptionBurst || tb.GetTokensPerFill().GetValue() == 0 {
					t.Errorf("a client's burst %d, want at least %d and a refill", tb.GetMaxTokens(), minSubscriptionBurst)
				}
				if rl.GetMaxDynamicDescriptors().GetValue() < 1000 {
					t.Errorf("max_dynamic_descriptors %d: too few client addresses remembered", rl.GetMaxDynamicDescriptors().GetValue())
				}
			}
		})
	}
}
