package policy

import (
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"

	"example.com/sse-on-envoy/internal/extract"
)

// Level is the severity of a log line: slog's levels, so slog-based adapters
// use it as it is and others map four values.
type Level = slog.Level

const (
	LevelDebug = slog.LevelDebug
	LevelInfo  = slog.LevelInfo
	LevelWarn  = slog.LevelWarn
	LevelError = slog.LevelError
)

// Policy is a validated, compiled Config. It is immutable and safe to share
// between streams and threads.
type Policy struct {
	origins        originMatcher
	fallbackOrigin string
	credentials    bool
	lists          corsLists
	paths          []pathLists // longest prefix first
	maxAge         string
	cacheControl   string
	tagHeader      string
	logLevel       Level
	redactParams   []string
	extract        *extract.Rules
}

// New validates cfg and compiles it. Every problem is reported, each naming
// its field, so a user fixes a config in one go.
func New(cfg *Config) (*Policy, error) {
	if cfg == nil {
		cfg = &Config{}
	}
	var errs []error
	fail := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	p := &Policy{
		credentials:  valueOr(cfg.AllowCredentials, true),
		cacheControl: valueOr(cfg.CacheControl, DefaultCacheControl),
		tagHeader:    valueOr(cfg.TagHeader, DefaultTagHeader),
		origins:      originMatcher{exact: map[string]struct{}{}},
	}

	origins := cfg.AllowedOrigins
	if origins == nil {
		origins = DefaultAllowedOrigins
	}
	if len(origins) == 0 {
		fail("allowed_origins", "empty: list at least one origin (or omit the field for the default %q)", DefaultAllowedOrigins)
	}
	firstExact := ""
	for i, raw := range origins {
		field := fmt.Sprintf("allowed_origins[%d]", i)
		if raw == "*" {
			if p.credentials {
				fail(field, `"*" cannot be combined with allow_credentials: true (browsers reject credentialed responses for any origin); list the origins, or set allow_credentials: false`)
			}
			p.origins.any = true
			continue
		}
		origin, pattern, err := parseAllowedOrigin(raw)
		if err != nil {
			fail(field, "%v", err)
			continue
		}
		if pattern != nil {
			p.origins.patterns = append(p.origins.patterns, *pattern)
			continue
		}
		p.origins.exact[origin] = struct{}{}
		if firstExact == "" {
			firstExact = origin
		}
	}

	p.fallbackOrigin = firstExact
	if cfg.FallbackOrigin != nil {
		p.fallbackOrigin = *cfg.FallbackOrigin
		if p.fallbackOrigin != "" {
			if _, ok := p.origins.exact[p.fallbackOrigin]; !ok {
				fail("fallback_origin", "%q is not one of the exact allowed_origins", p.fallbackOrigin)
			}
		}
	}

	if cfg.AllowedMethods != nil && len(cfg.AllowedMethods) == 0 {
		fail("allowed_methods", "empty: list at least one method (or omit the field for the default %q)", DefaultAllowedMethods)
	}
	p.lists = corsLists{
		methods: joinTokens("allowed_methods", valueOrList(cfg.AllowedMethods, DefaultAllowedMethods), ", ", fail),
		headers: joinTokens("allowed_headers", valueOrList(cfg.AllowedHeaders, DefaultAllowedHeaders), ",", fail),
		exposed: joinTokens("exposed_headers", cfg.ExposedHeaders, ",", fail),
	}
	seen := map[string]bool{}
	for i, pc := range cfg.Paths {
		field := fmt.Sprintf("paths[%d]", i)
		switch {
		case !strings.HasPrefix(pc.Prefix, "/"):
			fail(field+".prefix", "%q must start with /", pc.Prefix)
		case seen[pc.Prefix]:
			fail(field+".prefix", "%q is listed twice", pc.Prefix)
		}
		seen[pc.Prefix] = true
		if pc.AllowedMethods != nil && len(pc.AllowedMethods) == 0 {
			fail(field+".allowed_methods", "empty: list at least one method (or omit the field for allowed_methods)")
		}
		l := p.lists
		if pc.AllowedMethods != nil {
			l.methods = joinTokens(field+".allowed_methods", pc.AllowedMethods, ", ", fail)
		}
		if pc.AllowedHeaders != nil {
			l.headers = joinTokens(field+".allowed_headers", pc.AllowedHeaders, ",", fail)
		}
		if pc.ExposedHeaders != nil {
			l.exposed = joinTokens(field+".exposed_headers", pc.ExposedHeaders, ",", fail)
		}
		p.paths = append(p.paths, pathLists{prefix: pc.Prefix, lists: l})
	}
	slices.SortStableFunc(p.paths, func(a, b pathLists) int { return len(b.prefix) - len(a.prefix) })

	maxAge := valueOr(cfg.MaxAge, DefaultMaxAge)
	if d, err := time.ParseDuration(maxAge); err != nil {
		fail("max_age", "%q is not a duration such as \"10m\" or \"600s\"", maxAge)
	} else if d < 0 || d > 24*time.Hour || d%time.Second != 0 {
		fail("max_age", "%q must be whole seconds between 0s and 24h", maxAge)
	} else {
		p.maxAge = strconv.FormatInt(int64(d/time.Second), 10)
	}

	if p.cacheControl == "" || !validHeaderValue(p.cacheControl) {
		fail("cache_control", "%q is not a valid non-empty header value", p.cacheControl)
	}
	if p.tagHeader != "" {
		if !isToken(p.tagHeader) {
			fail("tag_header", "%q is not a valid header name", p.tagHeader)
		}
		p.tagHeader = strings.ToLower(p.tagHeader)
	}

	switch level := valueOr(cfg.StreamLogLevel, DefaultStreamLogLevel); level {
	case "debug":
		p.logLevel = LevelDebug
	case "info":
		p.logLevel = LevelInfo
	case "warn":
		p.logLevel = LevelWarn
	case "error":
		p.logLevel = LevelError
	default:
		fail("stream_log_level", "%q is not one of debug, info, warn, error", level)
	}

	redacted := map[string]bool{}
	for i, name := range cfg.RedactQueryParams {
		field := fmt.Sprintf("redact_query_params[%d]", i)
		switch lower := strings.ToLower(name); {
		case !isParamName(name):
			fail(field, "%q is not a query parameter name: letters, digits and - . _ ~ only, written unescaped", name)
		case redacted[lower]:
			fail(field, "%q is listed twice (names match in any case)", name)
		default:
			redacted[lower] = true
			p.redactParams = append(p.redactParams, name)
		}
	}

	var extractErrs []error
	p.extract, extractErrs = extract.Compile(cfg.Extract, IsBuiltinMetadataKey)
	errs = append(errs, extractErrs...)

	if len(errs) > 0 {
		return nil, fmt.Errorf("invalid sse config: %w", errors.Join(errs...))
	}
	return p, nil
}

// corsLists are the allowed methods, allowed headers and exposed headers as
// their header values.
type corsLists struct{ methods, headers, exposed string }

type pathLists struct {
	prefix string
	lists  corsLists
}

// listsFor picks the lists of the longest prefix path starts with.
func (p *Policy) listsFor(path string) *corsLists {
	for i := range p.paths {
		if strings.HasPrefix(path, p.paths[i].prefix) {
			return &p.paths[i].lists
		}
	}
	return &p.lists
}

// StreamLogLevel is the level of the stream opened/closed lines.
func (p *Policy) StreamLogLevel() Level { return p.logLevel }

// TagHeader is the lower-case name of the tag header, "" when off.
func (p *Policy) TagHeader() string { return p.tagHeader }

// RedactQueryParams are the query parameters whose values log lines print
// as redacted, as configured (none by default). Callers must not modify it.
func (p *Policy) RedactQueryParams() []string { return p.redactParams }

// Extract is the rules that take values out of event data; nil: none.
func (p *Policy) Extract() *extract.Rules { return p.extract }

// Header is one response header.
type Header struct{ Key, Value string }

// Reply is a response the adapter sends itself instead of forwarding the
// request upstream.
type Reply struct {
	Status  int
	Headers []Header
	Body    string
	// Details goes to Envoy's %RESPONSE_CODE_DETAILS%.
	Details string
}

// Decision is what the policy decided from the request headers; the response
// step needs it.
type Decision struct {
	// Reply, when set, answers the request (a preflight) without the upstream.
	Reply *Reply
	// AllowOrigin is the access-control-allow-origin value for the response,
	// "" for none.
	AllowOrigin string
	// Origin is the request's Origin header ("" when absent).
	Origin string
	// Preflight and RejectedOrigin are for stats and logs.
	Preflight      bool
	RejectedOrigin bool
	// lists are the CORS lists of the request's path; nil: the policy's own.
	lists *corsLists
}

// Request is what the policy reads of a request.
type Request struct {
	Method string
	// Origin and HasOrigin: an empty Origin header is not a missing one.
	Origin    string
	HasOrigin bool
	// AccessControlRequestMethod is the access-control-request-method header.
	AccessControlRequestMethod string
	// Path is the request's :path; it picks the CORS lists (Config.Paths).
	Path string
}

// Decide applies CORS to a request. A preflight (OPTIONS with Origin and a
// non-empty Access-Control-Request-Method) is always answered here: allowed
// with 204 and the CORS headers, refused with 403 and none, so preflights
// never reach the upstream.
func (p *Policy) Decide(req Request) Decision {
	lists := p.listsFor(req.Path)
	if !req.HasOrigin {
		return Decision{AllowOrigin: p.fallbackOrigin, lists: lists}
	}
	d := Decision{Origin: req.Origin, lists: lists}
	allowed := p.origins.allows(req.Origin)
	if allowed {
		d.AllowOrigin = req.Origin
	} else {
		d.RejectedOrigin = true
	}
	if req.Method != "OPTIONS" || req.AccessControlRequestMethod == "" {
		return d
	}
	d.Preflight = true
	if !allowed {
		d.Reply = &Reply{
			Status:  403,
			Headers: []Header{{"content-type", "text/plain; charset=utf-8"}, {"vary", "Origin"}},
			Body:    "CORS preflight refused: origin not allowed\n",
			Details: "sse_cors_origin_not_allowed",
		}
		return d
	}
	headers := p.corsHeaders(lists, req.Origin, make([]Header, 0, 6))
	headers = append(headers, Header{"access-control-max-age", p.maxAge})
	d.Reply = &Reply{Status: 204, Headers: headers, Details: "sse_cors_preflight"}
	return d
}

func (p *Policy) corsHeaders(l *corsLists, origin string, dst []Header) []Header {
	dst = append(dst, Header{"access-control-allow-origin", origin})
	if p.credentials {
		dst = append(dst, Header{"access-control-allow-credentials", "true"})
	}
	if l.headers != "" {
		dst = append(dst, Header{"access-control-allow-headers", l.headers})
	}
	dst = append(dst,
		Header{"access-control-allow-methods", l.methods},
		Header{"vary", "Origin"},
	)
	return dst
}

// HeaderEditor is the part of a response header map the policy edits. Keys
// are lower case, as Envoy stores them.
type HeaderEditor interface {
	Get(key string) (string, bool)
	Set(key, value string)
	Del(key string)
}

// ApplyResponse sets the CORS headers the decision calls for and, on an SSE
// response, the stream headers. It reports whether the response is an SSE
// stream. It is idempotent, so a local reply that passes through the
// adapter's own response path comes out the same.
func (p *Policy) ApplyResponse(d Decision, h HeaderEditor) (isSSE bool) {
	lists := d.lists
	if lists == nil {
		lists = &p.lists
	}
	if d.AllowOrigin != "" {
		for _, kv := range p.corsHeaders(lists, d.AllowOrigin, make([]Header, 0, 5)) {
			if kv.Key == "vary" {
				addVaryOrigin(h)
				continue
			}
			h.Set(kv.Key, kv.Value)
		}
		if lists.exposed != "" {
			h.Set("access-control-expose-headers", lists.exposed)
		}
	} else {
		// The allow-list is the authority: an upstream's own grant must not
		// reach an origin the list refuses.
		RemoveGrant(h)
		if d.Origin != "" {
			addVaryOrigin(h)
		}
	}
	ct, _ := h.Get("content-type")
	if !IsEventStream(ct) {
		return false
	}
	h.Set("cache-control", p.cacheControl)
	// A stream has no length; a stray content-length would make Envoy and
	// clients cut it.
	h.Del("content-length")
	return true
}

// GrantHeaders are the response headers that let a page read a
// cross-origin answer: only the allow-list may grant that.
var GrantHeaders = [...]string{"access-control-allow-origin", "access-control-allow-credentials"}

// RemoveGrant deletes the GrantHeaders: what ApplyResponse does for a
// refused origin, and what an adapter does to response headers it failed to
// finish applying the policy to (fail closed for CORS, open for the rest).
func RemoveGrant(h interface{ Del(key string) }) {
	for _, k := range GrantHeaders {
		h.Del(k)
	}
}

// SetTag sets the tag header on an SSE response.
func (p *Policy) SetTag(h HeaderEditor, adapter string) {
	if p.tagHeader != "" {
		h.Set(p.tagHeader, adapter)
	}
}

// IsEventStream reports whether a content-type is text/event-stream,
// whatever its case and parameters.
func IsEventStream(contentType string) bool {
	const want = "text/event-stream"
	if len(contentType) < len(want) || !strings.EqualFold(contentType[:len(want)], want) {
		return false
	}
	if len(contentType) == len(want) {
		return true
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	return err == nil && mediaType == want
}

// addVaryOrigin adds Origin to Vary without repeating it, so caches keep one
// copy per origin.
func addVaryOrigin(h HeaderEditor) {
	v, ok := h.Get("vary")
	if !ok || strings.TrimSpace(v) == "" {
		h.Set("vary", "Origin")
		return
	}
	for token := range strings.SplitSeq(v, ",") {
		token = strings.TrimSpace(token)
		if strings.EqualFold(token, "origin") || token == "*" {
			return
		}
	}
	h.Set("vary", v+", Origin")
}

func joinTokens(field string, values []string, sep string, fail func(field, format string, args ...any)) string {
	for i, v := range values {
		if !isToken(v) {
			fail(fmt.Sprintf("%s[%d]", field, i), "%q is not a valid token", v)
		}
	}
	return strings.Join(values, sep)
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// isParamName: a query parameter name of URI unreserved characters (RFC
// 3986), which a client never needs to escape.
func isParamName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func valueOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

func valueOrList(v, def []string) []string {
	if v == nil {
		return def
	}
	return v
}
