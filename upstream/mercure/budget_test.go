package mercure

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
)

func TestBudgetNamesTheLimit(t *testing.T) {
	b := Limits{}.Budget()
	many := func(n int, f func(i int) string) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = f(i)
		}
		return out
	}
	tests := []struct {
		name      string
		raw       []string
		wantLimit string // "" means within the budget
	}{
		{"ordinary", []string{"https://example.com/books/{id}", "https://example.com/users/42"}, ""},
		{"the worst allowed", worstSubscription(0), ""},
		{"selectors", many(DefaultMaxTopics+1, func(i int) string { return fmt.Sprint("urn:", i) }), "selectors"},
		{"selector bytes", many(9, func(i int) string { return fmt.Sprintf("https://x/%s/%d", strings.Repeat("a", 1900), i) }), "selector bytes"},
		{"template bytes", many(2, func(i int) string { return fmt.Sprintf("https://x/%s/{v}", strings.Repeat("a", 300)) }), "template bytes"},
		{"template expressions", many(DefaultMaxTemplateExpressions+1, func(i int) string { return fmt.Sprint("urn:{v}/", i) }), "template expressions"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewTemplateCache(8)
			_, err := c.ParseSubscription(tt.raw, b)
			var be *BudgetError
			switch {
			case tt.wantLimit == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantLimit != "" && (!errors.As(err, &be) || be.Limit != tt.wantLimit):
				t.Fatalf("error %v, want a BudgetError naming %s", err, tt.wantLimit)
			case tt.wantLimit != "" && c.Len() != 0:
				t.Fatalf("%d templates compiled for a subscription over its budget", c.Len())
			}
		})
	}
}

func TestTemplateCacheSharesAndForgets(t *testing.T) {
	c := NewTemplateCache(2)
	a1, _ := c.ParseSubscription([]string{"urn:a/{x}"}, Budget{})
	a2, _ := c.ParseSubscription([]string{"urn:a/{x}", "urn:exact"}, Budget{})
	if a1.patterns[0].re != a2.patterns[0].re {
		t.Error("equal templates compiled twice")
	}
	_, _ = c.ParseSubscription([]string{"urn:b/{x}"}, Budget{})
	_, _ = c.ParseSubscription([]string{"urn:a/{x}"}, Budget{}) // a is now the most recent
	_, _ = c.ParseSubscription([]string{"urn:c/{x}"}, Budget{}) // b goes
	if c.Len() != 2 {
		t.Errorf("cache holds %d, want its size 2", c.Len())
	}
	a3, _ := c.ParseSubscription([]string{"urn:a/{x}"}, Budget{})
	if a3.patterns[0].re != a1.patterns[0].re {
		t.Error("the most recently used template was dropped")
	}
	if !a3.Match("urn:a/1") || a3.Match("urn:a/1/2") {
		t.Error("a shared template matches differently")
	}
	if _, err := c.ParseSubscription([]string{"urn:{bad"}, Budget{}); err == nil {
		t.Error("an invalid template went through the cache")
	}
}

// worstSubscription is the costliest subscription the default budget
// allows (Limits.Costliest).
func worstSubscription(salt int) []string { return Limits{}.Costliest(salt) }

// BenchmarkWorstSubscription opens the worst subscription the default
// budget allows (worstSubscription), each one new to the template cache,
// and reports what it keeps (heap held after a GC, per subscription)
// beside the time to parse and compile it. Ordinary is a subscription to
// one template many subscribers share.
//
//	go test -run '^$' -bench Subscription -benchmem ./upstream/mercure
func BenchmarkWorstSubscription(b *testing.B) {
	for _, shape := range []struct {
		name string
		raw  func(i int) []string
	}{
		{"worst", worstSubscription},
		{"ordinary", func(int) []string { return []string{"https://example.com/books/{id}"} }},
	} {
		b.Run(shape.name, func(b *testing.B) {
			c := NewTemplateCache(0)
			budget := Limits{}.Budget()
			raws := make([][]string, b.N)
			for i := range raws {
				raws[i] = shape.raw(i)
			}
			kept := make([]*Selectors, b.N)
			var m0, m1 runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&m0)
			b.ResetTimer()
			for i := range b.N {
				s, err := c.ParseSubscription(raws[i], budget)
				if err != nil {
					b.Fatal(err)
				}
				kept[i] = s
			}
			b.StopTimer()
			runtime.GC()
			runtime.ReadMemStats(&m1)
			b.ReportMetric(float64(m1.HeapAlloc-m0.HeapAlloc)/float64(b.N), "kept-B/sub")
			runtime.KeepAlive(kept)
		})
	}
}

// The costliest subscription is within the budget, and at its edge: one
// more template byte or expression would be refused.
func TestCostliestIsAtTheBudget(t *testing.T) {
	l := Limits{}.WithDefaults()
	raw := l.Costliest(999999)
	if err := l.Budget().Check(raw); err != nil {
		t.Fatalf("over its own budget: %v", err)
	}
	bytes, tpl, exprs := measure(raw)
	if exprs != l.MaxTemplateExpressions || tpl < l.MaxTemplateBytes-l.MaxTemplateExpressions || bytes < l.MaxSubscriptionBytes-200 {
		t.Errorf("%d expressions, %d template bytes, %d bytes: not the most the budget allows (%+v)", exprs, tpl, bytes, l)
	}
}

// Matching an update against a subscription's selectors allocates nothing.
func TestMatchDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("under the race detector sync.Pool drops regexp's matchers: the allocations are the detector's (make test runs this without it too)")
	}
	s, err := NewTemplateCache(0).ParseSubscription(worstSubscription(1), Limits{}.Budget())
	if err != nil {
		t.Fatal(err)
	}
	topics := []string{"https://example.com/none", "https://x.example/1/7/pppppppppabc"}
	if !s.MatchAny(topics) {
		t.Fatal("the worst subscription does not match its own template")
	}
	if n := testing.AllocsPerRun(100, func() { s.MatchAny(topics) }); n != 0 {
		t.Errorf("%v allocations per match", n)
	}
}
