package benchload

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// spread is a set of per-round ratios as "median (lowest–highest)".
type spread []float64

func (s spread) String() string {
	if len(s) == 0 {
		return "–"
	}
	v := slices.Clone([]float64(s))
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	if len(v) == 1 {
		return fmt.Sprintf("%.2fx", med)
	}
	return fmt.Sprintf("%.2fx (%.2f–%.2f)", med, v[0], v[len(v)-1])
}

func (s *spread) add(v, base float64) {
	if v > 0 && base > 0 {
		*s = append(*s, v/base)
	}
}

// writeRoundSummary sums up a scenario run over several rounds: each case
// is divided by the baseline of its own round, and the table gives the
// median of those ratios and their range, which says how far one round's
// figure may be trusted on this machine.
func (r *Report) writeRoundSummary(w io.Writer, cases []Case) {
	type key struct{ variant, leg string }
	var order []key
	byKey := map[key][]Case{}
	for _, c := range cases {
		if c.Error != "" || c.Variant == RouterVariant || strings.HasSuffix(c.Leg, "/-") {
			continue
		}
		k := key{c.Variant, c.Leg}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], c)
	}
	if len(order) == 0 {
		return
	}
	// A token-stream scenario also compares with Envoy's own filter.
	native := slices.ContainsFunc(cases, func(c Case) bool { return c.Variant == SSEToMetadataVariant })
	nativeHead, nativeRule := "", ""
	if native {
		nativeHead, nativeRule = " proxy CPU vs "+SSEToMetadataVariant+" |", "--:|"
	}
	fmt.Fprintf(w, "\nEach round against the same round's router, and against %s (the router adding the policy's response headers): median (lowest–highest).\n\n", SameSizeVariant)
	fmt.Fprintf(w, "| variant | leg | rounds | proxy CPU vs router | p99 vs router | proxy KiB vs router | proxy KiB vs %s | Envoy heap vs router |%s\n", SameSizeVariant, nativeHead)
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|"+nativeRule)
	for _, k := range order {
		var cpu, p99, kib, kibSame, heap, cpuNative spread
		for _, c := range byKey[k] {
			ccpu, ckib := proxyCost(c)
			if base, ok := r.baseline(c, RouterVariant); ok {
				bcpu, bkib := proxyCost(base)
				cpu.add(ccpu, bcpu)
				kib.add(ckib, bkib)
				p99.add(c.LatencyMS.P99, base.LatencyMS.P99)
				heap.add(c.EnvoyHeapKiBPerStream, base.EnvoyHeapKiBPerStream)
			}
			if base, ok := r.baseline(c, SameSizeVariant); ok && c.Variant != SameSizeVariant {
				_, bkib := proxyCost(base)
				kibSame.add(ckib, bkib)
			}
			if base, ok := r.baseline(c, SSEToMetadataVariant); ok {
				bcpu, _ := proxyCost(base)
				cpuNative.add(ccpu, bcpu)
			}
		}
		nativeCol := ""
		if native {
			nativeCol = " " + cpuNative.String() + " |"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s |%s\n", k.variant, k.leg, len(byKey[k]), cpu, p99, kib, kibSame, heap, nativeCol)
	}
}

// representatives keeps one case per variant and leg: of several rounds,
// the one with the median p99, so a chart shows a typical round.
func representatives(cases []Case) []Case {
	type key struct{ variant, leg string }
	var order []key
	byKey := map[key][]Case{}
	for _, c := range cases {
		k := key{c.Variant, c.Leg}
		if _, ok := byKey[k]; !ok {
			order = append(order, k)
		}
		byKey[k] = append(byKey[k], c)
	}
	out := make([]Case, 0, len(order))
	for _, k := range order {
		cs := slices.Clone(byKey[k])
		slices.SortStableFunc(cs, func(a, b Case) int {
			switch {
			case a.LatencyMS.P99 < b.LatencyMS.P99:
				return -1
			case a.LatencyMS.P99 > b.LatencyMS.P99:
				return 1
			}
			return 0
		})
		out = append(out, cs[(len(cs)-1)/2])
	}
	return out
}
