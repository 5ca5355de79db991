package benchload

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestKnobsMakeThePlan(t *testing.T) {
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	tests := []struct {
		name    string
		getenv  func(string) string
		check   func(Plan) bool
		wantErr string
	}{
		{"defaults: every scenario and every variant that runs in one", env(), func(p Plan) bool {
			// Less the variants of one scenario only: sse_to_metadata (llm)
			// and router-nghttp2 (the curve).
			return len(p.Scenarios) == len(Scenarios) && len(p.Variants) == len(Variants)-2 && p.Scenarios[2].Streams == 10000 &&
				!slices.ContainsFunc(p.Variants, func(v Variant) bool { return v.Name == SSEToMetadataVariant || v.Name == "router-nghttp2" })
		}, ""},
		{"llm: its own variants and rounds", env("SCENARIO", "llm"), func(p Plan) bool {
			var names []string
			for _, v := range p.Variants {
				names = append(names, v.Name)
			}
			return len(p.Scenarios) == 1 && p.Scenarios[0].Completions && p.Rounds == 5 &&
				slices.Equal(names, []string{RouterVariant, "ext_proc", SSEToMetadataVariant, "module"})
		}, ""},
		{"curve: its steps, HTTP/2, router and module", env("SCENARIO", "curve"), func(p Plan) bool {
			var streams []int
			for _, s := range p.Scenarios {
				if !s.Step || len(s.Legs) != 1 || s.Legs[0] != (Leg{"h2", "tls"}) || s.Heartbeat != 30*time.Second {
					return false
				}
				streams = append(streams, s.Streams)
			}
			var names []string
			for _, v := range p.Variants {
				names = append(names, v.Name)
			}
			return slices.Equal(streams, CurveSteps) && slices.Equal(names, []string{RouterVariant, "module"})
		}, ""},
		{"one curve step by name", env("SCENARIO", "curve-50000"), func(p Plan) bool {
			return len(p.Scenarios) == 1 && p.Scenarios[0].Streams == 50000 && p.Scenarios[0].Step
		}, ""},
		{"llm with the rounds asked for", env("SCENARIO", "llm", "ROUNDS", "1"), func(p Plan) bool { return p.Rounds == 1 }, ""},
		{"quick", env("QUICK", "1"), func(p Plan) bool {
			return len(p.Scenarios) == 1 && p.Scenarios[0].Name == "quick" && len(p.Variants) == len(QuickVariants)
		}, ""},
		{"overrides", env("SCENARIO", "steady, storm", "VARIANTS", "router,ext_proc", "STREAMS", "50", "RATE", "2",
			"OPEN_RATE", "0", "DURATION", "3s", "LEGS", "h2/tls"), func(p Plan) bool {
			s := p.Scenarios[0]
			return len(p.Scenarios) == 2 && len(p.Variants) == 2 && p.Variants[1].Name == "ext_proc" &&
				s.Streams == 50 && s.EventRate == 2 && s.OpenRate == 0 && s.Duration == 3*time.Second &&
				len(s.Legs) == 1 && s.Legs[0] == (Leg{"h2", "tls"}) && p.Scenarios[1].Name == "storm"
		}, ""},
		{"slow streams only where the scenario has them", env("SLOW", "7"), func(p Plan) bool {
			for _, s := range p.Scenarios {
				if (s.Name == "slow") != (s.Slow == 7) {
					return false
				}
			}
			return true
		}, ""},
		{"mercure: its scenarios and variants only", env("SCENARIO", "mercure"), func(p Plan) bool {
			return len(p.Scenarios) == 0 && len(p.Variants) == 0 && len(p.MercureScenarios) == len(MercureScenarios) &&
				len(p.MercureVariants) == 2 && p.MercureVariants[1].Name == MercureBaseline &&
				p.MercureScenarios[1].Subscribers == 9000 && p.MercureScenarios[1].Topics == 1000
		}, ""},
		{"mercure at small scale", env("SCENARIO", "mercure-topics,mercure-publish,steady", "VARIANTS", "router,ours,mercure",
			"STREAMS", "50", "TOPICS", "5", "RATE", "20", "DURATION", "5s"), func(p Plan) bool {
			m, pub := p.MercureScenarios[0], p.MercureScenarios[1]
			return len(p.Scenarios) == 1 && len(p.Variants) == 1 && len(p.MercureVariants) == 2 &&
				m.Subscribers == 50 && m.Topics == 5 && m.Rate == 20 && m.Duration == 5*time.Second &&
				pub.Rate == 0 && pub.Topics == 5
		}, ""},
		{"soak: its own scenario, over the TLS leg, not part of mercure", env("SCENARIO", "soak", "DURATION", "90s"), func(p Plan) bool {
			return len(p.Scenarios) == 0 && len(p.MercureScenarios) == 1 && p.MercureScenarios[0].Name == Soak.Name &&
				p.MercureScenarios[0].UpstreamTLS && p.MercureScenarios[0].Duration == 90*time.Second && len(p.MercureVariants) == 2
		}, ""},
		{"cost: the same load alone, beside cheap and beside costly bystanders", env("SCENARIO", "cost", "BYSTANDERS", "50", "VARIANTS", "ours"), func(p Plan) bool {
			ms := p.MercureScenarios
			return len(ms) == 3 && ms[0].Bystanders == 0 && ms[1].Bystanders == 50 && !ms[1].CostlyBystanders &&
				ms[2].Bystanders == 50 && ms[2].CostlyBystanders && len(p.MercureVariants) == 1 && p.MercureVariants[0].Name == "ours"
		}, ""},
		{"mercure topics never exceed subscribers", env("SCENARIO", "mercure-topics", "STREAMS", "10"), func(p Plan) bool {
			return p.MercureScenarios[0].Topics == 10
		}, ""},
		{"one round unless asked", env(), func(p Plan) bool { return p.Rounds == 1 }, ""},
		{"rounds", env("ROUNDS", "5"), func(p Plan) bool { return p.Rounds == 5 }, ""},
		{"rounds not a number", env("ROUNDS", "many"), nil, `ROUNDS="many"`},
		{"unknown scenario", env("SCENARIO", "marathon"), nil, `no scenario "marathon"`},
		{"unknown variant", env("VARIANTS", "nginx"), nil, `no variant "nginx"`},
		{"bad leg", env("LEGS", "h3/tls"), nil, "LEGS"},
		{"bad number", env("STREAMS", "many"), nil, "STREAMS"},
		{"negative rate", env("RATE", "-1"), nil, "RATE"},
		{"bad duration", env("DURATION", "10"), nil, "DURATION"},
		{"bad quick", env("QUICK", "yes"), nil, "QUICK"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := ParseKnobs(tt.getenv)
			var p Plan
			if err == nil {
				p, err = k.Plan()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(p) {
				t.Errorf("plan %+v", p)
			}
		})
	}
}

func TestVariantsTakeTurnsOverRounds(t *testing.T) {
	vs := []Variant{{Name: "router"}, {Name: "router-headers"}, {Name: "module"}}
	firsts := map[string]int{}
	for round := 1; round <= 6; round++ {
		order := turns(vs, round)
		if len(order) != len(vs) {
			t.Fatalf("round %d runs %d variants, want %d", round, len(order), len(vs))
		}
		firsts[order[0].Name]++
	}
	for _, v := range vs {
		if firsts[v.Name] != 2 {
			t.Errorf("%s ran first in %d of 6 rounds, want 2: %v", v.Name, firsts[v.Name], firsts)
		}
	}
	if got := turns(vs, 1); got[0].Name != "router" {
		t.Errorf("round 1 starts with %s, want the plan's order", got[0].Name)
	}
}
