package eventlog

import (
	"fmt"
	"strconv"
	"testing"
	"time"
)

// BenchmarkRange measures reading n events back from the embedded stream:
// the cost of replaying a client from the log rather than from memory.
func BenchmarkRange(b *testing.B) {
	const stored = 10000
	l, err := Open(Config{DataDir: b.TempDir(), History: stored})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for i := range stored {
		if _, err := l.Publish(b.Context(), "m"+strconv.Itoa(i), "DAD_JOKE", "I asked the load balancer for advice. It told me to spread myself thinner.", time.Time{}); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range []uint64{10, 1000, 10000} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			for b.Loop() {
				recs, err := l.Range(b.Context(), stored-n+1, stored)
				if err != nil || uint64(len(recs)) != n {
					b.Fatalf("%d records, %v", len(recs), err)
				}
			}
		})
	}
}

// BenchmarkPublish measures one de-duplicated publish to the embedded
// stream, acknowledged: what each replica pays per tick.
func BenchmarkPublish(b *testing.B) {
	l, err := Open(Config{DataDir: b.TempDir(), History: 1000})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	i := 0
	for b.Loop() {
		if _, err := l.Publish(b.Context(), "m"+strconv.Itoa(i), "DAD_JOKE", "joke", time.Time{}); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
