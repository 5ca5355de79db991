package envoyconfig

import (
	"slices"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
)

const extProcConfig = "../../envoy/envoy-extproc.yaml"

func TestVariantRewrites(t *testing.T) {
	native := NativeCORS{
		Origins: []string{"https://a.example"}, AllowCredentials: true,
		AllowMethods: "GET, OPTIONS", MaxAgeSeconds: "600", CacheControl: "no-cache",
	}
	tests := []struct {
		name        string
		edit        func(b *bootstrapv3.Bootstrap) error
		wantFilters []string
		wantCORS    bool
	}{
		{"router only", RemoveExtProc, []string{RateLimitFilter, BufferFilter, "envoy.filters.http.router"}, false},
		{"ext_proc policy only", func(b *bootstrapv3.Bootstrap) error { return RemoveHTTPFilter(b, "sse_observe") }, []string{"sse_policy", RateLimitFilter, BufferFilter, "envoy.filters.http.router"}, false},
		{"native CORS", func(b *bootstrapv3.Bootstrap) error { return UseNativeCORS(b, native) }, []string{CORSFilter, RateLimitFilter, BufferFilter, "envoy.filters.http.router"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := Load(extProcConfig)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.edit(b); err != nil {
				t.Fatal(err)
			}
			// What Envoy would read: rendered and parsed back, validated.
			out, err := Marshal(b)
			if err != nil {
				t.Fatal(err)
			}
			if b, err = Parse(out); err != nil {
				t.Fatalf("the rewritten config does not validate: %v", err)
			}
			for _, name := range []string{ListenerHTTP, ListenerHTTPS} {
				l, err := Listener(b, name)
				if err != nil {
					t.Fatal(err)
				}
				hcms, err := HTTPConnectionManagers(l)
				if err != nil {
					t.Fatal(err)
				}
				for _, hcm := range hcms {
					var names []string
					for _, f := range hcm.GetHttpFilters() {
						names = append(names, f.GetName())
					}
					if !slices.Equal(names, tt.wantFilters) {
						t.Errorf("listener %s filters %v, want %v", name, names, tt.wantFilters)
					}
					for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
						cfg, ok := vh.GetTypedPerFilterConfig()[CORSFilter]
						if ok != tt.wantCORS {
							t.Errorf("listener %s virtual host %s: CORS policy present %v, want %v", name, vh.GetName(), ok, tt.wantCORS)
						}
						if ok {
							var p corsv3.CorsPolicy
							if err := cfg.UnmarshalTo(&p); err != nil || len(p.GetAllowOriginStringMatch()) != 1 ||
								p.GetAllowOriginStringMatch()[0].GetExact() != "https://a.example" || !p.GetAllowCredentials().GetValue() {
								t.Errorf("CORS policy %v (%v)", &p, err)
							}
						}
						for _, r := range vh.GetRoutes() {
							has := slices.ContainsFunc(r.GetResponseHeadersToAdd(), func(h *corev3.HeaderValueOption) bool {
								return h.GetHeader().GetKey() == "cache-control" && h.GetHeader().GetValue() == "no-cache"
							})
							if has != tt.wantCORS {
								t.Errorf("route %s: cache-control added %v, want %v", r.GetName(), has, tt.wantCORS)
							}
						}
					}
				}
			}
			if err := tt.edit(b); err == nil {
				t.Error("the rewrite succeeded twice: a renamed filter would go unnoticed")
			}
		})
	}
}

func TestAddPrefixRoute(t *testing.T) {
	b, err := Load(extProcConfig)
	if err != nil {
		t.Fatal(err)
	}
	if err := AddPrefixRoute(b, "mercure", "/.well-known/mercure", "nope"); err == nil {
		t.Error("a route to a missing cluster was added")
	}
	if err := AddPrefixRoute(b, "mercure", "/.well-known/mercure", ClusterPlain); err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = Parse(out); err != nil {
		t.Fatal(err)
	}
	for _, l := range b.GetStaticResources().GetListeners() {
		hcms, err := HTTPConnectionManagers(l)
		if err != nil {
			t.Fatal(err)
		}
		for _, hcm := range hcms {
			for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
				r := vh.GetRoutes()[0]
				if r.GetName() != "mercure" || r.GetMatch().GetPrefix() != "/.well-known/mercure" ||
					r.GetRoute().GetCluster() != ClusterPlain || r.GetRoute().GetTimeout().AsDuration() != 0 {
					t.Errorf("listener %s: first route %v", l.GetName(), r)
				}
			}
		}
	}
}
