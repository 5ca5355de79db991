package replay

import (
	"net/http/httptest"
	"testing"
)

var (
	mercureSyntax = Syntax{Query: "lastEventID", Earliest: true}
	seqSyntax     = Syntax{Query: "lastEventId"}
)

func TestDecide(t *testing.T) {
	held := Bounds{First: 10, Last: 20}
	id := mercureSyntax.Parse
	tests := []struct {
		name string
		id   EventID
		at   Position
		held Bounds
		want Replay
	}{
		{"new subscriber", id(""), Position{}, held, Replay{New, 21, 20}},
		{"earliest", id("earliest"), Position{}, held, Replay{Earliest, 10, 20}},
		{"earliest, empty log", id("earliest"), Position{}, Bounds{0, 0}, Replay{Earliest, 1, 0}},
		{"resume in the middle", id("x"), Position{15, true}, held, Replay{Resumed, 16, 20}},
		{"up to date", id("x"), Position{20, true}, held, Replay{Resumed, 21, 20}},
		{"oldest held", id("x"), Position{10, true}, held, Replay{Resumed, 11, 20}},
		{"right before the oldest", id("x"), Position{9, true}, held, Replay{Resumed, 10, 20}},
		{"older than held", id("x"), Position{3, true}, held, Replay{Gap, 10, 20}},
		{"unknown id", id("x"), Position{}, held, Replay{Unknown, 21, 20}},
		{"beyond the last", id("x"), Position{25, true}, held, Replay{Future, 21, 20}},
		{"nothing held, id zero", id("0"), Position{0, true}, Bounds{1, 0}, Replay{Resumed, 1, 0}},
		{"everything expired, up to date", id("5"), Position{5, true}, Bounds{6, 5}, Replay{Resumed, 6, 5}},
		{"everything expired, behind", id("2"), Position{2, true}, Bounds{6, 5}, Replay{Gap, 6, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.id, tt.at, tt.held); got != tt.want {
				t.Fatalf("Decide = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestFromRequest(t *testing.T) {
	tests := []struct {
		name          string
		syntax        Syntax
		header, query string
		want          string
		earliest      bool
	}{
		{"none", mercureSyntax, "", "", "", false},
		{"header", mercureSyntax, "urn:uuid:1", "", "urn:uuid:1", false},
		{"query", mercureSyntax, "", "urn:uuid:2", "urn:uuid:2", false},
		{"header wins", mercureSyntax, "urn:uuid:1", "urn:uuid:2", "urn:uuid:1", false},
		{"earliest", mercureSyntax, "", "earliest", "earliest", true},
		{"earliest not in this syntax", seqSyntax, "earliest", "", "earliest", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/?"+tt.syntax.Query+"="+tt.query, nil)
			if tt.header != "" {
				r.Header.Set("Last-Event-ID", tt.header)
			}
			got := tt.syntax.FromRequest(r)
			if got.String() != tt.want || got.Earliest() != tt.earliest || got.None() != (tt.want == "") {
				t.Fatalf("FromRequest = %+v, want %q (earliest %v)", got, tt.want, tt.earliest)
			}
		})
	}
}

func TestSeq(t *testing.T) {
	tests := []struct {
		v    string
		want uint64
		ok   bool
	}{
		{"0", 0, true},
		{"42", 42, true},
		{"18446744073709551615", 18446744073709551615, true},
		{"18446744073709551616", 0, false},
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{" 1", 0, false},
		{"1e3", 0, false},
		{"abc", 0, false},
	}
	for _, tt := range tests {
		n, ok := seqSyntax.Parse(tt.v).Seq()
		if n != tt.want || ok != tt.ok {
			t.Errorf("Seq(%q) = %d, %v; want %d, %v", tt.v, n, ok, tt.want, tt.ok)
		}
	}
}
