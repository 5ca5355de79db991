package benchload

import (
	"bytes"
	"strings"
	"testing"
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
