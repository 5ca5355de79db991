package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/tools/localstack"
)

// accessLogEntry is one JSON line of Envoy's access log (envoy.yaml's
// json_format).
type accessLogEntry map[string]any

func (e accessLogEntry) str(k string) string {
	switch v := e[k].(type) {
	case nil:
		return ""
	case string:
		return v
	default:
		return fmt.Sprint(v)
	}
}

// waitForAccessLog polls Envoy's output until at least n entries match.
func waitForAccessLog(t *testing.T, s *localstack.Stack, match func(accessLogEntry) bool, n int) []accessLogEntry {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var found []accessLogEntry
		for _, line := range strings.Split(s.Envoy.Output(), "\n") {
			if !strings.HasPrefix(line, "{") {
				continue
			}
			var e accessLogEntry
			if json.Unmarshal([]byte(line), &e) == nil && match(e) {
				found = append(found, e)
			}
		}
		if len(found) >= n {
			return found
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d matching access log entries after 15 s, want %d; Envoy's output:\n%s", len(found), n, s.Envoy.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
