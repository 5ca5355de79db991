// Package extract takes values out of SSE event data into a stream's dynamic
// metadata: the token counts an LLM API puts in its last chunk (OpenAI's
// usage.total_tokens, Anthropic's message_delta usage.output_tokens), for
// access logs, cost and token-based rate limits. Rules are part of the
// policy (internal/policy, field "extract"); every adapter applies them
// through internal/ssestream, and the dynamic module's C body hook runs the
// same cheap test (Rules.Match) before it hands an event to Go.
//
// Reading event data must never cost a stream: an event is JSON-parsed only
// if its type matches a rule and its data contains the quoted last key of
// the rule's path (OpenAI's closing "[DONE]" never does); an event longer
// than MaxEventBytes is skipped, not parsed; bad JSON is counted, never an
// error of the stream.
package extract

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Limits on a configuration; MaxRules also sizes the C body hook's mask.
const (
	MaxRules             = 8
	DefaultMaxEventBytes = 16 << 10
	MaxMaxEventBytes     = 1 << 20
	// MaxEventTypeBytes bounds a rule's event type; the scanners keep event
	// types up to the line limit, which is longer.
	MaxEventTypeBytes = 64
)

// Config is the "extract" field of the policy.
type Config struct {
	// Paths are the request path prefixes whose streams are read ("/v1/");
	// unset, every stream's. A stream the rules do not apply to keeps
	// nothing of its events and parses nothing: an ordinary SSE stream
	// pays no more for the rules than for their absence.
	Paths []string `json:"paths,omitempty"`
	// MaxEventBytes bounds the data of an event a stream reads: a longer
	// one is skipped. It also bounds the bytes of a line the stream holds
	// across body chunks. Default DefaultMaxEventBytes.
	MaxEventBytes *int   `json:"max_event_bytes,omitempty"`
	Rules         []Rule `json:"rules,omitempty"`
}

// Rule says where a value is and where it goes.
type Rule struct {
	// Event is the event type the value comes in ("message" for events
	// without an event field, as OpenAI sends them); "" matches any type.
	Event string `json:"event,omitempty"`
	// Path is the value's place in the event's JSON data: object keys and
	// array indexes separated by dots ("usage.total_tokens",
	// "choices.0.finish_reason").
	Path string `json:"path"`
	// Key is the dynamic metadata key the value is written under, in the
	// stream's namespace.
	Key string `json:"key"`
	// Type is "number" (the default) or "string".
	Type string `json:"type,omitempty"`
	// Wins is "last" (the default: a later event's value replaces an
	// earlier one) or "first".
	Wins string `json:"wins,omitempty"`
}

// Rules are compiled rules; nil has none. They are immutable and shared by
// every stream of a configuration.
type Rules struct {
	rules         []rule
	paths         []string
	maxEventBytes int
}

type rule struct {
	event  []byte
	path   []string
	key    string
	str    bool
	first  bool
	needle []byte
}

// Compile validates cfg; every error names its field under "extract".
// reserved reports metadata keys that are taken (the stream's own).
func Compile(cfg *Config, reserved func(key string) bool) (*Rules, []error) {
	if cfg == nil {
		return nil, nil
	}
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("extract.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	r := &Rules{maxEventBytes: DefaultMaxEventBytes}
	if cfg.MaxEventBytes != nil {
		r.maxEventBytes = *cfg.MaxEventBytes
		if r.maxEventBytes < 64 || r.maxEventBytes > MaxMaxEventBytes {
			fail("max_event_bytes", "%d is out of range: 64 to %d", r.maxEventBytes, MaxMaxEventBytes)
		}
	}
	for i, prefix := range cfg.Paths {
		if !strings.HasPrefix(prefix, "/") {
			fail(fmt.Sprintf("paths[%d]", i), "%q must start with /", prefix)
		}
	}
	r.paths = cfg.Paths
	if len(cfg.Rules) > MaxRules {
		fail("rules", "%d rules: at most %d", len(cfg.Rules), MaxRules)
	}
	keys := map[string]bool{}
	for i, c := range cfg.Rules {
		field := fmt.Sprintf("rules[%d]", i)
		ru := rule{event: []byte(c.Event), key: c.Key}
		if len(c.Event) > MaxEventTypeBytes || strings.ContainsAny(c.Event, "\r\n\x00") {
			fail(field+".event", "%q: an event type of at most %d bytes, on one line", c.Event, MaxEventTypeBytes)
		}
		path, needle, err := parsePath(c.Path)
		if err != nil {
			fail(field+".path", "%q: %v", c.Path, err)
		}
		ru.path, ru.needle = path, needle
		switch {
		case !validKey(c.Key):
			fail(field+".key", "%q: a metadata key of letters, digits and _ (1 to 64)", c.Key)
		case reserved != nil && reserved(c.Key):
			fail(field+".key", "%q is one of the stream's own metadata keys", c.Key)
		case keys[c.Key]:
			fail(field+".key", "%q is written by another rule", c.Key)
		}
		keys[c.Key] = true
		switch c.Type {
		case "", "number":
		case "string":
			ru.str = true
		default:
			fail(field+".type", "%q: number or string", c.Type)
		}
		switch c.Wins {
		case "", "last":
		case "first":
			ru.first = true
		default:
			fail(field+".wins", "%q: first or last", c.Wins)
		}
		r.rules = append(r.rules, ru)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	if len(r.rules) == 0 {
		return nil, nil
	}
	return r, nil
}

func parsePath(p string) (path []string, needle []byte, err error) {
	if p == "" {
		return nil, nil, fmt.Errorf("empty")
	}
	path = strings.Split(p, ".")
	last := ""
	for _, seg := range path {
		if seg == "" {
			return nil, nil, fmt.Errorf("an empty segment")
		}
		if _, err := strconv.Atoi(seg); err != nil {
			last = seg
		}
	}
	if last == "" {
		return nil, nil, fmt.Errorf("no object key: the cheap test looks for the last one")
	}
	// A key as JSON writes it; a key needing escapes would be written
	// otherwise, so it is refused rather than never matched.
	q, _ := json.Marshal(last)
	if string(q) != `"`+last+`"` {
		return nil, nil, fmt.Errorf("key %q needs escaping in JSON", last)
	}
	return path, q, nil
}

func validKey(k string) bool {
	if k == "" || len(k) > 64 {
		return false
	}
	for _, c := range []byte(k) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// AppliesTo reports whether a stream whose request path is path is read
// (p: the path as the request has it, query included); false for nil
// rules.
func (r *Rules) AppliesTo(path string) bool {
	if r == nil {
		return false
	}
	if len(r.paths) == 0 {
		return true
	}
	for _, prefix := range r.paths {
		if strings.HasPrefix(path, prefix) {
			return true
		}
	}
	return false
}

// Len is the number of rules.
func (r *Rules) Len() int {
	if r == nil {
		return 0
	}
	return len(r.rules)
}

// MaxEventBytes bounds the event data a stream reads (0: no rules).
func (r *Rules) MaxEventBytes() int {
	if r == nil {
		return 0
	}
	return r.maxEventBytes
}

// Needle is rule i's cheap test: the quoted last key of its path.
func (r *Rules) Needle(i int) []byte { return r.rules[i].needle }

// Event is rule i's event type, "" for any.
func (r *Rules) Event(i int) []byte { return r.rules[i].event }

// Key is rule i's metadata key.
func (r *Rules) Key(i int) string { return r.rules[i].key }

// Done is the data OpenAI's streams end with: an end marker, not JSON.
var Done = []byte("[DONE]")

// Match is the cheap test: a mask of the rules whose event type matches and
// whose needle data contains. Only a matched event is parsed.
func (r *Rules) Match(eventType, data []byte) uint32 {
	if r == nil || bytes.Equal(data, Done) {
		return 0
	}
	var mask uint32
	for i := range r.rules {
		ru := &r.rules[i]
		if len(ru.event) > 0 && !bytes.Equal(ru.event, eventType) {
			continue
		}
		if bytes.Contains(data, ru.needle) {
			mask |= 1 << i
		}
	}
	return mask
}

// Values are what a stream's rules found, by rule.
type Values struct {
	values [MaxRules]any
	// Errors counts matched events that were not JSON, and values of
	// another type than their rule's.
	Errors uint64
	// Skipped counts events longer than MaxEventBytes.
	Skipped uint64
}

// Value is rule i's value: float64 or string; nil if none was found.
func (v *Values) Value(i int) any { return v.values[i] }

// Apply parses data (an event that passed Match with mask) and keeps each
// matched rule's value as its Wins says. set is called with each value
// kept, under its rule's key; it may be nil.
func (r *Rules) Apply(v *Values, mask uint32, data []byte, set func(key string, value any)) {
	if mask == 0 {
		return
	}
	var doc any
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil || dec.More() {
		v.Errors++
		return
	}
	for i := range r.rules {
		if mask&(1<<i) == 0 {
			continue
		}
		ru := &r.rules[i]
		if ru.first && v.values[i] != nil {
			continue
		}
		found, ok := lookup(doc, ru.path)
		if !ok {
			continue // not in this event: the needle was elsewhere
		}
		val, ok := convert(found, ru.str)
		if !ok {
			v.Errors++
			continue
		}
		v.values[i] = val
		if set != nil {
			set(ru.key, val)
		}
	}
}

func lookup(doc any, path []string) (any, bool) {
	for _, seg := range path {
		switch node := doc.(type) {
		case map[string]any:
			next, ok := node[seg]
			if !ok {
				return nil, false
			}
			doc = next
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(node) {
				return nil, false
			}
			doc = node[i]
		default:
			return nil, false
		}
	}
	// A null (OpenAI's "usage": null before the last chunk) is no value.
	return doc, doc != nil
}

func convert(v any, str bool) (any, bool) {
	switch x := v.(type) {
	case json.Number:
		if str {
			return x.String(), true
		}
		f, err := x.Float64()
		return f, err == nil
	case string:
		return x, str
	case bool:
		return strconv.FormatBool(x), str
	}
	return nil, false
}
