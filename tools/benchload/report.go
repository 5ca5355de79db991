package benchload

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// Machine is what the figures were measured on.
type Machine struct {
	CPUs     int    `json:"nproc"`
	Model    string `json:"cpu_model"`
	Kernel   string `json:"kernel"`
	Go       string `json:"go"`
	Envoy    string `json:"envoy"`
	FileLim  uint64 `json:"rlimit_nofile"`
	Note     string `json:"note,omitempty"`
	Started  string `json:"started"`
	Duration string `json:"duration"`
}

// Report is one run of the benchmark.
type Report struct {
	Machine   Machine           `json:"machine"`
	Scenarios []Scenario        `json:"scenarios"`
	Variants  map[string]string `json:"variants"`
	Skipped   map[string]string `json:"skipped,omitempty"`
	Cases     []Case            `json:"cases"`
	// The Mercure comparison (SCENARIO=mercure).
	MercureScenarios []MercureScenario `json:"mercure_scenarios,omitempty"`
	MercureCases     []MercureCase     `json:"mercure_cases,omitempty"`
}

// DescribeMachine fills what /proc and the binaries say.
func DescribeMachine(ctx context.Context, envoyBin string) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Started: time.Now().UTC().Format(time.RFC3339)}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if match := regexp.MustCompile(`(?m)^model name\s*:\s*(.*)$`).FindSubmatch(b); match != nil {
			m.Model = string(match[1])
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.CommandContext(ctx, envoyBin, "--version").Output(); err == nil {
		if match := regexp.MustCompile(`/(\d+\.\d+\.\d+)/\S*/(\S+)`).FindSubmatch(out); match != nil {
			m.Envoy = string(match[1]) + " (" + string(match[2]) + ")"
		}
	}
	return m
}

// WriteJSON writes the report, indented.
func (r *Report) WriteJSON(path string) error {
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}

// ReadReport reads a report WriteJSON wrote.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &r, nil
}

// otherLoadLimit is the CPU, in cores, that may go to no measured process
// during a window before the report marks the case.
const otherLoadLimit = 0.25

// OtherLoad is the machine's CPU during the case's window that none of its
// measured processes (the client included) used, in cores: other tenants
// of a shared machine, the kernel's own work. ok is false when the machine's
// size is unknown.
func (c Case) OtherLoad(cpus int) (cores float64, ok bool) {
	if cpus <= 0 || c.WindowSec <= 0 {
		return 0, false
	}
	own := 0.0
	for _, p := range c.Procs {
		own += p.CPUCores
	}
	return c.MachineBusy*float64(cpus) - own, true
}

func roundLabel(c Case) string {
	if c.Round == 0 {
		return ""
	}
	return fmt.Sprintf(" (round %d)", c.Round)
}

// proxyCost sums what the proxy layer spends: every measured process but
// the upstream and the client.
func proxyCost(c Case) (cpuUS, kib float64) {
	for _, p := range c.Procs {
		if p.Name != "upstream" && p.Name != clientProc {
			cpuUS += p.CPUPerEventUS
			kib += p.KiBPerStream
		}
	}
	return cpuUS, kib
}

// baseline finds the case of variant of the same scenario, leg and round.
func (r *Report) baseline(c Case, variant string) (Case, bool) {
	for _, o := range r.Cases {
		if o.Variant == variant && o.Scenario == c.Scenario && o.Leg == c.Leg && o.Round == c.Round && o.Error == "" {
			return o, true
		}
	}
	return Case{}, false
}

func ratio(v, base float64) string {
	if base <= 0 || v <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", v/base)
}

func num(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func perProc(find func(string) (Proc, bool), names []string, get func(Proc) float64) string {
	var parts []string
	for _, n := range names {
		if p, ok := find(n); ok {
			parts = append(parts, num(get(p)))
		} else {
			parts = append(parts, "–")
		}
	}
	return strings.Join(parts, " / ")
}

func counts(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d× %s", m[k], k))
	}
	return strings.Join(parts, ", ")
}

var procColumns = []string{"upstream", "envoy", "extproc", clientProc}

// WriteMarkdown writes one table per scenario.
func (r *Report) WriteMarkdown(w io.Writer) {
	m := r.Machine
	fmt.Fprintf(w, "Measured %s on %d × %s, Linux %s, %s, Envoy %s, RLIMIT_NOFILE %d; run took %s.\n",
		m.Started, m.CPUs, m.Model, m.Kernel, m.Go, m.Envoy, m.FileLim, m.Duration)
	if m.Note != "" {
		fmt.Fprintf(w, "%s\n", m.Note)
	}
	for name, why := range r.Skipped {
		fmt.Fprintf(w, "Skipped %s: %s.\n", name, why)
	}
	for _, sc := range r.Scenarios {
		var cases []Case
		for _, c := range r.Cases {
			if c.Scenario == sc.Name {
				cases = append(cases, c)
			}
		}
		if len(cases) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n### %s: %s", sc.Name, sc.Doc)
		fmt.Fprintf(w, " (%d streams", sc.Streams)
		if sc.Slow > 0 {
			fmt.Fprintf(w, " + %d never reading", sc.Slow)
		}
		fmt.Fprintf(w, ", %s, window %v)\n\n", eventRate(sc.EventRate), sc.Duration)
		rounds := slices.ContainsFunc(cases, func(c Case) bool { return c.Round > 0 })
		round := ""
		if rounds {
			round = "round | "
		}
		fmt.Fprintln(w, "| variant | leg | "+round+"opened | failed (client; Envoy code+flag) | events | gaps/dups | latency p50 / p90 / p99 / max ms | CPU µs/event up / envoy / ext_proc / client | proxy CPU vs router | KiB/stream up / envoy / ext_proc / client | proxy KiB vs router | p99 vs router | Envoy heap KiB/stream |")
		fmt.Fprintln(w, "|---|---|"+strings.Repeat("--:|", strings.Count(round, "|"))+"--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		slices.SortStableFunc(cases, func(a, b Case) int { return strings.Compare(a.Leg, b.Leg) })
		for _, c := range cases {
			if rounds {
				round = fmt.Sprintf("%d | ", c.Round)
			}
			if c.Error != "" {
				fmt.Fprintf(w, "| %s | %s | %serror: %s |||||||||||\n", c.Variant, c.Leg, round, strings.ReplaceAll(firstLine(c.Error), "|", "/"))
				continue
			}
			failed := counts(c.Failed)
			if f := counts(c.EnvoyFlags); f != "" {
				failed += "; Envoy: " + f
			}
			cpuRatio, kibRatio, p99Ratio := "–", "–", "–"
			if base, ok := r.baseline(c, RouterVariant); ok {
				cpu, kib := proxyCost(c)
				bcpu, bkib := proxyCost(base)
				cpuRatio, kibRatio = ratio(cpu, bcpu), ratio(kib, bkib)
				p99Ratio = ratio(c.LatencyMS.P99, base.LatencyMS.P99)
			}
			events := fmt.Sprint(c.Events)
			if silent := silentStreams(sc, c); silent > 0 {
				events += fmt.Sprintf(" ⚠%d streams got none", silent)
			}
			if c.ClientBound {
				events += " ⚠client-bound"
			}
			if other, ok := c.OtherLoad(r.Machine.CPUs); ok && other > otherLoadLimit {
				events += fmt.Sprintf(" ⚠other load %.2f cores", other)
			}
			opened := fmt.Sprintf("%d/%d in %.1fs", c.Opened, c.Streams+c.Slow, c.OpenSec)
			if c.OpenClientBound {
				opened += " ⚠client-bound"
			}
			heap := "–"
			if c.EnvoyHeapKiBPerStream != 0 {
				heap = num(c.EnvoyHeapKiBPerStream)
			}
			fmt.Fprintf(w, "| %s | %s | %s%s | %s | %s | %d/%d | %s / %s / %s / %s | %s | %s | %s | %s | %s | %s |\n",
				c.Variant, c.Leg, round, opened, failed, events, c.Gaps, c.Dups,
				num(c.LatencyMS.P50), num(c.LatencyMS.P90), num(c.LatencyMS.P99), num(c.LatencyMS.Max),
				perProc(c.Proc, procColumns, func(p Proc) float64 { return p.CPUPerEventUS }), cpuRatio,
				perProc(c.Proc, procColumns, func(p Proc) float64 { return p.KiBPerStream }), kibRatio, p99Ratio, heap)
		}
		if rounds {
			r.writeRoundSummary(w, cases)
		}
		if sc.Completions {
			writeTokenChecks(w, cases)
		}
		var bound, loaded []string
		var busy float64
		for _, c := range cases {
			busy = max(busy, c.MachineBusy)
			if other, ok := c.OtherLoad(r.Machine.CPUs); ok && other > otherLoadLimit {
				loaded = append(loaded, c.Variant+" "+c.Leg+roundLabel(c))
			}
			if c.ClientBound {
				bound = append(bound, c.Variant+" "+c.Leg)
			}
			if c.OpenClientBound {
				bound = append(bound, c.Variant+" "+c.Leg+" (opening)")
			}
		}
		fmt.Fprintf(w, "\nMachine busy up to %.0f%% during the windows (all tenants).", 100*busy)
		if len(bound) > 0 {
			fmt.Fprintf(w, " The client was CPU-bound (≥90%% of its %d cores) in: %s.", runtime.NumCPU(), strings.Join(bound, ", "))
		} else {
			fmt.Fprintf(w, " The client was never CPU-bound.")
		}
		if len(loaded) > 0 {
			fmt.Fprintf(w, " More than %.2f cores went to no measured process (other tenants, the kernel's own work) in: %s; their latency and CPU figures say as much about that load as about the variant.",
				otherLoadLimit, strings.Join(loaded, ", "))
		}
		fmt.Fprintln(w)
	}
	r.writeMercure(w)
}

// eventRate says how often the upstream publishes: "10 events/s", or for
// a trickle "an event every 30s".
func eventRate(perSecond float64) string {
	if perSecond > 0 && perSecond < 1 {
		return "an event every " + time.Duration(float64(time.Second)/perSecond).Round(time.Millisecond).String()
	}
	return fmt.Sprintf("%g events/s", perSecond)
}

// silentStreams counts the reading streams that got no event in a window
// long enough to carry one to each: 0 when the scenario cannot say (never-
// reading streams beside the readers, completions, a window shorter than
// the event interval, a report from before the count was kept).
func silentStreams(sc Scenario, c Case) int {
	if sc.Slow > 0 || sc.Completions || sc.EventRate*sc.Duration.Seconds() < 1 || (c.Reached == 0 && c.Events > 0) {
		return 0
	}
	return max(c.Opened-c.Reached, 0)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	if len(s) > 120 {
		s = s[:120] + "..."
	}
	return s
}
