package benchload

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Plan is what to run.
type Plan struct {
	Scenarios []Scenario
	Variants  []Variant
	// The Mercure comparison's (SCENARIO=mercure, or one of its names).
	MercureScenarios []MercureScenario
	MercureVariants  []MercureVariant
	// Rounds repeats every SSE case, the variants taking turns within a
	// round (see turns), so that a noisy moment of a shared machine hits one
	// round of every variant rather than every round of one.
	Rounds int
}

// Knobs override a plan's defaults; zero values keep them. They come from
// the environment (STREAMS, RATE, ...) or flags.
type Knobs struct {
	Scenarios, Variants []string
	Legs                []Leg
	Streams, Slow       int
	Topics              int // Mercure scenarios: topics the subscribers spread over
	Bystanders          int // the cost scenarios: subscriptions beside the ordinary ones
	EventRate, OpenRate float64
	OpenRateSet         bool // OpenRate 0 given explicitly: as fast as possible
	Duration            time.Duration
	Rounds              int
	Quick               bool
}

// ParseKnobs reads the knobs from getenv: SCENARIO, VARIANTS, LEGS (comma
// lists), STREAMS, SLOW, RATE (events/s), OPEN_RATE (streams/s, 0: as fast
// as possible), DURATION, ROUNDS, QUICK=1; TOPICS for the Mercure scenarios, where
// STREAMS is subscribers and RATE publishes/s; BYSTANDERS for the cost scenarios.
func ParseKnobs(getenv func(string) string) (Knobs, error) {
	var k Knobs
	list := func(s string) []string {
		var out []string
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	k.Scenarios = list(getenv("SCENARIO"))
	k.Variants = list(getenv("VARIANTS"))
	for _, s := range list(getenv("LEGS")) {
		l, err := ParseLeg(s)
		if err != nil {
			return k, fmt.Errorf("LEGS: %w", err)
		}
		k.Legs = append(k.Legs, l)
	}
	var err error
	atoi := func(name string, p *int) {
		if v := getenv(name); v != "" && err == nil {
			if *p, err = strconv.Atoi(v); err == nil && *p < 0 {
				err = fmt.Errorf("%s=%q must not be negative", name, v)
			} else if err != nil {
				err = fmt.Errorf("%s=%q: want a whole number", name, v)
			}
		}
	}
	atof := func(name string, p *float64) bool {
		v := getenv(name)
		if v == "" || err != nil {
			return false
		}
		if *p, err = strconv.ParseFloat(v, 64); err != nil || *p < 0 {
			err = fmt.Errorf("%s=%q: want a non-negative number", name, v)
		}
		return true
	}
	atoi("STREAMS", &k.Streams)
	atoi("SLOW", &k.Slow)
	atoi("TOPICS", &k.Topics)
	atoi("BYSTANDERS", &k.Bystanders)
	atoi("ROUNDS", &k.Rounds)
	atof("RATE", &k.EventRate)
	k.OpenRateSet = atof("OPEN_RATE", &k.OpenRate)
	if v := getenv("DURATION"); v != "" && err == nil {
		if k.Duration, err = time.ParseDuration(v); err != nil || k.Duration <= 0 {
			err = fmt.Errorf("DURATION=%q: want a positive duration such as 10s", v)
		}
	}
	switch getenv("QUICK") {
	case "", "0", "false":
	case "1", "true":
		k.Quick = true
	default:
		err = fmt.Errorf("QUICK=%q: want 1 or 0", getenv("QUICK"))
	}
	return k, err
}

// QuickVariants are what the quick mode runs.
var QuickVariants = []string{"direct", RouterVariant, "native-cors", "ext_proc", "module"}

// Plan turns the knobs into scenarios and variants.
func (k Knobs) Plan() (Plan, error) {
	p := Plan{Rounds: max(k.Rounds, 1)}
	if k.Rounds == 0 && slices.Equal(k.Scenarios, []string{LLM.Name}) {
		p.Rounds = LLM.Rounds
	}
	var expanded []string
	for _, n := range k.Scenarios {
		if n != CurveAll {
			expanded = append(expanded, n)
			continue
		}
		for _, steps := range CurveSteps {
			expanded = append(expanded, CurveStep(steps).Name)
		}
	}
	k.Scenarios = expanded
	names := k.Scenarios
	if len(names) == 0 {
		if k.Quick {
			names = []string{Quick.Name}
		} else {
			for _, s := range Scenarios {
				names = append(names, s.Name)
			}
		}
	}
	for _, n := range names {
		if n == MercureAll || n == CostAll {
			all := MercureScenarios
			if n == CostAll {
				all = CostScenarios
			}
			for _, m := range all {
				p.MercureScenarios = append(p.MercureScenarios, k.mercure(m))
			}
			continue
		}
		if m, ok := MercureScenarioByName(n); ok {
			p.MercureScenarios = append(p.MercureScenarios, k.mercure(m))
			continue
		}
		s, ok := ScenarioByName(n)
		if !ok {
			return p, fmt.Errorf("no scenario %q (steady, tokens, scale, storm, slow, quick; llm; curve or curve-1000, curve-10000, curve-50000, curve-100000; mercure or mercure-fanout, mercure-topics, mercure-publish; soak; cost or cost-baseline, cost-cheap, cost-costly)", n)
		}
		if k.Streams > 0 {
			s.Streams = k.Streams
		}
		if k.Slow > 0 && s.Slow > 0 {
			s.Slow = k.Slow
		}
		if k.EventRate > 0 {
			s.EventRate = k.EventRate
		}
		if k.OpenRateSet {
			s.OpenRate = k.OpenRate
		}
		if k.Duration > 0 {
			s.Duration = k.Duration
		}
		if len(k.Legs) > 0 {
			s.Legs = k.Legs
		}
		p.Scenarios = append(p.Scenarios, s)
	}
	vnames := k.Variants
	if len(vnames) == 0 && k.Quick {
		vnames = QuickVariants
	}
	if len(vnames) == 0 {
		if len(p.Scenarios) > 0 {
			p.Variants = Variants
			// The scenarios that name their variants run only those.
			var named []string
			for _, s := range p.Scenarios {
				if len(s.Variants) == 0 {
					named = nil
					break
				}
				named = append(named, s.Variants...)
			}
			if named != nil {
				p.Variants = slices.DeleteFunc(slices.Clone(Variants), func(v Variant) bool { return !slices.Contains(named, v.Name) })
			}
			// Nor a variant that runs in none of the scenarios.
			p.Variants = slices.DeleteFunc(slices.Clone(p.Variants), func(v Variant) bool {
				return !slices.ContainsFunc(p.Scenarios, v.runs)
			})
		}
		if len(p.MercureScenarios) > 0 {
			p.MercureVariants = MercureVariants
		}
	}
	// A name is a variant of the SSE scenarios or of the Mercure ones
	// (ours, mercure): each kind of scenario runs the variants of its kind.
	for _, n := range vnames {
		if v, ok := VariantByName(n); ok {
			if len(p.Scenarios) > 0 {
				p.Variants = append(p.Variants, v)
			}
			continue
		}
		if v, ok := MercureVariantByName(n); ok {
			if len(p.MercureScenarios) > 0 {
				p.MercureVariants = append(p.MercureVariants, v)
			}
			continue
		}
		return p, fmt.Errorf("no variant %q", n)
	}
	return p, nil
}

// turns is the order the variants run in a round: each round starts one
// variant further, so that over the rounds every variant runs first, second
// and last alike, and a machine growing busier through a round does not
// always weigh on the same one.
func turns(vs []Variant, round int) []Variant {
	if len(vs) == 0 || round <= 1 {
		return vs
	}
	k := (round - 1) % len(vs)
	return append(slices.Clone(vs[k:]), vs[:k]...)
}

func directRan(cases []Case, scenario, downstream string, round int) bool {
	for _, c := range cases {
		if c.Scenario == scenario && c.Round == round && c.Leg == downstream+"/-" {
			return true
		}
	}
	return false
}

// mercure applies the knobs to a Mercure scenario: STREAMS subscribers,
// TOPICS, RATE publishes/s, OPEN_RATE, DURATION.
func (k Knobs) mercure(s MercureScenario) MercureScenario {
	if k.Streams > 0 {
		s.Subscribers = k.Streams
	}
	if k.Topics > 0 {
		s.Topics = k.Topics
	}
	if k.Bystanders > 0 && s.Bystanders > 0 {
		s.Bystanders = k.Bystanders
	}
	if s.Topics > s.Subscribers {
		s.Topics = s.Subscribers
	}
	if k.EventRate > 0 && s.Rate > 0 {
		s.Rate = k.EventRate
	}
	if k.OpenRateSet {
		s.OpenRate = k.OpenRate
	}
	if k.Duration > 0 {
		s.Duration = k.Duration
	}
	return s
}

// Run runs every case of the plan, one at a time, the Mercure ones first.
// progress and mercureProgress, when set, hear of each case as it ends.
func (e *Env) Run(ctx context.Context, p Plan, progress func(Case), mercureProgress func(MercureCase)) (*Report, error) {
	r := &Report{Scenarios: p.Scenarios, Variants: map[string]string{}, Skipped: map[string]string{}}
	var run []Variant
	for _, v := range p.Variants {
		if v.Available != nil {
			if ok, why := v.Available(ctx, e); !ok {
				r.Skipped[v.Name] = why
				continue
			}
		}
		r.Variants[v.Name] = v.Doc
		run = append(run, v)
	}
	for _, v := range p.MercureVariants {
		r.Variants[v.Name] = v.Doc
	}
	r.MercureScenarios = p.MercureScenarios
	for _, sc := range p.MercureScenarios {
		for _, v := range p.MercureVariants {
			if ctx.Err() != nil {
				return r, ctx.Err()
			}
			c := e.RunMercureCase(ctx, v, sc)
			r.MercureCases = append(r.MercureCases, c)
			if mercureProgress != nil {
				mercureProgress(c)
			}
		}
	}
	rounds := max(p.Rounds, 1)
	for _, sc := range p.Scenarios {
		for _, leg := range sc.Legs {
			for round := 1; round <= rounds; round++ {
				label := round
				if rounds == 1 {
					label = 0
				}
				for _, v := range turns(run, round) {
					if !v.runs(sc) {
						continue
					}
					// Without Envoy there is no upstream leg: once per
					// downstream protocol and round.
					if v.Direct && directRan(r.Cases, sc.Name, leg.Downstream, label) {
						continue
					}
					if ctx.Err() != nil {
						return r, ctx.Err()
					}
					c := e.RunCase(ctx, v, sc, leg, label)
					r.Cases = append(r.Cases, c)
					if progress != nil {
						progress(c)
					}
				}
			}
		}
	}
	if len(r.Cases) == 0 && len(r.MercureCases) == 0 {
		return r, ErrNoCases
	}
	return r, nil
}
