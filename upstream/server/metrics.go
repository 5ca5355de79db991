package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"example.com/sse-on-envoy/upstream/eventlog"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
	"example.com/sse-on-envoy/upstream/replay"
	"example.com/sse-on-envoy/upstream/seed"
	"example.com/sse-on-envoy/upstream/stream"
)

// MetricsPath serves the Prometheus metrics.
const MetricsPath = "/metrics"

// Metric names, defined once: tests and dashboards use these.
const (
	MetricSubscribers   = "sse_upstream_subscribers"
	MetricPublished     = "sse_upstream_events_published_total"
	MetricReceived      = "sse_upstream_events_received_total"
	MetricReplays       = "sse_upstream_replays_total"
	MetricSlowCuts      = "sse_upstream_slow_client_cuts_total"
	MetricNATSConnected = "sse_upstream_nats_connected"
	MetricLastSequence  = "sse_upstream_last_sequence"
	MetricHealthy       = "sse_upstream_healthy"

	MetricMercureSubscribers = "sse_upstream_mercure_subscribers"
	MetricMercurePublishes   = "sse_upstream_mercure_publishes_total"
	MetricMercureReplays     = "sse_upstream_mercure_replays_total"
	MetricMercureSlowCuts    = "sse_upstream_mercure_slow_client_cuts_total"
)

// Publish results, the label of MetricPublished.
const (
	PublishStored    = "stored"
	PublishDuplicate = "duplicate" // another replica stored this tick first
	PublishFailed    = "error"
)

// Metrics are one server's Prometheus metrics, in a registry of its own
// (never the global one, so that several servers in one process, as in
// tests, do not collide). A nil *Metrics counts nothing.
type Metrics struct {
	reg       *prometheus.Registry
	replays   *prometheus.CounterVec
	published *prometheus.CounterVec
	// The Mercure hub's; nil without it.
	mercureReplays, mercurePublishes *prometheus.CounterVec
}

// addMercure registers the Mercure hub's metrics.
func (m *Metrics) addMercure(stats func() stream.Stats) {
	m.mercureReplays = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricMercureReplays,
		Help: "Mercure subscriptions opened, by what their Last-Event-ID led to (X-Mercure-Replay).",
	}, []string{"outcome"})
	m.mercurePublishes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: MetricMercurePublishes,
		Help: "Mercure publish requests, by result: stored, duplicate (a retried id), refused (4xx), error (event log unavailable).",
	}, []string{"result"})
	for _, o := range []replay.Outcome{replay.New, replay.Earliest, replay.Resumed, replay.Gap, replay.Unknown, replay.Future} {
		m.mercureReplays.WithLabelValues(string(o))
	}
	for _, r := range hubhttp.PublishResults {
		m.mercurePublishes.WithLabelValues(r)
	}
	m.reg.MustRegister(m.mercureReplays, m.mercurePublishes,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: MetricMercureSubscribers, Help: "Open Mercure subscriptions.",
		}, func() float64 { return float64(stats().Subscribers) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: MetricMercureSlowCuts, Help: "Mercure subscriptions cut because their queue was full.",
		}, func() float64 { return float64(stats().Cut) }),
	)
}

func (m *Metrics) mercureReplay(o replay.Outcome) {
	if m != nil && m.mercureReplays != nil {
		m.mercureReplays.WithLabelValues(string(o)).Inc()
	}
}

func (m *Metrics) mercurePublish(result string) {
	if m != nil && m.mercurePublishes != nil {
		m.mercurePublishes.WithLabelValues(result).Inc()
	}
}

func newMetrics(h *hub.Hub, log *eventlog.Log) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricReplays,
			Help: "Streams opened, by what their Last-Event-ID led to (x-sse-replay): none, replayed, gap (out of the history window), invalid, future, ahead.",
		}, []string{"outcome"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricPublished,
			Help: "Events this replica published, by result: stored, duplicate (another replica stored the tick first), error.",
		}, []string{"result"}),
	}
	// Every label value exists from the start, so a rate() sees the
	// first increment.
	for _, o := range seed.Outcomes {
		m.replays.WithLabelValues(o)
	}
	for _, r := range []string{PublishStored, PublishDuplicate, PublishFailed} {
		m.published.WithLabelValues(r)
	}
	stats := func(f func(hub.Stats) float64) func() float64 {
		return func() float64 { return f(h.Stats()) }
	}
	m.reg.MustRegister(
		m.replays, m.published,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: MetricSubscribers, Help: "Open event streams.",
		}, stats(func(s hub.Stats) float64 { return float64(s.Subscribers) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: MetricSlowCuts, Help: "Streams cut because their queue (-queue) was full.",
		}, stats(func(s hub.Stats) float64 { return float64(s.Cut) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: MetricReceived, Help: "Events received for fan-out (from the event log, or published locally without one).",
		}, stats(func(s hub.Stats) float64 { return float64(s.Received) })),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: MetricLastSequence, Help: "Newest event id (stream sequence) this replica holds.",
		}, stats(func(s hub.Stats) float64 { return float64(s.LastID) })),
	)
	if log != nil {
		m.reg.MustRegister(
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: MetricNATSConnected, Help: "1 while connected to NATS.",
			}, func() float64 { return b2f(log.Connected()) }),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: MetricHealthy, Help: "1 while /healthz answers 200: connected, following and caught up with the event log.",
			}, func() float64 { return b2f(log.Health() == nil) }),
		)
	}
	return m
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

func (m *Metrics) replay(outcome string) {
	if m != nil {
		m.replays.WithLabelValues(outcome).Inc()
	}
}

func (m *Metrics) publish(result string) {
	if m != nil {
		m.published.WithLabelValues(result).Inc()
	}
}
