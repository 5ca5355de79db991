package ssestream

// Stat names. Every adapter defines exactly these (Envoy may put a prefix in
// front: the dynamic module's stats live under "dynamicmodulescustom.").
const (
	StatStreamsOpened   = "sse.streams_opened"
	StatStreamsActive   = "sse.streams_active"
	StatEvents          = "sse.events"
	StatPreflights      = "sse.preflights"
	StatRejectedOrigins = "sse.rejected_origins"
)

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
