// Package benchload is the load benchmark behind `make bench-load`: for each
// variant (ways of serving SSE through Envoy, and the upstream alone as the
// floor) it starts the system on loopback ports of its own, runs the same
// scenarios against it with tools/loadtest, samples each process's CPU
// and memory from /proc, and reports everything side by side, with ratios
// against the router-only Envoy of the same run.
package benchload

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/localstack"
)

// Variant is one way of serving the streams.
type Variant struct {
	Name string
	// Direct variants bypass Envoy: the client talks to the upstream.
	Direct bool
	// Measure names the processes whose CPU and memory count ("upstream",
	// "envoy", "extproc"); the stack may run others, idle.
	Measure []string
	// Setup adapts the stack's options; nil runs the ext_proc config as is.
	Setup func(ctx context.Context, e *Env, o *localstack.Options) error
	// Available says whether this machine can run the variant, and if not
	// why; nil means always.
	Available func(ctx context.Context, e *Env) (bool, string)
	Doc       string
	// Only, when set, are the only scenarios the variant runs in.
	Only []string
}

// runs reports whether the variant runs in scenario sc.
func (v Variant) runs(sc Scenario) bool { return len(v.Only) == 0 || slices.Contains(v.Only, sc.Name) }

// SSEToMetadataVariant is the router with Envoy's own sse_to_metadata filter
// reading an LLM stream's usage.total_tokens: what the module's timing and
// extract rule are compared with.
const SSEToMetadataVariant = "sse_to_metadata"

// LLMTokens is where the sse_to_metadata variant writes the token count,
// and the module's extract rule its own (envoy/sse-policy.yaml).
var LLMTokens = struct {
	SSEToMetadata envoyconfig.SSEToMetadata
	ModuleKey     string
}{
	SSEToMetadata: envoyconfig.SSEToMetadata{Selectors: []string{"usage", "total_tokens"}, Namespace: "llm", Key: "total_tokens"},
	ModuleKey:     "total_tokens",
}

// RouterVariant is the baseline every ratio is against.
const RouterVariant = "router"

// SameSizeVariant is the router adding the policy's response headers: the
// baseline for what a filter costs beyond the response it makes.
const SameSizeVariant = "router-headers"

// Variants are every variant, in table order.
var Variants = []Variant{
	{Name: "direct", Direct: true, Measure: []string{"upstream"},
		Doc: "client to the upstream, no Envoy: the floor"},
	{Name: RouterVariant, Measure: []string{"upstream", "envoy"}, Setup: editConfig(func(b *bootstrapv3.Bootstrap, _ *policy.Config) error {
		return envoyconfig.RemoveExtProc(b)
	}), Doc: "stock Envoy, router only (envoy-extproc.yaml without its ext_proc filters)"},
	{Name: SameSizeVariant, Measure: []string{"upstream", "envoy"}, Setup: editConfig(routerWithPolicyHeaders),
		Doc: "router only, with the response headers the policy puts on a stream (as the load client asks: no Origin) set as route headers: what the response itself costs Envoy, with no filter"},
	{Name: "native-cors", Measure: []string{"upstream", "envoy"}, Setup: editConfig(useNativeCORS),
		Doc: "stock Envoy's CORS filter and a route cache-control header, what an operator would configure instead of a filter"},
	{Name: "ext_proc", Measure: []string{"upstream", "envoy", "extproc"},
		Doc: "stock Envoy with the ext_proc adapter (policy and observer) and its server"},
	{Name: "ext_proc-headers", Measure: []string{"upstream", "envoy", "extproc"}, Setup: editConfig(func(b *bootstrapv3.Bootstrap, _ *policy.Config) error {
		return envoyconfig.RemoveHTTPFilter(b, "sse_observe")
	}), Doc: "ext_proc with the policy filter only (headers), without the observer that streams every body chunk to the server"},
	{Name: SSEToMetadataVariant, Measure: []string{"upstream", "envoy"}, Only: []string{LLM.Name},
		Setup: editConfig(func(b *bootstrapv3.Bootstrap, _ *policy.Config) error {
			if err := envoyconfig.RemoveExtProc(b); err != nil {
				return err
			}
			return envoyconfig.AddSSEToMetadata(b, LLMTokens.SSEToMetadata)
		}), Doc: "router only, with Envoy's own sse_to_metadata filter writing usage.total_tokens (every event JSON-parsed) into dynamic metadata"},
	{Name: "module", Measure: []string{"upstream", "envoy"}, Setup: dynamicModule,
		Doc: "stock Envoy with the dynamic-module adapter (libsse.so in process)"},
	// An experiment of the scale curve (VARIANTS=router,router-nghttp2
	// SCENARIO=curve-10000): Envoy's HTTP/2 codec is oghttp2 by default.
	{Name: "router-nghttp2", Measure: []string{"upstream", "envoy"}, Only: curveStepNames(),
		Setup: editConfig(func(b *bootstrapv3.Bootstrap, _ *policy.Config) error {
			if err := envoyconfig.RemoveExtProc(b); err != nil {
				return err
			}
			return envoyconfig.SetRuntime(b, map[string]any{"envoy.reloadable_features.http2_use_oghttp2": false})
		}), Doc: "router only, on Envoy's older HTTP/2 codec (nghttp2; runtime envoy.reloadable_features.http2_use_oghttp2 false): what the codec costs a quiet stream"},
	{Name: "golang", Measure: []string{"upstream", "envoy"}, Setup: golangFilter, Available: hasGolang,
		Doc: "Envoy with the golang filter (needs an Envoy with the golang extension)"},
}

func curveStepNames() []string {
	var names []string
	for _, n := range CurveSteps {
		names = append(names, CurveStep(n).Name)
	}
	return names
}

// VariantByName finds a variant.
func VariantByName(name string) (Variant, bool) {
	for _, v := range Variants {
		if v.Name == name {
			return v, true
		}
	}
	return Variant{}, false
}

func editConfig(edit func(*bootstrapv3.Bootstrap, *policy.Config) error) func(context.Context, *Env, *localstack.Options) error {
	return func(_ context.Context, e *Env, o *localstack.Options) error {
		pc, err := e.policy()
		if err != nil {
			return err
		}
		o.EditEnvoyConfig = func(b *bootstrapv3.Bootstrap) error { return edit(b, pc) }
		return nil
	}
}

// useNativeCORS carries the SSE policy's CORS settings over to Envoy's own
// filter, so the variant does what the policy does for a browser.
// routerWithPolicyHeaders asks the policy itself which headers it puts on
// an SSE response to a request without an Origin (what the load client
// sends), and has the router add the same ones: the module's memory per
// stream is then compared with a response of the same size.
func routerWithPolicyHeaders(b *bootstrapv3.Bootstrap, pc *policy.Config) error {
	if err := envoyconfig.RemoveExtProc(b); err != nil {
		return err
	}
	p, err := policy.New(pc)
	if err != nil {
		return err
	}
	h := headerMap{"content-type": "text/event-stream"}
	p.ApplyResponse(p.Decide(policy.Request{Method: "GET"}), h)
	p.SetTag(h, "dynamic_module")
	delete(h, "content-type")
	return envoyconfig.AddResponseHeaders(b, h)
}

// headerMap is a response header map as policy.HeaderEditor.
type headerMap map[string]string

func (h headerMap) Get(k string) (string, bool) { v, ok := h[k]; return v, ok }
func (h headerMap) Set(k, v string)             { h[k] = v }
func (h headerMap) Del(k string)                { delete(h, k) }

func useNativeCORS(b *bootstrapv3.Bootstrap, pc *policy.Config) error {
	var exact []string
	for _, o := range pc.AllowedOrigins {
		if !strings.Contains(o, "*") {
			exact = append(exact, o)
		}
	}
	methods := pc.AllowedMethods
	if len(methods) == 0 {
		methods = policy.DefaultAllowedMethods
	}
	headers := pc.AllowedHeaders
	if len(headers) == 0 {
		headers = policy.DefaultAllowedHeaders
	}
	cc := policy.DefaultCacheControl
	if pc.CacheControl != nil {
		cc = *pc.CacheControl
	}
	return envoyconfig.UseNativeCORS(b, envoyconfig.NativeCORS{
		Origins:          exact,
		AllowCredentials: pc.AllowCredentials != nil && *pc.AllowCredentials,
		AllowMethods:     strings.Join(methods, ", "),
		AllowHeaders:     strings.Join(headers, ", "),
		MaxAgeSeconds:    "600",
		CacheControl:     cc,
	})
}

func hasGolang(ctx context.Context, e *Env) (bool, string) {
	ok, err := localstack.HasGolangFilter(ctx, e.EnvoyBin, e.Dir)
	if err != nil {
		return false, err.Error()
	}
	if !ok {
		return false, "ENVOY_BIN has no golang extension (stock build)"
	}
	return true, ""
}

func dynamicModule(ctx context.Context, e *Env, o *localstack.Options) error {
	o.Adapter = localstack.AdapterModule
	dir, err := e.moduleDir(ctx)
	o.ModuleDir = dir
	return err
}

func golangFilter(ctx context.Context, e *Env, o *localstack.Options) error {
	o.Adapter = localstack.AdapterGolang
	so := filepath.Join(e.Dir, "bin", "sse.so")
	cmd := exec.CommandContext(ctx, "go", "build", "-buildmode=c-shared", "-o", so, "./filter")
	cmd.Dir = e.Root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the golang filter: %w\n%s", err, out)
	}
	o.FilterSO = so
	return nil
}
