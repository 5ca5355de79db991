package benchload

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Plan is what to run.
type Plan struct {
	Scenarios []Scenario
	Variants  []Variant
}

// Knobs override a plan's defaults; zero values keep them. They come from
// the environment (STREAMS, RATE, ...) or flags.
type Knobs struct {
	Scenarios, Variants []string
	Legs                []Leg
	Streams, Slow       int
	EventRate, OpenRate float64
	OpenRateSet         bool // OpenRate 0 given explicitly: as fast as possible
	Duration            time.Duration
	Quick               bool
}

// ParseKnobs reads the knobs from getenv: SCENARIO, VARIANTS, LEGS (comma
// lists), STREAMS, SLOW, RATE (events/s), OPEN_RATE (streams/s, 0: as fast
// as possible), DURATION, QUICK=1.
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
	var p Plan
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
		s, ok := ScenarioByName(n)
		if !ok {
			return p, fmt.Errorf("no scenario %q (steady, scale, storm, slow, quick)", n)
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
		p.Variants = Variants
	}
	for _, n := range vnames {
		v, ok := VariantByName(n)
		if !ok {
			return p, fmt.Errorf("no variant %q", n)
		}
		p.Variants = append(p.Variants, v)
	}
	return p, nil
}

// Run runs every case of the plan, one at a time. progress, when set, hears
// of each case as it ends.
func (e *Env) Run(ctx context.Context, p Plan, progress func(Case)) (*Report, error) {
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
	for _, sc := range p.Scenarios {
		directDone := map[string]bool{}
		for _, leg := range sc.Legs {
			for _, v := range run {
				if v.Direct {
					// Without Envoy there is no upstream leg: once per
					// downstream protocol.
					if directDone[leg.Downstream] {
						continue
					}
					directDone[leg.Downstream] = true
				}
				if ctx.Err() != nil {
					return r, ctx.Err()
				}
				c := e.RunCase(ctx, v, sc, leg)
				r.Cases = append(r.Cases, c)
				if progress != nil {
					progress(c)
				}
			}
		}
	}
	if len(r.Cases) == 0 {
		return r, ErrNoCases
	}
	return r, nil
}
