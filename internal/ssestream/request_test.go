package ssestream

import (
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/sse"
)

// The held local reply, event by event: a preflight with a body is answered
// at the body's end or its trailers, once; an ordinary request is never held.
func TestReplyHold(t *testing.T) {
	p, _ := policy.New(nil)
	preflight := headers{":method": "OPTIONS", ":path": "/", "origin": "https://localhost:8080", "access-control-request-method": "GET"}
	get := headers{":method": "GET", ":path": "/"}
	type event struct {
		name string
		do   func(*Stream) Step
		want Action
	}
	hdrs := func(h headers, end bool) func(*Stream) Step {
		return func(s *Stream) Step { return s.OnRequestHeaders(h, end) }
	}
	body := func(end bool) func(*Stream) Step { return func(s *Stream) Step { return s.OnRequestBody(end) } }
	trailers := func(s *Stream) Step { return s.OnRequestTrailers() }
	for name, events := range map[string][]event{
		"preflight without a body": {{"headers(end)", hdrs(preflight, true), SendReply}},
		"preflight with a body": {
			{"headers", hdrs(preflight, false), Hold},
			{"body", body(false), Hold},
			{"body(end)", body(true), SendReply},
		},
		"preflight with trailers": {
			{"headers", hdrs(preflight, false), Hold},
			{"body", body(false), Hold},
			{"trailers", trailers, SendReply},
			{"trailers again", trailers, Continue},
		},
		"request with a body": {
			{"headers", hdrs(get, false), Continue},
			{"body", body(false), Continue},
			{"body(end)", body(true), Continue},
			{"trailers", trailers, Continue},
		},
	} {
		s := New(p, nil, "test", nil)
		for _, e := range events {
			step := e.do(s)
			if step.Action != e.want || (step.Reply != nil) != (e.want == SendReply) {
				t.Errorf("%s: %s: %v (reply %v), want %v", name, e.name, step.Action, step.Reply != nil, e.want)
			}
			if step.Reply != nil && step.Reply.Status != 204 {
				t.Errorf("%s: %s: reply %d, want 204", name, e.name, step.Reply.Status)
			}
		}
	}
}

func TestLevelsMapsEveryPolicyLevel(t *testing.T) {
	l := Levels[string]{"d", "i", "w", "e"}
	for level, want := range map[policy.Level]string{
		policy.LevelDebug - 4: "d", policy.LevelDebug: "d", policy.LevelInfo: "i", policy.LevelWarn: "w",
		policy.LevelError: "e", policy.LevelError + 4: "e",
	} {
		if got := l.Of(level); got != want {
			t.Errorf("%v: %q, want %q", level, got, want)
		}
	}
}

func TestReadRequest(t *testing.T) {
	req, path := ReadRequest(headers{":method": "OPTIONS", ":path": "/p", "origin": "", "access-control-request-method": "GET"}, nil)
	if want := (policy.Request{Method: "OPTIONS", HasOrigin: true, AccessControlRequestMethod: "GET", Path: "/p"}); req != want || path != "/p" {
		t.Errorf("%+v %q", req, path)
	}
}

func TestMetadataKeysAreTheSummarysKeys(t *testing.T) {
	// A stream with every value: two events a second apart, extract rules.
	md := Summary{Events: 2, Bytes: 2, LastEventID: "3", Protocol: "HTTP/2", extracting: true,
		Timing: sse.Timing{HasFirstByte: true, HasFirstEvent: true, FirstEvent: time.Second, LastEvent: 2 * time.Second}}.Metadata()
	keys := MetadataKeys()
	if len(md) != len(keys) {
		t.Fatalf("metadata %v, keys %q", md, keys)
	}
	for _, k := range keys {
		if _, ok := md[k]; !ok {
			t.Errorf("key %s not in %v", k, md)
		}
	}
}

// The names come from the policy (redact_query_params); these are the
// repository's configuration (Mercure's subscriber token) and one more.
func TestLogPathRedactsTheConfiguredParams(t *testing.T) {
	redact := []string{"authorization", "access_token"}
	for in, want := range map[string]string{
		"/sse/events":               "/sse/events",
		"/sse/events?lastEventId=7": "/sse/events?lastEventId=7",
		"/.well-known/mercure?topic=a&authorization=eyJ.x.y":                   "/.well-known/mercure?topic=a&authorization=redacted",
		"/.well-known/mercure?Authorization=eyJ&topic=b":                       "/.well-known/mercure?authorization=redacted&topic=b",
		"/.well-known/mercure?%61uthorization=eyJ":                             "/.well-known/mercure?authorization=redacted",
		"/.well-known/mercure?authorization":                                   "/.well-known/mercure?authorization=redacted",
		"/.well-known/mercure?topic=%E2%9C%93&authorization=a&authorization=b": "/.well-known/mercure?topic=%E2%9C%93&authorization=redacted&authorization=redacted",
		"/.well-known/mercure?topic=authorization":                             "/.well-known/mercure?topic=authorization",
		"/.well-known/mercure?topic=%zz":                                       "/.well-known/mercure?topic=%zz",
		"/p?ACCESS_TOKEN=s&authorization=t&x=1":                                "/p?access_token=redacted&authorization=redacted&x=1",
		"/p?access_token_id=s":                                                 "/p?access_token_id=s",
	} {
		if got := LogPath(in, redact); got != want {
			t.Errorf("LogPath(%q) = %q, want %q", in, got, want)
		}
	}
	_, path := ReadRequest(headers{":method": "GET", ":path": "/.well-known/mercure?topic=a&authorization=secret"}, redact)
	if strings.Contains(path, "secret") {
		t.Errorf("ReadRequest's path %q holds the token", path)
	}
}

// Without redact_query_params (the default), no parameter is redacted and
// the path is not copied.
func TestLogPathRedactsNothingByDefault(t *testing.T) {
	in := "/.well-known/mercure?topic=a&authorization=eyJ"
	if got := LogPath(in, nil); got != in {
		t.Errorf("LogPath(%q, nil) = %q", in, got)
	}
	if n := testing.AllocsPerRun(100, func() { LogPath(in, nil) }); n != 0 {
		t.Errorf("LogPath without names allocates %v times", n)
	}
}
