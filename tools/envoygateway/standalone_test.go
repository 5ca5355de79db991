package envoygateway

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/tools/writeup"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
)

// Upstream timing for the run: several events a second.
var fastUpstream = []string{"-interval", "250ms", "-heartbeat", "1s", "-retry", "500ms"}

// The tag the dynamic module puts on streams (x-sse-stream).
const moduleTag = "dynamic_module"

// stack is what the standalone run started.
type stack struct {
	dir        string
	dec        *Decoder
	objs       []runtime.Object // the manifests as rendered, before the rewrite
	standalone Standalone
	gateway    *Gateway
	upstreams  []*localstack.Service
	caFile     string
	httpURL    string // the Gateway's http listener
	httpsURL   string // its https listener, by the name its certificate carries
}

// TestStandalone runs deploy/kubernetes through Envoy Gateway's real
// control plane in standalone mode: the pinned Envoy 1.40 with our module,
// two upstream replicas sharing a three-node NATS JetStream cluster, all on
// loopback. Envoy Gateway's ports are fixed (FixedPorts): never run two of
// these at once.
func TestStandalone(t *testing.T) {
	requireTools(t)
	s := startStack(t)
	// In this order: the last one stops every replica.
	t.Run("WriteUpTranscripts", s.testTranscripts)
	t.Run("Preflight", s.testPreflight)
	t.Run("MercurePublishReachesSubscriber", s.testMercure)
	t.Run("PolicyChangeAppliedLive", s.testPolicyChange)
	t.Run("OutageAnswer", s.testOutage)
}

func startStack(t *testing.T) *stack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	s := &stack{dir: t.TempDir()}

	start := time.Now()
	bins, err := localstack.Build(ctx, repoRoot, filepath.Join(s.dir, "bin"), "./cmd/upstream", "./cmd/certs", localstack.NATSServerPackage)
	if err != nil {
		t.Fatal(err)
	}
	moduleDir, err := localstack.BuildModule(ctx, repoRoot, filepath.Join(s.dir, "bin"))
	if err != nil {
		t.Fatal(err)
	}
	certDir := filepath.Join(s.dir, "certs")
	if out, err := exec.CommandContext(ctx, bins["certs"], "-out", certDir).CombinedOutput(); err != nil {
		t.Fatalf("certs: %v\n%s", err, out)
	}
	s.caFile = filepath.Join(certDir, "ca.pem")
	t.Logf("built the upstream, nats-server and the module in %v", time.Since(start).Round(time.Millisecond))

	s.dec, s.objs = renderObjects(t, certDir)

	natsURLs := startNATS(ctx, t, s.dir, bins["nats-server"], mustFind[*appsv1.StatefulSet](t, s.objs, "nats"))
	deploy := mustFind[*appsv1.Deployment](t, s.objs, "upstream")
	plain, secure := s.startUpstreams(ctx, t, bins["upstream"], deploy, natsURLs)

	s.standalone = Standalone{
		Endpoints:  map[string][]Endpoint{"upstream": plain, "upstream-tls": secure},
		ModulePath: filepath.Join(moduleDir, localstack.ModuleLibrary),
	}
	resources := s.resources(t, s.objs)
	ep := mustFind[*egv1a1.EnvoyProxy](t, s.objs, "sse")
	version, err := EnvoyVersion(ep)
	if err != nil {
		t.Fatal(err)
	}
	var listenerPorts []int
	for _, l := range mustFind[*gwapiv1.Gateway](t, s.objs, "sse").Spec.Listeners {
		listenerPorts = append(listenerPorts, int(l.Port))
		switch l.Protocol {
		case gwapiv1.HTTPProtocolType:
			s.httpURL = fmt.Sprintf("http://127.0.0.1:%d", l.Port)
		case gwapiv1.HTTPSProtocolType:
			s.httpsURL = fmt.Sprintf("https://localhost:%d", l.Port)
		}
	}

	start = time.Now()
	s.gateway, err = StartGateway(ctx, GatewayOptions{
		Bin: os.Getenv("ENVOY_GATEWAY_BIN"), EnvoyBin: os.Getenv("ENVOY_BIN"), EnvoyVersion: version,
		Dir: s.dir, Resources: resources, ListenerPorts: listenerPorts,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.gateway.Stop()
		if t.Failed() {
			t.Logf("---- envoy-gateway (and its Envoy) ----\n%s", tail(s.gateway.Output(), 150))
		}
	})
	// Ready when a stream through the Gateway carries the module's tag.
	err = s.gateway.WaitReady(ctx, "a stream through Envoy", func(ctx context.Context) error {
		_, h, _, err := get(ctx, s.client(t, false), s.httpURL+routes.EventsPath, nil, 300*time.Millisecond)
		if err != nil {
			return err
		}
		if tag := h.Get("x-sse-stream"); tag != moduleTag {
			return fmt.Errorf("x-sse-stream %q", tag)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Envoy Gateway %s and Envoy %s served the first stream %v after starting", Version, version, time.Since(start).Round(time.Millisecond))
	return s
}

// resources is what Envoy Gateway watches: objs rewritten for standalone.
func (s *stack) resources(t *testing.T, objs []runtime.Object) []byte {
	t.Helper()
	rewritten, err := s.standalone.Rewrite(objs)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.dec.EncodeAll(rewritten)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startNATS runs the StatefulSet's nats-server nodes on loopback with the
// StatefulSet's own arguments, but each its own ports, store and name, and
// returns the client URLs once every node is healthy (JetStream current).
func startNATS(ctx context.Context, t *testing.T, dir, bin string, sts *appsv1.StatefulSet) []string {
	t.Helper()
	n := int(*sts.Spec.Replicas)
	ports, err := localstack.FreePorts(3 * n)
	if err != nil {
		t.Fatal(err)
	}
	client, cluster, monitor := ports[:n], ports[n:2*n], ports[2*n:]
	var routeURLs, clientURLs []string
	for i := range n {
		routeURLs = append(routeURLs, fmt.Sprintf("nats://127.0.0.1:%d", cluster[i]))
		clientURLs = append(clientURLs, fmt.Sprintf("nats://127.0.0.1:%d", client[i]))
	}
	var nodes []*localstack.Service
	for i := range n {
		name := fmt.Sprintf("%s-%d", sts.Name, i)
		local := map[string]string{
			"--store_dir":   filepath.Join(dir, name),
			"--http_port":   strconv.Itoa(monitor[i]),
			"--server_name": name,
			"--cluster":     routeURLs[i],
			"--routes":      strings.Join(routeURLs, ","),
		}
		args := []string{"-a", "127.0.0.1", "-p", strconv.Itoa(client[i])}
		for _, a := range sts.Spec.Template.Spec.Containers[0].Args {
			k, _, _ := strings.Cut(a, "=")
			if v, ok := local[k]; ok {
				a = k + "=" + v
				delete(local, k)
			}
			args = append(args, a)
		}
		if len(local) > 0 {
			t.Fatalf("the StatefulSet's nats args lack %v", local)
		}
		node, err := localstack.StartService(dir, name, bin,
			localstack.HTTPOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", monitor[i])), nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { node.Stop(5 * time.Second) })
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		if err := node.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return clientURLs
}

// startUpstreams runs the Deployment's replicas with the Deployment's
// environment (each UPSTREAM_<NAME> as the flag -<name>, secrets resolved
// from the manifests), but loopback addresses, the test's certificates, the
// loopback NATS cluster and fast timing.
func (s *stack) startUpstreams(ctx context.Context, t *testing.T, bin string, d *appsv1.Deployment, natsURLs []string) (plain, secure []Endpoint) {
	t.Helper()
	n := int(*d.Spec.Replicas)
	ports, err := localstack.FreePorts(2 * n)
	if err != nil {
		t.Fatal(err)
	}
	var fromManifest []string
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		v := e.Value
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			sec := mustFind[*corev1.Secret](t, s.objs, ref.SecretKeyRef.Name)
			v = string(sec.Data[ref.SecretKeyRef.Key])
		}
		name, ok := strings.CutPrefix(e.Name, "UPSTREAM_")
		if !ok {
			t.Fatalf("the Deployment sets %s, which the upstream does not read", e.Name)
		}
		fromManifest = append(fromManifest, "-"+strings.ToLower(strings.ReplaceAll(name, "_", "-")), v)
	}
	for i := range n {
		name := fmt.Sprintf("upstream-%d", i+1)
		p, tp := ports[2*i], ports[2*i+1]
		args := append(append([]string{}, fromManifest...),
			// Go's flag package keeps the last value: these replace the
			// cluster's addresses and paths.
			"-addr", fmt.Sprintf("127.0.0.1:%d", p),
			"-tls-addr", fmt.Sprintf("127.0.0.1:%d", tp),
			"-tls-cert", filepath.Join(s.dir, "certs", "upstream.pem"),
			"-tls-key", filepath.Join(s.dir, "certs", "upstream-key.pem"),
			"-nats-url", strings.Join(natsURLs, ","),
			"-data", filepath.Join(s.dir, name+"-data"))
		args = append(args, fastUpstream...)
		up, err := localstack.StartService(s.dir, name, bin,
			localstack.HTTPOK(fmt.Sprintf("http://127.0.0.1:%d%s", p, routes.HealthPath)), nil, args...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			up.Stop(5 * time.Second)
			if t.Failed() {
				t.Logf("---- %s ----\n%s", up.Name, tail(up.Output(), 40))
			}
		})
		s.upstreams = append(s.upstreams, up)
		plain = append(plain, Endpoint{"127.0.0.1", int32(p)})
		secure = append(secure, Endpoint{"127.0.0.1", int32(tp)})
	}
	for _, up := range s.upstreams {
		if err := up.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return plain, secure
}

// client trusts the test's CA; h2 says whether to offer HTTP/2.
func (s *stack) client(t *testing.T, h2 bool) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(s.caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// get GETs url with h and reads the body for at most d (a stream never
// ends by itself).
func get(ctx context.Context, c *http.Client, url string, h http.Header, d time.Duration) (int, http.Header, string, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, "", err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body), nil
}

// The write-up's four transcripts: both listeners, both upstream legs.
func (s *stack) testTranscripts(t *testing.T) {
	writeup.CheckTranscripts(t, s.httpURL, s.httpsURL, s.caFile, moduleTag)
}

// The module answers preflights itself, on every route.
func (s *stack) testPreflight(t *testing.T) {
	for _, path := range []string{routes.EventsPath, routes.TLS(routes.EventsPath), hubhttp.Path} {
		t.Run(path, func(t *testing.T) {
			status, h, _ := writeup.Curl(t, "--max-time", "5", "--cacert", s.caFile, "-X", "OPTIONS",
				"-H", "Origin: https://localhost:8080", "-H", "Access-Control-Request-Method: GET", s.httpsURL+path)
			if !strings.Contains(status, " 204") || h.Get("access-control-allow-origin") != "https://localhost:8080" ||
				h.Get("access-control-max-age") == "" || h.Get("vary") != "Origin" {
				t.Errorf("preflight: %s %v", status, h)
			}
		})
	}
}

// A Mercure update published through the Gateway (the TLS leg, h2) reaches
// a subscriber through the Gateway on the other listener.
func (s *stack) testMercure(t *testing.T) {
	sec := mustFind[*corev1.Secret](t, s.objs, "mercure-keys")
	pubTok, err := localstack.MercureToken(string(sec.Data["publisher"]), []string{"*"}, nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	subTok, err := localstack.MercureToken(string(sec.Data["subscriber"]), nil, []string{"*"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const topic = "https://example.com/books/1"
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.httpURL+hubhttp.Path+"?"+url.Values{"topic": {topic}}.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+subTok)
	resp, err := s.client(t, false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("x-sse-stream") != moduleTag {
		t.Fatalf("subscription: %s, x-sse-stream %q", resp.Status, resp.Header.Get("x-sse-stream"))
	}
	events := make(chan sse.Event, 16)
	go func() {
		r := sse.NewReader(resp.Body)
		for {
			e, err := r.Next()
			if err != nil {
				close(events)
				return
			}
			events <- e
		}
	}()

	data := "published through Envoy Gateway at " + time.Now().Format(time.RFC3339Nano)
	pub, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.httpsURL+hubhttp.Path,
		strings.NewReader(url.Values{"topic": {topic}, "data": {data}, "private": {"on"}}.Encode()))
	pub.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	pub.Header.Set("Authorization", "Bearer "+pubTok)
	presp, err := s.client(t, true).Do(pub)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(presp.Body)
	presp.Body.Close()
	if presp.StatusCode != http.StatusOK || presp.ProtoMajor != 2 {
		t.Fatalf("publish: %s %s %q", presp.Proto, presp.Status, body)
	}
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatal("the subscription ended before the update came")
			}
			if e.Data == data {
				t.Logf("update %s reached the subscriber", e.ID)
				return
			}
		case <-ctx.Done():
			t.Fatal("the update never reached the subscriber")
		}
	}
}

// An edit of the EnvoyExtensionPolicy in the watched folder reaches Envoy
// over xDS, without a restart: a new allowed origin is honoured.
func (s *stack) testPolicyChange(t *testing.T) {
	const origin = "https://live.example.com"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := s.client(t, false)
	allowed := func() (bool, error) {
		status, h, _, err := get(ctx, c, s.httpURL+routes.EventsPath, http.Header{"Origin": {origin}}, 300*time.Millisecond)
		if err != nil {
			return false, err
		}
		if status != http.StatusOK {
			return false, fmt.Errorf("status %d", status)
		}
		return h.Get("access-control-allow-origin") == origin, nil
	}
	if ok, err := allowed(); err != nil || ok {
		t.Fatalf("before the change: %s allowed %v (%v)", origin, ok, err)
	}

	var objs []runtime.Object
	for _, o := range s.objs {
		if eep, ok := o.(*egv1a1.EnvoyExtensionPolicy); ok && eep.Name == "sse" {
			eep = eep.DeepCopy()
			var cfg map[string]any
			if err := json.Unmarshal(eep.Spec.DynamicModule[0].Config.Raw, &cfg); err != nil {
				t.Fatal(err)
			}
			cfg["allowed_origins"] = append(cfg["allowed_origins"].([]any), origin)
			raw, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			eep.Spec.DynamicModule[0].Config.Raw = raw
			o = eep
		}
		objs = append(objs, o)
	}
	before, err := s.gateway.EnvoyPID()
	if err != nil {
		t.Fatal(err)
	}
	changed := time.Now()
	if err := s.gateway.WriteResources(s.resources(t, objs)); err != nil {
		t.Fatal(err)
	}
	for {
		ok, err := allowed()
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%s still not allowed %v after the change", origin, time.Since(changed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	took := time.Since(changed)
	after, err := s.gateway.EnvoyPID()
	if err != nil {
		t.Fatal(err)
	}
	if after != before {
		t.Errorf("Envoy was pid %d before the change, %d after: it restarted", before, after)
	}
	t.Logf("the new origin was allowed %v after the file changed, by the same Envoy (pid %d)", took.Round(time.Millisecond), after)
}

// With every replica down, a GET on a stream route gets the 200 with retry
// (EventSource reconnects); a publish keeps its 503.
func (s *stack) testOutage(t *testing.T) {
	for _, up := range s.upstreams {
		up.Stop(5 * time.Second)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h1 := s.client(t, false)
	for _, tc := range []struct{ name, url string }{
		{"plain leg", s.httpURL + routes.EventsPath},
		{"TLS leg", s.httpURL + routes.TLS(routes.EventsPath)},
		{"Mercure subscription", s.httpsURL + hubhttp.Path + "?topic=x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body, err := get(ctx, h1, tc.url, http.Header{"Origin": {"https://localhost:8080"}}, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d %s=%q %q", status, ssestream.UnavailableHeader, h.Get(ssestream.UnavailableHeader), body)
			if status != http.StatusOK || !strings.HasPrefix(h.Get("content-type"), "text/event-stream") ||
				h.Get("cache-control") != "no-cache" || h.Get(ssestream.UnavailableHeader) == "" {
				t.Errorf("answer %d, headers %v", status, h)
			}
			if !strings.HasPrefix(body, "retry: 2000\n") {
				t.Errorf("body %q, want a retry line", body)
			}
			// Envoy's custom_response filter sends this answer past every
			// filter, our module's CORS headers included (docs/kubernetes.md
			// says so; update it if this changes).
			if v := h.Get("access-control-allow-origin"); v != "" {
				t.Errorf("the outage answer now has CORS headers (%q): update docs/kubernetes.md and policies.yaml", v)
			}
		})
	}
	t.Run("publish keeps its 503", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.httpsURL+hubhttp.Path, strings.NewReader("topic=x&data=y"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := s.client(t, true).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("publish: %s %q, want 503", resp.Status, body)
		}
	})
}

func tail(s string, lines int) string {
	all := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
