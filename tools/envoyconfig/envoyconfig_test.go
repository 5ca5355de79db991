package envoyconfig

import (
	"slices"
	"strings"
	"testing"
)

const minimal = `
static_resources:
  clusters:
  - name: one
    type: STATIC
    load_assignment:
      cluster_name: one
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: upstream, port_value: 9000}}}}]}]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        common_tls_context:
          validation_context: {trusted_ca: {filename: /etc/envoy/certs/ca.pem}}
admin:
  address: {socket_address: {address: 127.0.0.1, port_value: 9901}}
`

func TestParseIsStrict(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown field", "static_resources: {clusterz: []}", "clusterz"},
		{"validation rule", "static_resources: {clusters: [{name: ''}]}", "Name"},
		{"unknown @type", "static_resources: {clusters: [{name: a, transport_socket: {name: x, typed_config: {'@type': type.googleapis.com/no.Such}}}]}", "no.Such"},
		{"not YAML", "static_resources: [", "YAML"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestRewrites(t *testing.T) {
	b, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if err := SetClusterEndpoint(b, "one", "127.0.0.1", 1234); err != nil {
		t.Fatal(err)
	}
	if err := SetClusterEndpoint(b, "missing", "127.0.0.1", 1); err == nil {
		t.Error("a missing cluster was accepted")
	}
	if err := SetListenerPort(b, "missing", 1); err == nil {
		t.Error("a missing listener was accepted")
	}
	if err := SetAdminAddress(b, "127.0.0.1", 4321); err != nil {
		t.Fatal(err)
	}
	if err := ReplacePathPrefix(b, "/etc/envoy/certs", "/tmp/c"); err != nil {
		t.Fatal(err)
	}
	out, err := Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse(out)
	if err != nil {
		t.Fatalf("Marshal's output does not parse: %v", err)
	}
	c, _ := Cluster(again, "one")
	sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != "127.0.0.1" || sa.GetPortValue() != 1234 || again.GetAdmin().GetAddress().GetSocketAddress().GetPortValue() != 4321 {
		t.Errorf("endpoint %v admin %v", sa, again.GetAdmin())
	}
	if s := string(out); !strings.Contains(s, "/tmp/c/ca.pem") || strings.Contains(s, "/etc/envoy") {
		t.Errorf("path not replaced:\n%s", s)
	}
}

func TestSetClusterEndpoints(t *testing.T) {
	tests := []struct {
		name    string
		eps     []Endpoint
		wantErr bool
	}{
		{"three replicas", []Endpoint{{"127.0.0.1", 1}, {"127.0.0.1", 2}, {"127.0.0.2", 3}}, false},
		{"one", []Endpoint{{"127.0.0.1", 7}}, false},
		{"none", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse([]byte(minimal))
			if err != nil {
				t.Fatal(err)
			}
			err = SetClusterEndpoints(b, "one", tc.eps...)
			if (err != nil) != tc.wantErr {
				t.Fatalf("SetClusterEndpoints: %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if err := b.ValidateAll(); err != nil {
				t.Fatal(err)
			}
			c, _ := Cluster(b, "one")
			var got []Endpoint
			for _, lb := range c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints() {
				sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
				got = append(got, Endpoint{sa.GetAddress(), int(sa.GetPortValue())})
			}
			if !slices.Equal(got, tc.eps) {
				t.Errorf("endpoints %v, want %v", got, tc.eps)
			}
		})
	}
}
