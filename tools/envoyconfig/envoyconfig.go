// Package envoyconfig loads this repository's Envoy configurations into
// Envoy's own bootstrap proto (go-control-plane), validates them with the
// protos' rules, and rewrites them for local runs: ports, endpoints, file
// paths, the golang filter's settings. Working on the proto rather than on
// YAML text means a typo in a field name fails here, as it would in Envoy.
package envoyconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	overloadv3 "github.com/envoyproxy/go-control-plane/envoy/config/overload/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	downstreamv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/resource_monitors/downstream_connections/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	"example.com/sse-on-envoy/internal/ssestream"

	// Every extension the configs name, so Any fields resolve.
	_ "github.com/cncf/xds/go/xds/type/v3"
	_ "github.com/envoyproxy/go-control-plane/contrib/envoy/extensions/filters/http/golang/v3alpha"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/stream/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/buffer/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// Names the repository's configs use.
const (
	ListenerHTTP   = "http"
	ListenerHTTPS  = "https"
	ClusterPlain   = "upstream_plain"
	ClusterTLS     = "upstream_tls"
	ClusterExtProc = "extproc"
	GolangFilter   = "envoy.filters.http.golang"
	// BufferFilter holds Mercure publish bodies (and refuses them with 413
	// past its limit); off by default, on where a route says so.
	BufferFilter = "envoy.filters.http.buffer"
	// RateLimitFilter limits Mercure subscriptions per client address (the
	// mercure route's per-route config turns it on).
	RateLimitFilter = "envoy.filters.http.local_ratelimit"
	HCMFilter       = "envoy.filters.network.http_connection_manager"
	// RouterFilter is the last HTTP filter of every HCM.
	RouterFilter = "envoy.filters.http.router"
	// LocalReplyHeader marks Envoy's own answer on an SSE route that it could
	// not open upstream (mapped to a 200 that makes EventSource retry); its
	// value is the response flags, such as UF or UH.
	LocalReplyHeader = ssestream.UnavailableHeader
)

// Load reads an Envoy YAML (or JSON) file into a validated bootstrap.
func Load(path string) (*bootstrapv3.Bootstrap, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading Envoy config: %w", err)
	}
	b, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// Parse decodes YAML (anchors included) strictly: unknown fields fail, as
// they do in Envoy.
func Parse(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("YAML: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("bootstrap validation: %w", err)
	}
	return &b, nil
}

// Marshal renders b as JSON, which Envoy reads from a .json file.
func Marshal(b *bootstrapv3.Bootstrap) ([]byte, error) {
	data, err := protojson.MarshalOptions{Indent: "  "}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("rendering the Envoy config: %w", err)
	}
	return data, nil
}

// Listener finds a static listener by name.
func Listener(b *bootstrapv3.Bootstrap, name string) (*listenerv3.Listener, error) {
	for _, l := range b.GetStaticResources().GetListeners() {
		if l.GetName() == name {
			return l, nil
		}
	}
	return nil, fmt.Errorf("no listener %q", name)
}

// Cluster finds a static cluster by name.
func Cluster(b *bootstrapv3.Bootstrap, name string) (*clusterv3.Cluster, error) {
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c, nil
		}
	}
	return nil, fmt.Errorf("no cluster %q", name)
}

// eachHCM unpacks the HTTP connection manager of every filter chain of l.
func eachHCM(l *listenerv3.Listener, fn func(f *listenerv3.Filter, hcm *hcmv3.HttpConnectionManager) error) error {
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetName() != HCMFilter {
				continue
			}
			var hcm hcmv3.HttpConnectionManager
			if err := f.GetTypedConfig().UnmarshalTo(&hcm); err != nil {
				return fmt.Errorf("listener %s: %w", l.GetName(), err)
			}
			if err := fn(f, &hcm); err != nil {
				return fmt.Errorf("listener %s: %w", l.GetName(), err)
			}
		}
	}
	return nil
}

// HTTPConnectionManagers returns copies of the HCMs of l's filter chains;
// EditHTTPConnectionManagers changes them.
func HTTPConnectionManagers(l *listenerv3.Listener) ([]*hcmv3.HttpConnectionManager, error) {
	var out []*hcmv3.HttpConnectionManager
	err := eachHCM(l, func(_ *listenerv3.Filter, hcm *hcmv3.HttpConnectionManager) error {
		out = append(out, hcm)
		return nil
	})
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("listener %s has no HTTP connection manager", l.GetName())
	}
	return out, err
}

// EditHTTPConnectionManagers applies edit to every HCM of every listener.
func EditHTTPConnectionManagers(b *bootstrapv3.Bootstrap, edit func(*hcmv3.HttpConnectionManager) error) error {
	for _, l := range b.GetStaticResources().GetListeners() {
		err := eachHCM(l, func(f *listenerv3.Filter, hcm *hcmv3.HttpConnectionManager) error {
			if err := edit(hcm); err != nil {
				return err
			}
			return f.GetTypedConfig().MarshalFrom(hcm)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// SetListenerPort moves a listener to 127.0.0.1:port.
func SetListenerPort(b *bootstrapv3.Bootstrap, name string, port int) error {
	l, err := Listener(b, name)
	if err != nil {
		return err
	}
	l.Address = socketAddress("127.0.0.1", port)
	return nil
}

// SetAdminAddress moves the admin listener.
func SetAdminAddress(b *bootstrapv3.Bootstrap, host string, port int) error {
	if b.GetAdmin() == nil {
		return fmt.Errorf("no admin listener")
	}
	b.Admin.Address = socketAddress(host, port)
	return nil
}

// SetClusterEndpoint points a cluster at the one endpoint host:port.
func SetClusterEndpoint(b *bootstrapv3.Bootstrap, name, host string, port int) error {
	return SetClusterEndpoints(b, name, Endpoint{Host: host, Port: port})
}

// Endpoint is one upstream host of a cluster.
type Endpoint struct {
	Host string
	Port int
}

// SetClusterEndpoints replaces a cluster's endpoints (one locality) with
// eps, keeping the first endpoint's settings (health check options...).
func SetClusterEndpoints(b *bootstrapv3.Bootstrap, name string, eps ...Endpoint) error {
	c, err := Cluster(b, name)
	if err != nil {
		return err
	}
	if len(eps) == 0 {
		return fmt.Errorf("cluster %s: no endpoints given", name)
	}
	localities := c.GetLoadAssignment().GetEndpoints()
	if len(localities) != 1 || len(localities[0].GetLbEndpoints()) == 0 {
		return fmt.Errorf("cluster %s: want one locality with endpoints", name)
	}
	template := localities[0].GetLbEndpoints()[0]
	lbs := make([]*endpointv3.LbEndpoint, 0, len(eps))
	for _, ep := range eps {
		lb := proto.Clone(template).(*endpointv3.LbEndpoint)
		lb.GetEndpoint().Address = socketAddress(ep.Host, ep.Port)
		lbs = append(lbs, lb)
	}
	localities[0].LbEndpoints = lbs
	return nil
}

// ReplacePathPrefix rewrites every string value that starts with oldPrefix
// (certificate files, library_path...), also inside typed configs.
func ReplacePathPrefix(b *bootstrapv3.Bootstrap, oldPrefix, newPrefix string) error {
	js, err := protojson.Marshal(b)
	if err != nil {
		return err
	}
	quote := func(s string) []byte {
		q, _ := json.Marshal(s)
		return q[:len(q)-1] // keep the opening quote only: a prefix
	}
	js = bytes.ReplaceAll(js, quote(oldPrefix), quote(newPrefix))
	var replaced bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &replaced); err != nil {
		return fmt.Errorf("replacing %s: %w", oldPrefix, err)
	}
	proto.Reset(b)
	proto.Merge(b, &replaced)
	return nil
}

func socketAddress(host string, port int) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}

// DownstreamConnectionsMonitor is the overload manager's resource monitor
// that caps downstream connections.
const DownstreamConnectionsMonitor = "envoy.resource_monitors.global_downstream_max_connections"

// DownstreamConnectionLimit is the overload manager's cap on downstream
// connections, or 0 when the config has none.
func DownstreamConnectionLimit(b *bootstrapv3.Bootstrap) (int64, error) {
	cfg, _, err := downstreamConnections(b)
	if err != nil || cfg == nil {
		return 0, err
	}
	return cfg.GetMaxActiveDownstreamConnections(), nil
}

// SetDownstreamConnectionLimit changes the overload manager's cap on
// downstream connections; the config must have the monitor.
func SetDownstreamConnectionLimit(b *bootstrapv3.Bootstrap, n int64) error {
	cfg, rm, err := downstreamConnections(b)
	if err != nil {
		return err
	}
	if cfg == nil {
		return fmt.Errorf("no %s in the overload manager", DownstreamConnectionsMonitor)
	}
	cfg.MaxActiveDownstreamConnections = n
	tc, err := anypb.New(cfg)
	if err != nil {
		return err
	}
	rm.ConfigType = &overloadv3.ResourceMonitor_TypedConfig{TypedConfig: tc}
	return nil
}

func downstreamConnections(b *bootstrapv3.Bootstrap) (*downstreamv3.DownstreamConnectionsConfig, *overloadv3.ResourceMonitor, error) {
	for _, rm := range b.GetOverloadManager().GetResourceMonitors() {
		if rm.GetName() != DownstreamConnectionsMonitor {
			continue
		}
		var cfg downstreamv3.DownstreamConnectionsConfig
		if err := rm.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", DownstreamConnectionsMonitor, err)
		}
		return &cfg, rm, nil
	}
	return nil, nil, nil
}
