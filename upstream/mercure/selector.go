package mercure

import (
	"container/list"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

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
func ParseSelector(s string) (Selector, error) { return parseSelector(s, nil) }

func parseSelector(s string, cache *TemplateCache) (Selector, error) {
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
	re, err := cache.compile(s)
	if err != nil {
		return Selector{}, fmt.Errorf("%w %.64q: %w", ErrInvalidSelector, s, err)
	}
	return Selector{raw: s, re: re}, nil
}

// TemplateCache shares compiled templates between equal selectors: a
// template costs about 1.3 KiB plus 1 KiB per expression once compiled, and
// many subscribers follow the same few templates. It keeps the most
// recently used ones, at most its size; a nil cache compiles every time.
// It is safe for concurrent use (a compiled regexp is).
type TemplateCache struct {
	size int

	mu    sync.Mutex
	byRaw map[string]*list.Element
	lru   list.List // of *cachedTemplate, most recent first
}

type cachedTemplate struct {
	raw string
	re  *regexp.Regexp
}

// DefaultTemplateCache is the size of a hub's template cache: at the worst
// (every entry a template at MaxTemplateExpressions) about 18 MiB.
const DefaultTemplateCache = 1024

// NewTemplateCache keeps up to size compiled templates (DefaultTemplateCache
// if size <= 0).
func NewTemplateCache(size int) *TemplateCache {
	if size <= 0 {
		size = DefaultTemplateCache
	}
	return &TemplateCache{size: size, byRaw: make(map[string]*list.Element)}
}

// Len is how many compiled templates the cache holds.
func (c *TemplateCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func (c *TemplateCache) compile(s string) (*regexp.Regexp, error) {
	if c == nil {
		return compileTemplate(s)
	}
	c.mu.Lock()
	if e, ok := c.byRaw[s]; ok {
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*cachedTemplate).re, nil
	}
	c.mu.Unlock()
	// Compiled outside the lock: a slow template does not hold up the
	// others. Two subscribers racing on a new one both compile it; the
	// first stored wins.
	re, err := compileTemplate(s)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byRaw[s]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cachedTemplate).re, nil
	}
	c.byRaw[s] = c.lru.PushFront(&cachedTemplate{raw: s, re: re})
	if c.lru.Len() > c.size {
		oldest := c.lru.Back()
		c.lru.Remove(oldest)
		delete(c.byRaw, oldest.Value.(*cachedTemplate).raw)
	}
	return re, nil
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
	return parseSelectors(raw, nil)
}

// Budget is what one subscription may ask for. A template becomes a
// compiled regular expression held for the subscription's life and matched
// against every update, so its expressions are what a subscription costs;
// the bounds keep the worst subscription allowed within a few tens of KiB
// (BenchmarkWorstSubscription) however many selectors it names.
type Budget struct {
	// Selectors bounds how many topic selectors a subscription names.
	Selectors int
	// Bytes bounds the selectors' total length.
	Bytes int
	// TemplateBytes bounds the total length of its templates (each byte is
	// compiled), Expressions their expressions ({...}) all together.
	TemplateBytes, Expressions int
}

// BudgetError is a subscription past its Budget: Limit names the bound
// (selectors, selector bytes or template expressions).
type BudgetError struct {
	Limit    string
	Got, Max int
}

func (e *BudgetError) Error() string {
	return fmt.Sprintf("subscription over its budget: %d %s, at most %d", e.Got, e.Limit, e.Max)
}

// Check counts what raw asks for against b, before anything is compiled.
func (b Budget) Check(raw []string) error {
	bytes, tplBytes, exprs := measure(raw)
	switch {
	case b.Selectors > 0 && len(raw) > b.Selectors:
		return &BudgetError{Limit: "selectors", Got: len(raw), Max: b.Selectors}
	case b.Bytes > 0 && bytes > b.Bytes:
		return &BudgetError{Limit: "selector bytes", Got: bytes, Max: b.Bytes}
	case b.TemplateBytes > 0 && tplBytes > b.TemplateBytes:
		return &BudgetError{Limit: "template bytes", Got: tplBytes, Max: b.TemplateBytes}
	case b.Expressions > 0 && exprs > b.Expressions:
		return &BudgetError{Limit: "template expressions", Got: exprs, Max: b.Expressions}
	}
	return nil
}

// measure is what raw asks for, as Budget counts it.
func measure(raw []string) (bytes, tplBytes, exprs int) {
	for _, r := range raw {
		bytes += len(r)
		if n := strings.Count(r, "{"); n > 0 {
			tplBytes += len(r)
			exprs += n
		}
	}
	return bytes, tplBytes, exprs
}

// ParseSubscription parses a subscription's selectors within b, compiling
// templates through the cache (which may be nil). Past the budget the
// error is a *BudgetError and nothing was compiled.
func (c *TemplateCache) ParseSubscription(raw []string, b Budget) (*Selectors, error) {
	if err := b.Check(raw); err != nil {
		return nil, err
	}
	return parseSelectors(raw, c)
}

func parseSelectors(raw []string, cache *TemplateCache) (*Selectors, error) {
	set := &Selectors{exact: make(map[string]struct{}, len(raw)), raw: raw}
	for _, r := range raw {
		s, err := parseSelector(r, cache)
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

// All reports whether s has "*": it matches every topic.
func (s *Selectors) All() bool { return s != nil && s.all }

// Len is how many selectors s has.
func (s *Selectors) Len() int {
	if s == nil {
		return 0
	}
	return len(s.raw)
}

// TemplatePrefixes are the literal beginnings of s's templates (the text
// before the first expression), each once: a topic a template matches
// starts with its prefix, so an index by prefix finds the templates worth
// matching against a topic.
func (s *Selectors) TemplatePrefixes() []string {
	if s == nil {
		return nil
	}
	var out []string
	for _, p := range s.patterns {
		pre, _, _ := strings.Cut(p.raw, "{")
		if !slices.Contains(out, pre) {
			out = append(out, pre)
		}
	}
	return out
}

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
