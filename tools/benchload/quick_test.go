package benchload

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/tools/fdlimit"
)

// envoyOrSkip returns ENVOY_BIN; without it the test skips, unless
// SSE_E2E=1 (make test) makes that a failure, as in e2e.
func envoyOrSkip(t *testing.T) string {
	t.Helper()
	bin := os.Getenv("ENVOY_BIN")
	if st, err := os.Stat(bin); bin == "" || err != nil || st.IsDir() {
		if os.Getenv("SSE_E2E") == "1" {
			t.Fatalf("ENVOY_BIN=%q is not an Envoy binary (run `make envoy`)", bin)
		}
		msg := fmt.Sprintf("ENVOY_BIN=%q not usable: the quick load benchmark needs Envoy", bin)
		// On stderr too: without -v, go test prints no skip message.
		fmt.Fprintf(os.Stderr, "\n!!! SKIPPED: %s !!!\n\n", msg)
		t.Skip("!!! SKIPPED: " + msg + " !!!")
	}
	return bin
}

// TestQuickMode is `make bench-load` at toy scale, so the tool cannot rot:
// every quick variant must open every stream, read stamped events with
// plausible latencies, and charge CPU and memory to its processes.
func TestQuickMode(t *testing.T) {
	envoyBin := envoyOrSkip(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fdlimit.Raise(); err != nil {
		t.Log(err)
	}
	env, err := NewEnv(ctx, root, t.TempDir(), envoyBin, slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if err != nil {
		t.Fatal(err)
	}
	knobs := Knobs{Quick: true, Variants: QuickVariants}
	plan, err := knobs.Plan()
	if err != nil {
		t.Fatal(err)
	}
	r, err := env.Run(ctx, plan, func(c Case) {
		t.Logf("%s %s %s: %d events, p99 %.1f ms, %s", c.Variant, c.Leg, c.Scenario, c.Events, c.LatencyMS.P99, c.Error)
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, c := range r.Cases {
		seen[c.Variant] = true
		name := c.Variant + " " + c.Leg
		if c.Error != "" {
			t.Errorf("%s: %s", name, c.Error)
			continue
		}
		if c.Opened != c.Streams || len(c.Failed) != 0 || len(c.EnvoyFlags) != 0 || len(c.Ended) != 0 {
			t.Errorf("%s: opened %d of %d, failed %v, Envoy %v, ended %v", name, c.Opened, c.Streams, c.Failed, c.EnvoyFlags, c.Ended)
		}
		// 20 streams x 20 events/s x 2 s is 800; allow for a loaded machine.
		if c.Events < int64(c.Streams) || c.Unstamped != 0 || c.Gaps != 0 || c.Dups != 0 {
			t.Errorf("%s: %d events (%d unstamped), gaps %d, dups %d", name, c.Events, c.Unstamped, c.Gaps, c.Dups)
		}
		l := c.LatencyMS
		if !(l.P50 > 0 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.Max && l.Max < 5000) {
			t.Errorf("%s: latency %+v is not plausible", name, l)
		}
		for _, want := range append([]string{clientProc}, mustVariant(t, c.Variant).Measure...) {
			p, ok := c.Proc(want)
			if !ok || p.IdleRSSMiB <= 0 {
				t.Errorf("%s: process %s not measured: %+v", name, want, p)
			}
		}
		if p, _ := c.Proc("upstream"); p.CPUPerEventUS <= 0 && c.Events > 200 {
			// 10 ms clock ticks: a few hundred events may round to zero on
			// a fast machine, but not with the upstream doing TLS too.
			t.Logf("%s: upstream CPU per event rounded to 0", name)
		}
	}
	for _, v := range knobs.Variants {
		if !seen[v] {
			t.Errorf("variant %s did not run", v)
		}
	}
	var md bytes.Buffer
	r.WriteMarkdown(&md)
	for _, want := range []string{"| router | h1/plain |", "| ext_proc | h2/tls |", "| direct | h1/- |", "| direct | h2/- |", "x |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, md.String())
		}
	}
	dir := t.TempDir()
	if err := WriteCharts(r, dir, Quick.Name); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(filepath.Join(dir, "r.json")); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(filepath.Join(dir, "r.json"))
	if err != nil || len(back.Cases) != len(r.Cases) {
		t.Errorf("JSON round trip: %v, %d cases", err, len(back.Cases))
	}
}

func mustVariant(t *testing.T, name string) Variant {
	t.Helper()
	v, ok := VariantByName(name)
	if !ok {
		t.Fatalf("no variant %s", name)
	}
	return v
}
