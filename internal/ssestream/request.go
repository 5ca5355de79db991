package ssestream

import (
	"net/url"
	"slices"
	"strings"

	"example.com/sse-on-envoy/internal/policy"
)

// HeaderGetter reads a header: every adapter's request and response header
// maps (Envoy's lower-cased keys, pseudo-headers included) fit it.
type HeaderGetter interface {
	Get(key string) (string, bool)
}

// ReadRequest is what the policy reads of request headers, and the path for
// the log lines (LogPath: the values of the redact parameters hidden): the
// one place an adapter's headers become a policy.Request. redact is the
// policy's RedactQueryParams.
func ReadRequest(h HeaderGetter, redact []string) (req policy.Request, path string) {
	req.Method, _ = h.Get(":method")
	req.Origin, req.HasOrigin = h.Get("origin")
	req.AccessControlRequestMethod, _ = h.Get("access-control-request-method")
	path, _ = h.Get(":path")
	req.Path = path
	return req, LogPath(path, redact)
}

// RedactedValue is what log lines print instead of a redacted query
// parameter's value.
const RedactedValue = "redacted"

// LogPath is path as log lines print it: the value of every query
// parameter named in redact (its name matched as an upstream would:
// unescaped, any case) is replaced by RedactedValue, and the parameter is
// written with redact's spelling of its name; the rest is kept as it came.
// A path without a query, or whose query cannot hold any of the names, is
// returned as it is, without copying.
func LogPath(path string, redact []string) string {
	q := strings.IndexByte(path, '?')
	if q < 0 || len(redact) == 0 {
		return path
	}
	query := path[q+1:]
	if !strings.Contains(query, "%") && !slices.ContainsFunc(redact, func(name string) bool { return containsFold(query, name) }) {
		return path
	}
	params := strings.Split(query, "&")
	for i, p := range params {
		name, _, _ := strings.Cut(p, "=")
		if n, err := url.QueryUnescape(name); err == nil {
			name = n
		}
		for _, r := range redact {
			if strings.EqualFold(name, r) {
				params[i] = r + "=" + RedactedValue
				break
			}
		}
	}
	return path[:q+1] + strings.Join(params, "&")
}

func containsFold(s, substr string) bool {
	for i := 0; i+len(substr) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(substr)], substr) {
			return true
		}
	}
	return false
}

// Action is what an adapter does after a request event.
type Action int

const (
	// Continue forwards the request event.
	Continue Action = iota
	// Hold stops the request and buffers what comes (Envoy's buffer limit
	// bounds it): a local reply waits for the request to end.
	Hold
	// SendReply sends Step.Reply now instead of forwarding the request.
	SendReply
)

func (a Action) String() string {
	switch a {
	case Hold:
		return "hold"
	case SendReply:
		return "send_reply"
	}
	return "continue"
}

// Step is the answer to a request event: an action and, for SendReply, the
// reply to send.
type Step struct {
	Action Action
	Reply  *policy.Reply
}

// replyHold holds a local reply until the request has ended: Envoy 1.37.1
// can crash when a filter sends a local reply while the client is still
// sending a body (envoyproxy/envoy#44320), so a request with a body gets its
// answer at the body's end (or its trailers). The body is dropped with the
// request. Browsers' preflights carry no body, so they are answered at once.
type replyHold struct{ pending *policy.Reply }

func (r *replyHold) headers(reply *policy.Reply, endOfStream bool) Step {
	switch {
	case reply == nil:
		return Step{}
	case !endOfStream:
		r.pending = reply
		return Step{Action: Hold}
	}
	return Step{Action: SendReply, Reply: reply}
}

func (r *replyHold) body(endOfStream bool) Step {
	switch {
	case r.pending == nil:
		return Step{}
	case !endOfStream:
		return Step{Action: Hold}
	}
	return r.release()
}

func (r *replyHold) trailers() Step {
	if r.pending == nil {
		return Step{}
	}
	return r.release()
}

func (r *replyHold) release() Step {
	reply := r.pending
	r.pending = nil
	return Step{Action: SendReply, Reply: reply}
}

// Levels are an adapter's own log levels for debug, info, warn and error,
// in that order: the one mapping from policy.Level, for adapters whose
// logger is not slog.
type Levels[T any] [4]T

// Of maps a policy level to the adapter's: below info is debug, and so on.
func (l Levels[T]) Of(level policy.Level) T {
	switch {
	case level < policy.LevelInfo:
		return l[0]
	case level < policy.LevelWarn:
		return l[1]
	case level < policy.LevelError:
		return l[2]
	}
	return l[3]
}
