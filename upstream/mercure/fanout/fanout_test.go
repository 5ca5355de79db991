package fanout

import (
	"errors"
	"strconv"
	"testing"

	"example.com/sse-on-envoy/upstream/mercure"
	"example.com/sse-on-envoy/upstream/stream"
)

func sels(t *testing.T, raw ...string) *mercure.Selectors {
	t.Helper()
	if raw == nil {
		return nil
	}
	s, err := mercure.ParseSelectors(raw, 0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDispatchRule(t *testing.T) {
	book := []string{"https://example.com/books/1", "urn:shelf:1"}
	tests := []struct {
		name    string
		topics  []string
		allowed []string
		update  mercure.Update
		want    bool
	}{
		{"exact, public", []string{"https://example.com/books/1"}, nil, mercure.Update{Topics: book}, true},
		{"exact alternate topic", []string{"urn:shelf:1"}, nil, mercure.Update{Topics: book}, true},
		{"other topic", []string{"urn:shelf:2"}, nil, mercure.Update{Topics: book}, false},
		{"template", []string{"https://example.com/books/{id}"}, nil, mercure.Update{Topics: book}, true},
		{"star", []string{"*"}, nil, mercure.Update{Topics: book}, true},
		{"private, anonymous", []string{"*"}, nil, mercure.Update{Topics: book, Private: true}, false},
		{"private, claim for another topic", []string{"*"}, []string{"urn:shelf:2"}, mercure.Update{Topics: book, Private: true}, false},
		{"private, claim for an alternate", []string{"https://example.com/books/1"}, []string{"urn:shelf:1"}, mercure.Update{Topics: book, Private: true}, true},
		{"private, claim template", []string{"urn:shelf:1"}, []string{"https://example.com/books/{id}"}, mercure.Update{Topics: book, Private: true}, true},
		{"private, claim but not subscribed", []string{"urn:other"}, []string{"*"}, mercure.Update{Topics: book, Private: true}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New(4)
			defer f.Close()
			s, err := f.Subscribe(Want{Topics: sels(t, tt.topics...), Allowed: sels(t, tt.allowed...)})
			if err != nil {
				t.Fatal(err)
			}
			u := tt.update
			u.ID = "x"
			f.Dispatch(NewItem(1, &u))
			got := len(s.C()) == 1
			if got != tt.want || s.Filter().CanReceive(&u) != tt.want {
				t.Fatalf("received %v (CanReceive %v), want %v", got, s.Filter().CanReceive(&u), tt.want)
			}
		})
	}
}

func TestOnceForSeveralMatchingTopics(t *testing.T) {
	f := New(4)
	defer f.Close()
	indexed, _ := f.Subscribe(Want{Topics: sels(t, "urn:a", "urn:b")})
	scanned, _ := f.Subscribe(Want{Topics: sels(t, "urn:a", "urn:{x}")})
	f.Dispatch(NewItem(1, &mercure.Update{ID: "1", Topics: []string{"urn:a", "urn:b"}}))
	if len(indexed.C()) != 1 || len(scanned.C()) != 1 {
		t.Fatalf("queued %d and %d items, want 1 each", len(indexed.C()), len(scanned.C()))
	}
	if n := f.Stats().Subscribers; n != 2 {
		t.Fatalf("%d subscribers, want 2", n)
	}
	indexed.Close()
	indexed.Close()
	scanned.Close()
	if n := f.Stats().Subscribers; n != 0 {
		t.Fatalf("%d subscribers after Close, want 0", n)
	}
}

func TestSlowConsumerIsCut(t *testing.T) {
	f := New(2)
	slow, _ := f.Subscribe(Want{Topics: sels(t, "urn:a")})
	fast, _ := f.Subscribe(Want{Topics: sels(t, "*")})
	for i := range 3 {
		f.Dispatch(NewItem(uint64(i+1), &mercure.Update{ID: "x", Topics: []string{"urn:a"}}))
		if i < 2 {
			<-fast.C()
		}
	}
	select {
	case <-slow.Done():
	default:
		t.Fatal("a subscriber with a full queue is not cut")
	}
	if !errors.Is(slow.Err(), stream.ErrSlowConsumer) || f.Stats().Cut != 1 {
		t.Fatalf("Err %v, cut %d", slow.Err(), f.Stats().Cut)
	}
	f.Reset()
	if !errors.Is(fast.Err(), stream.ErrReset) {
		t.Fatalf("after Reset: %v", fast.Err())
	}
	f.Close()
	if _, err := f.Subscribe(Want{Topics: sels(t, "*")}); !errors.Is(err, stream.ErrClosed) {
		t.Fatalf("Subscribe after Close: %v", err)
	}
}

// BenchmarkDispatchIndexed: an update no one follows costs nothing per
// indexed subscriber.
func BenchmarkDispatchIndexed(b *testing.B) {
	f := New(1)
	for i := range 10000 {
		s, _ := mercure.ParseSelectors([]string{"urn:topic:" + strconv.Itoa(i)}, 0)
		_, _ = f.Subscribe(Want{Topics: s})
	}
	it := NewItem(1, &mercure.Update{ID: "x", Topics: []string{"urn:none"}})
	b.ResetTimer()
	for b.Loop() {
		f.Dispatch(it)
	}
}

// Templates are found by their literal prefix: an update reaches the
// template subscribers whose prefix begins its topic, and each once, even
// through several keys; "*" gets everything; nothing stays indexed once
// everyone left.
func TestTemplatesIndexedByPrefix(t *testing.T) {
	f := New(8)
	defer f.Close()
	books, _ := f.Subscribe(Want{Topics: sels(t, "https://example.com/books/{id}")})
	mixed, _ := f.Subscribe(Want{Topics: sels(t, "https://example.com/books/1", "https://example.com/{kind}/1", "https://example.com/books/{id}")})
	users, _ := f.Subscribe(Want{Topics: sels(t, "https://example.com/users/{id}")})
	bare, _ := f.Subscribe(Want{Topics: sels(t, "{anything}")})
	all, _ := f.Subscribe(Want{Topics: sels(t, "*")})
	tests := []struct {
		topics []string
		want   map[*Subscription]int
	}{
		{[]string{"https://example.com/books/1"}, map[*Subscription]int{books: 1, mixed: 1, all: 1}},
		{[]string{"https://example.com/books/1", "https://example.com/books/2"}, map[*Subscription]int{books: 1, mixed: 1, all: 1}},
		{[]string{"https://example.com/users/7"}, map[*Subscription]int{users: 1, all: 1}},
		{[]string{"https://example.com/users/1"}, map[*Subscription]int{users: 1, mixed: 1, all: 1}},
		{[]string{"plain"}, map[*Subscription]int{bare: 1, all: 1}},
		{[]string{"https://other.example/books/1"}, map[*Subscription]int{all: 1}},
	}
	subs := map[string]*Subscription{"books": books, "mixed": mixed, "users": users, "bare": bare, "all": all}
	for i, tt := range tests {
		f.Dispatch(NewItem(uint64(i+1), &mercure.Update{ID: strconv.Itoa(i), Topics: tt.topics}))
		for name, s := range subs {
			if got := len(s.C()); got != tt.want[s] {
				t.Errorf("%v: %s queued %d, want %d", tt.topics, name, got, tt.want[s])
			}
			for len(s.C()) > 0 {
				<-s.C()
			}
		}
	}
	for _, s := range subs {
		s.Close()
	}
	r := f.Stats()
	if r.Subscribers != 0 {
		t.Fatalf("%d subscribers after Close", r.Subscribers)
	}
}

// BenchmarkDispatchBesideCostly is one update to a topic of 1,000
// ordinary subscribers (10 per topic over 100 topics, one template among
// them) beside 3,000 of the costliest subscriptions the budget allows.
func BenchmarkDispatchBesideCostly(b *testing.B) {
	for _, costly := range []int{0, 3000} {
		b.Run("costly="+strconv.Itoa(costly), func(b *testing.B) {
			f := New(1 << 20)
			defer f.Close()
			cache := mercure.NewTemplateCache(0)
			for i := range 1000 {
				raw := []string{"https://example.com/bench/" + strconv.Itoa(i%100)}
				if i%100 == 0 {
					raw = []string{"https://example.com/bench/{n}"}
				}
				s, _ := cache.ParseSubscription(raw, mercure.Budget{})
				_, _ = f.Subscribe(Want{Topics: s})
			}
			for i := range costly {
				s, err := cache.ParseSubscription(mercure.Limits{}.Costliest(i), mercure.Limits{}.Budget())
				if err != nil {
					b.Fatal(err)
				}
				_, _ = f.Subscribe(Want{Topics: s})
			}
			it := NewItem(1, &mercure.Update{ID: "x", Topics: []string{"https://example.com/bench/7"}})
			b.ResetTimer()
			for b.Loop() {
				f.Dispatch(it)
			}
		})
	}
}
