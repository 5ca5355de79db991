// Tests of envoy.yaml, envoy-extproc.yaml and envoy-module.yaml: they parse into Envoy's
// bootstrap proto, pass its validation rules, and carry every setting a
// long-lived stream needs.
package envoy_test

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	xdstype "github.com/cncf/xds/go/xds/type/v3"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	streamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	bufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"example.com/sse-on-envoy/filter/ssefilter"
	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/module/ssemodule"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/upstream/mercure"
	"example.com/sse-on-envoy/upstream/stream"
)

// heartbeat is the upstream's default comment interval: idle timeouts must
// stay well above it.
const heartbeat = stream.DefaultHeartbeat

// idleTimeout is what every SSE route's idle_timeout must be.
const idleTimeout = routes.StreamIdleTimeout

var configs = []string{"envoy.yaml", "envoy-extproc.yaml", "envoy-module.yaml"}

func load(t *testing.T, name string) *bootstrapv3.Bootstrap {
	t.Helper()
	b, err := envoyconfig.Load(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hcms(t *testing.T, b *bootstrapv3.Bootstrap, listener string) []*hcmv3.HttpConnectionManager {
	t.Helper()
	l, err := envoyconfig.Listener(b, listener)
	if err != nil {
		t.Fatal(err)
	}
	h, err := envoyconfig.HTTPConnectionManagers(l)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestListeners(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			for listener, port := range map[string]uint32{envoyconfig.ListenerHTTP: 8080, envoyconfig.ListenerHTTPS: 8443} {
				l, err := envoyconfig.Listener(b, listener)
				if err != nil {
					t.Fatal(err)
				}
				if got := l.GetAddress().GetSocketAddress().GetPortValue(); got != port {
					t.Errorf("%s: port %d, want %d", listener, got, port)
				}
				if l.GetPerConnectionBufferLimitBytes().GetValue() == 0 {
					t.Errorf("%s: no per_connection_buffer_limit_bytes", listener)
				}
				for _, h := range hcms(t, b, listener) {
					if h.GetCodecType() != hcmv3.HttpConnectionManager_AUTO {
						t.Errorf("%s: codec %v, want AUTO", listener, h.GetCodecType())
					}
					if h.GetStreamIdleTimeout().AsDuration() < 4*heartbeat {
						t.Errorf("%s: stream_idle_timeout %v too close to the %v heartbeat", listener, h.GetStreamIdleTimeout().AsDuration(), heartbeat)
					}
					if h.GetRequestTimeout().AsDuration() != 0 {
						t.Errorf("%s: request_timeout %v would cut streams", listener, h.GetRequestTimeout().AsDuration())
					}
					if h.GetAccessLogOptions().GetAccessLogFlushInterval().AsDuration() == 0 {
						t.Errorf("%s: no periodic access log for long streams", listener)
					}
				}
			}
			https, _ := envoyconfig.Listener(b, envoyconfig.ListenerHTTPS)
			var tlsCtx tlsv3.DownstreamTlsContext
			if err := https.GetFilterChains()[0].GetTransportSocket().GetTypedConfig().UnmarshalTo(&tlsCtx); err != nil {
				t.Fatalf("https listener has no TLS: %v", err)
			}
			if alpn := tlsCtx.GetCommonTlsContext().GetAlpnProtocols(); !slices.Equal(alpn, []string{"h2", "http/1.1"}) {
				t.Errorf("ALPN %q, want h2 first", alpn)
			}
			http, _ := envoyconfig.Listener(b, envoyconfig.ListenerHTTP)
			if http.GetFilterChains()[0].GetTransportSocket() != nil {
				t.Error("the 8080 listener must be plaintext")
			}
			if a := b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(); a != "127.0.0.1" {
				t.Errorf("admin on %q, want loopback only", a)
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			routes := map[string]*routev3.Route{}
			for _, h := range hcms(t, b, envoyconfig.ListenerHTTP) {
				for _, vh := range h.GetRouteConfig().GetVirtualHosts() {
					for _, r := range vh.GetRoutes() {
						routes[r.GetMatch().GetPrefix()] = r
					}
				}
			}
			tests := []struct {
				prefix, cluster, rewrite string
			}{
				{"/sse/", envoyconfig.ClusterPlain, ""},
				{"/sse-with-tls/", envoyconfig.ClusterTLS, "/sse/"},
			}
			for _, tc := range tests {
				r, ok := routes[tc.prefix]
				if !ok {
					t.Errorf("no route for %s", tc.prefix)
					continue
				}
				ra := r.GetRoute()
				if ra.GetCluster() != tc.cluster || ra.GetPrefixRewrite() != tc.rewrite {
					t.Errorf("%s -> %s (rewrite %q), want %s (%q)", tc.prefix, ra.GetCluster(), ra.GetPrefixRewrite(), tc.cluster, tc.rewrite)
				}
				if ra.GetTimeout() == nil || ra.GetTimeout().AsDuration() != 0 {
					t.Errorf("%s: timeout %v, want 0s (the 15 s default cuts streams)", tc.prefix, ra.GetTimeout())
				}
				if ra.GetIdleTimeout().AsDuration() < 3*heartbeat || ra.GetIdleTimeout().AsDuration() != idleTimeout {
					t.Errorf("%s: idle_timeout %v, want routes.StreamIdleTimeout (%v), well above the heartbeat", tc.prefix, ra.GetIdleTimeout().AsDuration(), idleTimeout)
				}
			}
			// Both listeners route the same way.
			https := hcms(t, b, envoyconfig.ListenerHTTPS)[0]
			if !proto.Equal(https.GetRouteConfig(), hcms(t, b, envoyconfig.ListenerHTTP)[0].GetRouteConfig()) {
				t.Error("the listeners' route configs differ")
			}
		})
	}
}

func protocolOptions(t *testing.T, c *clusterv3.Cluster) *upstreamhttpv3.HttpProtocolOptions {
	t.Helper()
	var o upstreamhttpv3.HttpProtocolOptions
	if err := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].UnmarshalTo(&o); err != nil {
		t.Fatalf("cluster %s: HttpProtocolOptions: %v", c.GetName(), err)
	}
	return &o
}

func TestClusters(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			plain, err := envoyconfig.Cluster(b, envoyconfig.ClusterPlain)
			if err != nil {
				t.Fatal(err)
			}
			tlsCluster, err := envoyconfig.Cluster(b, envoyconfig.ClusterTLS)
			if err != nil {
				t.Fatal(err)
			}

			po := protocolOptions(t, plain)
			if po.GetExplicitHttpConfig().GetHttpProtocolOptions() == nil || plain.GetTransportSocket() != nil {
				t.Error("the plain cluster must speak HTTP/1.1 without TLS")
			}
			to := protocolOptions(t, tlsCluster)
			if to.GetAutoConfig() == nil || to.GetAutoConfig().GetHttp2ProtocolOptions() == nil {
				t.Error("the TLS cluster must let ALPN pick h2 (auto_config)")
			}
			var up tlsv3.UpstreamTlsContext
			if err := tlsCluster.GetTransportSocket().GetTypedConfig().UnmarshalTo(&up); err != nil {
				t.Fatalf("TLS cluster: %v", err)
			}
			vc := up.GetCommonTlsContext().GetValidationContext()
			if up.GetSni() != "upstream" || vc.GetTrustedCa().GetFilename() == "" ||
				len(vc.GetMatchTypedSubjectAltNames()) == 0 || vc.GetMatchTypedSubjectAltNames()[0].GetMatcher().GetExact() != "upstream" {
				t.Errorf("the TLS cluster must verify the upstream: sni %q, validation %v", up.GetSni(), vc)
			}

			for _, c := range []*clusterv3.Cluster{plain, tlsCluster} {
				idle := protocolOptions(t, c).GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration()
				if idle == 0 || idle >= 2*time.Minute {
					t.Errorf("%s: idle_timeout %v, want set and below the upstream's 2m", c.GetName(), idle)
				}
				th := c.GetCircuitBreakers().GetThresholds()
				if len(th) == 0 || th[0].GetMaxRequests().GetValue() <= 1024 || th[0].GetMaxPendingRequests().GetValue() == 0 {
					t.Errorf("%s: circuit breakers %v, want max_requests above the 1024 default and a pending bound", c.GetName(), th)
				}
				hc := c.GetHealthChecks()
				if len(hc) == 0 || hc[0].GetHttpHealthCheck().GetPath() != "/healthz" {
					t.Errorf("%s: health check %v, want /healthz", c.GetName(), hc)
				}
			}
			if plain.GetCircuitBreakers().GetThresholds()[0].GetMaxConnections().GetValue() <= 1024 {
				t.Error("upstream_plain: every HTTP/1.1 stream holds a connection: max_connections must exceed 1024")
			}
			if tlsCluster.GetHealthChecks()[0].GetHttpHealthCheck().GetCodecClientType().String() != "HTTP2" {
				t.Error("upstream_tls: health checks should speak HTTP/2 like the traffic")
			}
		})
	}
}

func TestAccessLogCarriesStreamFields(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			for _, listener := range []string{envoyconfig.ListenerHTTP, envoyconfig.ListenerHTTPS} {
				h := hcms(t, b, listener)[0]
				if len(h.GetAccessLog()) == 0 {
					t.Fatalf("%s: no access log", listener)
				}
				var sl streamv3.StdoutAccessLog
				if err := h.GetAccessLog()[0].GetTypedConfig().UnmarshalTo(&sl); err != nil {
					t.Fatal(err)
				}
				format := sl.GetLogFormat().GetJsonFormat().String()
				for _, field := range []string{"%PROTOCOL%", "%UPSTREAM_PROTOCOL%", "%DURATION%", "%RESPONSE_FLAGS%",
					"%RESPONSE_CODE_DETAILS%", "%BYTES_SENT%", "%UPSTREAM_HOST%", "%RESP(X-SSE-STREAM)%",
					"%DYNAMIC_METADATA(sse:events)%", "%DYNAMIC_METADATA(sse:bytes)%",
					"%DYNAMIC_METADATA(sse:last_event_id)%", "%DYNAMIC_METADATA(sse:protocol)%", "%ACCESS_LOG_TYPE%"} {
					if !strings.Contains(format, field) {
						t.Errorf("%s: access log lacks %s", listener, field)
					}
				}
			}
		})
	}
}

func httpFilterNames(h *hcmv3.HttpConnectionManager) []string {
	var names []string
	for _, f := range h.GetHttpFilters() {
		names = append(names, f.GetName())
	}
	return names
}

func TestGolangFilter(t *testing.T) {
	b := load(t, "envoy.yaml")
	for _, listener := range []string{envoyconfig.ListenerHTTP, envoyconfig.ListenerHTTPS} {
		if names := httpFilterNames(hcms(t, b, listener)[0]); !slices.Equal(names, []string{envoyconfig.GolangFilter, envoyconfig.RateLimitFilter, envoyconfig.BufferFilter, "envoy.filters.http.router"}) {
			t.Errorf("%s: filters %q, want the golang filter, then the buffer (Mercure publishes) and the router", listener, names)
		}
	}
	filters, err := envoyconfig.GolangFilters(b)
	if err != nil || len(filters) != 2 {
		t.Fatalf("golang filters: %d, %v", len(filters), err)
	}
	for _, f := range filters {
		if f.GetPluginName() != ssefilter.FilterName || f.GetLibraryId() != ssefilter.FilterName {
			t.Errorf("plugin_name %q library_id %q, want %q (else Envoy passes traffic through)", f.GetPluginName(), f.GetLibraryId(), ssefilter.FilterName)
		}
		if !strings.HasPrefix(f.GetLibraryPath(), "/") {
			t.Errorf("library_path %q must be absolute", f.GetLibraryPath())
		}
		// The payload must pass the filter's own parser, or Envoy refuses it.
		if _, err := (ssefilter.ConfigParser{}).Parse(f.GetPluginConfig(), nil); err != nil {
			t.Errorf("plugin_config refused by the filter: %v", err)
		}
	}
}

// The golang filter's inline settings and the ext_proc server's file must
// be the same policy.
func TestPluginConfigMatchesPolicyFile(t *testing.T) {
	data, err := os.ReadFile("sse-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file, err := policy.ParseYAMLOrJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	b := load(t, "envoy.yaml")
	want := proto.Clone(b).(*bootstrapv3.Bootstrap)
	if err := envoyconfig.SetGolangPluginConfig(want, file); err != nil {
		t.Fatal(err)
	}
	got, _ := envoyconfig.GolangFilters(b)
	fromFile, _ := envoyconfig.GolangFilters(want)
	for i := range got {
		// Any holds serialized bytes, whose map order varies: compare the
		// Structs themselves.
		var a, b xdstype.TypedStruct
		if err := got[i].GetPluginConfig().UnmarshalTo(&a); err != nil {
			t.Fatal(err)
		}
		if err := fromFile[i].GetPluginConfig().UnmarshalTo(&b); err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(a.GetValue(), b.GetValue()) {
			t.Errorf("envoy.yaml's plugin_config differs from sse-policy.yaml:\n%v\n%v", a.GetValue(), b.GetValue())
		}
	}
}

// envoy-extproc.yaml and envoy-module.yaml are envoy.yaml with other HTTP
// filters (and, for ext_proc, one more cluster); everything else must stay
// identical.
func TestAdapterConfigsMatchGolangConfig(t *testing.T) {
	strip := func(b *bootstrapv3.Bootstrap) {
		if err := envoyconfig.EditHTTPConnectionManagers(b, func(h *hcmv3.HttpConnectionManager) error {
			h.HttpFilters = nil
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		clusters := b.GetStaticResources().GetClusters()
		b.StaticResources.Clusters = slices.DeleteFunc(clusters, func(c *clusterv3.Cluster) bool { return c.GetName() == envoyconfig.ClusterExtProc })
	}
	golang := load(t, "envoy.yaml")
	strip(golang)
	for _, name := range []string{"envoy-extproc.yaml", "envoy-module.yaml"} {
		other := load(t, name)
		strip(other)
		if !sameJSON(t, golang, other) {
			t.Errorf("envoy.yaml and %s differ outside their HTTP filters and the extproc cluster", name)
		}
	}
}

func TestModuleFilter(t *testing.T) {
	b := load(t, "envoy-module.yaml")
	for _, listener := range []string{envoyconfig.ListenerHTTP, envoyconfig.ListenerHTTPS} {
		if names := httpFilterNames(hcms(t, b, listener)[0]); !slices.Equal(names, []string{envoyconfig.ModuleFilter, envoyconfig.RateLimitFilter, envoyconfig.BufferFilter, "envoy.filters.http.router"}) {
			t.Errorf("%s: filters %q, want the dynamic module, then the rate limit (Mercure subscriptions), the buffer (Mercure publishes) and the router", listener, names)
		}
	}
	filters, err := envoyconfig.ModuleFilters(b)
	if err != nil || len(filters) != 2 {
		t.Fatalf("dynamic-module filters: %d, %v", len(filters), err)
	}
	data, err := os.ReadFile("sse-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	file, err := policy.ParseYAMLOrJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range filters {
		// Envoy loads lib<name>.so: the name must be the module's.
		if f.GetDynamicModuleConfig().GetName() != ssemodule.ModuleName {
			t.Errorf("dynamic_module_config.name %q, want %q", f.GetDynamicModuleConfig().GetName(), ssemodule.ModuleName)
		}
		raw, err := envoyconfig.ModuleFilterConfig(f)
		if err != nil {
			t.Fatal(err)
		}
		// The payload must pass the module's own parser, or Envoy refuses it...
		if err := ssemodule.ParseConfig(raw); err != nil {
			t.Errorf("filter_config refused by the module: %v", err)
		}
		// ...and be the ext_proc server's policy file.
		inline, err := policy.ParseYAMLOrJSON(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(inline, file) {
			t.Errorf("envoy-module.yaml's filter_config differs from sse-policy.yaml:\n%+v\n%+v", inline, file)
		}
	}
}

func TestExtProcFilters(t *testing.T) {
	b := load(t, "envoy-extproc.yaml")
	h := hcms(t, b, envoyconfig.ListenerHTTP)[0]
	if names := httpFilterNames(h); !slices.Equal(names, []string{"sse_policy", "sse_observe", envoyconfig.RateLimitFilter, envoyconfig.BufferFilter, "envoy.filters.http.router"}) {
		t.Fatalf("filters %q", names)
	}
	var policyFilter, observer extprocv3.ExternalProcessor
	if err := h.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&policyFilter); err != nil {
		t.Fatal(err)
	}
	if err := h.GetHttpFilters()[1].GetTypedConfig().UnmarshalTo(&observer); err != nil {
		t.Fatal(err)
	}
	pm := policyFilter.GetProcessingMode()
	if pm.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE || pm.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE || policyFilter.GetObservabilityMode() {
		t.Errorf("sse_policy must see headers only, and answer them: %v", pm)
	}
	if !observer.GetObservabilityMode() || observer.GetProcessingMode().GetResponseBodyMode() != extprocv3.ProcessingMode_STREAMED {
		t.Errorf("sse_observe must stream bodies in observability mode: %v", observer.GetProcessingMode())
	}
	md := observer.GetGrpcService().GetInitialMetadata()
	if len(md) != 1 || md[0].GetKey() != "x-sse-role" || md[0].GetValue() != "observe" {
		t.Errorf("sse_observe metadata %v", md)
	}
	if !policyFilter.GetFailureModeAllow() || !observer.GetFailureModeAllow() {
		t.Error("both ext_proc filters fail open (docs/adapters.md: failure mode)")
	}
	c, err := envoyconfig.Cluster(b, envoyconfig.ClusterExtProc)
	if err != nil {
		t.Fatal(err)
	}
	if protocolOptions(t, c).GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("the extproc cluster must speak HTTP/2 (gRPC)")
	}
}

// sameJSON compares two configs by their JSON form: Any fields hold bytes
// whose map order varies between marshals, so proto.Equal can differ on
// equal configs.
func sameJSON(t *testing.T, a, b proto.Message) bool {
	t.Helper()
	decode := func(m proto.Message) any {
		js, err := protojson.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(js, &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	return reflect.DeepEqual(decode(a), decode(b))
}

// The Mercure hub is routed on both listeners to the replicas, streams like
// /sse/, and its publish bodies are buffered with the upstream's own limit.
func TestMercureRoute(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			for _, listener := range []string{envoyconfig.ListenerHTTP, envoyconfig.ListenerHTTPS} {
				var r *routev3.Route
				for _, vh := range hcms(t, b, listener)[0].GetRouteConfig().GetVirtualHosts() {
					for _, rr := range vh.GetRoutes() {
						if rr.GetMatch().GetPath() == "/.well-known/mercure" {
							r = rr
						}
					}
				}
				if r == nil {
					t.Fatalf("%s: no route for /.well-known/mercure", listener)
				}
				ra := r.GetRoute()
				if ra.GetCluster() != envoyconfig.ClusterTLS || ra.GetPrefixRewrite() != "" {
					t.Errorf("%s: mercure -> %s (rewrite %q), want %s unchanged", listener, ra.GetCluster(), ra.GetPrefixRewrite(), envoyconfig.ClusterTLS)
				}
				if ra.GetTimeout() == nil || ra.GetTimeout().AsDuration() != 0 {
					t.Errorf("%s: mercure timeout %v, want 0s (subscriptions stream)", listener, ra.GetTimeout())
				}
				if ra.GetIdleTimeout().AsDuration() < 3*heartbeat || ra.GetIdleTimeout().AsDuration() != idleTimeout {
					t.Errorf("%s: mercure idle_timeout %v, want routes.StreamIdleTimeout (%v), well above the heartbeat", listener, ra.GetIdleTimeout().AsDuration(), idleTimeout)
				}
				fc := r.GetTypedPerFilterConfig()[envoyconfig.BufferFilter]
				var wrap routev3.FilterConfig
				var per bufferv3.BufferPerRoute
				if fc == nil || fc.UnmarshalTo(&wrap) != nil || wrap.GetDisabled() || wrap.GetConfig().UnmarshalTo(&per) != nil {
					t.Fatalf("%s: mercure route must turn the buffer filter on (FilterConfig with a BufferPerRoute): %v", listener, fc)
				}
				limit := mercure.Limits{}.MaxBody()
				if got := int64(per.GetBuffer().GetMaxRequestBytes().GetValue()); got != limit {
					t.Errorf("%s: publish body limit %d, want the upstream's default %d", listener, got, limit)
				}
			}
			// Off by default: nothing else is buffered.
			for _, f := range hcms(t, b, envoyconfig.ListenerHTTP)[0].GetHttpFilters() {
				if f.GetName() == envoyconfig.BufferFilter && !f.GetDisabled() {
					t.Error("the buffer filter must be disabled by default (only the Mercure route turns it on)")
				}
			}
		})
	}
}

// The access log never prints a query string: a Mercure subscriber's token
// may be its authorization parameter.
func TestAccessLogHasNoQuery(t *testing.T) {
	for _, name := range configs {
		t.Run(name, func(t *testing.T) {
			b := load(t, name)
			for _, listener := range []string{envoyconfig.ListenerHTTP, envoyconfig.ListenerHTTPS} {
				var sl streamv3.StdoutAccessLog
				if err := hcms(t, b, listener)[0].GetAccessLog()[0].GetTypedConfig().UnmarshalTo(&sl); err != nil {
					t.Fatal(err)
				}
				for k, v := range sl.GetLogFormat().GetJsonFormat().GetFields() {
					s := v.GetStringValue()
					if strings.Contains(s, ":PATH)") || strings.Contains(s, "%PATH%") || strings.Contains(s, "(WQ") ||
						strings.Contains(strings.ToUpper(s), "QUERY") || strings.Contains(strings.ToUpper(s), "AUTHORIZATION") || strings.Contains(strings.ToUpper(s), "COOKIE") {
						t.Errorf("%s: access log field %s = %q may print a token", listener, k, s)
					}
				}
			}
		})
	}
}

// A browser publisher's preflight (POST with Authorization and Content-Type)
// passes the policy every adapter runs, and a credentialed subscriber gets
// its exact origin with credentials.
func TestPolicyLetsBrowsersPublishToMercure(t *testing.T) {
	data, err := os.ReadFile("sse-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Load("sse-policy.yaml", data, policy.ParseYAMLOrJSON)
	if err != nil {
		t.Fatal(err)
	}
	const origin = "http://localhost:3000"
	d := p.Decide(policy.Request{Method: "OPTIONS", Origin: origin, HasOrigin: true, AccessControlRequestMethod: "POST", Path: "/.well-known/mercure"})
	if d.Reply == nil || d.Reply.Status != 204 {
		t.Fatalf("preflight for POST: %+v", d.Reply)
	}
	got := map[string]string{}
	for _, h := range d.Reply.Headers {
		got[h.Key] = h.Value
	}
	tokens := func(v string) []string {
		var out []string
		for _, s := range strings.Split(v, ",") {
			out = append(out, strings.ToLower(strings.TrimSpace(s)))
		}
		return out
	}
	for _, m := range []string{"get", "post"} {
		if !slices.Contains(tokens(got["access-control-allow-methods"]), m) {
			t.Errorf("allow-methods %q lacks %s", got["access-control-allow-methods"], m)
		}
	}
	for _, h := range []string{"authorization", "content-type", "last-event-id"} {
		if !slices.Contains(tokens(got["access-control-allow-headers"]), h) {
			t.Errorf("allow-headers %q lacks %s", got["access-control-allow-headers"], h)
		}
	}
	if got["access-control-allow-origin"] != origin || got["access-control-allow-credentials"] != "true" {
		t.Errorf("preflight grant %q credentials %q, want the exact origin with credentials", got["access-control-allow-origin"], got["access-control-allow-credentials"])
	}
	sub := p.Decide(policy.Request{Method: "GET", Origin: origin, HasOrigin: true, Path: "/.well-known/mercure?topic=x"})
	if sub.AllowOrigin != origin {
		t.Errorf("a subscriber from %s gets allow-origin %q", origin, sub.AllowOrigin)
	}
	// The streams keep the write-up's lists: POST and Authorization are the
	// hub's alone.
	stream := p.Decide(policy.Request{Method: "OPTIONS", Origin: origin, HasOrigin: true, AccessControlRequestMethod: "GET", Path: "/sse/events"})
	for _, h := range stream.Reply.Headers {
		if h.Key == "access-control-allow-methods" && h.Value != "GET, OPTIONS" {
			t.Errorf("a stream's preflight allows %q, want the write-up's GET, OPTIONS", h.Value)
		}
	}
}
