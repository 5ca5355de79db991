package jokes

import (
	"strings"
	"testing"
)

func TestEmbeddedList(t *testing.T) {
	list := All()
	if len(list) < 30 {
		t.Fatalf("%d jokes, want at least 30", len(list))
	}
	seen := map[string]bool{}
	multiLine := 0
	for _, j := range list {
		if strings.TrimSpace(j) == "" || strings.HasPrefix(j, "#") {
			t.Errorf("bad joke %q", j)
		}
		if seen[j] {
			t.Errorf("duplicate joke %q", j)
		}
		seen[j] = true
		if strings.Contains(j, "\n") {
			multiLine++
		}
	}
	// Multi-line jokes exercise the data-line splitting end to end.
	if multiLine == 0 {
		t.Error("no multi-line joke")
	}
}

func TestParse(t *testing.T) {
	got := parse("# comment\n\none\n\n\ntwo a\ntwo b  \r\n# inner comment\n\nthree")
	want := []string{"one", "two a\ntwo b", "three"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("parse = %q, want %q", got, want)
	}
}

func TestCycle(t *testing.T) {
	next := Cycle([]string{"a", "b"})
	var got []string
	for range 5 {
		got = append(got, next())
	}
	if strings.Join(got, "") != "ababa" {
		t.Errorf("cycle = %v", got)
	}
}
