package mercure

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/yosida95/uritemplate/v3"
)

// Bounds on selectors. A template becomes a regular expression matched
// against every update's topics, so its size is what fan-out costs.
const (
	// MaxSelectorLen bounds one topic or selector, in bytes.
	MaxSelectorLen = 2048
	// MaxTemplateExpressions bounds the {...} expressions of one template.
	MaxTemplateExpressions = 16
)

// ErrInvalidSelector is wrapped by every selector parsing error.
var ErrInvalidSelector = errors.New("invalid topic selector")

// Selector is one parsed topic selector: "*", a URI template (RFC 6570,
// levels 1 to 4) or an exact topic.
type Selector struct {
	raw string
	all bool
	re  *regexp.Regexp // nil for an exact topic and for "*"
}

// ParseSelector parses s once; matching then costs no parsing.
func ParseSelector(s string) (Selector, error) {
	if err := checkTopic(s); err != nil {
		return Selector{}, fmt.Errorf("%w %.64q: %w", ErrInvalidSelector, s, err)
	}
	if s == "*" {
		return Selector{raw: s, all: true}, nil
	}
	if !strings.ContainsAny(s, "{}") {
		return Selector{raw: s}, nil
	}
	if n := strings.Count(s, "{"); n > MaxTemplateExpressions {
		return Selector{}, fmt.Errorf("%w %.64q: %d template expressions, at most %d", ErrInvalidSelector, s, n, MaxTemplateExpressions)
	}
	re, err := compileTemplate(s)
	if err != nil {
		return Selector{}, fmt.Errorf("%w %.64q: %w", ErrInvalidSelector, s, err)
	}
	return Selector{raw: s, re: re}, nil
}

// compileTemplate turns a URI template into the regular expression of the
// URIs it can expand to (Go's regexp: linear in the topic's length). The
// library's expression treats a prefix modifier ({id:2}) like the plain
// variable, so such a selector matches longer values too. The recover is
// there because the library compiles with MustCompile: an expression the
// regexp package refuses is bad input, not a crash.
func compileTemplate(s string) (re *regexp.Regexp, err error) {
	tpl, err := uritemplate.New(s)
	if err != nil {
		return nil, fmt.Errorf("URI template: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			re, err = nil, fmt.Errorf("URI template too complex: %v", r)
		}
	}()
	return tpl.Regexp(), nil
}

// checkTopic is what every topic and selector must be: not empty, bounded,
// and free of the characters that would end an SSE line or a log line.
func checkTopic(s string) error {
	switch {
	case s == "":
		return errors.New("empty")
	case len(s) > MaxSelectorLen:
		return fmt.Errorf("%d bytes, at most %d", len(s), MaxSelectorLen)
	case strings.ContainsAny(s, "\r\n\x00"):
		return errors.New("contains CR, LF or NUL")
	}
	return nil
}

// String is the selector as given.
func (s Selector) String() string { return s.raw }

// Exact reports whether s matches one topic only (itself).
func (s Selector) Exact() bool { return !s.all && s.re == nil }

// Match reports whether topic matches s. A template also matches its own
// text, so a topic that happens to contain braces can still be followed.
func (s Selector) Match(topic string) bool {
	switch {
	case s.all:
		return true
	case topic == s.raw:
		return true
	case s.re != nil:
		return s.re.MatchString(topic)
	}
	return false
}

// Selectors is a parsed set of selectors: a subscription's topics, or the
// topics a JWT grants. Exact topics are looked up in a map, so only
// templates and "*" cost a scan.
type Selectors struct {
	exact    map[string]struct{}
	patterns []Selector
	all      bool
	raw      []string
}

// ParseSelectors parses every selector in raw; at most max of them (max
// <= 0: no limit). The first invalid one is the error.
func ParseSelectors(raw []string, max int) (*Selectors, error) {
	if max > 0 && len(raw) > max {
		return nil, fmt.Errorf("%w: %d selectors, at most %d", ErrInvalidSelector, len(raw), max)
	}
	set := &Selectors{exact: make(map[string]struct{}, len(raw)), raw: raw}
	for _, r := range raw {
		s, err := ParseSelector(r)
		if err != nil {
			return nil, err
		}
		switch {
		case s.all:
			set.all = true
		case s.Exact():
			set.exact[r] = struct{}{}
		default:
			set.patterns = append(set.patterns, s)
		}
	}
	return set, nil
}

// Strings are the selectors as given.
func (s *Selectors) Strings() []string {
	if s == nil {
		return nil
	}
	return s.raw
}

// ExactOnly reports whether every selector is an exact topic, so that an
// index of exact topics finds every update s matches.
func (s *Selectors) ExactOnly() bool { return s != nil && !s.all && len(s.patterns) == 0 }

// ExactTopics are the exact topics of s.
func (s *Selectors) ExactTopics() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.exact))
	for t := range s.exact {
		out = append(out, t)
	}
	return out
}

// Match reports whether one selector matches topic. A nil set matches
// nothing.
func (s *Selectors) Match(topic string) bool {
	if s == nil {
		return false
	}
	if s.all {
		return true
	}
	if _, ok := s.exact[topic]; ok {
		return true
	}
	for _, p := range s.patterns {
		if p.Match(topic) {
			return true
		}
	}
	return false
}

// MatchAny reports whether one of topics matches s.
func (s *Selectors) MatchAny(topics []string) bool {
	for _, t := range topics {
		if s.Match(t) {
			return true
		}
	}
	return false
}

// MatchAll reports whether every one of topics matches s (and there is
// at least one).
func (s *Selectors) MatchAll(topics []string) bool {
	if len(topics) == 0 {
		return false
	}
	for _, t := range topics {
		if !s.Match(t) {
			return false
		}
	}
	return true
}
