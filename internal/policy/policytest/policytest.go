// Package policytest holds the test vectors every adapter's tests run: a
// request must get the same answer through the golang filter, the dynamic
// module and the ext_proc server, because all three only translate between
// Envoy and internal/policy.
package policytest

import "testing"

// AllowedOrigins is the allow-list the vectors assume: an exact origin, the
// demo page's, and a wildcard sub-domain pattern, with credentials allowed.
var AllowedOrigins = []string{"https://localhost:8080", "http://localhost:3000", "https://*.example.com"}

// ConfigJSON is the whole configuration the vectors assume: the allow-list,
// credentials, and a publish path with CORS lists of its own. Adapters'
// tests build their config from it (JSON is also YAML).
const ConfigJSON = `{"allowed_origins": ["https://localhost:8080", "http://localhost:3000", "https://*.example.com"],
 "allow_credentials": true,
 "paths": [{"prefix": "/publish", "allowed_methods": ["GET", "POST", "OPTIONS"], "allowed_headers": ["Content-Type", "Authorization"]}]}`

// CORSCase is one request and what must come back.
type CORSCase struct {
	Name string
	// Request is the request headers as key/value pairs, pseudo-headers
	// included; keys may be in any case, as clients send them.
	Request []string
	// Reply is the status of the answer the adapter sends itself (a
	// preflight); 0 means the request is forwarded and Headers are checked
	// on the upstream's response, which comes with its own
	// access-control-allow-origin: * that the policy must not let through
	// for a refused origin.
	Reply int
	// Headers must each appear once with this value; Absent must not appear.
	Headers map[string]string
	Absent  []string
}

// UpstreamHeaders are the upstream's response headers for forwarded cases,
// as key/value pairs.
var UpstreamHeaders = []string{
	":status", "200", "content-type", "text/plain",
	"access-control-allow-origin", "*", "access-control-allow-credentials", "true",
}

// CORSCases follow docs/configuration.md's "CORS, point by point".
var CORSCases = []CORSCase{
	{
		Name:    "curl without Origin gets the write-up's headers",
		Request: []string{":method", "GET", ":path", "/sse/events"},
		Headers: map[string]string{
			"access-control-allow-origin":      "https://localhost:8080",
			"access-control-allow-credentials": "true",
			"access-control-allow-headers":     "Keep-Alive,X-Requested-With,Cache-Control,Content-Type,Last-Event-ID",
			"access-control-allow-methods":     "GET, OPTIONS",
			// The answer depends on Origin, so shared caches must key on it.
			"vary": "Origin",
		},
	},
	{
		Name: "a path with lists of its own answers its preflight with them",
		Request: []string{":method", "OPTIONS", ":path", "/publish?topic=a", "origin", "http://localhost:3000",
			"access-control-request-method", "POST", "access-control-request-headers", "authorization"},
		Reply: 204,
		Headers: map[string]string{
			"access-control-allow-origin":  "http://localhost:3000",
			"access-control-allow-methods": "GET, POST, OPTIONS",
			"access-control-allow-headers": "Content-Type,Authorization",
		},
	},
	{
		Name:    "a stream keeps the main lists beside such a path",
		Request: []string{":method", "OPTIONS", ":path", "/sse/events", "origin", "http://localhost:3000", "access-control-request-method", "GET"},
		Reply:   204,
		Headers: map[string]string{
			"access-control-allow-methods": "GET, OPTIONS",
			"access-control-allow-headers": "Keep-Alive,X-Requested-With,Cache-Control,Content-Type,Last-Event-ID",
		},
	},
	{
		Name:    "allowed origin is reflected",
		Request: []string{":method", "GET", ":path", "/sse/events", "Origin", "http://localhost:3000"},
		Headers: map[string]string{"access-control-allow-origin": "http://localhost:3000", "vary": "Origin"},
	},
	{
		Name:    "wildcard sub-domain",
		Request: []string{":method", "GET", ":path", "/sse/events", "origin", "https://a.b.example.com"},
		Headers: map[string]string{"access-control-allow-origin": "https://a.b.example.com"},
	},
	{
		Name:    "wildcard does not match the apex",
		Request: []string{":method", "GET", ":path", "/sse/events", "origin", "https://example.com"},
		Headers: map[string]string{"vary": "Origin"},
		Absent:  []string{"access-control-allow-origin", "access-control-allow-credentials"},
	},
	{
		Name:    "refused origin gets no CORS headers, and loses the upstream's",
		Request: []string{":method", "GET", ":path", "/sse/events", "origin", "https://evil.example"},
		Headers: map[string]string{"vary": "Origin"},
		Absent:  []string{"access-control-allow-origin", "access-control-allow-credentials", "access-control-allow-methods"},
	},
	{
		Name: "allowed preflight is answered by Envoy",
		Request: []string{":method", "OPTIONS", ":path", "/sse/events", "origin", "http://localhost:3000",
			"access-control-request-method", "GET", "access-control-request-headers", "last-event-id"},
		Reply: 204,
		Headers: map[string]string{
			"access-control-allow-origin":  "http://localhost:3000",
			"access-control-max-age":       "600",
			"access-control-allow-methods": "GET, OPTIONS",
			"vary":                         "Origin",
		},
	},
	{
		Name:    "refused preflight is refused",
		Request: []string{":method", "OPTIONS", ":path", "/sse/events", "origin", "https://evil.example", "access-control-request-method", "GET"},
		Reply:   403,
		Absent:  []string{"access-control-allow-origin", "access-control-max-age"},
	},
	{
		Name:    "OPTIONS without a request method is not a preflight",
		Request: []string{":method", "OPTIONS", ":path", "/sse/events", "origin", "http://localhost:3000"},
		Headers: map[string]string{"access-control-allow-origin": "http://localhost:3000"},
	},
}

// Check reports every way got (lower-case keys) differs from the case.
func (c CORSCase) Check(t testing.TB, got map[string][]string) {
	t.Helper()
	for k, want := range c.Headers {
		if vs := got[k]; len(vs) != 1 || vs[0] != want {
			t.Errorf("%s = %q, want %q", k, vs, want)
		}
	}
	for _, k := range c.Absent {
		if vs, ok := got[k]; ok {
			t.Errorf("%s = %q, want it absent", k, vs)
		}
	}
}
