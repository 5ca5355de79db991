package sse

import (
	"strings"
	"testing"
)

// referenceParse is the spec's algorithm written as plainly as possible, for
// whole inputs: the fuzzer checks the incremental scanner against it.
func referenceParse(in string) (events []Event, lastID string) {
	in = strings.TrimPrefix(in, "\uFEFF")
	var lines []string
	for {
		i := strings.IndexAny(in, "\r\n")
		if i < 0 {
			break // an unterminated last line is never processed
		}
		lines = append(lines, in[:i])
		if in[i] == '\r' && i+1 < len(in) && in[i+1] == '\n' {
			i++
		}
		in = in[i+1:]
	}
	var data strings.Builder
	hasData, typ, idBuf := false, "", ""
	for _, line := range lines {
		switch {
		case line == "":
			lastID = idBuf
			if hasData {
				d := strings.TrimSuffix(data.String(), "\n")
				t := typ
				if t == "" {
					t = "message"
				}
				events = append(events, Event{ID: lastID, Type: t, Data: d})
			}
			data.Reset()
			hasData, typ = false, ""
		case line[0] == ':':
		default:
			name, value, found := strings.Cut(line, ":")
			if found {
				value = strings.TrimPrefix(value, " ")
			}
			switch name {
			case "data":
				hasData = true
				data.WriteString(value + "\n")
			case "event":
				typ = value
			case "id":
				if !strings.Contains(value, "\x00") {
					idBuf = value
				}
			}
		}
	}
	return events, lastID
}

func FuzzScanner(f *testing.F) {
	for _, tc := range formatCases {
		f.Add(tc.input, uint8(3))
	}
	f.Add("id: 1\r\nevent: DAD_JOKE\r\ndata: x\r\n\r\n", uint8(1))
	f.Fuzz(func(t *testing.T, in string, chunk uint8) {
		size := int(chunk%16) + 1
		var got []Event
		s := Scanner{OnEvent: func(e Event) { e.Retry = 0; got = append(got, e) }}
		for i := 0; i < len(in); i += size {
			s.Write([]byte(in[i:min(i+size, len(in))]))
		}
		if s.Truncations() > 0 {
			return // the reference has no limits
		}
		want, lastID := referenceParse(in)
		if len(got) != len(want) {
			t.Fatalf("%q in chunks of %d: %d events, reference %d", in, size, len(got), len(want))
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("%q: event %d = %+q, reference %+q", in, i, got[i], want[i])
			}
		}
		if s.LastEventID() != lastID {
			t.Fatalf("%q: last id %q, reference %q", in, s.LastEventID(), lastID)
		}
		if s.Events() != uint64(len(want)) {
			t.Fatalf("%q: Events() = %d, reference %d", in, s.Events(), len(want))
		}
	})
}
