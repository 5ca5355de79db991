package ssefilter

import (
	"fmt"
	"strings"

	"github.com/envoyproxy/envoy/contrib/golang/common/go/api"

	"example.com/sse-on-envoy/internal/ssestream"
)

// fakeHeaders is a header map that lower-cases keys, as Envoy does. Embedding
// the interface leaves methods the filter must not call nil: calling one
// fails the test with a panic.
type fakeHeaders struct {
	api.RequestHeaderMap
	m map[string][]string
}

func newHeaders(kv ...string) *fakeHeaders {
	h := &fakeHeaders{m: map[string][]string{}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func (h *fakeHeaders) Get(k string) (string, bool) {
	v, ok := h.m[strings.ToLower(k)]
	if !ok {
		return "", false
	}
	return v[0], true
}
func (h *fakeHeaders) GetRaw(k string) string   { v, _ := h.Get(k); return v }
func (h *fakeHeaders) Values(k string) []string { return h.m[strings.ToLower(k)] }
func (h *fakeHeaders) Set(k, v string)          { h.m[strings.ToLower(k)] = []string{v} }
func (h *fakeHeaders) Add(k, v string)          { k = strings.ToLower(k); h.m[k] = append(h.m[k], v) }
func (h *fakeHeaders) Del(k string)             { delete(h.m, strings.ToLower(k)) }
func (h *fakeHeaders) Method() string           { return h.GetRaw(":method") }
func (h *fakeHeaders) Path() string             { return h.GetRaw(":path") }
func (h *fakeHeaders) Status() (int, bool) {
	var s int
	_, err := fmt.Sscan(h.GetRaw(":status"), &s)
	return s, err == nil
}
func (h *fakeHeaders) GetAllHeaders() map[string][]string { return h.m }

// fakeBuffer records whether the filter copied the chunk into Go.
type fakeBuffer struct {
	api.BufferInstance
	data        []byte
	bytesCopied int
}

func (b *fakeBuffer) Bytes() []byte { b.bytesCopied++; return append([]byte(nil), b.data...) }
func (b *fakeBuffer) Len() int      { return len(b.data) }

type localReply struct {
	status  int
	body    string
	headers map[string][]string
	details string
}

type fakeCallbacks struct {
	api.FilterCallbackHandler
	info *fakeStreamInfo
	logs []string
	// lines are the logs as "LEVEL message", the policy level's slog name.
	lines      []string
	reply      *localReply
	properties map[string]string
}

func newCallbacks() *fakeCallbacks {
	return &fakeCallbacks{
		info:       &fakeStreamInfo{route: "sse_plain", protocol: "HTTP/1.1", metadata: map[string]map[string]any{}},
		properties: map[string]string{},
	}
}

func (c *fakeCallbacks) StreamInfo() api.StreamInfo { return c.info }
func (c *fakeCallbacks) Log(level api.LogType, msg string) {
	c.logs = append(c.logs, fmt.Sprintf("[%d] %s", level, msg))
	c.lines = append(c.lines, map[api.LogType]string{api.Debug: "DEBUG", api.Info: "INFO", api.Warn: "WARN", api.Error: "ERROR"}[level]+" "+msg)
}
func (c *fakeCallbacks) GetProperty(key string) (string, error) {
	if v, ok := c.properties[key]; ok {
		return v, nil
	}
	return "", fmt.Errorf("property %s not found", key)
}
func (c *fakeCallbacks) DecoderFilterCallbacks() api.DecoderFilterCallbacks {
	return &fakeDecoderCallbacks{parent: c}
}

type fakeDecoderCallbacks struct {
	api.DecoderFilterCallbacks
	parent *fakeCallbacks
}

func (d *fakeDecoderCallbacks) SendLocalReply(status int, body string, headers map[string][]string, grpcStatus int64, details string) {
	d.parent.reply = &localReply{status: status, body: body, headers: headers, details: details}
}

type fakeStreamInfo struct {
	api.StreamInfo
	route, protocol string
	details         string
	metadata        map[string]map[string]any
}

func (s *fakeStreamInfo) GetRouteName() string                 { return s.route }
func (s *fakeStreamInfo) Protocol() (string, bool)             { return s.protocol, s.protocol != "" }
func (s *fakeStreamInfo) DynamicMetadata() api.DynamicMetadata { return fakeMetadata(s.metadata) }
func (s *fakeStreamInfo) ResponseCodeDetails() (string, bool) {
	return s.details, s.details != ""
}

type fakeMetadata map[string]map[string]any

func (m fakeMetadata) Get(ns string) map[string]any { return m[ns] }
func (m fakeMetadata) Set(ns, key string, value any) {
	if m[ns] == nil {
		m[ns] = map[string]any{}
	}
	m[ns][key] = value
}

// fakeConfigCallbacks defines stats as plain counters.
type fakeConfigCallbacks struct {
	api.ConfigCallbackHandler
	stats map[string]*fakeStat
}

func newConfigCallbacks() *fakeConfigCallbacks {
	return &fakeConfigCallbacks{stats: map[string]*fakeStat{}}
}

func (c *fakeConfigCallbacks) DefineCounterMetric(name string) api.CounterMetric {
	return c.stat(name, ssestream.KindCounter)
}
func (c *fakeConfigCallbacks) DefineGaugeMetric(name string) api.GaugeMetric {
	return c.stat(name, ssestream.KindGauge)
}
func (c *fakeConfigCallbacks) stat(name string, kind ssestream.StatKind) *fakeStat {
	if c.stats[name] == nil {
		c.stats[name] = &fakeStat{kind: kind}
	}
	return c.stats[name]
}

type fakeStat struct {
	v    int64
	kind ssestream.StatKind
}

func (s *fakeStat) Increment(d int64) { s.v += d }
func (s *fakeStat) Get() uint64       { return uint64(s.v) }
func (s *fakeStat) Record(v uint64)   { s.v = int64(v) }
