package ssestream

import (
	"testing"

	"example.com/sse-on-envoy/internal/policy"
)

func TestDefineMetricsWiresEveryStatByNameAndKind(t *testing.T) {
	defined := map[string]*counter{}
	kinds := map[string]StatKind{}
	m := DefineMetrics(func(s Stat) Counter {
		if _, dup := defined[s.Name]; dup {
			t.Errorf("%s defined twice", s.Name)
		}
		c := &counter{}
		defined[s.Name], kinds[s.Name] = c, s.Kind
		return c
	})
	if len(defined) != int(NumStats) {
		t.Fatalf("defined %d stats, want %d", len(defined), NumStats)
	}
	if kinds[StatStreamsActive] != KindGauge {
		t.Errorf("%s is a %s, want a gauge", StatStreamsActive, kinds[StatStreamsActive])
	}
	for _, name := range []string{StatStreamsOpened, StatEvents, StatPreflights, StatRejectedOrigins, StatExtractErrors} {
		if kinds[name] != KindCounter {
			t.Errorf("%s is a %s, want a counter", name, kinds[name])
		}
	}

	// A preflight from a refused origin, then one SSE stream with two events:
	// each count must land in the stat of its own name.
	p, _ := policy.New(nil)
	pre := New(p, m, "test", nil)
	pre.OnRequestHeaders(headers{":method": "OPTIONS", "origin": "https://evil.example", "access-control-request-method": "GET", ":path": "/"}, true)
	s := New(p, m, "test", nil)
	s.OnRequestHeaders(headers{":method": "GET", ":path": "/sse"}, true)
	var log lines
	if s.OnResponseHeaders(headers{"content-type": "text/event-stream"}, false) {
		s.Open(Info{}, &log)
	}
	s.OnResponseData([]byte("data: a\n\ndata: b\n\n"), false)
	want := map[string]int64{StatPreflights: 1, StatRejectedOrigins: 1, StatStreamsOpened: 1, StatStreamsActive: 1, StatEvents: 2}
	for name, n := range want {
		if defined[name].n != n {
			t.Errorf("%s = %d, want %d", name, defined[name].n, n)
		}
	}
}
