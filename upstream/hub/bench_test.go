package hub

import (
	"fmt"
	"testing"
)

// BenchmarkPublish measures one Publish fanned out to n subscribers. The
// queues are drained outside the timed region so the numbers are the
// publisher's cost alone (what every other client waits on).
func BenchmarkPublish(b *testing.B) {
	const joke = "I asked the load balancer for advice. It told me to spread myself thinner."
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			h := New(Options{Queue: 64})
			defer h.Close()
			subs := make([]*Subscription, n)
			for i := range subs {
				subs[i], _, _ = h.Subscribe()
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if _, err := h.Publish("DAD_JOKE", joke); err != nil {
					b.Fatal(err)
				}
				if i++; i%64 == 0 {
					b.StopTimer()
					for _, s := range subs {
						for len(s.C()) > 0 {
							<-s.C()
						}
					}
					b.StartTimer()
				}
			}
			if st := h.Stats(); st.Cut != 0 {
				b.Fatalf("%d subscribers cut", st.Cut)
			}
		})
	}
}
