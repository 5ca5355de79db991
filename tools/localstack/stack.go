package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"example.com/sse-on-envoy/demo"
	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/module/abiinfo"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/fdlimit"
)

// Binaries are the main packages a stack runs, for Build: ours, and the
// real nats-server (from the module) that replicas share.
var Binaries = []string{"./cmd/upstream", "./cmd/extproc", "./cmd/certs", NATSServerPackage}

// NATSServerPackage builds the nats-server binary ("nats-server" in Bins).
const NATSServerPackage = "github.com/nats-io/nats-server/v2"

// Paths inside the Envoy container that envoy.yaml names, rewritten to
// local ones.
const (
	containerCertDir = "/etc/envoy/certs"
	containerSO      = "/usr/local/lib/envoy/sse.so"
)

// Ports of a stack; zero picks a free loopback port.
type Ports struct {
	HTTP, HTTPS, Admin int // Envoy
	// The first upstream replica's; replica i (from 0) listens on these
	// plus 10*i when they are set, else on free ports.
	Upstream, UpstreamTLS int
	ExtProc, ExtProcAdmin int
	Demo                  int
	// NATS is the shared nats-server's client port, NATSMonitor its HTTP
	// monitoring port (used only with more than one replica).
	NATS, NATSMonitor int
}

// Options say what to run and where.
type Options struct {
	Root     string // the repository
	Dir      string // certificates, rendered configs and logs
	EnvoyBin string
	Bins     map[string]string // from Build: "upstream", "extproc", "certs"
	// Adapter picks the config and what runs besides Envoy; empty means the
	// golang filter if FilterSO is set, else the dynamic module.
	Adapter Adapter
	// FilterSO is the golang filter's .so (AdapterGolang; an Envoy with the
	// golang extension is needed).
	FilterSO string
	// ModuleDir holds libsse.so (AdapterModule); empty: Start builds it
	// into Dir.
	ModuleDir string
	Ports     Ports
	// CertDir holds (or receives) the certificates; default Dir/certs.
	CertDir      string
	ExtraOrigins []string
	UpstreamArgs []string
	// EditEnvoyConfig, when set, changes the rendered Envoy config last
	// (tests use it for what the repository's configs do not have).
	EditEnvoyConfig func(*bootstrapv3.Bootstrap) error
	// ServeDemo serves the demo page and adds its origin
	// (http://localhost:PORT) to the allowed origins.
	ServeDemo bool
	// Replicas is the number of upstream processes, all in both Envoy
	// clusters; default 2. Several replicas share one event log in a
	// nats-server the stack runs (JetStream under Dir/nats); a single one
	// embeds NATS. Each replica has its own -data folder under Dir, so ids
	// survive restarts of the stack with the same Dir.
	Replicas int
	// Logger receives the supervision lines (a child exited, restarted);
	// default slog.Default().
	Logger *slog.Logger
}

// DefaultReplicas is how many upstream replicas a stack runs by default.
const DefaultReplicas = 2

func (o *Options) replicas() int {
	if o.Replicas <= 0 {
		return DefaultReplicas
	}
	return o.Replicas
}

// replicaPorts is where one upstream replica listens.
type replicaPorts struct{ plain, tls int }

// Stack is the running system.
type Stack struct {
	Dir      string
	HTTPURL  string // http://127.0.0.1:PORT
	HTTPSURL string // https://localhost:PORT (the name the certificate carries)
	AdminURL string
	// UpstreamURL reaches the first replica's plain listener directly;
	// UpstreamURLs every replica's, in the order of Upstreams.
	UpstreamURL  string
	UpstreamURLs []string
	// DemoURL is the demo page on an allowed origin; DemoURLOtherOrigin is
	// the same page on an origin the policy refuses.
	DemoURL, DemoURLOtherOrigin string
	ExtProcAdminURL             string
	CAFile                      string
	Adapter                     Adapter
	// Golang is Adapter == AdapterGolang.
	Golang bool

	// NATSURL is the nats-server the replicas share ("" with one replica).
	NATSURL string
	NATS    *Service
	// Upstreams are the replicas; Upstream is the first of them.
	Upstreams                []*Service
	Upstream, ExtProc, Envoy *Service
	demo                     *http.Server
}

// Processes are the stack's supervised children, in start order.
func (s *Stack) Processes() []*Service {
	var ps []*Service
	if s.NATS != nil {
		ps = append(ps, s.NATS)
	}
	ps = append(ps, s.Upstreams...)
	for _, p := range []*Service{s.ExtProc, s.Envoy} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// Stop ends everything, Envoy first so clients see Envoy go rather than the
// upstream.
func (s *Stack) Stop() {
	stop := []*Service{s.Envoy, s.ExtProc}
	stop = append(stop, s.Upstreams...)
	for _, p := range append(stop, s.NATS) {
		if p != nil {
			p.Stop(5 * time.Second)
		}
	}
	if s.demo != nil {
		s.demo.Close()
	}
}

// Start runs the stack and returns once every part answers.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	// Before any child starts, so that Envoy gets the limit its connection
	// cap is computed from (fitConnectionCap).
	if _, err := fdlimit.Raise(); err != nil {
		return nil, err
	}
	replicas, err := resolvePorts(&o.Ports, o.replicas())
	if err != nil {
		return nil, err
	}
	p := o.Ports
	s := &Stack{
		Dir:             o.Dir,
		HTTPURL:         fmt.Sprintf("http://127.0.0.1:%d", p.HTTP),
		HTTPSURL:        fmt.Sprintf("https://localhost:%d", p.HTTPS),
		AdminURL:        fmt.Sprintf("http://127.0.0.1:%d", p.Admin),
		UpstreamURL:     fmt.Sprintf("http://127.0.0.1:%d", p.Upstream),
		ExtProcAdminURL: fmt.Sprintf("http://127.0.0.1:%d", p.ExtProcAdmin),
		Adapter:         o.adapter(),
		Golang:          o.adapter() == AdapterGolang,
	}
	defer func() {
		if err != nil {
			s.Stop()
		}
	}()

	certDir := o.CertDir
	if certDir == "" {
		certDir = filepath.Join(o.Dir, "certs")
	}
	if out, err := exec.CommandContext(ctx, o.Bins["certs"], "-out", certDir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("making certificates: %w\n%s", err, out)
	}
	s.CAFile = filepath.Join(certDir, "ca.pem")

	// A copy: appending must not write into the caller's array.
	origins := slices.Clone(o.ExtraOrigins)
	if o.ServeDemo {
		s.DemoURL = fmt.Sprintf("http://localhost:%d", p.Demo)
		s.DemoURLOtherOrigin = fmt.Sprintf("http://127.0.0.1:%d", p.Demo)
		origins = append(origins, s.DemoURL)
		if s.demo, err = serveDemo(p.Demo); err != nil {
			return nil, err
		}
	}
	policyConfig, err := localPolicy(o.Root, origins)
	if err != nil {
		return nil, err
	}

	var natsArgs []string
	if len(replicas) > 1 {
		s.NATSURL = fmt.Sprintf("nats://127.0.0.1:%d", p.NATS)
		if s.NATS, err = StartService(o.Dir, "nats", o.Bins["nats-server"],
			HTTPOK(fmt.Sprintf("http://127.0.0.1:%d/healthz?js-enabled-only=true", p.NATSMonitor)), o.Logger,
			"-a", "127.0.0.1", "-p", strconv.Itoa(p.NATS), "-m", strconv.Itoa(p.NATSMonitor),
			"-js", "-sd", filepath.Join(o.Dir, "nats")); err != nil {
			return nil, err
		}
		if err := s.NATS.WaitReady(ctx); err != nil {
			return nil, err
		}
		natsArgs = []string{"-nats-url", s.NATSURL}
	}
	for i, rp := range replicas {
		name := "upstream" // its log: upstream.log
		if len(replicas) > 1 {
			name = fmt.Sprintf("upstream-%d", i+1) // the Compose service names
		}
		args := []string{
			"-addr", fmt.Sprintf("127.0.0.1:%d", rp.plain),
			"-tls-addr", fmt.Sprintf("127.0.0.1:%d", rp.tls),
			"-tls-cert", filepath.Join(certDir, "upstream.pem"),
			"-tls-key", filepath.Join(certDir, "upstream-key.pem"),
			"-data", filepath.Join(o.Dir, name+"-data"),
		}
		args = append(args, mercureArgs()...)
		args = append(args, natsArgs...)
		url := fmt.Sprintf("http://127.0.0.1:%d", rp.plain)
		up, err := StartService(o.Dir, name, o.Bins["upstream"], HTTPOK(url+"/healthz"), o.Logger, append(args, o.UpstreamArgs...)...)
		if err != nil {
			return nil, err
		}
		s.Upstreams = append(s.Upstreams, up)
		s.UpstreamURLs = append(s.UpstreamURLs, url)
	}
	s.Upstream = s.Upstreams[0]
	for _, up := range s.Upstreams {
		if err := up.WaitReady(ctx); err != nil {
			return nil, err
		}
	}

	var envoyEnv []string
	switch s.Adapter {
	case AdapterModule:
		if o.ModuleDir == "" {
			if o.ModuleDir, err = BuildModule(ctx, o.Root, o.Dir); err != nil {
				return nil, err
			}
		}
		envoyEnv = []string{ModuleSearchPathEnv + "=" + o.ModuleDir}
	case AdapterExtProc:
		policyPath := filepath.Join(o.Dir, "sse-policy.json")
		if err := writeJSON(policyPath, policyConfig); err != nil {
			return nil, err
		}
		if s.ExtProc, err = StartService(o.Dir, "extproc", o.Bins["extproc"], HTTPOK(s.ExtProcAdminURL+"/healthz"), o.Logger,
			"-addr", fmt.Sprintf("127.0.0.1:%d", p.ExtProc),
			"-admin", fmt.Sprintf("127.0.0.1:%d", p.ExtProcAdmin),
			"-config", policyPath); err != nil {
			return nil, err
		}
		if err := s.ExtProc.WaitReady(ctx); err != nil {
			return nil, err
		}
	}

	envoyConfig, err := renderEnvoyConfig(filepath.Join(o.Root, "envoy", s.Adapter.ConfigFile()), o, replicas, certDir, policyConfig)
	if err != nil {
		return nil, err
	}
	envoyPath := filepath.Join(o.Dir, "envoy.json")
	if err := os.WriteFile(envoyPath, envoyConfig, 0o644); err != nil {
		return nil, fmt.Errorf("writing the Envoy config: %w", err)
	}
	if s.Envoy, err = startService(o.Dir, "envoy", o.EnvoyBin, envoyEnv, HTTPOK(s.AdminURL+"/ready"), o.Logger, "-c", envoyPath,
		"--use-dynamic-base-id", "--log-level", "warn", "--component-log-level", "golang:info,dynamic_modules:info",
		"--file-flush-interval-msec", "200"); err != nil {
		return nil, err
	}
	if err := s.Envoy.WaitReady(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// resolvePorts fills p's zero ports with free ones and returns the ports of
// n upstream replicas, the first on p.Upstream and p.UpstreamTLS.
func resolvePorts(p *Ports, n int) ([]replicaPorts, error) {
	fixedUpstream := p.Upstream != 0 && p.UpstreamTLS != 0
	fields := []*int{&p.HTTP, &p.HTTPS, &p.Admin, &p.Upstream, &p.UpstreamTLS, &p.ExtProc, &p.ExtProcAdmin, &p.Demo, &p.NATS, &p.NATSMonitor}
	free, err := FreePorts(len(fields) + 2*(n-1))
	if err != nil {
		return nil, err
	}
	for i, f := range fields {
		if *f == 0 {
			*f = free[i]
		}
	}
	extra := free[len(fields):]
	replicas := make([]replicaPorts, n)
	for i := range replicas {
		switch {
		case i == 0:
			replicas[i] = replicaPorts{p.Upstream, p.UpstreamTLS}
		case fixedUpstream:
			replicas[i] = replicaPorts{p.Upstream + 10*i, p.UpstreamTLS + 10*i}
		default:
			replicas[i] = replicaPorts{extra[2*(i-1)], extra[2*(i-1)+1]}
		}
	}
	return replicas, nil
}

// localPolicy is envoy/sse-policy.yaml with the extra origins allowed.
func localPolicy(root string, extraOrigins []string) (*policy.Config, error) {
	path := filepath.Join(root, "envoy", "sse-policy.yaml")
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the SSE policy: %w", err)
	}
	cfg, err := policy.ParseYAMLOrJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg.AllowedOrigins = append(slices.Clip(cfg.AllowedOrigins), extraOrigins...)
	if _, err := policy.New(cfg); err != nil {
		return nil, fmt.Errorf("%s with %v: %w", path, extraOrigins, err)
	}
	return cfg, nil
}

// RenderEnvoyConfig is the Envoy config Start would run for o (the
// adapter's config file), rewritten to o's ports, certDir and allowed
// origins.
func RenderEnvoyConfig(o Options, certDir string) ([]byte, error) {
	replicas, err := resolvePorts(&o.Ports, o.replicas())
	if err != nil {
		return nil, err
	}
	pc, err := localPolicy(o.Root, o.ExtraOrigins)
	if err != nil {
		return nil, err
	}
	return renderEnvoyConfig(filepath.Join(o.Root, "envoy", o.adapter().ConfigFile()), o, replicas, certDir, pc)
}

// renderEnvoyConfig rewrites one of the repo's Envoy configs, written for
// Compose, to loopback ports and local paths.
func renderEnvoyConfig(path string, o Options, replicas []replicaPorts, certDir string, pc *policy.Config) ([]byte, error) {
	b, err := envoyconfig.Load(path)
	if err != nil {
		return nil, err
	}
	p := o.Ports
	var plain, tls []envoyconfig.Endpoint
	for _, r := range replicas {
		plain = append(plain, envoyconfig.Endpoint{Host: "127.0.0.1", Port: r.plain})
		tls = append(tls, envoyconfig.Endpoint{Host: "127.0.0.1", Port: r.tls})
	}
	steps := []error{
		envoyconfig.SetListenerPort(b, envoyconfig.ListenerHTTP, p.HTTP),
		envoyconfig.SetListenerPort(b, envoyconfig.ListenerHTTPS, p.HTTPS),
		envoyconfig.SetAdminAddress(b, "127.0.0.1", p.Admin),
		envoyconfig.SetClusterEndpoints(b, envoyconfig.ClusterPlain, plain...),
		envoyconfig.SetClusterEndpoints(b, envoyconfig.ClusterTLS, tls...),
		envoyconfig.ReplacePathPrefix(b, containerCertDir, certDir),
	}
	switch o.adapter() {
	case AdapterGolang:
		steps = append(steps, envoyconfig.ReplacePathPrefix(b, containerSO, o.FilterSO), envoyconfig.SetGolangPluginConfig(b, pc))
	case AdapterExtProc:
		steps = append(steps, envoyconfig.SetClusterEndpoint(b, envoyconfig.ClusterExtProc, "127.0.0.1", p.ExtProc))
	case AdapterModule:
		steps = append(steps, envoyconfig.SetModuleFilterConfig(b, pc))
		if !abiinfo.StatsInNamespace {
			// The module was built for 1.37 (ModuleBuildTags), which has no
			// metrics_namespace.
			steps = append(steps, envoyconfig.SetModuleMetricsNamespace(b, ""))
		}
	}
	if err := errors.Join(steps...); err != nil {
		return nil, fmt.Errorf("rewriting %s for local ports: %w", path, err)
	}
	if err := fitConnectionCap(b); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if o.EditEnvoyConfig != nil {
		if err := o.EditEnvoyConfig(b); err != nil {
			return nil, fmt.Errorf("editing %s: %w", path, err)
		}
	}
	return envoyconfig.Marshal(b)
}

func writeJSON(path string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func serveDemo(port int) (*http.Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("demo page: %w", err)
	}
	srv := &http.Server{Handler: demo.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(lis)
	return srv, nil
}

// HasGolangFilter reports whether envoyBin has the golang extension (the
// contrib build), by validating a config that names it.
func HasGolangFilter(ctx context.Context, envoyBin, dir string) (bool, error) {
	const probe = `static_resources:
  listeners:
  - name: probe
    address: {socket_address: {address: 127.0.0.1, port_value: 1}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: probe
          route_config: {}
          http_filters:
          - name: envoy.filters.http.golang
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.golang.v3alpha.Config
              library_id: probe
              library_path: /nonexistent.so
              plugin_name: probe
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`
	path := filepath.Join(dir, "golang-probe.yaml")
	if err := os.WriteFile(path, []byte(probe), 0o644); err != nil {
		return false, err
	}
	out, err := exec.CommandContext(ctx, envoyBin, "--mode", "validate", "-c", path).CombinedOutput()
	if err == nil {
		return true, nil
	}
	// Stock builds do not know the type; a contrib build gets further and
	// fails on the missing library instead.
	if strings.Contains(string(out), "envoy.extensions.filters.http.golang.v3alpha.Config") ||
		strings.Contains(string(out), "Didn't find a registered implementation") {
		return false, nil
	}
	if _, statErr := os.Stat(envoyBin); statErr != nil {
		return false, fmt.Errorf("ENVOY_BIN %s: %w", envoyBin, statErr)
	}
	return true, nil
}
