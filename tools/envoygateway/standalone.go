package envoygateway

import (
	"fmt"
	"regexp"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
)

// Endpoint is where one replica behind a Service listens on this machine.
type Endpoint struct {
	Address string
	Port    int32
}

// Standalone says how the manifests become what Envoy Gateway runs without
// a cluster.
type Standalone struct {
	// Endpoints are the replicas behind each Service the routes use (by
	// the Service's name). Without a cluster a Service has no endpoints:
	// each becomes an Envoy Gateway Backend of the same name with these.
	Endpoints map[string][]Endpoint
	// ModulePath replaces the path of every Local dynamic module: the one
	// in the manifests exists only inside the Envoy pod.
	ModulePath string
}

// Rewrites for the standalone run, each a path that exists only in a
// cluster; everything else reaches Envoy Gateway as written:
//   - a Service reference (backendRefs, a BackendTLSPolicy's targetRefs)
//     becomes a reference to the Backend of the same name;
//   - the EnvoyProxy's Kubernetes provider (the Envoy pod: image, init
//     container, volumes) becomes the Host provider running the Envoy
//     release of the pinned image (EnvoyVersion);
//   - a Local dynamic module's path becomes ModulePath;
//   - what a cluster runs (Deployments, StatefulSets, disruption budgets)
//     is left out: the test runs those processes itself.
func (s Standalone) Rewrite(objs []runtime.Object) ([]runtime.Object, error) {
	var out []runtime.Object
	backendKind := gwapiv1.Kind(egv1a1.KindBackend)
	backendGroup := gwapiv1.Group(egv1a1.GroupName)
	toBackend := func(group **gwapiv1.Group, kind **gwapiv1.Kind, name gwapiv1.ObjectName) error {
		if (*kind != nil && **kind != "Service") || (*group != nil && **group != "") {
			return nil
		}
		if _, ok := s.Endpoints[string(name)]; !ok {
			return fmt.Errorf("no endpoints for Service %q", name)
		}
		*group, *kind = &backendGroup, &backendKind
		return nil
	}
	for _, o := range objs {
		switch o := o.(type) {
		case *appsv1.Deployment, *appsv1.StatefulSet, *policyv1.PodDisruptionBudget:
			continue
		case *corev1.Service:
			eps, ok := s.Endpoints[o.Name]
			if !ok {
				continue // not used by any route (NATS)
			}
			out = append(out, backendFor(o, eps))
			continue
		case *gwapiv1.HTTPRoute:
			o = o.DeepCopy()
			for i := range o.Spec.Rules {
				for j := range o.Spec.Rules[i].BackendRefs {
					ref := &o.Spec.Rules[i].BackendRefs[j].BackendObjectReference
					if err := toBackend(&ref.Group, &ref.Kind, ref.Name); err != nil {
						return nil, fmt.Errorf("HTTPRoute %s: %w", o.Name, err)
					}
				}
			}
			out = append(out, o)
			continue
		case *gwapiv1.BackendTLSPolicy:
			o = o.DeepCopy()
			for i := range o.Spec.TargetRefs {
				ref := &o.Spec.TargetRefs[i].LocalPolicyTargetReference
				if ref.Kind == "Service" && ref.Group == "" {
					if _, ok := s.Endpoints[string(ref.Name)]; !ok {
						return nil, fmt.Errorf("BackendTLSPolicy %s: no endpoints for Service %q", o.Name, ref.Name)
					}
					ref.Group, ref.Kind = backendGroup, backendKind
				}
			}
			out = append(out, o)
			continue
		case *egv1a1.EnvoyProxy:
			o = o.DeepCopy()
			version, err := EnvoyVersion(o)
			if err != nil {
				return nil, err
			}
			o.Spec.Provider = &egv1a1.EnvoyProxyProvider{
				Type: egv1a1.EnvoyProxyProviderTypeHost,
				Host: &egv1a1.EnvoyProxyHostProvider{EnvoyVersion: &version},
			}
			for i := range o.Spec.DynamicModules {
				if src := &o.Spec.DynamicModules[i].Source; src.Local != nil {
					src.Local.Path = s.ModulePath
				}
			}
			out = append(out, o)
			continue
		}
		out = append(out, o)
	}
	return out, nil
}

// backendFor is an Envoy Gateway Backend standing in for svc: same name and
// namespace, the replicas as IP endpoints, the port's protocol kept.
func backendFor(svc *corev1.Service, eps []Endpoint) *egv1a1.Backend {
	b := &egv1a1.Backend{}
	b.Name, b.Namespace, b.Labels = svc.Name, svc.Namespace, svc.Labels
	for _, ep := range eps {
		b.Spec.Endpoints = append(b.Spec.Endpoints, egv1a1.BackendEndpoint{
			IP: &egv1a1.IPEndpoint{Address: ep.Address, Port: ep.Port},
		})
	}
	for _, p := range svc.Spec.Ports {
		if p.AppProtocol != nil && *p.AppProtocol == "kubernetes.io/h2c" {
			b.Spec.AppProtocols = append(b.Spec.AppProtocols, egv1a1.AppProtocolTypeH2C)
		}
	}
	return b
}

var releaseInTag = regexp.MustCompile(`:(?:[a-z-]*-)?v(\d+\.\d+\.\d+)(?:@|$)`)

// EnvoyVersion is the Envoy release of the image an EnvoyProxy pins
// (docker.io/envoyproxy/envoy:distroless-v1.40.0 is 1.40.0).
func EnvoyVersion(ep *egv1a1.EnvoyProxy) (string, error) {
	k := ep.Spec.Provider
	if k == nil || k.Kubernetes == nil || k.Kubernetes.EnvoyDeployment == nil ||
		k.Kubernetes.EnvoyDeployment.Container == nil || k.Kubernetes.EnvoyDeployment.Container.Image == nil {
		return "", fmt.Errorf("EnvoyProxy %s pins no Envoy image (provider.kubernetes.envoyDeployment.container.image)", ep.Name)
	}
	image := *k.Kubernetes.EnvoyDeployment.Container.Image
	m := releaseInTag.FindStringSubmatch(image)
	if m == nil {
		return "", fmt.Errorf("EnvoyProxy %s: no Envoy release in the image tag of %q", ep.Name, image)
	}
	return m[1], nil
}

// EncodeAll is objs as one multi-document YAML file.
func (d *Decoder) EncodeAll(objs []runtime.Object) ([]byte, error) {
	var out []byte
	for _, o := range objs {
		b, err := d.Encode(o)
		if err != nil {
			return nil, err
		}
		out = append(append(out, "---\n"...), b...)
	}
	return out, nil
}
