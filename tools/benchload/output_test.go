package benchload

import "testing"

// Only a full run, or an explicit folder, writes into docs/bench: a partial
// run must never overwrite the committed report.
func TestOnlyAFullRunWritesTheCommittedReport(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		req  OutputRequest
		want Output
	}{
		{"full run", nil, OutputRequest{}, Output{Dir: CommittedDir, Name: "bench-load", Committed: true}},
		{"full Mercure comparison", []string{"SCENARIO", "mercure"}, OutputRequest{}, Output{Dir: CommittedDir, Name: "mercure", Committed: true}},
		{"full run, its name given", nil, OutputRequest{Name: "bench-load"}, Output{Dir: CommittedDir, Name: "bench-load", Committed: true}},
		{"quick", []string{"QUICK", "1"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "quick"}},
		{"one scenario", []string{"SCENARIO", "steady"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"every scenario named", []string{"SCENARIO", "steady,tokens,scale,storm,slow"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"the scale curve", []string{"SCENARIO", "curve"}, OutputRequest{}, Output{Dir: CommittedDir, Name: "curve", Committed: true}},
		{"one curve step", []string{"SCENARIO", "curve-1000"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"the soak", []string{"SCENARIO", "soak"}, OutputRequest{}, Output{Dir: CommittedDir, Name: "soak", Committed: true}},
		{"the cost comparison", []string{"SCENARIO", "cost"}, OutputRequest{}, Output{Dir: CommittedDir, Name: "cost", Committed: true}},
		{"the cost comparison, fewer bystanders", []string{"SCENARIO", "cost", "BYSTANDERS", "100"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "cost"}},
		{"a shorter soak", []string{"SCENARIO", "soak", "DURATION", "70s"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "soak"}},
		{"one Mercure scenario", []string{"SCENARIO", "mercure-topics"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "mercure"}},
		{"Mercure at small scale", []string{"SCENARIO", "mercure", "STREAMS", "50"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "mercure"}},
		{"Mercure and SSE", []string{"SCENARIO", "mercure-topics,steady"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"variants", []string{"VARIANTS", "router,module"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"legs", []string{"LEGS", "h2/tls"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"streams", []string{"STREAMS", "100"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"slow", []string{"SLOW", "3"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"topics", []string{"TOPICS", "3"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"rate", []string{"RATE", "5"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"open rate 0", []string{"OPEN_RATE", "0"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"duration", []string{"DURATION", "3s"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"rounds", []string{"ROUNDS", "6"}, OutputRequest{}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"one round is the default", []string{"ROUNDS", "1"}, OutputRequest{}, Output{Dir: CommittedDir, Name: "bench-load", Committed: true}},
		{"experiment", nil, OutputRequest{Experiment: true}, Output{Dir: ScratchDir, Name: "bench-load"}},
		{"explicit folder for a partial run", []string{"QUICK", "1"}, OutputRequest{Out: "/tmp/q", OutSet: true}, Output{Dir: "/tmp/q", Name: "quick"}},
		{"explicit docs/bench", []string{"ROUNDS", "6"}, OutputRequest{Out: "docs/bench/module-cost", OutSet: true, Name: "module-cost"}, Output{Dir: "docs/bench/module-cost", Name: "module-cost"}},
		{"explicit folder for a full run", nil, OutputRequest{Out: "/tmp/full", OutSet: true}, Output{Dir: "/tmp/full", Name: "bench-load"}},
		{"explicitly no files", nil, OutputRequest{Out: "", OutSet: true}, Output{Name: "bench-load"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := map[string]string{}
			for i := 0; i+1 < len(tc.env); i += 2 {
				m[tc.env[i]] = tc.env[i+1]
			}
			k, err := ParseKnobs(func(s string) string { return m[s] })
			if err != nil {
				t.Fatal(err)
			}
			p, err := k.Plan()
			if err != nil {
				t.Fatal(err)
			}
			if got := ChooseOutput(k, p, tc.req); got != tc.want {
				t.Errorf("ChooseOutput = %+v, want %+v", got, tc.want)
			}
		})
	}
}
