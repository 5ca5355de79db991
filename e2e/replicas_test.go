package e2e

import (
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/localstack"
)

// stopUpstreams stops every upstream replica on purpose (no restart).
func stopUpstreams(t *testing.T, s *localstack.Stack) {
	t.Helper()
	s.Upstream.Stop(10 * time.Second)
}
