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
	StatExtractErrors   = StatNamespace + ".extract_errors"
	// Histograms of every stream's time to the first event and largest gap
	// between two events, in milliseconds, recorded when it closes.
	StatFirstEventMS = StatNamespace + ".first_event_ms"
	StatMaxGapMS     = StatNamespace + ".max_gap_ms"
)

// StatID is a stat's index: in Metrics, in Stats() and in an adapter's own
// table of what its Envoy API made of each stat.
type StatID int

// The stats. A new one is a constant here and a line in statDefs; every
// adapter defines it from Stats(), and the lifecycle table
// (lifecycletest) checks it through all three.
const (
	StreamsOpened StatID = iota
	StreamsActive
	Events
	Preflights
	RejectedOrigins
	ExtractErrors
	FirstEventMS
	MaxGapMS

	// NumStats is how many stats there are.
	NumStats
)

var statDefs = [NumStats]Stat{
	StreamsOpened:   {StreamsOpened, StatStreamsOpened, KindCounter},
	StreamsActive:   {StreamsActive, StatStreamsActive, KindGauge},
	Events:          {Events, StatEvents, KindCounter},
	Preflights:      {Preflights, StatPreflights, KindCounter},
	RejectedOrigins: {RejectedOrigins, StatRejectedOrigins, KindCounter},
	ExtractErrors:   {ExtractErrors, StatExtractErrors, KindCounter},
	FirstEventMS:    {FirstEventMS, StatFirstEventMS, KindHistogram},
	MaxGapMS:        {MaxGapMS, StatMaxGapMS, KindHistogram},
}

// InNamespace is a stat name without StatNamespace and its dot.
func InNamespace(name string) string { return strings.TrimPrefix(name, StatNamespace+".") }

// StatKind says whether a stat only rises (a counter), also falls (a
// gauge), or is a distribution of values (a histogram: an adapter whose
// Envoy API has none defines it as nil).
type StatKind int

const (
	KindCounter StatKind = iota
	KindGauge
	KindHistogram
)

func (k StatKind) String() string {
	switch k {
	case KindGauge:
		return "gauge"
	case KindHistogram:
		return "histogram"
	}
	return "counter"
}

// Stat is one stat an adapter defines.
type Stat struct {
	ID   StatID
	Name string
	Kind StatKind
}

// Stats lists every stat a stream updates, in StatID order.
func Stats() []Stat { return statDefs[:] }

// Counter is a stat; Envoy's golang counters and gauges fit it as they are.
// A histogram's Increment records its argument as one value.
type Counter interface {
	Increment(delta int64)
}

// Recorder moves a stream's stats by StatID: a counter or gauge by delta; a
// histogram records delta as one value. *Metrics is one; an adapter
// whose API updates a stat through the stream (the dynamic module's) is one
// itself, so a stream costs no per-stream table of counters.
type Recorder interface {
	Add(id StatID, delta int64)
}

// Metrics are the stats a stream updates, by StatID; nil ones are not
// recorded.
type Metrics [NumStats]Counter

// Add moves stat id by delta; a nil *Metrics records nothing.
func (m *Metrics) Add(id StatID, delta int64) {
	if m == nil {
		return
	}
	if c := m[id]; c != nil {
		c.Increment(delta)
	}
}

// DefineMetrics builds the Metrics from one define call per stat, so an
// adapter never spells a name or a kind itself. define may return nil for a
// stat it cannot record.
func DefineMetrics(define func(Stat) Counter) *Metrics {
	m := &Metrics{}
	for _, s := range statDefs {
		m[s.ID] = define(s)
	}
	return m
}
