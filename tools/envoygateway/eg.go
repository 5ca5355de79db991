package envoygateway

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/yaml"

	"example.com/sse-on-envoy/tools/localstack"
)

// Version is the Envoy Gateway release the tests run (egbuild/go.mod
// requires it; the Makefile builds it into .cache/envoy-gateway/<Version>).
const Version = "v1.9.1"

// FixedPorts are what Envoy Gateway in standalone mode and its Envoy listen
// on whatever the resources say: xDS 18000, the wasm cache 18002, Envoy's
// admin 19000, metrics 19001, Envoy's readiness 19003 and the control
// plane's health 8081. Two instances cannot run on one machine at once.
var FixedPorts = []int{18000, 18002, 19000, 19001, 19003, 8081}

// Gateway is Envoy Gateway running in standalone mode on a folder of
// resources it watches.
type Gateway struct {
	// ResourceDir is the watched folder: a file written there reaches
	// Envoy over xDS without a restart.
	ResourceDir string
	proc        *localstack.Process
}

// GatewayOptions say what to run.
type GatewayOptions struct {
	Bin      string // envoy-gateway
	EnvoyBin string // the Envoy binary to run for EnvoyVersion
	// EnvoyVersion is the release the resources' EnvoyProxy names
	// (provider.host.envoyVersion): func-e runs the binary found at
	// <dataHome>/envoy-versions/<EnvoyVersion>/bin/envoy, so EnvoyBin is
	// placed there and nothing is downloaded.
	EnvoyVersion string
	Dir          string // everything Envoy Gateway writes, and its log
	// ListenerPorts are the Gateway's: they must be free too.
	ListenerPorts []int
	Resources     []byte // the first contents of ResourceDir/resources.yaml
}

// StartGateway writes Envoy Gateway's config, its control-plane
// certificates (certgen --local) and the resources, then starts the server.
func StartGateway(ctx context.Context, o GatewayOptions) (*Gateway, error) {
	if err := PortsFree(append(append([]int{}, FixedPorts...), o.ListenerPorts...)...); err != nil {
		return nil, err
	}
	home := func(name string) string { return filepath.Join(o.Dir, "eg", name) }
	g := &Gateway{ResourceDir: filepath.Join(o.Dir, "resources")}
	for _, d := range []string{g.ResourceDir, home("config"), home("state"), home("run")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	envoyDir := filepath.Join(home("data"), "envoy-versions", o.EnvoyVersion, "bin")
	if err := os.MkdirAll(envoyDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(o.EnvoyBin, filepath.Join(envoyDir, "envoy")); err != nil {
		return nil, err
	}
	cfg := map[string]any{
		"apiVersion": "gateway.envoyproxy.io/v1alpha1",
		"kind":       "EnvoyGateway",
		"gateway":    map[string]any{"controllerName": "gateway.envoyproxy.io/gatewayclass-controller"},
		"provider": map[string]any{
			"type": "Custom",
			"custom": map[string]any{
				"resource": map[string]any{"type": "File", "file": map[string]any{"paths": []string{g.ResourceDir}}},
				"infrastructure": map[string]any{"type": "Host", "host": map[string]any{
					"configHome": home("config"), "dataHome": home("data"),
					"stateHome": home("state"), "runtimeDir": home("run"),
				}},
			},
		},
		"logging": map[string]any{"level": map[string]any{"default": "info"}},
		// Backends stand in for Services, which have no endpoints here.
		"extensionApis": map[string]any{"enableBackend": true},
	}
	cfgYAML, err := yaml.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	cfgPath := filepath.Join(o.Dir, "envoy-gateway.yaml")
	if err := os.WriteFile(cfgPath, cfgYAML, 0o644); err != nil {
		return nil, err
	}
	if err := g.WriteResources(o.Resources); err != nil {
		return nil, err
	}
	certCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(certCtx, o.Bin, "certgen", "--local", "--config-home", home("config")).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("envoy-gateway certgen --local: %w\n%s", err, out)
	}
	if g.proc, err = localstack.StartProcess(o.Dir, "envoy-gateway", o.Bin, "server", "--config-path", cfgPath); err != nil {
		return nil, err
	}
	return g, nil
}

// WriteResources replaces the watched file with b, atomically (a rename),
// so Envoy Gateway never reads half a file.
func (g *Gateway) WriteResources(b []byte) error {
	tmp := filepath.Join(filepath.Dir(g.ResourceDir), "resources.yaml.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(g.ResourceDir, "resources.yaml"))
}

// WaitReady polls check until it passes, Envoy Gateway exits or ctx ends.
func (g *Gateway) WaitReady(ctx context.Context, what string, check func(context.Context) error) error {
	return g.proc.WaitReady(ctx, what, check)
}

// Output is what Envoy Gateway and its Envoy have logged.
func (g *Gateway) Output() string { return g.proc.Output() }

// Stop ends Envoy Gateway, which stops its Envoy; whatever of its process
// group is left after the grace period (its Envoy, if it outlived it) is
// killed.
func (g *Gateway) Stop() {
	g.proc.Stop(15 * time.Second)
	syscall.Kill(-g.proc.PID(), syscall.SIGKILL)
}

// EnvoyPID is the process id of the Envoy that Envoy Gateway runs (its
// child, through func-e), or an error if there is none or more than one.
func (g *Gateway) EnvoyPID() (int, error) {
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return 0, err
	}
	var pids []int
	for _, st := range stats {
		b, err := os.ReadFile(st)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after
		// its closing parenthesis.
		s := string(b)
		open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || end < open {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(g.proc.PID()) || !strings.HasPrefix(s[open+1:end], "envoy") {
			continue
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(s[:open]))
		pids = append(pids, pid)
	}
	if len(pids) != 1 {
		return 0, fmt.Errorf("Envoy Gateway (pid %d) has %d Envoy children %v, want one", g.proc.PID(), len(pids), pids)
	}
	return pids[0], nil
}

// PortsFree fails, naming them, if any of ports is taken on this machine.
func PortsFree(ports ...int) error {
	var errs []error
	for _, p := range ports {
		l, err := net.Listen("tcp", ":"+strconv.Itoa(p))
		if err != nil {
			errs = append(errs, fmt.Errorf("port %d is taken (another Envoy Gateway or Envoy running?): %w", p, err))
			continue
		}
		l.Close()
	}
	return errors.Join(errs...)
}
