package benchload

import (
	"fmt"
	"strings"
	"time"
)

// Leg is how the client reaches Envoy and how Envoy reaches the upstream.
type Leg struct {
	// Downstream is "h1" (Envoy's plain listener, HTTP/1.1) or "h2" (the
	// TLS listener, HTTP/2 through ALPN).
	Downstream string
	// Upstream is "plain" (/sse/, HTTP/1.1, one connection per stream) or
	// "tls" (/sse-with-tls/, HTTP/2 through ALPN).
	Upstream string
}

func (l Leg) String() string { return l.Downstream + "/" + l.Upstream }

// ParseLeg reads "h1/plain" and the like.
func ParseLeg(s string) (Leg, error) {
	d, u, _ := strings.Cut(s, "/")
	l := Leg{d, u}
	if (d != "h1" && d != "h2") || (u != "plain" && u != "tls") {
		return l, fmt.Errorf("leg %q: want h1|h2 / plain|tls, such as h2/tls", s)
	}
	return l, nil
}

// AllLegs are the four combinations.
var AllLegs = []Leg{{"h1", "plain"}, {"h1", "tls"}, {"h2", "plain"}, {"h2", "tls"}}

// Scenario is one load shape.
type Scenario struct {
	Name string
	// Streams read their events; Slow streams are opened beside them and
	// never read.
	Streams, Slow int
	// EventRate is the upstream's events per second, which every stream
	// receives.
	EventRate float64
	// OpenRate is streams opened per second; 0 opens them as fast as the
	// client can (a reconnect storm).
	OpenRate float64
	Duration time.Duration
	Legs     []Leg
	Doc      string
	// Completions: each stream is an LLM client asking for chat
	// completions (POST routes.CompletionsPath) one after the other, each
	// answered by the upstream's token stream at EventRate tokens a second.
	Completions bool
	// Variants, when set, are the only variants the scenario runs, unless
	// VARIANTS names others.
	Variants []string
	// Rounds is the scenario's default for ROUNDS.
	Rounds int
	// Heartbeat, when set, is the upstream's -heartbeat: a curve step
	// holds its streams quiet but for the heartbeats and a trickle of
	// events.
	Heartbeat time.Duration
	// Step is the curve's (SCENARIO=curve): this scenario is one of its
	// steps, charted together as cost against streams.
	Step bool
}

// Scenarios are the defaults, sized so that every scenario over every
// variant runs in about 15 minutes on two cores.
var Scenarios = []Scenario{
	{Name: "steady", Streams: 1000, EventRate: 10, OpenRate: 500, Duration: 10 * time.Second, Legs: AllLegs,
		Doc: "1,000 streams x 10 events/s"},
	// Token streaming as LLM gateways send it: few streams, many events
	// each. The upstream's events (a joke of 40 to 120 bytes with its id,
	// type and stamp) are the size of an OpenAI-style chunk event.
	{Name: "tokens", Streams: 200, EventRate: 50, OpenRate: 500, Duration: 10 * time.Second,
		Legs: []Leg{{"h1", "plain"}, {"h2", "tls"}},
		Doc:  "200 streams x 50 events/s (token streaming)"},
	{Name: "scale", Streams: 10000, EventRate: 1, OpenRate: 500, Duration: 10 * time.Second,
		Legs: []Leg{{"h1", "plain"}, {"h2", "tls"}},
		Doc:  "10,000 streams x 1 event/s"},
	{Name: "storm", Streams: 10000, EventRate: 1, OpenRate: 0, Duration: 5 * time.Second,
		Legs: []Leg{{"h1", "plain"}, {"h1", "tls"}},
		Doc:  "10,000 streams opened as fast as the client can; non-200 answers counted"},
	{Name: "slow", Streams: 100, Slow: 1000, EventRate: 10, OpenRate: 500, Duration: 10 * time.Second,
		Legs: []Leg{{"h1", "plain"}},
		Doc:  "1,000 never-reading streams beside 100 readers"},
}

// LLM is token streaming as an LLM gateway carries it (issue 19): 200
// clients each asking for one completion after another, answered at 50
// tokens a second, AnswerTokens tokens each (10 s, so 20 new streams a
// second), through the router alone, Envoy's own sse_to_metadata reading
// usage.total_tokens, the ext_proc adapter and the module with its timing
// and the same rule. Its own full run (SCENARIO=llm, five rounds) writes
// docs/bench/llm.md.
var LLM = Scenario{Name: "llm", Completions: true, Streams: 200, EventRate: 50, OpenRate: 200, Duration: 15 * time.Second,
	Legs:     []Leg{{"h2", "tls"}, {"h1", "tls"}},
	Variants: []string{RouterVariant, SSEToMetadataVariant, "ext_proc", "module"},
	// Five: on two shared cores a p99 moves by several times between
	// rounds (the router's own from 2.8 to 10.9 ms in a three-round run).
	Rounds: 5,
	Doc:    "200 LLM clients x 50 tokens/s, one 500-token completion after another"}

// CurveAll names the scale curve (issue 18): the same system held at each
// of CurveSteps concurrent streams over HTTP/2 (Envoy's TLS listener, the
// TLS upstream leg), router alone and the module, each step a scenario of
// its own. The streams are opened at a steady rate and held quiet: a
// heartbeat every 30 s (the longest the upstream allows under Envoy's 60 s
// idle timeout) and an event every 30 s, so that a 60 s window checks
// every stream for its events while the machine's two cores still carry
// the largest step. Its own full run (SCENARIO=curve) writes
// docs/bench/curve.md and curve-memory.svg.
const CurveAll = "curve"

// CurveSteps are the curve's stream counts.
var CurveSteps = []int{1000, 10000, 50000, 100000}

// CurveStep is the curve's scenario at n streams.
func CurveStep(n int) Scenario {
	return Scenario{Name: fmt.Sprintf("%s-%d", CurveAll, n), Step: true, Streams: n,
		EventRate: 1.0 / 30, Heartbeat: 30 * time.Second, OpenRate: 1000, Duration: 60 * time.Second,
		Legs:     []Leg{{"h2", "tls"}},
		Variants: []string{RouterVariant, "module"},
		Doc:      fmt.Sprintf("%d quiet streams over HTTP/2 (scale curve)", n)}
}

// Quick is the quick mode's scenario: a few seconds, small numbers, for
// `make test`.
var Quick = Scenario{Name: "quick", Streams: 20, EventRate: 20, OpenRate: 0, Duration: 2 * time.Second,
	Legs: []Leg{{"h1", "plain"}, {"h2", "tls"}}, Doc: "20 streams x 20 events/s for 2 s"}

// ScenarioByName finds a scenario, the quick one included.
func ScenarioByName(name string) (Scenario, bool) {
	switch name {
	case Quick.Name:
		return Quick, true
	case LLM.Name:
		return LLM, true
	}
	if n, ok := strings.CutPrefix(name, CurveAll+"-"); ok {
		for _, steps := range CurveSteps {
			if fmt.Sprint(steps) == n {
				return CurveStep(steps), true
			}
		}
	}
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}
