// Package lifecycletest holds the stream lifecycles every adapter's tests
// run, as internal/policy/policytest holds the CORS vectors: the same
// request and response events, split at awkward places, must give the same
// reply, metadata, stats and log lines through the golang filter, the
// dynamic module and the ext_proc server, because all three only translate
// between Envoy and internal/ssestream. A new stat or metadata key that an
// adapter does not carry fails here.
package lifecycletest

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
)

// AllowedOrigins is the allow-list the cases assume (the CORS vectors'),
// with credentials allowed, RedactQueryParams redacted, and every other
// setting at its default: lines at info, the tag header x-sse-stream.
var AllowedOrigins = []string{"https://localhost:8080", "http://localhost:3000", "https://*.example.com"}

// RedactQueryParams is the redact_query_params the cases assume: Mercure's
// subscriber token parameter, as the repository's configs have it. Each
// adapter passes it in its own configuration format, so the setting is
// proven to reach the log lines through all three.
var RedactQueryParams = []string{"authorization"}

// Extract is the policy's "extract" field the cases assume, as JSON (each
// adapter passes it in its own configuration format): OpenAI's total and
// Anthropic's output tokens, as an LLM gateway reads them.
const Extract = `{"rules": [` +
	`{"path": "usage.total_tokens", "key": "total_tokens"}, ` +
	`{"event": "message_delta", "path": "usage.output_tokens", "key": "output_tokens", "wins": "last"}]}`

// extractKeys are the keys Extract's rules write.
var extractKeys = []string{"total_tokens", "output_tokens"}

// Route and Protocol are what Envoy says of every stream's route and
// downstream protocol; drivers report them as their adapter's API does.
const (
	Route    = "sse_plain"
	Protocol = "HTTP/1.1"
)

// Kind is a kind of stream event.
type Kind int

const (
	RequestHeaders Kind = iota
	RequestBody
	RequestTrailers
	ResponseHeaders
	// ResponseBody is one chunk of the response body, as Envoy's slices.
	ResponseBody
	ResponseTrailers
)

// Event is one thing that happens to a stream before it completes.
type Event struct {
	Kind Kind
	// Headers are key/value pairs, pseudo-headers included.
	Headers []string
	// Slices make up a ResponseBody chunk.
	Slices []string
	// EndOfStream: the event ends its direction.
	EndOfStream bool
}

// Case is one stream, its events, how Envoy says it completed, and what
// must come of it. Drivers run each case on a fresh filter configuration
// whose clock stands still, so stats are the case's own and durations 0s.
type Case struct {
	Name   string
	Events []Event
	// Complete is how Envoy says the stream ended (response code details
	// and flags), for adapters that can read it.
	Complete ssestream.End
	// Reply is the status of the local reply the adapter sent, 0 for none.
	Reply int
	// Metadata is the stream's dynamic metadata in namespace
	// policy.MetadataNamespace; nil means none at all.
	Metadata map[string]any
	// Stats are the stats' values after the stream; absent ones are 0.
	Stats map[ssestream.StatID]int64
	// Lines are the log lines, "LEVEL message". In them {adapter} stands
	// for the adapter's name and {end} for how it says the stream ended:
	// End, or its UnseenEnd where it cannot read Envoy's end and the
	// upstream did not end the stream.
	Lines []string
	End   string
}

// Driver runs one stream through an adapter with its Envoy API faked.
type Driver interface {
	RequestHeaders(headers []string, endOfStream bool)
	RequestBody(endOfStream bool)
	RequestTrailers()
	ResponseHeaders(headers []string, endOfStream bool)
	ResponseBody(slices []string, endOfStream bool)
	ResponseTrailers()
	// Complete ends the stream as Envoy does, saying end where the
	// adapter's API can tell it.
	Complete(end ssestream.End)

	// Reply is the local reply's status, 0 for none.
	Reply() int
	// Metadata is what the adapter wrote in policy.MetadataNamespace.
	Metadata() map[string]any
	// Stats are the adapter's stats by id (its Envoy API read back).
	Stats() map[ssestream.StatID]int64
	// Lines are the adapter's log lines as "LEVEL message", LEVEL being
	// slog's name of the policy level its Envoy level stands for.
	Lines() []string
}

// Adapter is one adapter under the table.
type Adapter struct {
	// Name is the adapter's tag value.
	Name string
	// New makes a driver for one stream.
	New func(t *testing.T) Driver
	// NoMetadata: the adapter cannot write dynamic metadata (ext_proc's
	// observer: Envoy ignores its answers).
	NoMetadata bool
	// UnseenEnd is how the adapter's closed line ends when the upstream did
	// not end the stream and the adapter cannot read Envoy's end; "" when
	// it can.
	UnseenEnd string
}

// Run runs every case through the adapter.
func Run(t *testing.T, a Adapter) {
	// Every key a stream may write is in some case's metadata, or a new key
	// would be checked nowhere.
	seen := map[string]bool{}
	for _, c := range Cases {
		for k := range c.Metadata {
			seen[k] = true
		}
	}
	for _, k := range slices.Concat(ssestream.MetadataKeys(), extractKeys) {
		// A rate needs time to pass, and the cases' clock stands still
		// (internal/ssestream's tests check it).
		if !seen[k] && k != policy.MetadataEventsPerSec {
			t.Errorf("no case's metadata has key %q: the table needs a case for the new key", k)
		}
	}
	for _, c := range Cases {
		t.Run(c.Name, func(t *testing.T) {
			d := a.New(t)
			for _, e := range c.Events {
				switch e.Kind {
				case RequestHeaders:
					d.RequestHeaders(e.Headers, e.EndOfStream)
				case RequestBody:
					d.RequestBody(e.EndOfStream)
				case RequestTrailers:
					d.RequestTrailers()
				case ResponseHeaders:
					d.ResponseHeaders(e.Headers, e.EndOfStream)
				case ResponseBody:
					d.ResponseBody(e.Slices, e.EndOfStream)
				case ResponseTrailers:
					d.ResponseTrailers()
				}
			}
			d.Complete(c.Complete)
			c.check(t, a, d)
		})
	}
}

func (c Case) check(t *testing.T, a Adapter, d Driver) {
	t.Helper()
	if got := d.Reply(); got != c.Reply {
		t.Errorf("local reply %d, want %d", got, c.Reply)
	}
	for k := range c.Metadata {
		if !slices.Contains(ssestream.MetadataKeys(), k) && !slices.Contains(extractKeys, k) {
			t.Errorf("the case's metadata key %q is neither one of ssestream.MetadataKeys() %q nor an extract rule's",
				k, ssestream.MetadataKeys())
		}
	}
	if !a.NoMetadata {
		got := d.Metadata()
		if len(got) == 0 {
			got = nil
		}
		if !maps.Equal(got, c.Metadata) {
			t.Errorf("metadata %v, want %v", got, c.Metadata)
		}
	}
	stats := d.Stats()
	for _, s := range ssestream.Stats() {
		if s.Kind == ssestream.KindHistogram {
			continue // not every adapter's API has them: each tests its own
		}
		if got, want := stats[s.ID], c.Stats[s.ID]; got != want {
			t.Errorf("stat %s = %d, want %d", s.Name, got, want)
		}
	}
	end := c.End
	if a.UnseenEnd != "" && !strings.HasPrefix(end, "end="+ssestream.ReasonUpstreamEnd) {
		end = a.UnseenEnd
	}
	want := make([]string, len(c.Lines))
	for i, l := range c.Lines {
		want[i] = strings.NewReplacer("{adapter}", a.Name, "{end}", end).Replace(l)
	}
	if got := d.Lines(); !slices.Equal(got, want) {
		t.Errorf("lines\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// The requests and responses the cases are made of.
var (
	streamRequest = []string{":method", "GET", ":path", "/sse/events", "origin", "http://localhost:3000"}
	streamHeaders = []string{":status", "200", "content-type", "Text/Event-Stream; charset=utf-8", "content-length", "999"}
	preflight     = []string{":method", "OPTIONS", ":path", "/sse/events", "origin", "http://localhost:3000", "access-control-request-method", "GET"}

	// body is two events split at awkward places: inside a field name,
	// between a CR and its LF, with a comment and a retry between, and a
	// last event the stream never finishes.
	body = []Event{
		{Kind: ResponseBody, Slices: []string{"retry: 3000\n\nid: 7\nevent: DAD_JOKE\nda", "ta: one\n\n"}},
		{Kind: ResponseBody, Slices: []string{": heartbeat\n\nid: 8\r\n", "data: two\r\n\r"}},
		{Kind: ResponseBody, Slices: []string{"\nid: 9\ndata: cut"}},
	}
	bodyBytes = float64(len("retry: 3000\n\nid: 7\nevent: DAD_JOKE\nda" + "ta: one\n\n" + ": heartbeat\n\nid: 8\r\n" +
		"data: two\r\n\r" + "\nid: 9\ndata: cut"))

	opened     = "INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=http://localhost:3000 adapter={adapter}"
	closedBody = "INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=2 bytes=94 last_event_id=8 first_event=0s max_gap=0s extract_errors=0 {end}"
	// The clock stands still: every chunk comes at 0, every gap is in the
	// first bucket (under 1 ms), and there is no rate.
	bodyMetadata = map[string]any{
		policy.MetadataEvents: 2.0, policy.MetadataBytes: bodyBytes,
		policy.MetadataLastEventID: "8", policy.MetadataProtocol: Protocol,
		policy.MetadataFirstByteMS: 0.0, policy.MetadataFirstEventMS: 0.0, policy.MetadataMaxGapMS: 0.0,
		policy.MetadataGapP50MS: 1.0, policy.MetadataGapP99MS: 1.0, policy.MetadataExtractErrors: 0.0,
	}
	streamStats = map[ssestream.StatID]int64{ssestream.StreamsOpened: 1, ssestream.Events: 2}
)

func events(groups ...[]Event) []Event { return slices.Concat(groups...) }

// A token stream as LLM APIs send them: OpenAI-style chunks (usage null
// until the last, split here inside its number), a chunk that holds the
// key but is not JSON, an Anthropic-style message_delta, OpenAI's [DONE].
var (
	tokenRequest = []string{":method", "POST", ":path", "/v1/chat/completions", "origin", "http://localhost:3000", "content-type", "application/json"}
	tokenBody    = []Event{
		{Kind: ResponseBody, Slices: []string{`data: {"choices":[{"delta":{"content":"Hi"}}],"usage":null}` + "\n\n"}},
		{Kind: ResponseBody, Slices: []string{`data: {"choices":[],"usage":{"prompt_tokens":9,"total_tokens":2`, "1}}\n\n"}},
		{Kind: ResponseBody, Slices: []string{`data: {"total_tokens": oops` + "\n\n" + "event: message_delta\n" + `data: {"usage":{"output_tokens":15}}` + "\n\n"}},
		{Kind: ResponseBody, Slices: []string{"data: [DONE]\n\n"}, EndOfStream: true},
	}
	tokenBytes = len(`data: {"choices":[{"delta":{"content":"Hi"}}],"usage":null}` + "\n\n" +
		`data: {"choices":[],"usage":{"prompt_tokens":9,"total_tokens":2` + "1}}\n\n" +
		`data: {"total_tokens": oops` + "\n\n" + "event: message_delta\n" + `data: {"usage":{"output_tokens":15}}` + "\n\n" +
		"data: [DONE]\n\n")
)

// Cases are the lifecycles every adapter runs.
var Cases = []Case{
	{
		Name: "a token stream's usage is read, [DONE] is no error, bad JSON is counted",
		Events: events(
			[]Event{{Kind: RequestHeaders, Headers: tokenRequest, EndOfStream: true}, {Kind: ResponseHeaders, Headers: streamHeaders}},
			tokenBody),
		Complete: ssestream.End{Details: "via_upstream", FlagsKnown: true},
		Metadata: map[string]any{
			policy.MetadataEvents: 5.0, policy.MetadataBytes: float64(tokenBytes),
			policy.MetadataLastEventID: "", policy.MetadataProtocol: Protocol,
			policy.MetadataFirstByteMS: 0.0, policy.MetadataFirstEventMS: 0.0, policy.MetadataMaxGapMS: 0.0,
			policy.MetadataGapP50MS: 1.0, policy.MetadataGapP99MS: 1.0, policy.MetadataExtractErrors: 1.0,
			"total_tokens": 21.0, "output_tokens": 15.0,
		},
		Stats: map[ssestream.StatID]int64{ssestream.StreamsOpened: 1, ssestream.Events: 5, ssestream.ExtractErrors: 1},
		Lines: []string{
			"INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=POST path=/v1/chat/completions origin=http://localhost:3000 adapter={adapter}",
			"INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=5 bytes=" + strconv.Itoa(tokenBytes) +
				" last_event_id=- first_event=0s max_gap=0s total_tokens=21 output_tokens=15 extract_errors=1 {end}",
		},
		End: "end=upstream_end",
	},
	{
		Name: "the upstream ends the stream with its last chunk",
		Events: events(
			[]Event{{Kind: RequestHeaders, Headers: streamRequest, EndOfStream: true}, {Kind: ResponseHeaders, Headers: streamHeaders}},
			body,
			[]Event{{Kind: ResponseBody, EndOfStream: true}}),
		Complete: ssestream.End{Details: "via_upstream", FlagsKnown: true},
		Metadata: bodyMetadata,
		Stats:    streamStats,
		Lines:    []string{opened, closedBody},
		End:      "end=upstream_end",
	},
	{
		Name: "the upstream ends the stream with trailers",
		Events: events(
			[]Event{{Kind: RequestHeaders, Headers: streamRequest, EndOfStream: true}, {Kind: ResponseHeaders, Headers: streamHeaders}},
			body,
			[]Event{{Kind: ResponseTrailers}}),
		Complete: ssestream.End{Details: "via_upstream", FlagsKnown: true},
		Metadata: bodyMetadata,
		Stats:    streamStats,
		Lines:    []string{opened, closedBody},
		End:      "end=upstream_end",
	},
	{
		Name: "the client goes away",
		Events: events(
			[]Event{{Kind: RequestHeaders, Headers: streamRequest, EndOfStream: true}, {Kind: ResponseHeaders, Headers: streamHeaders}},
			body),
		Complete: ssestream.End{Details: "downstream_remote_disconnect", ResponseFlags: 0x4000, FlagsKnown: true},
		Metadata: bodyMetadata,
		Stats:    streamStats,
		Lines:    []string{opened, closedBody},
		End:      "end=client_gone details=downstream_remote_disconnect",
	},
	{
		Name: "the upstream resets the stream",
		Events: events(
			[]Event{{Kind: RequestHeaders, Headers: streamRequest, EndOfStream: true}, {Kind: ResponseHeaders, Headers: streamHeaders}},
			body),
		Complete: ssestream.End{Details: "upstream_reset_after_response_started{remote_reset}", ResponseFlags: 0x10, FlagsKnown: true},
		Metadata: bodyMetadata,
		Stats:    streamStats,
		Lines:    []string{opened, closedBody},
		End:      "end=upstream_reset details=upstream_reset_after_response_started{remote_reset}",
	},
	{
		Name: "a stream without a body ends with its headers",
		Events: []Event{
			{Kind: RequestHeaders, Headers: []string{":method", "GET", ":path", "/sse/events"}, EndOfStream: true},
			{Kind: ResponseHeaders, Headers: []string{":status", "200", "content-type", "text/event-stream"}, EndOfStream: true},
		},
		Complete: ssestream.End{Details: "via_upstream", FlagsKnown: true},
		Metadata: map[string]any{
			policy.MetadataEvents: 0.0, policy.MetadataBytes: 0.0,
			policy.MetadataLastEventID: "", policy.MetadataProtocol: Protocol, policy.MetadataExtractErrors: 0.0,
		},
		Stats: map[ssestream.StatID]int64{ssestream.StreamsOpened: 1},
		Lines: []string{
			"INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=(none) adapter={adapter}",
			"INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=0 bytes=0 last_event_id=- extract_errors=0 {end}",
		},
		End: "end=upstream_end",
	},
	{
		// EventSource cannot set headers: a Mercure subscriber may carry its
		// JWT in the authorization query parameter. No log line prints it.
		Name: "a token in the query stays out of the log",
		Events: []Event{
			{Kind: RequestHeaders, Headers: []string{":method", "GET", ":path", "/.well-known/mercure?topic=a&authorization=eyJhbGciOiJIUzI1NiJ9.e30.secret"}, EndOfStream: true},
			{Kind: ResponseHeaders, Headers: []string{":status", "200", "content-type", "text/event-stream"}, EndOfStream: true},
		},
		Complete: ssestream.End{Details: "via_upstream", FlagsKnown: true},
		Metadata: map[string]any{
			policy.MetadataEvents: 0.0, policy.MetadataBytes: 0.0,
			policy.MetadataLastEventID: "", policy.MetadataProtocol: Protocol, policy.MetadataExtractErrors: 0.0,
		},
		Stats: map[ssestream.StatID]int64{ssestream.StreamsOpened: 1},
		Lines: []string{
			"INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=\"/.well-known/mercure?topic=a&authorization=redacted\" origin=(none) adapter={adapter}",
			"INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=0 bytes=0 last_event_id=- extract_errors=0 {end}",
		},
		End: "end=upstream_end",
	},
	{
		Name: "a refused origin's stream is a stream",
		Events: events(
			[]Event{
				{Kind: RequestHeaders, Headers: []string{":method", "GET", ":path", "/sse/events", "origin", "https://evil.example"}, EndOfStream: true},
				{Kind: ResponseHeaders, Headers: []string{":status", "200", "content-type", "text/event-stream", "access-control-allow-origin", "*"}},
			},
			body[:1],
			[]Event{{Kind: ResponseBody, EndOfStream: true}}),
		Complete: ssestream.End{Details: "via_upstream", FlagsKnown: true},
		Metadata: map[string]any{
			policy.MetadataEvents: 1.0, policy.MetadataBytes: float64(len("retry: 3000\n\nid: 7\nevent: DAD_JOKE\nda" + "ta: one\n\n")),
			policy.MetadataLastEventID: "7", policy.MetadataProtocol: Protocol,
			policy.MetadataFirstByteMS: 0.0, policy.MetadataFirstEventMS: 0.0, policy.MetadataExtractErrors: 0.0,
		},
		Stats: map[ssestream.StatID]int64{ssestream.StreamsOpened: 1, ssestream.Events: 1, ssestream.RejectedOrigins: 1},
		Lines: []string{
			"INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=https://evil.example adapter={adapter}",
			"INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=1 bytes=46 last_event_id=7 first_event=0s extract_errors=0 {end}",
		},
		End: "end=upstream_end",
	},
	{
		Name: "another response is not a stream",
		Events: []Event{
			{Kind: RequestHeaders, Headers: []string{":method", "GET", ":path", "/healthz"}, EndOfStream: true},
			{Kind: ResponseHeaders, Headers: []string{":status", "200", "content-type", "application/json", "content-length", "2"}},
			{Kind: ResponseBody, Slices: []string{"{", "}"}, EndOfStream: true},
		},
		Complete: ssestream.End{Details: "via_upstream", FlagsKnown: true},
	},
	{
		Name: "Envoy's unavailable answer is not a stream",
		Events: []Event{
			{Kind: RequestHeaders, Headers: streamRequest, EndOfStream: true},
			{Kind: ResponseHeaders, Headers: []string{":status", "200", "content-type", "text/event-stream", ssestream.UnavailableHeader, "UF,URX"}},
			{Kind: ResponseBody, Slices: []string{"retry: 5000\n\n"}, EndOfStream: true},
		},
		Complete: ssestream.End{Details: "upstream_reset_before_response_started{connection_failure}", FlagsKnown: true},
	},
	{
		Name:     "a preflight is answered at once",
		Events:   []Event{{Kind: RequestHeaders, Headers: preflight, EndOfStream: true}},
		Complete: ssestream.End{Details: "sse_cors_preflight", FlagsKnown: true},
		Reply:    204,
		Stats:    map[ssestream.StatID]int64{ssestream.Preflights: 1},
	},
	{
		Name: "a preflight with a body is answered at its end",
		Events: []Event{
			{Kind: RequestHeaders, Headers: preflight},
			{Kind: RequestBody},
			{Kind: RequestBody, EndOfStream: true},
		},
		Complete: ssestream.End{Details: "sse_cors_preflight", FlagsKnown: true},
		Reply:    204,
		Stats:    map[ssestream.StatID]int64{ssestream.Preflights: 1},
	},
	{
		Name: "a refused preflight with trailers",
		Events: []Event{
			{Kind: RequestHeaders, Headers: []string{":method", "OPTIONS", ":path", "/sse/events", "origin", "https://evil.example", "access-control-request-method", "GET"}},
			{Kind: RequestBody},
			{Kind: RequestTrailers},
		},
		Complete: ssestream.End{Details: "sse_cors_origin_not_allowed", FlagsKnown: true},
		Reply:    403,
		Stats:    map[ssestream.StatID]int64{ssestream.Preflights: 1, ssestream.RejectedOrigins: 1},
	},
}
