package benchload

import (
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
		{"defaults: every scenario and variant", env(), func(p Plan) bool {
			return len(p.Scenarios) == len(Scenarios) && len(p.Variants) == len(Variants) && p.Scenarios[2].Streams == 10000
		}, ""},
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
		{"unknown scenario", env("SCENARIO", "soak"), nil, `no scenario "soak"`},
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
