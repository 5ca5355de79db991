package sse

import (
	"strconv"
	"testing"
)

// BenchmarkScannerCount measures the filter's per-chunk cost: counting only.
func BenchmarkScannerCount(b *testing.B) {
	var wire []byte
	for i := range 64 {
		wire = Event{ID: strconv.Itoa(i), Type: "DAD_JOKE", Data: "What do you call a fish wearing a bowtie? Sofishticated."}.AppendTo(wire)
	}
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	var s Scanner
	for b.Loop() {
		s.Write(wire)
	}
}
