package ssemodule

import (
	"fmt"
	"strings"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
)

// fakeEnvoy is one stream as the ABI shows it: lower-cased header maps
// (Envoy's), the current body chunk as slices, metadata, stats by id and a
// local reply. It records what the filter did.
type fakeEnvoy struct {
	headers map[abi.HeaderType]map[string][]string
	// counting, scanner, upstreamEnded and eventsStat stand in for the C
	// body hook (package abi tests the real one; its scanner is held equal
	// to sse.Scanner by FuzzCScannerMatchesGo).
	counting bool
	scanner  sse.Scanner
	pace     sse.Pace
	// reader gets the events that pass the rules' cheap test, as the C
	// body hook hands them to the filter (ReadEvents).
	reader        abi.EventReader
	upstreamEnded bool
	eventsStat    uint64
	counted       uint64
	metadata      map[string]any
	attrs         map[abi.Attribute]string
	intAttrs      map[abi.Attribute]uint64
	stats         map[uint64]int64
	recorded      map[uint64][]uint64
	route         any
	reply         *fakeReply
	panicOnGet    bool
	// panicOnSet > 0: the panicOnSet-th SetHeader panics.
	panicOnSet int
}

type fakeReply struct {
	status  int
	headers []abi.Header
	body    string
	details string
}

func newFakeEnvoy(request ...string) *fakeEnvoy {
	e := &fakeEnvoy{
		headers:  map[abi.HeaderType]map[string][]string{},
		metadata: map[string]any{},
		attrs:    map[abi.Attribute]string{abi.AttributeRouteName: "sse_plain", abi.AttributeRequestProtocol: "HTTP/1.1"},
		stats:    map[uint64]int64{},
		recorded: map[uint64][]uint64{},
	}
	e.setHeaders(abi.RequestHeaders, request...)
	return e
}

func (e *fakeEnvoy) setHeaders(t abi.HeaderType, kv ...string) {
	m := map[string][]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		k := strings.ToLower(kv[i])
		m[k] = append(m[k], kv[i+1])
	}
	e.headers[t] = m
}

func (e *fakeEnvoy) Header(t abi.HeaderType, key string) (string, bool) {
	if e.panicOnGet {
		panic("fake: header read")
	}
	vs := e.headers[t][strings.ToLower(key)]
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}

func (e *fakeEnvoy) SetHeader(t abi.HeaderType, key, value string) bool {
	if e.panicOnSet--; e.panicOnSet == 0 {
		panic("fake: header write")
	}
	if value == "" { // as the 1.37 ABI does
		return e.RemoveHeader(t, key)
	}
	e.headers[t][strings.ToLower(key)] = []string{value}
	return true
}

func (e *fakeEnvoy) RemoveHeader(t abi.HeaderType, key string) bool {
	delete(e.headers[t], strings.ToLower(key))
	return true
}

func (e *fakeEnvoy) SendResponse(status int, headers []abi.Header, body, details string) {
	if e.reply != nil {
		panic("fake: a second local reply")
	}
	e.reply = &fakeReply{status, headers, body, details}
}

// deliver is the C body hook receiving one chunk made of slices.
func (e *fakeEnvoy) deliver(endOfStream bool, slices ...string) {
	e.upstreamEnded = e.upstreamEnded || endOfStream
	if !e.counting {
		return
	}
	events, bytes := e.scanner.Events(), e.scanner.Bytes()
	for _, s := range slices {
		e.scanner.Write([]byte(s))
	}
	if e.scanner.Bytes() != bytes {
		// The clock stands still in the tests: every chunk comes at 0.
		e.pace.Observe(0, e.scanner.Events()-events)
	}
	e.stats[e.eventsStat] += int64(e.scanner.Events() - e.counted)
	e.counted = e.scanner.Events()
}

func (e *fakeEnvoy) CountBody(eventsCounter uint64, ok bool) {
	e.counting, e.eventsStat = true, eventsCounter
	e.scanner.MaxLineBytes = 256
}

func (e *fakeEnvoy) ReadEvents(r *abi.Rules) {
	if r == nil {
		return
	}
	rules := r.Extract()
	e.scanner.MaxLineBytes = max(rules.MaxEventBytes(), 256)
	e.scanner.MaxIDBytes, e.scanner.MaxDataBytes = 256, rules.MaxEventBytes()
	e.scanner.OnEventData = func(eventType, data []byte, cut bool) {
		if mask := rules.Match(eventType, data); mask != 0 && e.reader != nil {
			e.reader.OnEventData(mask, data, cut)
		}
	}
}

func (e *fakeEnvoy) BodyCounts() abi.Counts {
	return abi.Counts{Events: e.scanner.Events(), Bytes: e.scanner.Bytes(), LastEventID: e.scanner.LastEventID(), Timing: e.pace.Timing()}
}

func (e *fakeEnvoy) UpstreamEnded() bool { return e.upstreamEnded }

func (e *fakeEnvoy) SetMetadataString(ns, key, v string)         { e.metadata[ns+":"+key] = v }
func (e *fakeEnvoy) SetMetadataNumber(ns, key string, v float64) { e.metadata[ns+":"+key] = v }

func (e *fakeEnvoy) AttributeString(a abi.Attribute) (string, bool) {
	v, ok := e.attrs[a]
	return v, ok
}

func (e *fakeEnvoy) AttributeInt(a abi.Attribute) (uint64, bool) {
	v, ok := e.intAttrs[a]
	return v, ok
}

func (e *fakeEnvoy) IncrementCounter(id, v uint64)   { e.stats[id] += int64(v) }
func (e *fakeEnvoy) AddGauge(id uint64, delta int64) { e.stats[id] += delta }

// RecordHistogram keeps the values recorded; a histogram's stat is their sum.
func (e *fakeEnvoy) RecordHistogram(id, v uint64) {
	e.stats[id] += int64(v)
	e.recorded[id] = append(e.recorded[id], v)
}
func (e *fakeEnvoy) RouteConfig() any { return e.route }

// fakeDefiner numbers stats from 100 so an id is never a small index by
// accident.
type fakeDefiner struct {
	ids   map[string]uint64
	kinds map[string]ssestream.StatKind
	err   error
}

func (d *fakeDefiner) define(name string, kind ssestream.StatKind) (uint64, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.ids == nil {
		d.ids, d.kinds = map[string]uint64{}, map[string]ssestream.StatKind{}
	}
	d.ids[name] = uint64(100 + len(d.ids))
	d.kinds[name] = kind
	return d.ids[name], nil
}

func (d *fakeDefiner) DefineCounter(name string) (uint64, error) {
	return d.define(name, ssestream.KindCounter)
}
func (d *fakeDefiner) DefineGauge(name string) (uint64, error) {
	return d.define(name, ssestream.KindGauge)
}
func (d *fakeDefiner) DefineHistogram(name string) (uint64, error) {
	return d.define(name, ssestream.KindHistogram)
}

// logLines collects what the filter logs.
type logLines []string

func (l *logLines) log(level abi.LogLevel, msg string) {
	*l = append(*l, fmt.Sprintf("%d %s", level, msg))
}
