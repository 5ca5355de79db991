package localstack

import (
	"encoding/json"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	xdstype "github.com/cncf/xds/go/xds/type/v3"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/tools/envoyconfig"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var testPorts = Ports{HTTP: 18080, HTTPS: 18443, Admin: 19901, Upstream: 19000, UpstreamTLS: 19443, ExtProc: 19002, ExtProcAdmin: 19003, Demo: 13000}

func TestRenderRewritesForLoopback(t *testing.T) {
	root := repoRoot(t)
	tests := []struct {
		adapter    Adapter
		config, so string
	}{
		{AdapterExtProc, "envoy-extproc.yaml", ""},
		{AdapterModule, "envoy-module.yaml", ""},
		{AdapterGolang, "envoy.yaml", "/work/bin/sse.so"},
	}
	for _, tc := range tests {
		t.Run(string(tc.adapter), func(t *testing.T) {
			pc, err := localPolicy(root, []string{"http://localhost:13000"})
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.adapter.ConfigFile(); got != tc.config {
				t.Errorf("config file %s, want %s", got, tc.config)
			}
			o := Options{Root: root, Adapter: tc.adapter, FilterSO: tc.so, Ports: testPorts, Replicas: 3}
			replicas, err := resolvePorts(&o.Ports, o.replicas())
			if err != nil {
				t.Fatal(err)
			}
			out, err := renderEnvoyConfig(filepath.Join(root, "envoy", tc.config), o, replicas, "/tmp/certs", pc)
			if err != nil {
				t.Fatal(err)
			}
			b, err := envoyconfig.Parse(out)
			if err != nil {
				t.Fatalf("the rendered config does not parse back: %v", err)
			}
			strs := allStrings(t, out)
			for _, s := range strs {
				if strings.HasPrefix(s, "/etc/envoy") || strings.HasPrefix(s, "/usr/local/lib/envoy") {
					t.Errorf("the rendered config still names the container path %s", s)
				}
			}
			if !slices.Contains(strs, "/tmp/certs/ca.pem") || !slices.Contains(strs, "/tmp/certs/envoy-key.pem") {
				t.Error("certificate paths not rewritten")
			}
			for name, port := range map[string]int{envoyconfig.ListenerHTTP: 18080, envoyconfig.ListenerHTTPS: 18443} {
				l, _ := envoyconfig.Listener(b, name)
				if sa := l.GetAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.1" || int(sa.GetPortValue()) != port {
					t.Errorf("%s on %v", name, sa)
				}
			}
			// Every replica in both clusters, on its own ports.
			for name, ports := range map[string][]int{envoyconfig.ClusterPlain: {19000, 19010, 19020}, envoyconfig.ClusterTLS: {19443, 19453, 19463}} {
				c, _ := envoyconfig.Cluster(b, name)
				var got []int
				for _, lb := range c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints() {
					sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
					if sa.GetAddress() != "127.0.0.1" {
						t.Errorf("%s -> %v", name, sa)
					}
					got = append(got, int(sa.GetPortValue()))
				}
				if !slices.Equal(got, ports) {
					t.Errorf("%s: ports %v, want %v", name, got, ports)
				}
			}
			switch tc.adapter {
			case AdapterExtProc:
				return
			case AdapterModule:
				filters, err := envoyconfig.ModuleFilters(b)
				if err != nil || len(filters) != 2 {
					t.Fatalf("module filters %v %v", filters, err)
				}
				for _, f := range filters {
					raw, err := envoyconfig.ModuleFilterConfig(f)
					if err != nil {
						t.Fatal(err)
					}
					cfg, err := policy.ParseYAMLOrJSON(raw)
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Contains(cfg.AllowedOrigins, "http://localhost:13000") || cfg.AllowedOrigins[0] != "https://localhost:8080" {
						t.Errorf("filter_config origins %q", cfg.AllowedOrigins)
					}
				}
				return
			}
			filters, err := envoyconfig.GolangFilters(b)
			if err != nil || len(filters) != 2 {
				t.Fatalf("golang filters %v %v", filters, err)
			}
			for _, f := range filters {
				if f.GetLibraryPath() != tc.so {
					t.Errorf("library_path %q", f.GetLibraryPath())
				}
				var ts xdstype.TypedStruct
				if err := f.GetPluginConfig().UnmarshalTo(&ts); err != nil {
					t.Fatal(err)
				}
				var origins []string
				for _, v := range ts.GetValue().GetFields()["allowed_origins"].GetListValue().GetValues() {
					origins = append(origins, v.GetStringValue())
				}
				if !slices.Contains(origins, "http://localhost:13000") || origins[0] != "https://localhost:8080" {
					t.Errorf("plugin_config origins %q", origins)
				}
			}
		})
	}
}

// allStrings collects every string value of a JSON document.
func allStrings(t *testing.T, doc []byte) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case string:
			out = append(out, v)
		case []any:
			for _, e := range v {
				walk(e)
			}
		case map[string]any:
			for _, e := range v {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// Without an explicit adapter: the golang filter when its .so is given (as
// before adapters existed), else the module.
func TestDefaultAdapter(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want Adapter
	}{
		{Options{}, AdapterModule},
		{Options{FilterSO: "/x/sse.so"}, AdapterGolang},
		{Options{Adapter: AdapterExtProc}, AdapterExtProc},
	} {
		if got := tc.o.adapter(); got != tc.want {
			t.Errorf("%+v: adapter %s, want %s", tc.o, got, tc.want)
		}
	}
	for _, name := range []string{"module", "ext_proc", "golang"} {
		if a, err := ParseAdapter(name); err != nil || string(a) != name {
			t.Errorf("ParseAdapter(%q) = %q, %v", name, a, err)
		}
	}
	if _, err := ParseAdapter("extproc"); err == nil {
		t.Error("ParseAdapter accepted a misspelling")
	}
}

func TestResolvePortsGivesReplicasTheirOwnPorts(t *testing.T) {
	for _, n := range []int{1, 2, 4} {
		p := Ports{}
		replicas, err := resolvePorts(&p, n)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[int]bool{p.HTTP: true, p.HTTPS: true, p.Admin: true, p.ExtProc: true, p.ExtProcAdmin: true, p.Demo: true}
		if len(replicas) != n || replicas[0] != (replicaPorts{p.Upstream, p.UpstreamTLS}) {
			t.Fatalf("%d replicas: %v (ports %+v)", n, replicas, p)
		}
		for _, r := range replicas {
			for _, port := range []int{r.plain, r.tls} {
				if port == 0 || seen[port] {
					t.Errorf("%d replicas: port %d zero or used twice: %v %+v", n, port, replicas, p)
				}
				seen[port] = true
			}
		}
	}
}

// localPolicy must not write into the file's array or the caller's.
func TestLocalPolicyLeavesCallerSlicesAlone(t *testing.T) {
	extra := make([]string, 1, 4)
	extra[0] = "http://localhost:1"
	backing := extra[:4]
	if _, err := localPolicy(repoRoot(t), extra); err != nil {
		t.Fatal(err)
	}
	if backing[1] != "" {
		t.Errorf("the caller's spare capacity was written: %q", backing)
	}
}

func TestBinaryName(t *testing.T) {
	for pkg, want := range map[string]string{
		"./cmd/upstream":                    "upstream",
		"github.com/nats-io/nats-server/v2": "nats-server",
		"example.com/tool/v10":              "tool",
		"example.com/vault":                 "vault",
		"example.com/v":                     "v",
	} {
		if got := binaryName(pkg); got != want {
			t.Errorf("binaryName(%q) = %q, want %q", pkg, got, want)
		}
	}
}
