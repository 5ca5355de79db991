package processor

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/policy/policytest"
	"example.com/sse-on-envoy/internal/ssestream"
)

// syncBuffer collects log output written from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startServer runs the processor on a real loopback gRPC server, as Envoy
// would reach it.
func startServer(t testing.TB) (extprocv3.ExternalProcessorClient, *Server, *syncBuffer) {
	t.Helper()
	// The allow-list of the shared vectors (internal/policy/policytest).
	cfg, err := policy.ParseJSON([]byte(policytest.ConfigJSON))
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	srv := New(p, slog.New(slog.NewTextHandler(logs, nil)))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return extprocv3.NewExternalProcessorClient(conn), srv, logs
}

func headerMap(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func requestHeaders(kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(kv...), EndOfStream: true}}}
}

func responseHeaders(kv ...string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(kv...)}}}
}

func responseBody(body string, end bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: end}}}
}

func testContext(t testing.TB, role string) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.AppendToOutgoingContext(ctx, RoleHeader, role)
}

func mutationMap(m *extprocv3.HeaderMutation) (set map[string]string, removed []string) {
	set = map[string]string{}
	for _, h := range m.GetSetHeaders() {
		set[h.GetHeader().GetKey()] = string(h.GetHeader().GetRawValue())
	}
	return set, m.GetRemoveHeaders()
}

func TestPolicyRole(t *testing.T) {
	client, srv, _ := startServer(t)
	tests := []struct {
		name          string
		request       []string
		wantImmediate int
		wantSet       map[string]string
		wantNotSet    []string
	}{
		{
			name:          "allowed preflight is answered by the server",
			request:       []string{":method", "OPTIONS", ":path", "/sse/events", "origin", "http://localhost:3000", "access-control-request-method", "GET"},
			wantImmediate: 204,
			wantSet:       map[string]string{"access-control-allow-origin": "http://localhost:3000", "access-control-max-age": "600"},
		},
		{
			name:          "disallowed preflight is refused",
			request:       []string{":method", "OPTIONS", ":path", "/sse/events", "origin", "https://evil.example", "access-control-request-method", "GET"},
			wantImmediate: 403,
			wantNotSet:    []string{"access-control-allow-origin"},
		},
		{
			name:    "curl gets the write-up's headers on a stream",
			request: []string{":method", "GET", ":path", "/sse/events"},
			wantSet: map[string]string{
				"access-control-allow-origin": "https://localhost:8080", "cache-control": "no-cache", "x-sse-stream": "ext_proc",
				"access-control-allow-methods": "GET, OPTIONS", "vary": "Origin",
			},
		},
		{
			name:       "disallowed origin gets no CORS headers",
			request:    []string{":method", "GET", ":path", "/sse/events", "origin", "https://evil.example"},
			wantSet:    map[string]string{"cache-control": "no-cache", "x-sse-stream": "ext_proc"},
			wantNotSet: []string{"access-control-allow-origin", "access-control-allow-credentials"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := client.Process(testContext(t, RolePolicy))
			if err != nil {
				t.Fatal(err)
			}
			if err := stream.Send(requestHeaders(tc.request...)); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			var mutation *extprocv3.HeaderMutation
			if tc.wantImmediate != 0 {
				ir := resp.GetImmediateResponse()
				if ir == nil || int(ir.GetStatus().GetCode()) != tc.wantImmediate {
					t.Fatalf("response %v, want an immediate %d", resp, tc.wantImmediate)
				}
				mutation = ir.GetHeaders()
			} else {
				if resp.GetRequestHeaders() == nil {
					t.Fatalf("response %v, want the request to continue", resp)
				}
				if err := stream.Send(responseHeaders(":status", "200", "content-type", "text/event-stream", "content-length", "5")); err != nil {
					t.Fatal(err)
				}
				resp, err = stream.Recv()
				if err != nil {
					t.Fatal(err)
				}
				mutation = resp.GetResponseHeaders().GetResponse().GetHeaderMutation()
				if _, removed := mutationMap(mutation); len(removed) != 1 || removed[0] != "content-length" {
					t.Errorf("removed %q, want [content-length]", removed)
				}
			}
			set, _ := mutationMap(mutation)
			for k, v := range tc.wantSet {
				if set[k] != v {
					t.Errorf("%s = %q, want %q (all: %v)", k, set[k], v, set)
				}
			}
			for _, k := range tc.wantNotSet {
				if v, ok := set[k]; ok {
					t.Errorf("%s = %q, want it unset", k, v)
				}
			}
			stream.CloseSend()
		})
	}
	if got := srv.Stats().Snapshot(); got[ssestream.StatPreflights] != 2 || got[ssestream.StatRejectedOrigins] != 2 || got[ssestream.StatStreamsOpened] != 0 {
		t.Errorf("stats %v: the policy role counts preflights and rejections, never streams", got)
	}
}

func TestObserverCountsAStream(t *testing.T) {
	client, srv, logs := startServer(t)
	stream, err := client.Process(testContext(t, RoleObserve))
	if err != nil {
		t.Fatal(err)
	}
	attrs, _ := structpb.NewStruct(map[string]any{"request.protocol": "HTTP/2", "xds.route_name": "sse_tls"})
	first := requestHeaders(":method", "GET", ":path", "/sse-with-tls/events", "origin", "http://localhost:3000")
	first.Attributes = map[string]*structpb.Struct{attributesKey: attrs}
	for _, msg := range []*extprocv3.ProcessingRequest{
		first,
		responseHeaders(":status", "200", "content-type", "text/event-stream"),
		responseBody("id: 4\nevent: DAD_JOKE\ndata: a", false),
		responseBody("\n\n: hb\n\nid: 5\ndata: b\n\n", false),
		responseBody("", true),
	} {
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	// The observer never answers; the stream ends when the server returns.
	if _, err := stream.Recv(); err == nil {
		t.Fatal("the observer answered a message")
	}
	waitFor(t, func() bool { return strings.Contains(logs.String(), "sse stream closed") })
	out := logs.String()
	for _, want := range []string{
		"sse stream opened: route=sse_tls protocol=HTTP/2 method=GET path=/sse-with-tls/events origin=http://localhost:3000 adapter=ext_proc",
		"events=2", "last_event_id=5", "end=upstream_end",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q:\n%s", want, out)
		}
	}
	if got := srv.Stats().Snapshot(); got[ssestream.StatStreamsOpened] != 1 || got[ssestream.StatStreamsActive] != 0 || got[ssestream.StatEvents] != 2 {
		t.Errorf("stats %v", got)
	}
}

func TestObserverStreamCutShort(t *testing.T) {
	client, srv, logs := startServer(t)
	ctx, cancel := context.WithCancel(testContext(t, RoleObserve))
	stream, err := client.Process(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []*extprocv3.ProcessingRequest{
		requestHeaders(":method", "GET", ":path", "/sse/events"),
		responseHeaders(":status", "200", "content-type", "text/event-stream"),
		responseBody("id: 1\ndata: a\n\n", false),
	} {
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return srv.Stats().Snapshot()[ssestream.StatEvents] == 1 })
	cancel() // Envoy drops the gRPC stream when the client goes away
	waitFor(t, func() bool { return strings.Contains(logs.String(), "sse stream closed") })
	if !strings.Contains(logs.String(), "end=reset details=ext_proc_stream_closed_before_response_end") {
		t.Errorf("logs:\n%s", logs.String())
	}
	if got := srv.Stats().Snapshot()[ssestream.StatStreamsActive]; got != 0 {
		t.Errorf("streams_active = %d", got)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnknownRoleIsRefused(t *testing.T) {
	client, _, logs := startServer(t)
	stream, err := client.Process(testContext(t, "obsrve"))
	if err != nil {
		t.Fatal(err)
	}
	stream.Send(requestHeaders(":method", "GET", ":path", "/sse/events"))
	_, err = stream.Recv()
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `"obsrve"`) {
		t.Errorf("Recv = %v, want InvalidArgument naming the role", err)
	}
	if !strings.Contains(logs.String(), "unknown role") {
		t.Errorf("no log line:\n%s", logs.String())
	}
}

// The observer sees every response body on its routes; only SSE ones count.
func TestObserverIgnoresOtherResponses(t *testing.T) {
	client, srv, logs := startServer(t)
	stream, err := client.Process(testContext(t, RoleObserve))
	if err != nil {
		t.Fatal(err)
	}
	for _, msg := range []*extprocv3.ProcessingRequest{
		requestHeaders(":method", "GET", ":path", "/healthz"),
		responseHeaders(":status", "200", "content-type", "application/json"),
		responseBody("data: not an event stream\n\n", true),
	} {
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
	}
	stream.CloseSend()
	stream.Recv() // the server ends the stream
	if got := srv.Stats().Snapshot(); got[ssestream.StatStreamsOpened] != 0 || got[ssestream.StatEvents] != 0 {
		t.Errorf("stats %v for a JSON response", got)
	}
	if strings.Contains(logs.String(), "sse stream") {
		t.Errorf("stream lines for a JSON response:\n%s", logs.String())
	}
}

// The CORS vectors every adapter runs (internal/policy/policytest): the
// header mutation the policy role answers, applied to the upstream's
// response, must give the same headers as the in-process adapters.
func TestPolicyRoleFollowsTheSharedCORSVectors(t *testing.T) {
	client, _, _ := startServer(t)
	for _, tc := range policytest.CORSCases {
		t.Run(tc.Name, func(t *testing.T) {
			stream, err := client.Process(testContext(t, RolePolicy))
			if err != nil {
				t.Fatal(err)
			}
			defer stream.CloseSend()
			if err := stream.Send(requestHeaders(tc.Request...)); err != nil {
				t.Fatal(err)
			}
			resp, err := stream.Recv()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			var mutation *extprocv3.HeaderMutation
			if tc.Reply != 0 {
				ir := resp.GetImmediateResponse()
				if ir == nil || int(ir.GetStatus().GetCode()) != tc.Reply {
					t.Fatalf("response %v, want an immediate %d", resp, tc.Reply)
				}
				mutation = ir.GetHeaders()
			} else {
				if resp.GetRequestHeaders() == nil {
					t.Fatalf("response %v, want the request to continue", resp)
				}
				for i := 0; i+1 < len(policytest.UpstreamHeaders); i += 2 {
					got[policytest.UpstreamHeaders[i]] = []string{policytest.UpstreamHeaders[i+1]}
				}
				if err := stream.Send(responseHeaders(policytest.UpstreamHeaders...)); err != nil {
					t.Fatal(err)
				}
				if resp, err = stream.Recv(); err != nil {
					t.Fatal(err)
				}
				mutation = resp.GetResponseHeaders().GetResponse().GetHeaderMutation()
			}
			// What Envoy does with the mutation: removals, then sets.
			set, removed := mutationMap(mutation)
			for _, k := range removed {
				delete(got, k)
			}
			for k, v := range set {
				got[k] = []string{v}
			}
			tc.Check(t, got)
		})
	}
}
