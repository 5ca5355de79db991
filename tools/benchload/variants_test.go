package benchload

import (
	"os"
	"testing"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/tools/envoyconfig"
)

// router-headers carries the very headers the policy puts on a stream, so
// that memory per stream compares responses of the same size.
func TestRouterHeadersCarryThePolicysHeaders(t *testing.T) {
	data, err := os.ReadFile("../../envoy/sse-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := policy.ParseYAMLOrJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	b, err := envoyconfig.Load("../../envoy/envoy-extproc.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := routerWithPolicyHeaders(b, pc); err != nil {
		t.Fatal(err)
	}
	hcms, err := envoyconfig.HTTPConnectionManagers(b.GetStaticResources().GetListeners()[0])
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range hcms[0].GetRouteConfig().GetVirtualHosts()[0].GetRoutes() {
		for _, h := range r.GetResponseHeadersToAdd() {
			got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
	}
	for k, want := range map[string]string{
		"cache-control":                "no-cache",
		"x-sse-stream":                 "dynamic_module",
		"access-control-allow-origin":  "https://localhost:8080",
		"access-control-allow-methods": "GET, OPTIONS",
		"vary":                         "Origin",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], want, got)
		}
	}
	if len(got) < 7 {
		t.Errorf("%d route headers, want the policy's 7 or more: %v", len(got), got)
	}
}
