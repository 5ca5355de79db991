package envoy_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"

	"example.com/sse-on-envoy/internal/envoyconfig"
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

func TestComposeServices(t *testing.T) {
	p := loadCompose(t)
	if names := p.ServiceNames(); !slices.Equal(sortedCopy(names), []string{"demo", "envoy", "upstream"}) {
		t.Fatalf("services %q", names)
	}
	published := map[string][]string{}
	for name, s := range p.Services {
		for _, port := range s.Ports {
			published[name] = append(published[name], port.Published)
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
	if len(published["upstream"]) != 0 {
		t.Errorf("the upstream publishes %q: only Envoy should reach it", published["upstream"])
	}

	envoy := p.Services["envoy"]
	if !mounts(envoy, "certs/out", "/etc/envoy/certs") {
		t.Errorf("envoy does not mount certs/out at /etc/envoy/certs (envoy.yaml reads them there): %v", envoy.Volumes)
	}
	up := p.Services["upstream"]
	cert, key := up.Environment["UPSTREAM_TLS_CERT"], up.Environment["UPSTREAM_TLS_KEY"]
	if cert == nil || key == nil || !mounts(up, "certs/out", filepath.Dir(*cert)) || filepath.Dir(*key) != filepath.Dir(*cert) {
		t.Errorf("the upstream's TLS files are not mounted: env %v volumes %v", up.Environment, up.Volumes)
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
