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
	"strings"
	"testing"

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
	// ssestream.MetadataNamespace; nil means none at all.
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
	// Metadata is what the adapter wrote in ssestream.MetadataNamespace.
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
	if c.Metadata != nil && !slices.Equal(slices.Sorted(maps.Keys(c.Metadata)), slices.Sorted(slices.Values(ssestream.MetadataKeys()))) {
		t.Errorf("the case's metadata keys %q are not ssestream.MetadataKeys() %q: the table needs the new key",
			slices.Sorted(maps.Keys(c.Metadata)), ssestream.MetadataKeys())
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

	opened       = "INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=http://localhost:3000 adapter={adapter}"
	closedBody   = "INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=2 bytes=94 last_event_id=8 {end}"
	bodyMetadata = map[string]any{
		ssestream.MetadataEvents: 2.0, ssestream.MetadataBytes: bodyBytes,
		ssestream.MetadataLastEventID: "8", ssestream.MetadataProtocol: Protocol,
	}
	streamStats = map[ssestream.StatID]int64{ssestream.StreamsOpened: 1, ssestream.Events: 2}
)

func events(groups ...[]Event) []Event { return slices.Concat(groups...) }

// Cases are the lifecycles every adapter runs.
var Cases = []Case{
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
			ssestream.MetadataEvents: 0.0, ssestream.MetadataBytes: 0.0,
			ssestream.MetadataLastEventID: "", ssestream.MetadataProtocol: Protocol,
		},
		Stats: map[ssestream.StatID]int64{ssestream.StreamsOpened: 1},
		Lines: []string{
			"INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=(none) adapter={adapter}",
			"INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=0 bytes=0 last_event_id=- {end}",
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
			ssestream.MetadataEvents: 0.0, ssestream.MetadataBytes: 0.0,
			ssestream.MetadataLastEventID: "", ssestream.MetadataProtocol: Protocol,
		},
		Stats: map[ssestream.StatID]int64{ssestream.StreamsOpened: 1},
		Lines: []string{
			"INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=\"/.well-known/mercure?topic=a&authorization=redacted\" origin=(none) adapter={adapter}",
			"INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=0 bytes=0 last_event_id=- {end}",
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
			ssestream.MetadataEvents: 1.0, ssestream.MetadataBytes: float64(len("retry: 3000\n\nid: 7\nevent: DAD_JOKE\nda" + "ta: one\n\n")),
			ssestream.MetadataLastEventID: "7", ssestream.MetadataProtocol: Protocol,
		},
		Stats: map[ssestream.StatID]int64{ssestream.StreamsOpened: 1, ssestream.Events: 1, ssestream.RejectedOrigins: 1},
		Lines: []string{
			"INFO sse stream opened: route=sse_plain protocol=HTTP/1.1 method=GET path=/sse/events origin=https://evil.example adapter={adapter}",
			"INFO sse stream closed: route=sse_plain protocol=HTTP/1.1 duration=0s events=1 bytes=46 last_event_id=7 {end}",
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
