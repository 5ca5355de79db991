package processor

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// BenchmarkPolicyRoundTrip is what the sse_policy filter adds to a request:
// one ext_proc stream over loopback gRPC with the request headers and the
// response headers, as Envoy opens one per HTTP request.
func BenchmarkPolicyRoundTrip(b *testing.B) {
	client, _, _ := startServer(b)
	ctx := testContext(b, RolePolicy)
	reqHeaders := requestHeaders(":method", "GET", ":path", "/sse/events", "origin", "http://localhost:3000")
	respHeaders := responseHeaders(":status", "200", "content-type", "text/event-stream")
	b.ReportAllocs()
	for b.Loop() {
		stream, err := client.Process(ctx)
		if err != nil {
			b.Fatal(err)
		}
		for _, msg := range []*extprocv3.ProcessingRequest{reqHeaders, respHeaders} {
			if err := stream.Send(msg); err != nil {
				b.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				b.Fatal(err)
			}
		}
		stream.CloseSend()
	}
}
