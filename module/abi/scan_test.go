package abi_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
)

// scanStates is what the two scanners must agree on after every chunk.
type scanState struct {
	events, comments, bytes, truncations uint64
	lastEventID                          string
}

func goState(s *sse.Scanner) scanState {
	return scanState{s.Events(), s.Comments(), s.Bytes(), s.Truncations(), s.LastEventID()}
}

func cState(s abi.CScanner) scanState {
	return scanState{s.Events(), s.Comments(), s.Bytes(), s.Truncations(), s.LastEventID()}
}

// collectLimits are the limits of a stream with extract rules in the
// differential tests: small, so that cut lines and cut data are common.
const collectLine, collectData = 300, 120

// feedBoth splits stream into chunks whose lengths come from cuts (0 ends
// the cuts: the rest is one chunk), each arriving cut milliseconds after
// the one before, and fails at the first chunk after which the C and the
// Go scanner disagree: on the counts, on the pace (internal/sse.Pace) and,
// collecting (a stream with extract rules), on every event's type, data and
// cut flag.
func feedBoth(t *testing.T, stream, cuts []byte, collect bool) scanState {
	t.Helper()
	g := &sse.Scanner{MaxLineBytes: ssestream.LineLimit}
	var gPace sse.Pace
	c := abi.NewCScanner()
	defer c.Free()
	var gEvents []abi.CEvent
	if collect {
		g.MaxLineBytes, g.MaxIDBytes, g.MaxDataBytes = collectLine, ssestream.LineLimit, collectData
		g.OnEventData = func(typ, data []byte, cut bool) {
			gEvents = append(gEvents, abi.CEvent{Type: string(typ), Data: string(data), Cut: cut})
		}
		c.Collect(collectLine, collectData)
	}
	var at time.Duration
	for i := 0; len(stream) > 0; i++ {
		n := len(stream)
		if i < len(cuts) && int(cuts[i]) > 0 && int(cuts[i]) < n {
			n = int(cuts[i])
		}
		if i < len(cuts) {
			at += time.Duration(cuts[i]) * time.Millisecond
		}
		chunk := stream[:n]
		stream = stream[n:]
		before := g.Events()
		g.Write(chunk)
		gPace.Observe(at, g.Events()-before)
		c.Write(chunk)
		c.Observe(at, c.Events()-before)
		if gs, cs := goState(g), cState(c); gs != cs {
			t.Fatalf("after chunk %d %q: Go %+v, C %+v", i, chunk, gs, cs)
		}
		if gt, ct := gPace.Timing(), c.Timing(); gt != ct {
			t.Fatalf("after chunk %d %q: Go pace %+v, C %+v", i, chunk, gt, ct)
		}
		if ce := c.TakeEvents(); !slices.Equal(gEvents, ce) {
			t.Fatalf("after chunk %d %q: Go events %+v, C %+v", i, chunk, gEvents, ce)
		}
		gEvents = gEvents[:0]
	}
	return goState(g)
}

// The cases the WHATWG rules and the limits make tricky, each split at
// every byte.
var scanCases = []string{
	"id: 1\ndata: a\n\n",
	"\xEF\xBB\xBFdata: bom\n\n",
	"\xEF\xBBdata: half a bom\n\n",
	"\xEF\xBB\xBF\xEF\xBB\xBFdata: second bom is content\n\n",
	"data: crlf\r\n\r\nid: 2\r\r\ndata: cr\r\r",
	": heartbeat\n:\n\nid\ndata\n\n",
	"id: a\x00b\ndata: nul ignored\n\nid: c\ndata: d\n\n",
	"id: " + strings.Repeat("x", 300) + "\ndata: long id\n\n",
	"data: " + strings.Repeat("y", 600) + "\nid: 5\n\n",
	"event: " + strings.Repeat("t", 300) + "\ndata: long type\n\nevent: delta\ndata: 1\ndata: " + strings.Repeat("z", 115) + "\ndata: 3\n\n",
	"data: " + strings.Repeat("d", 118) + "\n\ndata: " + strings.Repeat("d", 119) + "\n\ndata: [DONE]\n\n",
	"id: 6\nevent: DAD_JOKE\nretry: 3000\ndata: multi\ndata: line\n\n",
	"id: 7\n\nid:8\ndata:no space\n\ndata: cut at the end",
	"idx: 1\ndata : 2\nDATA: 3\n\n",
}

func TestCScannerMatchesGoOnEverySplit(t *testing.T) {
	// The C scanner reads Go's limit (set in TestMain, as the module's init
	// sets it), not one of its own.
	if got := abi.CScanMaxLine(); got != ssestream.LineLimit {
		t.Fatalf("the C scanner's line limit is %d, internal/ssestream's %d", got, ssestream.LineLimit)
	}
	for _, tc := range scanCases {
		for cut := 1; cut <= len(tc); cut++ {
			for _, collect := range []bool{false, true} {
				feedBoth(t, []byte(tc), bytes.Repeat([]byte{byte(min(cut, 255))}, len(tc)), collect)
			}
		}
	}
	// A known answer, so the two cannot agree on being wrong.
	const stream = "id: 1\ndata: a\n\n: hb\n\nid: 2\ndata: b\n\ndata: c"
	got := feedBoth(t, []byte(stream), nil, false)
	if want := (scanState{events: 2, comments: 1, bytes: uint64(len(stream)), lastEventID: "2"}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

// FuzzCScannerMatchesGo holds the module's C scanner and internal/sse's Go
// scanner to one behaviour: any stream, cut into any chunks.
func FuzzCScannerMatchesGo(f *testing.F) {
	for _, tc := range scanCases {
		f.Add([]byte(tc), []byte{1, 3, 7}, true)
	}
	f.Fuzz(func(t *testing.T, stream, cuts []byte, collect bool) {
		feedBoth(t, stream, cuts, collect)
	})
}

// docs/adapters.md's "180 bytes until it needs more": a stream's C state stays
// small whatever the id and line limits are.
func TestStreamStateStaysSmall(t *testing.T) {
	if abi.StreamStateBytes > 336 {
		t.Errorf("sizeof(sse_stream) = %d bytes, want at most 336 (docs/adapters.md: about 330)", abi.StreamStateBytes)
	}
}
