package ssestream

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"time"
)

// logLine renders msg and attrs as one line in slog's text format, so that
// quoting (a path with a space, an origin with a CR) follows one set of rules
// everywhere: Envoy's logger takes a plain string, and the ext_proc server
// logs the same line through slog.
func logLine(msg string, attrs ...slog.Attr) string {
	w := lineWriters.Get().(*lineWriter)
	defer lineWriters.Put(w)
	w.buf.Reset()
	w.buf.WriteString(msg)
	w.buf.WriteByte(' ')
	r := slog.NewRecord(time.Time{}, slog.LevelInfo, "", 0)
	r.AddAttrs(attrs...)
	// A bytes.Buffer never fails a write.
	_ = w.handler.Handle(context.Background(), r)
	return string(bytes.TrimRight(w.buf.Bytes(), "\n"))
}

// lineWriter is a buffer with a text handler writing into it: a line is
// rendered twice per stream on Envoy's worker threads, and a handler and a
// buffer made for each cost more than the line itself.
type lineWriter struct {
	buf     bytes.Buffer
	handler slog.Handler
}

var lineWriters = sync.Pool{New: func() any {
	w := &lineWriter{}
	w.handler = slog.NewTextHandler(&w.buf, &slog.HandlerOptions{ReplaceAttr: attrsOnly})
	return w
}}

// attrsOnly drops the level and message slog's text handler writes before
// the attributes (a zero time is already left out).
func attrsOnly(groups []string, a slog.Attr) slog.Attr {
	if len(groups) == 0 && (a.Key == slog.LevelKey || a.Key == slog.MessageKey) {
		return slog.Attr{}
	}
	return a
}

// LogValue makes a Summary one group of log attributes: inlined when logged
// under an empty key, as the closed line does.
// The timing is there once there was an event (first_event) and a gap
// (max_gap), and the extract rules' values and errors when the policy has
// rules.
func (sum Summary) LogValue() slog.Value {
	attrs := []slog.Attr{
		slog.String("protocol", orDash(sum.Protocol)),
		slog.Duration("duration", sum.Duration.Round(time.Millisecond)),
		slog.Uint64("events", sum.Events),
		slog.Uint64("bytes", sum.Bytes),
		slog.String("last_event_id", orDash(sum.LastEventID)),
	}
	if t := sum.Timing; t.HasFirstEvent {
		attrs = append(attrs, slog.Duration("first_event", t.FirstEvent.Round(time.Millisecond/10)))
		if sum.Events > 1 {
			attrs = append(attrs, slog.Duration("max_gap", t.MaxGap.Round(time.Millisecond/10)))
		}
	}
	for _, e := range sum.Extracted {
		attrs = append(attrs, slog.Any(e.Key, e.Value))
	}
	if sum.extracting {
		attrs = append(attrs, slog.Uint64("extract_errors", sum.ExtractErrors))
	}
	return slog.GroupValue(attrs...)
}

// LogValue is how the stream ended: end=<reason>, and details= when Envoy's
// response code details add something.
func (e End) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("end", e.Reason())}
	if !e.UpstreamEnded && e.Details != "" && e.Details != "via_upstream" {
		attrs = append(attrs, slog.String("details", e.Details))
	}
	return slog.GroupValue(attrs...)
}
