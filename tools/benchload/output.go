package benchload

import (
	"slices"
)

// Where reports go.
const (
	// CommittedDir holds the committed reports (bench-load.*, mercure.*
	// and the charts): by default only a full run writes there.
	CommittedDir = "docs/bench"
	// ScratchDir, git-ignored, takes every other run's report unless an
	// output folder is given.
	ScratchDir = ".cache/bench"
)

// Full reports whether the knobs ask for a run whose report is committed:
// every knob at its default (the whole load benchmark), or SCENARIO=mercure
// SCENARIO=soak, SCENARIO=cost, SCENARIO=llm or SCENARIO=curve and nothing
// else (the whole Mercure comparison, the soak, the cost of costly
// subscriptions, token streams, the scale curve). QUICK=1, a scenario,
// variant or leg list, or any scale knob (STREAMS, SLOW, TOPICS, RATE,
// OPEN_RATE, DURATION, ROUNDS above 1) makes a partial run.
func (k Knobs) Full() bool {
	return (len(k.Scenarios) == 0 || slices.Equal(k.Scenarios, []string{MercureAll}) || slices.Equal(k.Scenarios, []string{Soak.Name}) || slices.Equal(k.Scenarios, []string{CostAll}) || slices.Equal(k.Scenarios, []string{LLM.Name}) || slices.Equal(k.Scenarios, []string{CurveAll})) &&
		len(k.Variants) == 0 && len(k.Legs) == 0 && k.Streams == 0 && k.Slow == 0 && k.Topics == 0 && k.Bystanders == 0 &&
		k.EventRate == 0 && !k.OpenRateSet && k.OpenRate == 0 && k.Duration == 0 && k.Rounds <= 1 && !k.Quick
}

// Output is where a run writes its JSON and Markdown report and charts.
type Output struct {
	// Dir is the folder; "" writes no files.
	Dir string
	// Name is the reports' base name (Name.json, Name.md).
	Name string
	// Committed: Dir is CommittedDir, chosen because the run is full.
	Committed bool
}

// OutputRequest is what the command line says about the output.
type OutputRequest struct {
	// Out is the folder asked for (-out, BENCH_LOAD_OUT, make's OUT=), and
	// OutSet whether it was asked for at all: an explicit "" writes no
	// files.
	Out    string
	OutSet bool
	// Name is the base name asked for; "" takes the default: bench-load,
	// quick in quick mode, mercure for a run of Mercure scenarios only.
	Name string
	// Experiment: extra upstream flags (-upstream-args), which make any run
	// partial.
	Experiment bool
}

// ChooseOutput decides where a run's report goes: an explicit folder wins;
// otherwise a full run (Knobs.Full, no experiment) replaces the committed
// report in CommittedDir, and any other run writes into ScratchDir, so a
// partial run never overwrites what is committed.
func ChooseOutput(k Knobs, p Plan, req OutputRequest) Output {
	o := Output{Name: req.Name}
	if o.Name == "" {
		switch {
		case k.Quick:
			o.Name = "quick"
		case len(p.Scenarios) == 0 && len(p.MercureScenarios) == 1 && p.MercureScenarios[0].Name == Soak.Name:
			o.Name = Soak.Name
		case slices.Equal(k.Scenarios, []string{CostAll}):
			o.Name = CostAll
		case slices.Equal(k.Scenarios, []string{LLM.Name}):
			o.Name = LLM.Name
		case slices.Equal(k.Scenarios, []string{CurveAll}):
			o.Name = CurveAll
		case len(p.Scenarios) == 0 && len(p.MercureScenarios) > 0:
			o.Name = "mercure"
		default:
			o.Name = "bench-load"
		}
	}
	switch {
	case req.OutSet:
		o.Dir = req.Out
	case k.Full() && !req.Experiment:
		o.Dir, o.Committed = CommittedDir, true
	default:
		o.Dir = ScratchDir
	}
	return o
}
