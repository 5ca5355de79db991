package sse

import (
	"math/bits"
	"time"
)

// GapBuckets is how many buckets Pace sorts the gaps between events into:
// bucket 0 holds gaps under a millisecond, bucket i (i > 0) gaps of
// [2^(i-1), 2^i) ms, and the last one everything longer (over 9 minutes).
// The C body hook keeps the same buckets (module/abi/pace.c).
const GapBuckets = 20

// Pace is when a stream's bytes and events came, measured where a proxy
// sees them: per body chunk, from the request. It answers what operators of
// token streams ask of a proxy: time to the first byte and to the first
// complete event (for an LLM stream, the first token), the largest gap
// between two events (a stall), the distribution of the gaps, and the rate.
// Events that arrive in one chunk arrive together: the gaps between them are
// 0. The zero value has seen nothing.
type Pace struct {
	firstByte  time.Duration
	firstEvent time.Duration
	lastEvent  time.Duration
	maxGap     time.Duration
	seenByte   bool
	seenEvent  bool
	gaps       [GapBuckets]uint32
}

// Observe records a chunk of at least one byte that arrived at `at` (since
// the request) and completed `events` events.
func (p *Pace) Observe(at time.Duration, events uint64) {
	if !p.seenByte {
		p.seenByte, p.firstByte = true, at
	}
	if events == 0 {
		return
	}
	if !p.seenEvent {
		p.seenEvent, p.firstEvent, p.lastEvent = true, at, at
	} else {
		gap := max(at-p.lastEvent, 0)
		p.maxGap = max(p.maxGap, gap)
		p.add(gap, 1)
		p.lastEvent = at
	}
	p.add(0, events-1)
}

func (p *Pace) add(gap time.Duration, n uint64) {
	if n == 0 {
		return
	}
	b := &p.gaps[GapBucket(gap)]
	*b = uint32(min(uint64(*b)+n, 1<<32-1))
}

// GapBucket is the bucket a gap falls in.
func GapBucket(gap time.Duration) int {
	ms := uint64(max(gap, 0) / time.Millisecond)
	return min(bits.Len64(ms), GapBuckets-1)
}

// GapBucketLimit is the upper bound of a bucket: a gap in bucket i is
// shorter than it (the last bucket has none: it reports its lower bound).
func GapBucketLimit(i int) time.Duration {
	if i >= GapBuckets-1 {
		return time.Duration(1<<(GapBuckets-2)) * time.Millisecond
	}
	return time.Duration(1<<i) * time.Millisecond
}

// Timing is what a Pace measured.
type Timing struct {
	// FirstByte and FirstEvent are from the request; HasFirstByte and
	// HasFirstEvent say whether there was one.
	FirstByte, FirstEvent       time.Duration
	HasFirstByte, HasFirstEvent bool
	// LastEvent is when the last event came, from the request.
	LastEvent time.Duration
	// MaxGap is the longest time between two events.
	MaxGap time.Duration
	// Gaps counts the gaps between events by GapBucket.
	Gaps [GapBuckets]uint32
}

// Timing reports what the Pace has seen.
func (p *Pace) Timing() Timing {
	return Timing{
		FirstByte: p.firstByte, FirstEvent: p.firstEvent,
		HasFirstByte: p.seenByte, HasFirstEvent: p.seenEvent,
		LastEvent: p.lastEvent, MaxGap: p.maxGap, Gaps: p.gaps,
	}
}

// GapQuantile is the upper bound of the bucket holding quantile q (0..1)
// of the gaps, 0 when there were none: an estimate within a factor of two,
// which is what tells a steady stream from a bursty one.
func (t Timing) GapQuantile(q float64) time.Duration {
	var total uint64
	for _, n := range t.Gaps {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(q*float64(total) + 0.5)
	rank = min(max(rank, 1), total)
	var seen uint64
	for i, n := range t.Gaps {
		seen += uint64(n)
		if seen >= rank {
			return GapBucketLimit(i)
		}
	}
	return GapBucketLimit(GapBuckets - 1)
}
