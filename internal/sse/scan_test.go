package sse

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"
)

// collect feeds input to a fresh collecting scanner in the given chunks.
func collect(chunks ...string) (*Scanner, []Event) {
	var got []Event
	s := &Scanner{OnEvent: func(e Event) { got = append(got, e) }}
	for _, c := range chunks {
		s.Write([]byte(c))
	}
	return s, got
}

// The cases follow web-platform-tests eventsource/format-*.
var formatCases = []struct {
	name  string
	input string
	want  []Event
	// lastID is checked for every case: "" claims that no id survived.
	lastID string
}{
	{
		name:  "format-bom",
		input: "\uFEFFdata:1\n\n\uFEFFdata:2\n\ndata:3\n\n",
		want:  []Event{{Type: "message", Data: "1"}, {Type: "message", Data: "3"}},
	},
	{
		name:  "format-bom-2",
		input: "\uFEFF\uFEFFdata:1\n\ndata:2\n\ndata:3\n\n",
		want:  []Event{{Type: "message", Data: "2"}, {Type: "message", Data: "3"}},
	},
	{
		name: "format-comments",
		input: "data:1\r:\x00\n:\r\ndata:2\n:" + strings.Repeat("x", 2049) + "\rdata:3\n:data:fail\r:" +
			strings.Repeat("x", 2049) + "\ndata:4\n\n",
		want: []Event{{Type: "message", Data: "1\n2\n3\n4"}},
	},
	{
		name:  "format-data-before-final-empty-line",
		input: "retry:1000\ndata:test1\n\nid:test\ndata:test2",
		want:  []Event{{Type: "message", Data: "test1", Retry: time.Second}},
		// The id arrived in an event the end of the stream cut off: never dispatched.
		lastID: "",
	},
	{
		name:   "id persists across events without one",
		input:  "id:5\ndata:a\n\ndata:b\n\n",
		want:   []Event{{ID: "5", Type: "message", Data: "a"}, {ID: "5", Type: "message", Data: "b"}},
		lastID: "5",
	},
	{
		name:  "format-field-data",
		input: "data:\n\ndata\ndata\n\ndata:test\n\n",
		want:  []Event{{Type: "message", Data: ""}, {Type: "message", Data: "\n"}, {Type: "message", Data: "test"}},
	},
	{
		name:  "format-field-event-empty",
		input: "event: \ndata:data\n\n",
		want:  []Event{{Type: "message", Data: "data"}},
	},
	{
		name:  "format-field-event",
		input: "event:test\ndata:x\n\ndata:x\n\n",
		want:  []Event{{Type: "test", Data: "x"}, {Type: "message", Data: "x"}},
	},
	{
		name:   "format-field-id",
		input:  "id:1\ndata:1\n\nid:\ndata:2\n\n",
		want:   []Event{{ID: "1", Type: "message", Data: "1"}, {ID: "", Type: "message", Data: "2"}},
		lastID: "",
	},
	{
		name:   "format-field-id-2 (id survives dispatch)",
		input:  "id:1\ndata:1\n\ndata:2\n\nid\ndata:3\n\n",
		want:   []Event{{ID: "1", Type: "message", Data: "1"}, {ID: "1", Type: "message", Data: "2"}, {Type: "message", Data: "3"}},
		lastID: "",
	},
	{
		name:   "format-field-id-null",
		input:  "id:1\ndata:a\n\nid:2\x00\ndata:b\n\n",
		want:   []Event{{ID: "1", Type: "message", Data: "a"}, {ID: "1", Type: "message", Data: "b"}},
		lastID: "1",
	},
	{
		name:   "id without data updates the last event id",
		input:  "id:7\n\n",
		want:   nil,
		lastID: "7",
	},
	{
		name:  "format-field-parsing",
		input: "data:\x00\ndata:  2\rData:1\ndata\x00:2\ndata:1\r\x00data:4\nda-ta:3\rdata_5\ndata:3\rdata:\r\n data:32\ndata:4\n\n",
		want:  []Event{{Type: "message", Data: "\x00\n 2\n1\n3\n\n4"}},
	},
	{
		name:  "format-field-retry-bogus",
		input: "retry:3000\nretry:1000x\ndata:x\n\n",
		want:  []Event{{Type: "message", Data: "x", Retry: 3 * time.Second}},
	},
	{
		name:  "format-field-retry-empty",
		input: "retry\ndata:test\n\n",
		want:  []Event{{Type: "message", Data: "test"}},
	},
	{
		name:  "format-field-unknown",
		input: "data:test\n data\ndata\nfoobar:xxx\njustsometext\n:thisisacommentyay\ndata:test\n\n",
		want:  []Event{{Type: "message", Data: "test\n\ntest"}},
	},
	{
		name:  "format-leading-space",
		input: "data:\u0020\u0020test\n\n",
		want:  []Event{{Type: "message", Data: " test"}},
	},
	{
		name:  "format-newlines",
		input: "data:test\r\ndata\ndata:test\r\n\r",
		want:  []Event{{Type: "message", Data: "test\n\ntest"}},
	},
	{
		name:  "format-null-character",
		input: "data:\x00\n\n\n\n",
		want:  []Event{{Type: "message", Data: "\x00"}},
	},
	{
		name:  "format-utf-8",
		input: "data:ok\u2026\n\n",
		want:  []Event{{Type: "message", Data: "ok\u2026"}},
	},
	{
		name:  "case-sensitive field names",
		input: "DATA:x\nEvent:y\n\ndata:z\n\n",
		want:  []Event{{Type: "message", Data: "z"}},
	},
}

func TestScannerFormatCases(t *testing.T) {
	for _, tc := range formatCases {
		t.Run(tc.name, func(t *testing.T) {
			s, got := collect(tc.input)
			assertEvents(t, got, tc.want)
			if uint64(len(tc.want)) != s.Events() {
				t.Errorf("Events() = %d, want %d", s.Events(), len(tc.want))
			}
			if s.LastEventID() != tc.lastID {
				t.Errorf("LastEventID() = %q, want %q", s.LastEventID(), tc.lastID)
			}
		})
	}
}

// Every split point, and byte by byte, must give what one chunk gives: a
// proxy sees the stream in whatever chunks the network made.
func TestScannerChunkBoundaries(t *testing.T) {
	for _, tc := range formatCases {
		t.Run(tc.name, func(t *testing.T) {
			_, whole := collect(tc.input)
			for i := 0; i <= len(tc.input); i++ {
				_, got := collect(tc.input[:i], tc.input[i:])
				assertEvents(t, got, whole)
			}
			bytewise := make([]string, len(tc.input))
			for i := 0; i < len(tc.input); i++ {
				bytewise[i] = tc.input[i : i+1]
			}
			_, got := collect(bytewise...)
			assertEvents(t, got, whole)
		})
	}
}

func TestScannerCountsWithoutCollecting(t *testing.T) {
	var s Scanner
	in := "\uFEFFid: 41\nevent: DAD_JOKE\ndata: a\ndata: b\n\n: heartbeat\n\nid: 42\r\ndata: c\r\n\r\nid: 43\ndata: cut off"
	for i := 0; i < len(in); i += 5 {
		s.Write([]byte(in[i:min(i+5, len(in))]))
	}
	if s.Events() != 2 || s.LastEventID() != "42" || s.Comments() != 1 || s.Bytes() != uint64(len(in)) {
		t.Fatalf("events=%d last=%q comments=%d bytes=%d; want 2, 42, 1, %d",
			s.Events(), s.LastEventID(), s.Comments(), s.Bytes(), len(in))
	}
}

// A 10 MB line split over many chunks must not grow the scanner.
func TestScannerMemoryIsBounded(t *testing.T) {
	s := Scanner{MaxLineBytes: 1024}
	s.Write([]byte("id: 1\ndata: "))
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for range 160 {
		s.Write(chunk)
	}
	s.Write([]byte("\n\nid: " + strings.Repeat("9", 5000) + "\ndata: y\n\n"))
	if s.Events() != 2 {
		t.Errorf("Events() = %d, want 2", s.Events())
	}
	if c := cap(s.line); c > 2048 {
		t.Errorf("line buffer grew to %d bytes", c)
	}
	if got := len(s.LastEventID()); got != 1024 {
		t.Errorf("last id length %d, want it cut at 1024", got)
	}
	if s.Truncations() != 2 {
		t.Errorf("Truncations() = %d, want 2", s.Truncations())
	}
}

func TestEncodeRoundTrip(t *testing.T) {
	events := []Event{
		{ID: "1", Type: "DAD_JOKE", Data: "one line"},
		{ID: "2", Type: "DAD_JOKE", Data: "two\nlines"},
		{ID: "3", Data: "crlf\r\nand cr\rend", Retry: 2500 * time.Millisecond},
		{ID: "4\r\ninjected: yes", Type: "x\ny", Data: ""},
		{ID: "5", Data: " leading space\n\ntrailing blank\n"},
	}
	var wire []byte
	for _, e := range events {
		wire = AppendComment(wire, "keep-alive\nsecond")
		wire = e.AppendTo(wire)
	}
	r := NewReader(bytes.NewReader(wire))
	want := []Event{
		{ID: "1", Type: "DAD_JOKE", Data: "one line"},
		{ID: "2", Type: "DAD_JOKE", Data: "two\nlines"},
		{ID: "3", Type: "message", Data: "crlf\nand cr\nend", Retry: 2500 * time.Millisecond},
		{ID: "4injected: yes", Type: "xy", Data: ""},
		{ID: "5", Type: "message", Data: " leading space\n\ntrailing blank\n"},
	}
	var got []Event
	for {
		e, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, e)
	}
	assertEvents(t, got, want)
	if r.Comments() != 10 {
		t.Errorf("Comments() = %d, want 10", r.Comments())
	}
}

func TestReaderReportsOversizedEvents(t *testing.T) {
	wire := "data: " + strings.Repeat("x", DefaultMaxDataBytes+1) + "\n\n"
	r := NewReader(strings.NewReader(wire))
	if _, err := r.Next(); err == nil {
		t.Fatal("Next() accepted an event larger than the limit")
	}
}

func assertEvents(t *testing.T, got, want []Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d events %q, want %d %q", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d = %+q, want %+q", i, got[i], want[i])
		}
	}
}

func TestCommentHook(t *testing.T) {
	wire := ": sent=123\nid: 1\ndata: a\n\n:heartbeat\n:\n: two  spaces\r\nid: 2\ndata: b\n\n"
	for _, chunk := range []int{1, 3, len(wire)} {
		t.Run(fmt.Sprintf("chunk%d", chunk), func(t *testing.T) {
			var seen []string
			var s Scanner
			s.OnEvent = func(e Event) { seen = append(seen, "event "+e.ID) }
			s.OnComment = func(text []byte) { seen = append(seen, "comment "+string(text)) }
			for i := 0; i < len(wire); i += chunk {
				s.Write([]byte(wire[i:min(i+chunk, len(wire))]))
			}
			want := []string{"comment sent=123", "event 1", "comment heartbeat", "comment ", "comment two  spaces", "event 2"}
			if !slices.Equal(seen, want) {
				t.Errorf("seen %q, want %q", seen, want)
			}
		})
	}
}

func TestReaderCommentHookRunsBeforeItsEvent(t *testing.T) {
	wire := ": sent=5\nid: 7\ndata: x\n\n: sent=6\nid: 8\ndata: y\n\nid: 9\ndata: z\n\n: trailing\n"
	// One read holding every event, and reads of 4 bytes.
	for _, size := range []int{len(wire), 4} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			r := NewReaderSize(strings.NewReader(wire), size)
			var seen []string
			r.OnComment(func(text []byte) { seen = append(seen, string(text)) })
			for {
				e, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				seen = append(seen, "event "+e.ID)
			}
			want := []string{"sent=5", "event 7", "sent=6", "event 8", "event 9", "trailing"}
			if !slices.Equal(seen, want) {
				t.Errorf("seen %q, want %q", seen, want)
			}
		})
	}
}
