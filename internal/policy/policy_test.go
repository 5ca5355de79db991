package policy

import (
	"slices"
	"strings"
	"testing"
)

func mustPolicy(t *testing.T, yaml string) *Policy {
	t.Helper()
	cfg, err := ParseYAMLOrJSON([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrorsNameTheField(t *testing.T) {
	tests := []struct {
		yaml string
		want []string
	}{
		{"allowed_origins: [https://a.example, 'https://b.example/']", []string{"allowed_origins[1]", "trailing /"}},
		{"allowed_origins: ['*']", []string{"allowed_origins[0]", "allow_credentials"}},
		{"allowed_origins: ['https://*.com']", []string{"allowed_origins[0]", "registrable"}},
		{"allowed_origins: ['https://a.example:443']", []string{"allowed_origins[0]", "default port"}},
		{"allowed_origins: ['null']", []string{"allowed_origins[0]", "sandboxed"}},
		{"allowed_origins: ['https://exa mple.com']", []string{"allowed_origins[0]"}},
		{"allowed_origins: ['https://a_b.example']", []string{"allowed_origins[0]", "invalid host"}},
		{"allowed_origins: []", []string{"allowed_origins", "empty"}},
		{"allowed_methods: []", []string{"allowed_methods", "empty"}},
		{"allowed_methods: ['GET POST']", []string{"allowed_methods[0]"}},
		{"exposed_headers: ['x:y']", []string{"exposed_headers[0]"}},
		{"max_age: 25h", []string{"max_age", "24h"}},
		{"max_age: 1.5s", []string{"max_age", "whole seconds"}},
		{"max_age: 600", []string{"max_age", "JSON number", "want a string"}},
		{"cache_control: \"\"", []string{"cache_control"}},
		{"tag_header: 'x sse'", []string{"tag_header"}},
		{"stream_log_level: trace", []string{"stream_log_level"}},
		{"paths: [{prefix: publish}]", []string{"paths[0].prefix", "start with /"}},
		{"paths: [{prefix: /p}, {prefix: /p}]", []string{"paths[1].prefix", "twice"}},
		{"paths: [{prefix: /p, allowed_methods: []}]", []string{"paths[0].allowed_methods", "empty"}},
		{"paths: [{prefix: /p, allowed_headers: ['a b']}]", []string{"paths[0].allowed_headers[0]"}},
		{"paths: [{prefix: /p, methods: [GET]}]", []string{"unknown field", "methods"}},
		{"paths: {prefix: /p}", []string{"paths", "a list of objects"}},
		{"redact_query_params: ['']", []string{"redact_query_params[0]", "not a query parameter name"}},
		{"redact_query_params: [token, 'a=b']", []string{"redact_query_params[1]", "not a query parameter name"}},
		{"redact_query_params: ['%61uthorization']", []string{"redact_query_params[0]", "unescaped"}},
		{"redact_query_params: [authorization, Authorization]", []string{"redact_query_params[1]", "twice"}},
		{"redact_query_params: authorization", []string{"redact_query_params", "a list of strings"}},
		{"fallback_origin: https://x.example", []string{"fallback_origin"}},
		{"allow_credentials: 1", []string{"allow_credentials", "true or false"}},
		{"allowed_origins: https://a.example", []string{"allowed_origins", "a list of strings"}},
		{"unknown: 1", []string{`unknown field "unknown"`}},
		{"- a list", []string{"want an object"}},
	}
	for _, tc := range tests {
		t.Run(tc.yaml, func(t *testing.T) {
			cfg, err := ParseYAMLOrJSON([]byte(tc.yaml))
			if err == nil {
				_, err = New(cfg)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

func TestAllErrorsAreReportedAtOnce(t *testing.T) {
	cfg, err := ParseYAMLOrJSON([]byte("{allowed_origins: ['ftp://x'], max_age: x, stream_log_level: loud}"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = New(cfg)
	for _, field := range []string{"allowed_origins[0]", "max_age", "stream_log_level"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("error %v lacks %s", err, field)
		}
	}
}

func TestDefaultsReproduceTheWriteUp(t *testing.T) {
	p := mustPolicy(t, "")
	h := mapHeaders{"content-type": "text/event-stream"}
	if !p.ApplyResponse(p.Decide(Request{Method: "GET"}), h) {
		t.Fatal("not an SSE response")
	}
	want := mapHeaders{
		"content-type":                     "text/event-stream",
		"cache-control":                    "no-cache",
		"access-control-allow-origin":      "https://localhost:8080",
		"access-control-allow-credentials": "true",
		"access-control-allow-headers":     "Keep-Alive,X-Requested-With,Cache-Control,Content-Type,Last-Event-ID",
		"access-control-allow-methods":     "GET, OPTIONS",
		"vary":                             "Origin",
	}
	for k, v := range want {
		if h[k] != v {
			t.Errorf("%s = %q, want %q", k, h[k], v)
		}
	}
}

func TestRedactQueryParams(t *testing.T) {
	if got := mustPolicy(t, "").RedactQueryParams(); len(got) != 0 {
		t.Errorf("default redact_query_params = %q, want none", got)
	}
	if got := mustPolicy(t, "redact_query_params: [authorization, access_token]").RedactQueryParams(); !slices.Equal(got, []string{"authorization", "access_token"}) {
		t.Errorf("redact_query_params = %q", got)
	}
}

func TestOriginMatching(t *testing.T) {
	p := mustPolicy(t, `
allowed_origins: [https://App.Example.com, "http://localhost:3000", "https://*.example.org", "https://*.example.net:8443", "http://[::1]:8080"]
`)
	tests := []struct {
		origin string
		want   bool
	}{
		{"https://app.example.com", true},
		{"https://app.example.com:443", false},
		{"http://app.example.com", false},
		{"http://localhost:3000", true},
		{"http://localhost:3001", false},
		{"https://a.example.org", true},
		{"https://a.b.example.org", true},
		{"https://example.org", false},
		{"https://.example.org", false},
		{"https://evil-example.org", false},
		{"https://a.example.org.evil.com", false},
		{"https://a.example.org:8443", false},
		{"https://a.example.net:8443", true},
		{"https://a.example.net", false},
		{"http://[::1]:8080", true},
		{"null", false},
		{"", false},
	}
	for _, tc := range tests {
		d := p.Decide(Request{Method: "GET", Origin: tc.origin, HasOrigin: true})
		if got := d.AllowOrigin != ""; got != tc.want {
			t.Errorf("%q allowed = %v, want %v", tc.origin, got, tc.want)
		}
		if d.RejectedOrigin == tc.want {
			t.Errorf("%q RejectedOrigin = %v", tc.origin, d.RejectedOrigin)
		}
	}
}

func TestAnyOriginWithoutCredentials(t *testing.T) {
	p := mustPolicy(t, "{allowed_origins: ['*'], allow_credentials: false}")
	d := p.Decide(Request{Method: "GET", Origin: "https://whoever.example", HasOrigin: true})
	h := mapHeaders{}
	p.ApplyResponse(d, h)
	if h["access-control-allow-origin"] != "https://whoever.example" || h["access-control-allow-credentials"] != "" {
		t.Errorf("headers %v", h)
	}
	if d := p.Decide(Request{Method: "GET"}); d.AllowOrigin != "" {
		t.Errorf("no exact origin, yet a fallback %q", d.AllowOrigin)
	}
}

func TestFallbackOriginCanBeTurnedOff(t *testing.T) {
	p := mustPolicy(t, `{fallback_origin: ""}`)
	h := mapHeaders{}
	p.ApplyResponse(p.Decide(Request{Method: "GET"}), h)
	if len(h) != 0 {
		t.Errorf("headers %v, want none", h)
	}
}

func TestIsEventStream(t *testing.T) {
	for ct, want := range map[string]bool{
		"text/event-stream":                true,
		"TEXT/Event-Stream":                true,
		"text/event-stream; charset=utf-8": true,
		"text/event-stream;charset=UTF-8":  true,
		"text/event-streams":               false,
		"text/event-stream-x; a=b":         false,
		"text/plain":                       false,
		"":                                 false,
	} {
		if got := IsEventStream(ct); got != want {
			t.Errorf("IsEventStream(%q) = %v", ct, got)
		}
	}
}

func TestVaryIsMergedOnce(t *testing.T) {
	p := mustPolicy(t, "")
	d := p.Decide(Request{Method: "GET", Origin: "https://localhost:8080", HasOrigin: true})
	for _, tc := range []struct{ before, after string }{
		{"", "Origin"},
		{"Accept-Encoding", "Accept-Encoding, Origin"},
		{"accept-encoding, origin", "accept-encoding, origin"},
		{"*", "*"},
	} {
		h := mapHeaders{}
		if tc.before != "" {
			h["vary"] = tc.before
		}
		p.ApplyResponse(d, h)
		p.ApplyResponse(d, h)
		if h["vary"] != tc.after {
			t.Errorf("vary %q -> %q, want %q", tc.before, h["vary"], tc.after)
		}
	}
}

func TestPreflight(t *testing.T) {
	p := mustPolicy(t, "{allowed_origins: ['https://a.example'], max_age: 1h, exposed_headers: [x-sse-replay]}")
	d := p.Decide(Request{Method: "OPTIONS", Origin: "https://a.example", HasOrigin: true, AccessControlRequestMethod: "GET"})
	if d.Reply == nil || d.Reply.Status != 204 || !d.Preflight {
		t.Fatalf("decision %+v", d)
	}
	got := mapHeaders{}
	for _, h := range d.Reply.Headers {
		got[h.Key] = h.Value
	}
	if got["access-control-max-age"] != "3600" || got["access-control-allow-origin"] != "https://a.example" {
		t.Errorf("preflight headers %v", got)
	}
	h := mapHeaders{}
	p.ApplyResponse(Decision{AllowOrigin: "https://a.example", Origin: "https://a.example"}, h)
	if h["access-control-expose-headers"] != "x-sse-replay" {
		t.Errorf("expose headers %v", h)
	}
}

type mapHeaders map[string]string

func (m mapHeaders) Get(k string) (string, bool) { v, ok := m[k]; return v, ok }
func (m mapHeaders) Set(k, v string)             { m[k] = v }
func (m mapHeaders) Del(k string)                { delete(m, k) }

func TestLoadNamesWhereTheSettingsCameFrom(t *testing.T) {
	for _, raw := range []string{"", " \n", "{}"} {
		if _, err := Load("filter_config", []byte(raw), ParseYAMLOrJSON); err != nil {
			t.Errorf("%q: %v", raw, err)
		}
	}
	if _, err := Load("plugin_config", []byte(`{"max_age": "forever"}`), ParseJSON); err == nil || !strings.HasPrefix(err.Error(), "plugin_config: ") || !strings.Contains(err.Error(), "max_age") {
		t.Errorf("error %v, want it to start with the field and name max_age", err)
	}
	if _, err := Load("filter_config", []byte("[1]"), ParseYAMLOrJSON); err == nil || !strings.HasPrefix(err.Error(), "filter_config: ") {
		t.Errorf("error %v", err)
	}
}
