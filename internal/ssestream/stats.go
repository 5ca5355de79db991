package ssestream

import "strings"

// StatNamespace is the first part of every stat name. The dynamic module on
// Envoy 1.40 defines the rest only (InNamespace) and Envoy adds the
// namespace from envoy-module.yaml's metrics_namespace; on 1.37 Envoy puts
// "dynamicmodulescustom." in front of the whole name.
const StatNamespace = "sse"

// Stat names. Every adapter defines exactly these.
const (
	StatStreamsOpened   = StatNamespace + ".streams_opened"
	StatStreamsActive   = StatNamespace + ".streams_active"
	StatEvents          = StatNamespace + ".events"
	StatPreflights      = StatNamespace + ".preflights"
	StatRejectedOrigins = StatNamespace + ".rejected_origins"
)

// InNamespace is a stat name without StatNamespace and its dot.
func InNamespace(name string) string { return strings.TrimPrefix(name, StatNamespace+".") }

// StatKind says whether a stat only rises (a counter) or also falls (a gauge).
type StatKind int

const (
	KindCounter StatKind = iota
	KindGauge
)

func (k StatKind) String() string {
	if k == KindGauge {
		return "gauge"
	}
	return "counter"
}

// Stat is one stat an adapter defines.
type Stat struct {
	Name string
	Kind StatKind
}

// Stats lists every stat a stream updates, with its kind.
func Stats() []Stat {
	return []Stat{
		{StatStreamsOpened, KindCounter},
		{StatStreamsActive, KindGauge},
		{StatEvents, KindCounter},
		{StatPreflights, KindCounter},
		{StatRejectedOrigins, KindCounter},
	}
}

// DefineMetrics builds the Metrics from one define call per stat, so an
// adapter never spells a name or a kind itself. define may return nil for a
// stat it cannot record.
func DefineMetrics(define func(Stat) Counter) *Metrics {
	m := &Metrics{}
	for _, s := range Stats() {
		c := define(s)
		switch s.Name {
		case StatStreamsOpened:
			m.StreamsOpened = c
		case StatStreamsActive:
			m.StreamsActive = c
		case StatEvents:
			m.Events = c
		case StatPreflights:
			m.Preflights = c
		case StatRejectedOrigins:
			m.RejectedOrigins = c
		}
	}
	return m
}
