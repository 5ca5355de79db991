// Package processor is the ext_proc adapter: an Envoy External Processing
// gRPC service that applies the same SSE policy as the golang filter, for
// stock Envoy builds.
//
// Envoy runs two ext_proc filters against it, told apart by the gRPC
// metadata RoleHeader:
//
//   - "policy" (the default): request and response headers only. It answers
//     preflights with an immediate response and edits response headers
//     (CORS, cache-control, the tag). Bodies never go through it, so a
//     stream's chunks never wait for a gRPC round trip.
//   - "observe": Envoy's observability mode, which sends headers and body
//     chunks without waiting for answers (and ignores any). It counts events,
//     logs when a stream opens and ends, and keeps the stats.
package processor

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
)

// RoleHeader is the gRPC metadata key (grpc_service.initial_metadata in the
// Envoy config) that says which filter a stream comes from.
const RoleHeader = "x-sse-role"

// Roles.
const (
	RolePolicy  = "policy"
	RoleObserve = "observe"
)

// adapterName is the tag header's value on streams this adapter tagged.
const adapterName = "ext_proc"

// attributesKey is where Envoy puts request_attributes in a ProcessingRequest.
const attributesKey = "envoy.filters.http.ext_proc"

// Server implements envoy.service.ext_proc.v3.ExternalProcessor.
type Server struct {
	extprocv3.UnimplementedExternalProcessorServer

	policy  *policy.Policy
	log     *slog.Logger
	now     func() time.Time
	stats   *Stats
	metrics *ssestream.Metrics
}

// New returns a server applying p. log receives the stream lines.
func New(p *policy.Policy, log *slog.Logger) *Server {
	st := &Stats{counters: map[string]*Counter{}, histograms: map[string]*Histogram{}}
	return &Server{
		policy: p,
		log:    log,
		now:    time.Now,
		stats:  st,
		metrics: ssestream.DefineMetrics(func(s ssestream.Stat) ssestream.Counter {
			if s.Kind == ssestream.KindHistogram {
				h := &Histogram{}
				st.histograms[s.Name] = h
				return h
			}
			c := &Counter{}
			st.counters[s.Name] = c
			return c
		}),
	}
}

// Stats returns the server's counters, the same names as the golang filter's.
func (s *Server) Stats() *Stats { return s.stats }

// Stats are the counters of an ext_proc server, by ssestream's stat names.
// The map is filled once in New and only read afterwards.
type Stats struct {
	counters   map[string]*Counter
	histograms map[string]*Histogram
}

// Histogram is one of the histogram stats, by its ssestream name; nil for
// another name.
func (st *Stats) Histogram(name string) *Histogram { return st.histograms[name] }

// Snapshot names the counters as Envoy's stats would.
func (st *Stats) Snapshot() map[string]int64 {
	out := make(map[string]int64, len(st.counters))
	for name, c := range st.counters {
		out[name] = c.Load()
	}
	return out
}

// Counter is one of the stats, by its ssestream name; nil for another name.
func (st *Stats) Counter(name string) *Counter { return st.counters[name] }

// HistogramBounds are the upper bounds (milliseconds) of a Histogram's
// buckets: Envoy's default histogram buckets.
var HistogramBounds = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// Histogram counts values into HistogramBounds; safe for concurrent use.
type Histogram struct {
	buckets [20]atomic.Uint64 // len(HistogramBounds) + the overflow
	count   atomic.Uint64
	sum     atomic.Int64
}

// Increment implements ssestream.Counter for a histogram: it records v.
func (h *Histogram) Increment(v int64) {
	i := len(HistogramBounds)
	for j, b := range HistogramBounds {
		if float64(v) <= b {
			i = j
			break
		}
	}
	h.buckets[i].Add(1)
	h.count.Add(1)
	h.sum.Add(v)
}

// Snapshot is the count, the sum and the cumulative count per bound, as
// Prometheus wants them.
func (h *Histogram) Snapshot() (count uint64, sum float64, cumulative map[float64]uint64) {
	cumulative = make(map[float64]uint64, len(HistogramBounds))
	var n uint64
	for i, b := range HistogramBounds {
		n += h.buckets[i].Load()
		cumulative[b] = n
	}
	return h.count.Load(), float64(h.sum.Load()), cumulative
}

// Counter is safe for concurrent use: gRPC streams run on many goroutines.
type Counter struct{ atomic.Int64 }

// Increment implements ssestream.Counter.
func (c *Counter) Increment(delta int64) { c.Add(delta) }

// Process handles one HTTP stream's ext_proc stream.
func (s *Server) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	switch role := roleOf(stream.Context()); role {
	case RolePolicy:
		return s.applyPolicy(stream)
	case RoleObserve:
		return s.observe(stream)
	default:
		// A typo in the Envoy config would otherwise count nothing, silently.
		s.log.Error("ext_proc stream refused: unknown role", "metadata", RoleHeader, "value", role)
		return status.Errorf(codes.InvalidArgument, "%s %q: want %q or %q (grpc_service.initial_metadata)", RoleHeader, role, RolePolicy, RoleObserve)
	}
}

// roleOf reads the role from the stream's metadata; none means the policy.
func roleOf(ctx context.Context) string {
	md, _ := metadata.FromIncomingContext(ctx)
	if v := md.Get(RoleHeader); len(v) > 0 {
		return v[0]
	}
	return RolePolicy
}

func (s *Server) applyPolicy(stream extprocv3.ExternalProcessor_ProcessServer) error {
	st := ssestream.New(s.policy, s.metrics, adapterName, s.now)
	for {
		req, err := stream.Recv()
		if err != nil {
			return endOfStream(err)
		}
		var resp *extprocv3.ProcessingResponse
		switch r := req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			// This role sees the request headers only, so they are all of
			// the request it will see: a reply goes at once.
			if step := st.OnRequestHeaders(newHeaderEdits(r.RequestHeaders.GetHeaders()), true); step.Action == ssestream.SendReply {
				resp = immediateResponse(step.Reply)
			} else {
				resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
					RequestHeaders: &extprocv3.HeadersResponse{}}}
			}
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			h := newHeaderEdits(r.ResponseHeaders.GetHeaders())
			st.OnResponseHeaders(h, r.ResponseHeaders.GetEndOfStream())
			resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
				ResponseHeaders: &extprocv3.HeadersResponse{Response: &extprocv3.CommonResponse{HeaderMutation: h.mutation()}}}}
		default:
			// The Envoy config sends this role headers only; answer anything
			// else unchanged rather than stall the stream.
			resp = passThrough(req)
		}
		if err := stream.Send(resp); err != nil {
			return endOfStream(err)
		}
	}
}

func (s *Server) observe(stream extprocv3.ExternalProcessor_ProcessServer) error {
	st := ssestream.New(s.policy, s.metrics, adapterName, s.now)
	host := &observer{log: s.log}
	var info ssestream.Info
	for {
		req, err := stream.Recv()
		if err != nil {
			// Envoy closed the gRPC stream before the response ended: the
			// client went away or something reset the stream; ext_proc does
			// not say which.
			host.details = "ext_proc_stream_closed_before_response_end"
			st.Finish(host)
			return endOfStream(err)
		}
		if attrs := req.GetAttributes()[attributesKey]; attrs != nil {
			info = infoFromAttributes(attrs, info)
		}
		switch r := req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			st.ObserveRequest(newHeaderEdits(r.RequestHeaders.GetHeaders()))
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			if ssestream.IsStream(newHeaderEdits(r.ResponseHeaders.GetHeaders())) {
				st.Open(info, host)
			}
			if r.ResponseHeaders.GetEndOfStream() {
				st.OnResponseEnd()
			}
		case *extprocv3.ProcessingRequest_ResponseBody:
			st.OnResponseData(r.ResponseBody.GetBody(), r.ResponseBody.GetEndOfStream())
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			st.OnResponseEnd()
		}
		// Once the response has ended the stream is over for an observer:
		// nothing later says more.
		if st.UpstreamEnded() {
			st.Finish(host)
		}
		// Observability mode ignores answers, so none are sent.
	}
}

func infoFromAttributes(attrs *structpb.Struct, info ssestream.Info) ssestream.Info {
	f := attrs.GetFields()
	if v := f["request.protocol"].GetStringValue(); v != "" {
		info.Protocol = v
	}
	if v := f["xds.route_name"].GetStringValue(); v != "" {
		info.Route = v
	}
	return info
}

func immediateResponse(reply *policy.Reply) *extprocv3.ProcessingResponse {
	m := &extprocv3.HeaderMutation{}
	for _, h := range reply.Headers {
		m.SetHeaders = append(m.SetHeaders, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: h.Key, RawValue: []byte(h.Value)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{
		ImmediateResponse: &extprocv3.ImmediateResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(reply.Status)},
			Headers: m,
			Body:    []byte(reply.Body),
			Details: reply.Details,
		}}}
}

func passThrough(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return &extprocv3.ProcessingResponse{}
}

// endOfStream turns the ways a gRPC stream ends normally into nil.
func endOfStream(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	if c := status.Code(err); c == codes.Canceled || c == codes.DeadlineExceeded {
		return nil
	}
	return err
}

// observer is the observe role's ssestream.Host: slog for the lines (the
// policy's levels are slog's), no metadata (Envoy ignores an observer's
// answers), and how the gRPC stream ended.
type observer struct {
	log     *slog.Logger
	details string
}

func (o *observer) Log(level policy.Level, msg string) {
	o.log.Log(context.Background(), level, msg)
}

func (o *observer) SetMetadata(string, any) {}

func (o *observer) End() ssestream.End { return ssestream.End{Details: o.details} }
