package benchload

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTableRatiosAgainstTheRouter(t *testing.T) {
	mk := func(variant string, envoyUS, extprocUS, envoyKiB, p99 float64) Case {
		c := Case{Scenario: "steady", Variant: variant, Leg: "h1/plain", Streams: 10, Opened: 10, Events: 100,
			LatencyMS: Pct{P50: 1, P90: 2, P99: p99, Max: 9},
			Procs:     []Proc{{Name: "upstream", CPUPerEventUS: 100, KiBPerStream: 28}, {Name: "envoy", CPUPerEventUS: envoyUS, KiBPerStream: envoyKiB}}}
		if extprocUS > 0 {
			c.Procs = append(c.Procs, Proc{Name: "extproc", CPUPerEventUS: extprocUS, KiBPerStream: 10})
		}
		return c
	}
	r := &Report{
		Scenarios: []Scenario{{Name: "steady", Streams: 10, EventRate: 10}},
		Cases: []Case{
			mk("router", 20, 0, 40, 4),
			// Proxy CPU 30+10 = 2x, memory 70+10 = 2x, p99 3x.
			mk("ext_proc", 30, 10, 70, 12),
			{Scenario: "steady", Variant: "native-cors", Leg: "h1/plain", Error: "starting the stack: boom"},
		},
	}
	var b bytes.Buffer
	r.WriteMarkdown(&b)
	out := b.String()
	for _, want := range []string{
		"| router | h1/plain | 10/10 in 0.0s |  | 100 | 0/0 | 1.00 / 2.00 / 4.00 / 9.00 | 100 / 20.0 / – / – | 1.00x |",
		"| ext_proc | h1/plain |",
		"| 100 / 30.0 / 10.0 / – | 2.00x | 28.0 / 70.0 / 10.0 / – | 2.00x | 3.00x |",
		"| native-cors | h1/plain | error: starting the stack: boom |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestMercureTableRatiosAgainstMercure(t *testing.T) {
	mk := func(variant string, p50, p99, rate, kib, cpu float64, lost int64) MercureCase {
		return MercureCase{Scenario: "mercure-fanout", Variant: variant, Subscribers: 10, Topics: 1, Opened: 10,
			Published: 100, PublishSec: 10, PublishRate: rate, Expected: 1000, Received: 1000 - lost, Lost: lost,
			LatencyMS: Pct{P50: p50, P90: p99, P99: p99, Max: p99},
			Procs:     []Proc{{Name: "hub", KiBPerStream: kib, CPUPerEventUS: cpu}, {Name: "envoy", KiBPerStream: 40, CPUPerEventUS: 5}}}
	}
	r := &Report{
		MercureScenarios: []MercureScenario{{Name: "mercure-fanout", Subscribers: 10, Topics: 1, Rate: 10, Doc: "fan-out"}},
		MercureCases: []MercureCase{
			// Ahead on latency, memory and CPU; behind on loss. Under a
			// rate, publishes/s is not ranked.
			mk("ours", 1, 4, 9, 10, 20, 3),
			mk("mercure", 2, 8, 10, 40, 40, 0),
		},
	}
	var b bytes.Buffer
	r.WriteMarkdown(&b)
	out := b.String()
	for _, want := range []string{
		"### mercure-fanout: fan-out (10 subscribers over 1 topics, 10 publishes/s",
		"| ours | 10/10 in 0.0s |  | 100 (9.00) | 0 / 0 | 997 / 1000 (3) | 1.00 / 4.00 / 4.00 / 4.00 |",
		"| 10.0 / 40.0 / – | 20.0 / 5.00 / – | 0.50x / 0.50x | 0.90x | 0.25x | 0.50x |",
		"| mercure | 10/10 in 0.0s |",
		"Ours is behind mercure's hub on: deliveries lost (ours 3.00 vs 0).",
		"Streams that ended before the window closed (a browser would reconnect): ours 0 (0 per subscriber per hour, 10 subscribers held 0 s), mercure 0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Flat out, publishes/s is ranked.
	r.MercureScenarios[0].Rate = 0
	b.Reset()
	r.WriteMarkdown(&b)
	if want := "Ours is behind mercure's hub on: publishes/s (ours 9.00 vs 10.0), deliveries lost (ours 3.00 vs 0)."; !strings.Contains(b.String(), want) {
		t.Errorf("flat-out table lacks %q:\n%s", want, b.String())
	}
}

func TestReconnectsPerSubscriberHour(t *testing.T) {
	tests := []struct {
		ended, opened int
		heldSec, want float64
	}{
		{0, 2000, 180, 0},
		{2000, 2000, 3600, 1}, // each subscriber reconnected once in an hour
		{100, 1000, 360, 1},   // 100 of 1000 in a tenth of an hour
		{3, 0, 60, 0},         // nothing opened: no rate
		{3, 10, 0, 0},         // nothing held
		{800, 10000, 1, 288},  // the 800 reconnects/s at 10,000
	}
	for _, tt := range tests {
		if got := reconnectsPerHour(tt.ended, tt.opened, tt.heldSec); got != tt.want {
			t.Errorf("reconnectsPerHour(%d, %d, %v) = %v, want %v", tt.ended, tt.opened, tt.heldSec, got, tt.want)
		}
	}
}

func TestRoundsAreComparedWithinTheirRound(t *testing.T) {
	mk := func(variant string, round int, envoyUS, envoyKiB, p99, heap float64) Case {
		return Case{Scenario: "tokens", Variant: variant, Leg: "h2/tls", Round: round, Streams: 10, Opened: 10, Events: 100,
			LatencyMS: Pct{P50: 1, P90: 2, P99: p99, Max: 9}, EnvoyHeapKiBPerStream: heap,
			Procs: []Proc{{Name: "upstream", CPUPerEventUS: 100, KiBPerStream: 28}, {Name: "envoy", CPUPerEventUS: envoyUS, KiBPerStream: envoyKiB}}}
	}
	r := &Report{
		Scenarios: []Scenario{{Name: "tokens", Streams: 10, EventRate: 50}},
		Cases: []Case{
			// Round 2 is twice as slow for everyone: within the round the
			// module still costs what it costs in rounds 1 and 3.
			mk("router", 1, 10, 20, 4, 16), mk("router-headers", 1, 10, 24, 4, 20), mk("module", 1, 11, 25, 4.4, 21),
			mk("router", 2, 20, 20, 8, 16), mk("router-headers", 2, 20, 24, 8, 20), mk("module", 2, 24, 26, 10, 21),
			mk("router", 3, 10, 20, 4, 16), mk("router-headers", 3, 10, 24, 4, 20), mk("module", 3, 10, 24, 4, 20),
		},
	}
	var b bytes.Buffer
	r.WriteMarkdown(&b)
	out := b.String()
	for _, want := range []string{
		"| variant | leg | round | opened |",
		"| module | h2/tls | 2 | 10/10 in 0.0s |  | 100 | 0/0 | 1.00 / 2.00 / 10.0 / 9.00 | 100 / 24.0 / – / – | 1.20x | 28.0 / 26.0 / – / – | 1.30x | 1.25x | 21.0 |",
		"| module | h2/tls | 3 | 1.10x (1.00–1.20) | 1.10x (1.00–1.25) | 1.25x (1.20–1.30) | 1.04x (1.00–1.08) | 1.31x (1.25–1.31) |",
		"| router-headers | h2/tls | 3 | 1.00x (1.00–1.00) | 1.00x (1.00–1.00) | 1.20x (1.20–1.20) | – | 1.25x (1.25–1.25) |",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if got := representatives(r.Cases); len(got) != 3 || got[2].Variant != "module" || got[2].Round != 1 {
		t.Errorf("representatives = %+v, want one case per variant, the module's median-p99 round (1)", got)
	}
}

func TestCasesUnderOtherLoadAreMarked(t *testing.T) {
	mk := func(variant string, busy float64) Case {
		return Case{Scenario: "steady", Variant: variant, Leg: "h1/tls", Streams: 10, Opened: 10, Events: 100, WindowSec: 10,
			MachineBusy: busy, LatencyMS: Pct{P50: 1, P90: 2, P99: 3, Max: 9},
			Procs: []Proc{{Name: "upstream", CPUCores: 0.2}, {Name: "envoy", CPUCores: 0.3}, {Name: clientProc, CPUCores: 0.1}}}
	}
	r := &Report{
		Machine:   Machine{CPUs: 2},
		Scenarios: []Scenario{{Name: "steady", Streams: 10, EventRate: 10}},
		// The processes use 0.6 cores: at 30 % of two cores nothing else
		// ran; at 62 %, 0.64 cores went elsewhere.
		Cases: []Case{mk("router", 0.30), mk("module", 0.62)},
	}
	var b bytes.Buffer
	r.WriteMarkdown(&b)
	out := b.String()
	for _, want := range []string{
		"| module | h1/tls | 10/10 in 0.0s |  | 100 ⚠other load 0.64 cores |",
		"More than 0.25 cores went to no measured process (other tenants, the kernel's own work) in: module h1/tls;",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "| router | h1/tls | 10/10 in 0.0s |  | 100 ⚠") {
		t.Errorf("router marked:\n%s", out)
	}
}

func TestBystandersLineComparesWithTheOtherLoads(t *testing.T) {
	mk := func(scenario string, p50, p99 float64, bystanders int) MercureCase {
		return MercureCase{Scenario: scenario, Variant: "ours", Subscribers: 1000, Topics: 100, Opened: 1000, BystandersOpened: bystanders,
			LatencyMS: Pct{P50: p50, P90: p99, P99: p99, Max: p99}}
	}
	r := &Report{
		MercureScenarios: CostScenarios,
		MercureCases:     []MercureCase{mk("cost-baseline", 2, 4, 0), mk("cost-cheap", 2, 4.4, 3000), mk("cost-costly", 2.2, 5, 3000)},
	}
	var b bytes.Buffer
	r.WriteMarkdown(&b)
	for _, want := range []string{
		"Beside 3000 cheap bystanders: ours: 3000 of 3000 open (none failed), ordinary p50 / p99 2.00 / 4.40 ms, against 2.00 / 4.00 ms with none (1.00x / 1.10x).",
		"Beside 3000 costly bystanders: ours: 3000 of 3000 open (none failed), ordinary p50 / p99 2.20 / 5.00 ms, against 2.00 / 4.00 ms with none (1.10x / 1.25x), against 2.00 / 4.40 ms beside as many cheap ones (1.10x / 1.14x).",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, b.String())
		}
	}
}

func TestSilentStreams(t *testing.T) {
	curve := Scenario{Name: "curve-10", Streams: 10, EventRate: 1.0 / 30, Duration: time.Minute}
	tests := []struct {
		name string
		sc   Scenario
		c    Case
		want int
	}{
		{"every stream got an event", curve, Case{Opened: 10, Reached: 10, Events: 20}, 0},
		{"three got none", curve, Case{Opened: 10, Reached: 7, Events: 14}, 3},
		{"none got any", curve, Case{Opened: 10}, 10},
		{"a window shorter than the event interval cannot say", Scenario{EventRate: 0.01, Duration: 10 * time.Second}, Case{Opened: 10, Reached: 2, Events: 2}, 0},
		{"never-reading streams beside the readers", Scenario{EventRate: 10, Duration: 10 * time.Second, Slow: 5}, Case{Opened: 15, Reached: 10, Events: 1000}, 0},
		{"a report from before the count", curve, Case{Opened: 10, Events: 20}, 0},
	}
	for _, tt := range tests {
		if got := silentStreams(tt.sc, tt.c); got != tt.want {
			t.Errorf("%s: %d silent streams, want %d", tt.name, got, tt.want)
		}
	}
}

// The curve's steps are drawn together, as memory per stream against the
// streams held; its steps get no per-scenario bar charts.
func TestCurveChart(t *testing.T) {
	r := &Report{Machine: Machine{CPUs: 2}}
	for _, n := range []int{1000, 10000} {
		sc := CurveStep(n)
		r.Scenarios = append(r.Scenarios, sc)
		for _, v := range sc.Variants {
			r.Cases = append(r.Cases, Case{Scenario: sc.Name, Variant: v, Leg: "h2/tls", Streams: n, Opened: n, Reached: n,
				Procs: []Proc{{Name: "upstream", KiBPerStream: 20}, {Name: "envoy", KiBPerStream: 25}, {Name: clientProc, KiBPerStream: 21}}})
		}
	}
	dir := t.TempDir()
	if err := WriteReportCharts(r, dir); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != CurveChartName {
		t.Fatalf("charts %v, want only %s", entries, CurveChartName)
	}
	svg, err := os.ReadFile(filepath.Join(dir, CurveChartName))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"scale curve", "envoy (module)", "upstream", "client"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}
