package mercure

import (
	"errors"
	"strings"
	"testing"
)

func TestSelectorMatch(t *testing.T) {
	tests := []struct {
		selector, topic string
		want            bool
	}{
		{"*", "https://example.com/books/1", true},
		{"https://example.com/books/1", "https://example.com/books/1", true},
		{"https://example.com/books/1", "https://example.com/books/2", false},
		{"https://example.com/books/{id}", "https://example.com/books/1", true},
		{"https://example.com/books/{id}", "https://example.com/books/1/reviews", false},
		{"https://example.com/books/{id}", "https://example.com/books/", true},
		{"https://example.com/books/{id}", "https://example.com/books/{id}", true}, // its own text
		{"https://example.com/{+path}", "https://example.com/a/b/c", true},         // level 2
		{"https://example.com/books{/id}", "https://example.com/books/7", true},    // level 3
		{"https://example.com/books{?page}", "https://example.com/books?page=2", true},
		{"https://example.com/{a,b}", "https://example.com/x,y", true},
		{"https://example.com/{id:2}", "https://example.com/12", true},   // level 4 prefix
		{"https://example.com/{list*}", "https://example.com/a,b", true}, // level 4 explode
		{"urn:example:a", "urn:example:b", false},
	}
	for _, tt := range tests {
		s, err := ParseSelector(tt.selector)
		if err != nil {
			t.Fatalf("ParseSelector(%q): %v", tt.selector, err)
		}
		if got := s.Match(tt.topic); got != tt.want {
			t.Errorf("%q matches %q = %v, want %v", tt.selector, tt.topic, got, tt.want)
		}
	}
}

func TestInvalidSelectors(t *testing.T) {
	tests := []struct{ name, selector string }{
		{"empty", ""},
		{"unclosed template", "https://example.com/{id"},
		{"stray close", "https://example.com/id}"},
		{"bad operator", "https://example.com/{!id}"},
		{"bad varname", "https://example.com/{i d}"},
		{"too long", "https://example.com/" + strings.Repeat("a", MaxSelectorLen)},
		{"too many expressions", strings.Repeat("{a}", MaxTemplateExpressions+1)},
		{"prefix out of range", "https://example.com/{id:10000}"},
		{"newline", "https://example.com/\nid"},
		{"NUL", "a\x00b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := ParseSelector(tt.selector); !errors.Is(err, ErrInvalidSelector) {
				t.Fatalf("ParseSelector(%.40q) = %v, want ErrInvalidSelector", tt.selector, err)
			}
		})
	}
}

func TestSelectors(t *testing.T) {
	set, err := ParseSelectors([]string{"urn:a", "https://example.com/books/{id}"}, 2)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		topics   []string
		any, all bool
	}{
		{[]string{"urn:a"}, true, true},
		{[]string{"urn:b"}, false, false},
		{[]string{"urn:b", "https://example.com/books/3"}, true, false},
		{[]string{"urn:a", "https://example.com/books/3"}, true, true},
		{nil, false, false},
	}
	for _, tt := range tests {
		if got := set.MatchAny(tt.topics); got != tt.any {
			t.Errorf("MatchAny(%q) = %v, want %v", tt.topics, got, tt.any)
		}
		if got := set.MatchAll(tt.topics); got != tt.all {
			t.Errorf("MatchAll(%q) = %v, want %v", tt.topics, got, tt.all)
		}
	}
	if set.ExactOnly() {
		t.Error("a set with a template is not exact only")
	}
	if _, err := ParseSelectors([]string{"a", "b", "c"}, 2); !errors.Is(err, ErrInvalidSelector) {
		t.Errorf("three selectors with a bound of two: %v, want ErrInvalidSelector", err)
	}
	var none *Selectors
	if none.Match("urn:a") {
		t.Error("a nil set matches nothing")
	}
}
