package localstack

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"example.com/sse-on-envoy/demo"
	"example.com/sse-on-envoy/internal/envoyconfig"
	"example.com/sse-on-envoy/internal/policy"
)

// Binaries are the main packages a stack runs, for Build.
var Binaries = []string{"./upstream", "./extproc", "./certs"}

// Paths inside the Envoy container that envoy.yaml names, rewritten to
// local ones.
const (
	containerCertDir = "/etc/envoy/certs"
	containerSO      = "/usr/local/lib/envoy/sse.so"
)

// Ports of a stack; zero picks a free loopback port.
type Ports struct {
	HTTP, HTTPS, Admin    int // Envoy
	Upstream, UpstreamTLS int
	ExtProc, ExtProcAdmin int
	Demo                  int
}

// Options say what to run and where.
type Options struct {
	Root     string // the repository
	Dir      string // certificates, rendered configs and logs
	EnvoyBin string
	Bins     map[string]string // from Build: "upstream", "extproc", "certs"
	// FilterSO, when set, runs envoy.yaml with the golang filter (an Envoy
	// with the golang extension is needed); otherwise envoy-extproc.yaml and
	// the ext_proc server.
	FilterSO string
	Ports    Ports
	// CertDir holds (or receives) the certificates; default Dir/certs.
	CertDir      string
	ExtraOrigins []string
	UpstreamArgs []string
	// ServeDemo serves the demo page and adds its origin
	// (http://localhost:PORT) to the allowed origins.
	ServeDemo bool
	// EditEnvoyConfig, when set, changes the rendered Envoy config before it
	// is written (the load benchmark's router-only and native-CORS variants).
	EditEnvoyConfig func(*bootstrapv3.Bootstrap) error
}

// Stack is the running system.
type Stack struct {
	Dir      string
	HTTPURL  string // http://127.0.0.1:PORT
	HTTPSURL string // https://localhost:PORT (the name the certificate carries)
	AdminURL string
	// UpstreamURL reaches the upstream's plain listener directly.
	UpstreamURL string
	// DemoURL is the demo page on an allowed origin; DemoURLOtherOrigin is
	// the same page on an origin the policy refuses.
	DemoURL, DemoURLOtherOrigin string
	ExtProcAdminURL             string
	CAFile                      string
	Golang                      bool

	Upstream, ExtProc, Envoy *Process
	demo                     *http.Server
}

// Processes are the stack's child processes, in start order.
func (s *Stack) Processes() []*Process {
	var ps []*Process
	for _, p := range []*Process{s.Upstream, s.ExtProc, s.Envoy} {
		if p != nil {
			ps = append(ps, p)
		}
	}
	return ps
}

// Stop ends everything, Envoy first so clients see Envoy go rather than the
// upstream.
func (s *Stack) Stop() {
	for _, p := range []*Process{s.Envoy, s.ExtProc, s.Upstream} {
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
	if err := resolvePorts(&o.Ports); err != nil {
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
		Golang:          o.FilterSO != "",
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

	origins := o.ExtraOrigins
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

	upstreamArgs := append([]string{
		"-addr", fmt.Sprintf("127.0.0.1:%d", p.Upstream),
		"-tls-addr", fmt.Sprintf("127.0.0.1:%d", p.UpstreamTLS),
		"-tls-cert", filepath.Join(certDir, "upstream.pem"),
		"-tls-key", filepath.Join(certDir, "upstream-key.pem"),
	}, o.UpstreamArgs...)
	if s.Upstream, err = StartProcess(o.Dir, "upstream", o.Bins["upstream"], upstreamArgs...); err != nil {
		return nil, err
	}
	if err := s.Upstream.WaitReady(ctx, "/healthz", HTTPOK(s.UpstreamURL+"/healthz")); err != nil {
		return nil, err
	}

	configName := "envoy.yaml"
	if !s.Golang {
		configName = "envoy-extproc.yaml"
		policyPath := filepath.Join(o.Dir, "sse-policy.json")
		if err := writeJSON(policyPath, policyConfig); err != nil {
			return nil, err
		}
		if s.ExtProc, err = StartProcess(o.Dir, "extproc", o.Bins["extproc"],
			"-addr", fmt.Sprintf("127.0.0.1:%d", p.ExtProc),
			"-admin", fmt.Sprintf("127.0.0.1:%d", p.ExtProcAdmin),
			"-config", policyPath); err != nil {
			return nil, err
		}
		if err := s.ExtProc.WaitReady(ctx, "/healthz", HTTPOK(s.ExtProcAdminURL+"/healthz")); err != nil {
			return nil, err
		}
	}

	envoyConfig, err := renderEnvoyConfig(filepath.Join(o.Root, "envoy", configName), o, certDir, policyConfig)
	if err != nil {
		return nil, err
	}
	envoyPath := filepath.Join(o.Dir, "envoy.json")
	if err := os.WriteFile(envoyPath, envoyConfig, 0o644); err != nil {
		return nil, fmt.Errorf("writing the Envoy config: %w", err)
	}
	if s.Envoy, err = StartProcess(o.Dir, "envoy", o.EnvoyBin, "-c", envoyPath,
		"--use-dynamic-base-id", "--log-level", "warn", "--component-log-level", "golang:info",
		"--file-flush-interval-msec", "200"); err != nil {
		return nil, err
	}
	if err := s.Envoy.WaitReady(ctx, "/ready", HTTPOK(s.AdminURL+"/ready")); err != nil {
		return nil, err
	}
	return s, nil
}

func resolvePorts(p *Ports) error {
	fields := []*int{&p.HTTP, &p.HTTPS, &p.Admin, &p.Upstream, &p.UpstreamTLS, &p.ExtProc, &p.ExtProcAdmin, &p.Demo}
	free, err := FreePorts(len(fields))
	if err != nil {
		return err
	}
	for i, f := range fields {
		if *f == 0 {
			*f = free[i]
		}
	}
	return nil
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
	cfg.AllowedOrigins = append(cfg.AllowedOrigins, extraOrigins...)
	if _, err := policy.New(cfg); err != nil {
		return nil, fmt.Errorf("%s with %v: %w", path, extraOrigins, err)
	}
	return cfg, nil
}

// RenderEnvoyConfig is the Envoy config Start would run for o: envoy.yaml
// when o.FilterSO is set, else envoy-extproc.yaml, rewritten to o's ports,
// certDir and allowed origins.
func RenderEnvoyConfig(o Options, certDir string) ([]byte, error) {
	if err := resolvePorts(&o.Ports); err != nil {
		return nil, err
	}
	pc, err := localPolicy(o.Root, o.ExtraOrigins)
	if err != nil {
		return nil, err
	}
	name := "envoy-extproc.yaml"
	if o.FilterSO != "" {
		name = "envoy.yaml"
	}
	return renderEnvoyConfig(filepath.Join(o.Root, "envoy", name), o, certDir, pc)
}

// renderEnvoyConfig rewrites one of the repo's Envoy configs, written for
// Compose, to loopback ports and local paths.
func renderEnvoyConfig(path string, o Options, certDir string, pc *policy.Config) ([]byte, error) {
	b, err := envoyconfig.Load(path)
	if err != nil {
		return nil, err
	}
	p := o.Ports
	steps := []error{
		envoyconfig.SetListenerPort(b, envoyconfig.ListenerHTTP, p.HTTP),
		envoyconfig.SetListenerPort(b, envoyconfig.ListenerHTTPS, p.HTTPS),
		envoyconfig.SetAdminAddress(b, "127.0.0.1", p.Admin),
		envoyconfig.SetClusterEndpoint(b, envoyconfig.ClusterPlain, "127.0.0.1", p.Upstream),
		envoyconfig.SetClusterEndpoint(b, envoyconfig.ClusterTLS, "127.0.0.1", p.UpstreamTLS),
	}
	envoyconfig.ReplacePathPrefix(b, containerCertDir, certDir)
	if o.FilterSO != "" {
		envoyconfig.ReplacePathPrefix(b, containerSO, o.FilterSO)
		steps = append(steps, envoyconfig.SetGolangPluginConfig(b, pc))
	} else {
		steps = append(steps, envoyconfig.SetClusterEndpoint(b, envoyconfig.ClusterExtProc, "127.0.0.1", p.ExtProc))
	}
	if err := errors.Join(steps...); err != nil {
		return nil, fmt.Errorf("rewriting %s for local ports: %w", path, err)
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
