package ssefilter

import (
	"strconv"
	"testing"

	"example.com/sse-on-envoy/internal/sse"
)

// BenchmarkEncodeData is the per-chunk cost inside Envoy, less the cgo
// round trip: an SSE chunk is copied and scanned, any other chunk is one
// check.
func BenchmarkEncodeData(b *testing.B) {
	var chunk []byte
	for i := range 8 {
		chunk = sse.Event{ID: strconv.Itoa(i), Type: "DAD_JOKE", Data: "Why did the scarecrow win an award? He was outstanding in his field."}.AppendTo(chunk)
	}
	for _, tc := range []struct {
		name, contentType string
	}{{"sse", "text/event-stream"}, {"other", "application/json"}} {
		b.Run(tc.name, func(b *testing.B) {
			cc := newConfigCallbacks()
			parsed, err := ConfigParser{}.Parse(typedStruct(&testing.T{}, demoConfig), cc)
			if err != nil {
				b.Fatal(err)
			}
			f := Factory(parsed, newCallbacks()).(*filter)
			f.DecodeHeaders(newHeaders(":method", "GET", ":path", "/sse/events"), true)
			f.EncodeHeaders(newHeaders(":status", "200", "content-type", tc.contentType), false)
			buf := &benchBuffer{data: chunk}
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				f.EncodeData(buf, false)
			}
		})
	}
}

// benchBuffer hands out its bytes without the fake's bookkeeping; Envoy's
// Bytes() copies, which the copy below stands for.
type benchBuffer struct {
	fakeBuffer
	data []byte
	copy []byte
}

func (b *benchBuffer) Bytes() []byte { b.copy = append(b.copy[:0], b.data...); return b.copy }
func (b *benchBuffer) Len() int      { return len(b.data) }
