package policy

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// originMatcher answers "may this origin read our responses?" in O(1) for
// exact origins and O(patterns) for wildcard sub-domain patterns.
type originMatcher struct {
	any      bool
	exact    map[string]struct{}
	patterns []originPattern
}

// originPattern is "scheme://*.suffix[:port]": one or more labels in front
// of suffix, never suffix itself.
type originPattern struct {
	scheme string
	suffix string // ".example.com"
	port   string
}

func (m *originMatcher) allows(origin string) bool {
	if m.any {
		return true
	}
	if _, ok := m.exact[origin]; ok {
		return true
	}
	if len(m.patterns) == 0 {
		return false
	}
	scheme, host, port, ok := splitOrigin(origin)
	if !ok {
		return false
	}
	for _, p := range m.patterns {
		if p.scheme == scheme && p.port == port && len(host) > len(p.suffix) &&
			strings.HasSuffix(host, p.suffix) && validHostname(host) {
			return true
		}
	}
	return false
}

// splitOrigin splits a serialized origin as browsers send it
// (scheme "://" host [":" port]); it does not allocate.
func splitOrigin(origin string) (scheme, host, port string, ok bool) {
	scheme, rest, ok := strings.Cut(origin, "://")
	if !ok || rest == "" {
		return "", "", "", false
	}
	host = rest
	if i := strings.LastIndexByte(rest, ':'); i >= 0 && !strings.HasSuffix(rest, "]") {
		host, port = rest[:i], rest[i+1:]
	}
	return scheme, host, port, true
}

// parseAllowedOrigin validates one allowed_origins entry and returns it in
// the form browsers serialize origins in.
func parseAllowedOrigin(raw string) (normalized string, pattern *originPattern, err error) {
	if raw == "null" {
		return "", nil, fmt.Errorf(`"null" is the origin of sandboxed and file: documents; allowing it allows any of them`)
	}
	if strings.TrimSpace(raw) != raw || raw == "" {
		return "", nil, fmt.Errorf("%q has surrounding space or is empty", raw)
	}
	wildcard := strings.Contains(raw, "://*.")
	parseable := raw
	if wildcard {
		parseable = strings.Replace(raw, "://*.", "://wildcard.", 1)
	}
	if strings.Contains(parseable, "*") {
		return "", nil, fmt.Errorf("%q: a wildcard is only allowed as the whole left-most label, as in https://*.example.com", raw)
	}
	u, err := url.Parse(parseable)
	if err != nil {
		return "", nil, fmt.Errorf("%q is not an origin: %w", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", nil, fmt.Errorf("%q: the scheme must be http or https", raw)
	case u.Host == "" || u.Opaque != "":
		return "", nil, fmt.Errorf("%q: want scheme://host[:port]", raw)
	case u.User != nil, u.Path != "", u.RawQuery != "", u.Fragment != "", strings.HasSuffix(raw, "?"), strings.HasSuffix(raw, "#"):
		return "", nil, fmt.Errorf("%q: an origin has no user, path, query or fragment (not even a trailing /)", raw)
	}
	host, port := strings.ToLower(u.Hostname()), u.Port()
	if (u.Scheme == "https" && port == "443") || (u.Scheme == "http" && port == "80") {
		return "", nil, fmt.Errorf("%q: browsers omit the default port %s from Origin, so this never matches; drop it", raw, port)
	}
	if port != "" && strings.TrimLeft(port, "0123456789") != "" {
		return "", nil, fmt.Errorf("%q: invalid port", raw)
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		return "", nil, fmt.Errorf("%q: invalid host name", raw)
	}
	hostport := host
	if strings.Contains(host, ":") {
		hostport = "[" + host + "]"
	}
	if port != "" {
		hostport += ":" + port
	}
	normalized = u.Scheme + "://" + hostport
	if wildcard {
		suffix := strings.TrimPrefix(host, "wildcard")
		if !strings.Contains(suffix[1:], ".") {
			return "", nil, fmt.Errorf("%q: a wildcard must sit under a registrable domain (at least two labels after *.)", raw)
		}
		return strings.Replace(normalized, "://wildcard.", "://*.", 1), &originPattern{scheme: u.Scheme, suffix: suffix, port: port}, nil
	}
	return normalized, nil, nil
}

func validHostname(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return false
			}
		}
	}
	return true
}
