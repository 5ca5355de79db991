package processor

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"

	"example.com/sse-on-envoy/internal/extract"
	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/internal/ssestream/lifecycletest"
)

// The shared lifecycles (internal/ssestream/lifecycletest) through both
// roles, as Envoy's two ext_proc filters send them: the policy role gets
// headers and answers, the observer gets everything and answers nothing. An
// observer has no metadata to write, and learns no more of an unfinished
// stream's end than that its gRPC stream closed.
func TestSharedLifecycles(t *testing.T) {
	lifecycletest.Run(t, lifecycletest.Adapter{
		Name:       adapterName,
		New:        newLifecycleDriver,
		NoMetadata: true,
		UnseenEnd:  "end=reset details=ext_proc_stream_closed_before_response_end",
	})
}

type lifecycleDriver struct {
	t       *testing.T
	srv     *Server
	lines   *lineRecorder
	policy  *fakeProcessStream
	observe *fakeProcessStream
	reply   int
}

func newLifecycleDriver(t *testing.T) lifecycletest.Driver {
	var rules extract.Config
	if err := json.Unmarshal([]byte(lifecycletest.Extract), &rules); err != nil {
		t.Fatal(err)
	}
	p, err := policy.New(&policy.Config{AllowedOrigins: lifecycletest.AllowedOrigins, AllowCredentials: ptr(true),
		RedactQueryParams: lifecycletest.RedactQueryParams, Extract: &rules})
	if err != nil {
		t.Fatal(err)
	}
	lines := &lineRecorder{}
	srv := New(p, slog.New(lines))
	srv.now = func() time.Time { return time.Unix(1000, 0) }
	return &lifecycleDriver{t: t, srv: srv, lines: lines,
		policy: startFake(t, srv, RolePolicy), observe: startFake(t, srv, RoleObserve)}
}

func ptr[T any](v T) *T { return &v }

func (d *lifecycleDriver) RequestHeaders(h []string, end bool) {
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: headerMap(h...), EndOfStream: end}}}
	if ir := d.policy.exchange(req).GetImmediateResponse(); ir != nil {
		// An immediate response: the request goes no further.
		d.reply = int(ir.GetStatus().GetCode())
		return
	}
	attrs, _ := structpb.NewStruct(map[string]any{"request.protocol": lifecycletest.Protocol, "xds.route_name": lifecycletest.Route})
	req.Attributes = map[string]*structpb.Struct{attributesKey: attrs}
	d.observe.send(req)
}

// The Envoy config sends neither role the request body or trailers.
func (d *lifecycleDriver) RequestBody(bool) {}
func (d *lifecycleDriver) RequestTrailers() {}

func (d *lifecycleDriver) ResponseHeaders(h []string, end bool) {
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: headerMap(h...), EndOfStream: end}}}
	d.policy.exchange(req)
	d.observe.send(req)
}

func (d *lifecycleDriver) ResponseBody(slices []string, end bool) {
	d.observe.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: []byte(strings.Join(slices, "")), EndOfStream: end}}})
}

func (d *lifecycleDriver) ResponseTrailers() {
	d.observe.send(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
		ResponseTrailers: &extprocv3.HttpTrailers{Trailers: &corev3.HeaderMap{}}}})
}

// Complete closes both gRPC streams and waits for the server to return:
// the policy role's with a half-close, the observer's with the cancel Envoy
// gives it when the HTTP stream goes (after a finished response the observer
// has already closed the stream, so the cancel changes nothing).
func (d *lifecycleDriver) Complete(ssestream.End) {
	d.policy.close(nil)
	d.observe.close(context.Canceled)
}

func (d *lifecycleDriver) Reply() int               { return d.reply }
func (d *lifecycleDriver) Metadata() map[string]any { return nil }
func (d *lifecycleDriver) Lines() []string          { return d.lines.get() }

func (d *lifecycleDriver) Stats() map[ssestream.StatID]int64 {
	snap := d.srv.Stats().Snapshot()
	out := map[ssestream.StatID]int64{}
	for _, s := range ssestream.Stats() {
		out[s.ID] = snap[s.Name]
	}
	return out
}

// fakeProcessStream is Envoy's side of one ext_proc gRPC stream, in
// process: Recv hands the server what the driver sends, one at a time, so
// when send returns the server has taken the previous message in.
type fakeProcessStream struct {
	grpc.ServerStream
	ctx     context.Context
	in      chan *extprocv3.ProcessingRequest
	out     chan *extprocv3.ProcessingResponse
	closing chan error
	done    chan error
	t       *testing.T
	once    sync.Once
}

func startFake(t *testing.T, srv *Server, role string) *fakeProcessStream {
	s := &fakeProcessStream{
		ctx: metadata.NewIncomingContext(context.Background(), metadata.Pairs(RoleHeader, role)),
		in:  make(chan *extprocv3.ProcessingRequest), out: make(chan *extprocv3.ProcessingResponse, 1),
		closing: make(chan error, 1), done: make(chan error, 1), t: t,
	}
	go func() { s.done <- srv.Process(s) }()
	t.Cleanup(func() { s.close(nil) })
	return s
}

func (s *fakeProcessStream) Context() context.Context { return s.ctx }

func (s *fakeProcessStream) Recv() (*extprocv3.ProcessingRequest, error) {
	select {
	case req := <-s.in:
		return req, nil
	case err := <-s.closing:
		if err == nil {
			err = io.EOF
		}
		return nil, err
	}
}

func (s *fakeProcessStream) Send(resp *extprocv3.ProcessingResponse) error {
	s.out <- resp
	return nil
}

func (s *fakeProcessStream) send(req *extprocv3.ProcessingRequest) {
	s.t.Helper()
	select {
	case s.in <- req:
	case <-time.After(5 * time.Second):
		s.t.Fatal("the server took no message for 5s")
	}
}

func (s *fakeProcessStream) exchange(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	s.t.Helper()
	s.send(req)
	select {
	case resp := <-s.out:
		return resp
	case <-time.After(5 * time.Second):
		s.t.Fatal("no answer for 5s")
	}
	return nil
}

// close ends the stream with err (nil: a half-close) and waits for Process
// to return.
func (s *fakeProcessStream) close(err error) {
	s.once.Do(func() {
		s.closing <- err
		select {
		case <-s.done:
		case <-time.After(5 * time.Second):
			s.t.Error("Process did not return within 5s of the stream's end")
		}
	})
}

// lineRecorder is a slog.Handler keeping "LEVEL message" lines.
type lineRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *lineRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *lineRecorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, rec.Level.String()+" "+rec.Message)
	return nil
}
func (r *lineRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *lineRecorder) WithGroup(string) slog.Handler      { return r }
func (r *lineRecorder) get() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}
