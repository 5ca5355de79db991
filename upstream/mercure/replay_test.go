package mercure

import (
	"net/http/httptest"
	"testing"
)

func TestDecide(t *testing.T) {
	held := Bounds{First: 10, Last: 20}
	tests := []struct {
		name string
		id   EventID
		at   Position
		held Bounds
		want Replay
	}{
		{"new subscriber", NewEventID(""), Position{}, held, Replay{OutcomeNew, 21, 20}},
		{"earliest", NewEventID("earliest"), Position{}, held, Replay{OutcomeEarliest, 10, 20}},
		{"earliest, empty log", NewEventID("earliest"), Position{}, Bounds{0, 0}, Replay{OutcomeEarliest, 1, 0}},
		{"resume in the middle", NewEventID("x"), Position{15, true}, held, Replay{OutcomeResumed, 16, 20}},
		{"up to date", NewEventID("x"), Position{20, true}, held, Replay{OutcomeResumed, 21, 20}},
		{"oldest held", NewEventID("x"), Position{10, true}, held, Replay{OutcomeResumed, 11, 20}},
		{"right before the oldest", NewEventID("x"), Position{9, true}, held, Replay{OutcomeResumed, 10, 20}},
		{"older than held", NewEventID("x"), Position{3, true}, held, Replay{OutcomeGap, 10, 20}},
		{"unknown id", NewEventID("x"), Position{}, held, Replay{OutcomeUnknown, 21, 20}},
		{"beyond the log", NewEventID("x"), Position{25, true}, held, Replay{OutcomeFuture, 21, 20}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.id, tt.at, tt.held); got != tt.want {
				t.Fatalf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseEventID(t *testing.T) {
	tests := []struct {
		name, header, query, want string
		earliest                  bool
	}{
		{"none", "", "", "", false},
		{"header", "urn:uuid:1", "", "urn:uuid:1", false},
		{"query", "", "urn:uuid:2", "urn:uuid:2", false},
		{"header wins", "urn:uuid:1", "urn:uuid:2", "urn:uuid:1", false},
		{"earliest", "", "earliest", "earliest", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/.well-known/mercure?topic=a&lastEventID="+tt.query, nil)
			if tt.header != "" {
				r.Header.Set("Last-Event-ID", tt.header)
			}
			got := ParseEventID(r, LastEventIDParam)
			if got.String() != tt.want || got.Earliest() != tt.earliest || got.None() != (tt.want == "") {
				t.Fatalf("ParseEventID = %+v, want %q (earliest %v)", got, tt.want, tt.earliest)
			}
		})
	}
}
