// Package envoygateway proves deploy/kubernetes with Envoy Gateway itself:
// it renders the kustomization as `kubectl apply -k` would, decodes every
// object strictly with Kubernetes' own Go types (Kubernetes, Gateway API and
// Envoy Gateway's), and runs Envoy Gateway's real control plane in
// standalone mode (no cluster) on the same resources, with Envoy 1.40 and
// our dynamic module. Its own Go module: Envoy Gateway's dependencies stay
// out of the project's go.mod. `make eg-test` (part of `make test`) runs it.
package envoygateway

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8sjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"sigs.k8s.io/kustomize/api/krusty"
	kusttypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	egv1a1 "github.com/envoyproxy/gateway/api/v1alpha1"
	gwapiv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// ManifestDir is the folder of the manifests, relative to the repository.
const ManifestDir = "deploy/kubernetes"

// CertFiles are the files the kustomization's generators read from its
// certs/ folder: what cmd/certs writes.
var CertFiles = []string{"ca.pem", "envoy.pem", "envoy-key.pem", "upstream.pem", "upstream-key.pem"}

// Scheme knows every kind the manifests may hold: Kubernetes' core, apps
// and policy groups, the Gateway API and Envoy Gateway's own.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme, gwapiv1.Install, egv1a1.AddToScheme,
	} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Render builds the kustomization in dir as `kubectl apply -k` would, with
// the certificate files taken from certDir (dir's own certs/ folder is not
// read), and returns one YAML document per object.
func Render(dir, certDir string) ([][]byte, error) {
	mem := filesys.MakeFsInMemory()
	const root = "/kustomization"
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		if d.IsDir() {
			if rel == "certs" {
				return filepath.SkipDir
			}
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return mem.WriteFile(filepath.Join(root, rel), b)
	})
	if err != nil {
		return nil, err
	}
	for _, name := range CertFiles {
		b, err := os.ReadFile(filepath.Join(certDir, name))
		if err != nil {
			return nil, err
		}
		if err := mem.WriteFile(filepath.Join(root, "certs", name), b); err != nil {
			return nil, err
		}
	}
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(mem, root)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	var docs [][]byte
	for _, r := range resources.Resources() {
		b, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		docs = append(docs, b)
	}
	return docs, nil
}

// Kustomization reads dir/kustomization.yaml strictly: a field kustomize
// does not know is an error, not ignored.
func Kustomization(dir string) (*kusttypes.Kustomization, error) {
	b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		return nil, err
	}
	var k kusttypes.Kustomization
	if err := yaml.UnmarshalStrict(b, &k); err != nil {
		return nil, fmt.Errorf("kustomization.yaml: %w", err)
	}
	return &k, nil
}

// Decoder decodes YAML strictly into the Scheme's Go types: an unknown
// kind, an unknown field or a duplicate field is an error.
type Decoder struct {
	scheme *runtime.Scheme
	ser    *k8sjson.Serializer
}

// NewDecoder is a strict Decoder over Scheme.
func NewDecoder() (*Decoder, error) {
	s, err := Scheme()
	if err != nil {
		return nil, err
	}
	return &Decoder{s, k8sjson.NewSerializerWithOptions(k8sjson.DefaultMetaFactory, s, s,
		k8sjson.SerializerOptions{Yaml: true, Strict: true})}, nil
}

// Decode is one object, typed.
func (d *Decoder) Decode(doc []byte) (runtime.Object, error) {
	obj, gvk, err := d.ser.Decode(doc, nil, nil)
	if err != nil {
		name := ""
		if gvk != nil {
			name = gvk.Kind + " "
		}
		return nil, fmt.Errorf("%s%s: %w", name, firstLine(doc), err)
	}
	return obj, nil
}

// Encode is obj as YAML, with its kind and apiVersion, and without what
// Go's zero values add but a user never writes (an empty status, a null
// creationTimestamp): Envoy Gateway validates a status against its CRDs.
func (d *Decoder) Encode(obj runtime.Object) ([]byte, error) {
	gvks, _, err := d.scheme.ObjectKinds(obj)
	if err != nil {
		return nil, err
	}
	obj = obj.DeepCopyObject()
	obj.GetObjectKind().SetGroupVersionKind(gvks[0])
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, err
	}
	delete(m, "status")
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	return yaml.Marshal(m)
}

// DecodeAll decodes every document.
func (d *Decoder) DecodeAll(docs [][]byte) ([]runtime.Object, error) {
	var objs []runtime.Object
	var errs []error
	for _, doc := range docs {
		obj, err := d.Decode(doc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		objs = append(objs, obj)
	}
	return objs, errors.Join(errs...)
}

func firstLine(doc []byte) string {
	s := strings.TrimSpace(string(doc))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// Find returns the object of type T named name among objs.
func Find[T interface {
	runtime.Object
	GetName() string
}](objs []runtime.Object, name string) (T, error) {
	var zero T
	for _, o := range objs {
		if t, ok := o.(T); ok && t.GetName() == name {
			return t, nil
		}
	}
	return zero, fmt.Errorf("no %T named %q in the manifests", zero, name)
}

// All returns every object of type T among objs.
func All[T runtime.Object](objs []runtime.Object) []T {
	var ts []T
	for _, o := range objs {
		if t, ok := o.(T); ok {
			ts = append(ts, t)
		}
	}
	return ts
}
