package envoy_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/localstack"
)

// Docker cannot run here, so docker-compose.yml is checked the way Compose
// reads it (compose-go), and the Dockerfiles by what they copy.
func loadCompose(t *testing.T) *types.Project {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "docker-compose.yml")},
		cli.WithWorkingDirectory(root), cli.WithName("sse-on-envoy"), cli.WithResolvedPaths(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := opts.LoadProject(context.Background())
	if err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	return p
}

// replicaServices are the upstream replicas Compose runs and envoy.yaml's
// clusters list.
var replicaServices = []string{"upstream-1", "upstream-2"}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	if names := p.ServiceNames(); !slices.Equal(sortedCopy(names), []string{"demo", "envoy", "nats", "upstream-1", "upstream-2"}) {
		t.Fatalf("services %q", names)
	}
	published := map[string][]string{}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			published[name] = append(published[name], port.Published)
		}
		if name == "nats" {
			continue // an image, not built here
		}
		if s.Build == nil {
			t.Errorf("%s: no build", name)
			continue
		}
		if _, err := os.Stat(filepath.Join(s.Build.Context, s.Build.Dockerfile)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	want := map[string][]string{"envoy": {"8080", "8443"}, "demo": {"3000"}}
	for name, ports := range want {
		if !slices.Equal(sortedCopy(published[name]), ports) {
			t.Errorf("%s publishes %q, want %q (admin 9901 never)", name, published[name], ports)
		}
	}
	for _, name := range append([]string{"nats"}, replicaServices...) {
		if len(published[name]) != 0 {
			t.Errorf("%s publishes %q: only Envoy (and the replicas) should reach it", name, published[name])
		}
	}

	envoy := p.Services["envoy"]
	if !mounts(envoy, "certs/out", "/etc/envoy/certs") {
		t.Errorf("envoy does not mount certs/out at /etc/envoy/certs (envoy.yaml reads them there): %v", envoy.Volumes)
	}
	for _, name := range replicaServices {
		up := p.Services[name]
		cert, key := up.Environment["UPSTREAM_TLS_CERT"], up.Environment["UPSTREAM_TLS_KEY"]
		if cert == nil || key == nil || !mounts(up, "certs/out", filepath.Dir(*cert)) || filepath.Dir(*key) != filepath.Dir(*cert) {
			t.Errorf("%s: the TLS files are not mounted: env %v volumes %v", name, up.Environment, up.Volumes)
		}
	}
}

// Every service comes back by itself after a crash.
func TestComposeRestartPolicies(t *testing.T) {
	p := loadCompose(t)
	for name, s := range p.Services {
		if s.Restart != "unless-stopped" && s.Restart != "always" && !strings.HasPrefix(s.Restart, "on-failure") {
			t.Errorf("%s: restart %q, want a policy that restarts a crashed container", name, s.Restart)
		}
	}
}

// The replicas share one JetStream in the nats service (embedded NATS per
// replica would give each its own id sequence), kept in a volume.
func TestComposeReplicasShareNATS(t *testing.T) {
	p := loadCompose(t)
	nats := p.Services["nats"]
	if !strings.HasPrefix(nats.Image, "nats:2.") {
		t.Errorf("nats image %q, want the official nats:2.x", nats.Image)
	}
	cmd := strings.Join(nats.Command, " ")
	if !strings.Contains(cmd, "-js") || !strings.Contains(cmd, "-sd /data") {
		t.Errorf("nats command %q: want JetStream (-js) storing under /data", cmd)
	}
	stored := false
	for _, v := range nats.Volumes {
		if v.Type == types.VolumeTypeVolume && v.Target == "/data" {
			_, stored = p.Volumes[v.Source]
		}
	}
	if !stored {
		t.Errorf("nats /data is not a named volume: %v", nats.Volumes)
	}
	for _, name := range replicaServices {
		up := p.Services[name]
		if u := up.Environment["UPSTREAM_NATS_URL"]; u == nil || *u != "nats://nats:4222" {
			t.Errorf("%s: UPSTREAM_NATS_URL %v, want nats://nats:4222", name, u)
		}
		if _, ok := up.DependsOn["nats"]; !ok {
			t.Errorf("%s does not depend on nats", name)
		}
	}
}

// envoy.yaml's clusters list exactly the replicas Compose runs, on the
// ports they listen on.
func TestEnvoyEndpointsAreComposeReplicas(t *testing.T) {
	p := loadCompose(t)
	b := load(t, "envoy.yaml")
	for cluster, env := range map[string]string{envoyconfig.ClusterPlain: "UPSTREAM_ADDR", envoyconfig.ClusterTLS: "UPSTREAM_TLS_ADDR"} {
		c, err := envoyconfig.Cluster(b, cluster)
		if err != nil {
			t.Fatal(err)
		}
		var hosts []string
		for _, lb := range c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			hosts = append(hosts, sa.GetAddress())
			up, ok := p.Services[sa.GetAddress()]
			if !ok {
				t.Errorf("%s: endpoint %s is no Compose service", cluster, sa.GetAddress())
				continue
			}
			if addr := up.Environment[env]; addr == nil || *addr != fmt.Sprintf(":%d", sa.GetPortValue()) {
				t.Errorf("%s: %s listens on %v, Envoy dials port %d", cluster, sa.GetAddress(), addr, sa.GetPortValue())
			}
		}
		if !slices.Equal(sortedCopy(hosts), replicaServices) {
			t.Errorf("%s lists %q, Compose runs %q", cluster, hosts, replicaServices)
		}
	}
	if _, ok := p.Services["envoy"].DependsOn["upstream-1"]; !ok {
		t.Error("envoy should start after the replicas")
	}
	if n := p.Services["envoy"].Ulimits["nofile"]; n == nil || n.Soft < 50000 {
		t.Errorf("envoy nofile %v: a storm holds two files per HTTP/1.1 stream", n)
	}
}

func mounts(s types.ServiceConfig, hostSuffix, target string) bool {
	for _, v := range s.Volumes {
		if strings.HasSuffix(v.Source, hostSuffix) && v.Target == target && v.ReadOnly {
			return true
		}
	}
	return false
}

// Every file a Dockerfile copies from the build context exists.
func TestDockerfilesCopyExistingFiles(t *testing.T) {
	for _, name := range []string{"Dockerfile.envoy", "Dockerfile.upstream"} {
		t.Run(name, func(t *testing.T) {
			f, err := os.Open(filepath.Join("..", name))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			copies := 0
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				if len(fields) < 3 || fields[0] != "COPY" || slices.ContainsFunc(fields, func(s string) bool { return strings.HasPrefix(s, "--from=") }) {
					continue
				}
				var args []string
				for _, a := range fields[1:] {
					if !strings.HasPrefix(a, "--") {
						args = append(args, a)
					}
				}
				for _, src := range args[:len(args)-1] {
					copies++
					if _, err := os.Stat(filepath.Join("..", src)); err != nil {
						t.Errorf("COPY %s: %v", src, err)
					}
				}
			}
			if copies == 0 {
				t.Error("no COPY from the build context found")
			}
		})
	}
}

// The image's library path and config path are the ones envoy.yaml and
// Compose use.
func TestEnvoyImageMatchesConfig(t *testing.T) {
	data, err := os.ReadFile("../Dockerfile.envoy")
	if err != nil {
		t.Fatal(err)
	}
	df := string(data)
	for _, want := range []string{
		"FROM envoyproxy/envoy:contrib-v1.37.1",
		"/usr/local/lib/envoy/sse.so",
		"COPY --chmod=0644 envoy/envoy.yaml /etc/envoy/envoy.yaml",
		"-buildmode=c-shared",
	} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile.envoy lacks %q", want)
		}
	}
	b := load(t, "envoy.yaml")
	filters, err := envoyconfig.GolangFilters(b)
	if err != nil {
		t.Fatal(err)
	}
	if filters[0].GetLibraryPath() != "/usr/local/lib/envoy/sse.so" {
		t.Errorf("envoy.yaml loads %s, the image installs /usr/local/lib/envoy/sse.so", filters[0].GetLibraryPath())
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
}

// Every replica verifies Mercure tokens with the same keys: by default the
// development keys `make run-local` prints tokens for.
func TestComposeReplicasShareMercureKeys(t *testing.T) {
	t.Setenv("MERCURE_PUBLISHER_JWT_KEY", "")
	t.Setenv("MERCURE_SUBSCRIBER_JWT_KEY", "")
	p := loadCompose(t)
	for _, name := range replicaServices {
		env := p.Services[name].Environment
		for k, want := range map[string]string{
			localstack.PublisherKeyEnv:  localstack.DevPublisherKey,
			localstack.SubscriberKeyEnv: localstack.DevSubscriberKey,
		} {
			if v := env[k]; v == nil || *v != want {
				t.Errorf("%s: %s = %v, want the development key %q", name, k, v, want)
			}
		}
	}
}
