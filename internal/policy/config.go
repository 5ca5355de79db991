// Package policy is the SSE-for-browsers policy that every adapter applies
// (the golang filter, filter/ssefilter, and the dynamic module,
// module/ssemodule, inside Envoy; the ext_proc server, extproc/processor,
// beside it): its configuration schema, CORS decisions and the headers an
// SSE response gets. It knows nothing of Envoy; internal/ssestream drives it
// through a stream's life, and adapters translate their callbacks into that.
package policy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"example.com/sse-on-envoy/internal/extract"
	"sigs.k8s.io/yaml"
)

// Config is the user-facing configuration, the same for every adapter. JSON
// names are the schema; pointer fields tell "unset" (take the default) from
// an explicit zero value.
type Config struct {
	// AllowedOrigins lists exact origins ("https://app.example.com:8443"),
	// wildcard sub-domain patterns ("https://*.example.com") or "*".
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
	// FallbackOrigin is sent as access-control-allow-origin to requests
	// without an Origin header (curl, server-to-server). Browsers always send
	// Origin on cross-origin requests, so it grants no browser anything.
	// Unset: the first exact entry of AllowedOrigins. "": no CORS headers.
	FallbackOrigin *string `json:"fallback_origin,omitempty"`
	// AllowCredentials lets pages use EventSource with withCredentials.
	AllowCredentials *bool    `json:"allow_credentials,omitempty"`
	AllowedMethods   []string `json:"allowed_methods,omitempty"`
	AllowedHeaders   []string `json:"allowed_headers,omitempty"`
	ExposedHeaders   []string `json:"exposed_headers,omitempty"`
	// MaxAge is how long a browser may cache a preflight answer, as a Go
	// duration ("10m", "3600s"); whole seconds, at most 24h.
	MaxAge *string `json:"max_age,omitempty"`
	// CacheControl is set on SSE responses, so no cache between the client
	// and Envoy keeps or replays a stream.
	CacheControl *string `json:"cache_control,omitempty"`
	// TagHeader names the response header that marks an SSE stream; "" turns
	// the tag off.
	TagHeader *string `json:"tag_header,omitempty"`
	// StreamLogLevel is the level of the stream opened/closed log lines:
	// debug, info, warn or error.
	StreamLogLevel *string `json:"stream_log_level,omitempty"`
	// Paths give requests under a path prefix their own CORS lists: a
	// publish endpoint takes POST and Authorization, while the streams keep
	// the lists above. The longest matching prefix wins; a list a path leaves
	// out is the one above.
	Paths []PathConfig `json:"paths,omitempty"`
	// RedactQueryParams name the query parameters whose values the stream
	// log lines never print: the opened line shows "name=redacted" instead
	// (a Mercure subscriber may carry its JWT in "authorization", since
	// EventSource cannot set headers). A name is matched as the upstream
	// reads it, percent-decoded and in any case, and is written unescaped:
	// letters, digits and - . _ ~ only. Unset or []: nothing is redacted.
	RedactQueryParams []string `json:"redact_query_params,omitempty"`
	// Extract takes values out of event data into the stream's metadata:
	// an LLM API's token counts (package extract).
	Extract *extract.Config `json:"extract,omitempty"`
}

// PathConfig is the CORS lists of requests under one path prefix.
type PathConfig struct {
	Prefix         string   `json:"prefix"`
	AllowedMethods []string `json:"allowed_methods,omitempty"`
	AllowedHeaders []string `json:"allowed_headers,omitempty"`
	ExposedHeaders []string `json:"exposed_headers,omitempty"`
}

// Defaults. The origin, methods and headers reproduce the headers of the
// write-up this project grew from.
var (
	DefaultAllowedOrigins = []string{"https://localhost:8080"}
	DefaultAllowedMethods = []string{"GET", "OPTIONS"}
	DefaultAllowedHeaders = []string{"Keep-Alive", "X-Requested-With", "Cache-Control", "Content-Type", "Last-Event-ID"}
)

const (
	DefaultMaxAge         = "10m"
	DefaultCacheControl   = "no-cache"
	DefaultTagHeader      = "x-sse-stream"
	DefaultStreamLogLevel = "info"
)

// ParseJSON decodes a configuration strictly: unknown fields and wrong types
// are errors that name the field. It does not validate values; New does.
func ParseJSON(data []byte) (*Config, error) {
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, describeDecodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("invalid sse config: trailing data after the configuration object")
	}
	return &cfg, nil
}

// ParseYAMLOrJSON decodes a configuration file (YAML is a superset of JSON).
func ParseYAMLOrJSON(data []byte) (*Config, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("invalid sse config: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
		js = []byte("{}")
	}
	return ParseJSON(js)
}

func describeDecodeError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field == "" {
		return fmt.Errorf("invalid sse config: got a JSON %s, want an object of settings", typeErr.Value)
	}
	if errors.As(err, &typeErr) {
		return fmt.Errorf("invalid sse config: field %s: got a JSON %s, want %s",
			typeErr.Field, typeErr.Value, describeGoType(typeErr.Type.String()))
	}
	if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return fmt.Errorf("invalid sse config: unknown field %s", msg)
	}
	return fmt.Errorf("invalid sse config: %w", err)
}

func describeGoType(t string) string {
	switch t {
	case "[]string":
		return "a list of strings"
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int":
		return "a number"
	case "policy.Config", "policy.PathConfig", "*extract.Config", "extract.Rule":
		return "an object"
	case "[]policy.PathConfig", "[]extract.Rule":
		return "a list of objects"
	}
	return t
}

// Load parses an adapter's settings with parse (ParseJSON, ParseYAMLOrJSON)
// and compiles them: nothing at all (or only white space) means the
// defaults, and every error starts with field, where the adapter's
// configuration holds the settings ("plugin_config", "filter_config").
func Load(field string, raw []byte, parse func([]byte) (*Config, error)) (*Policy, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		raw = []byte("{}")
	}
	cfg, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	p, err := New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return p, nil
}
