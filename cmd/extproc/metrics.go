package main

import (
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"example.com/sse-on-envoy/extproc/processor"
	"example.com/sse-on-envoy/internal/ssestream"
)

// statsCollector exposes the processor's stats to Prometheus under
// ssestream's names and kinds (those of /stats and Envoy's own sse.* stats),
// dots turned into underscores: sse.streams_opened is sse_streams_opened. It
// reads the snapshot at scrape time, so the counters stay defined in one
// place.
type statsCollector struct {
	snapshot  func() map[string]int64
	histogram func(name string) *processor.Histogram
}

func promName(stat string) string { return strings.ReplaceAll(stat, ".", "_") }

func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, st := range ssestream.Stats() {
		ch <- c.desc(st)
	}
}

func (statsCollector) desc(st ssestream.Stat) *prometheus.Desc {
	return prometheus.NewDesc(promName(st.Name), "ext_proc server "+st.Kind.String()+" "+st.Name+" (as on /stats).", nil, nil)
}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.snapshot()
	for _, st := range ssestream.Stats() {
		typ := prometheus.CounterValue
		switch st.Kind {
		case ssestream.KindGauge:
			typ = prometheus.GaugeValue
		case ssestream.KindHistogram:
			if h := c.histogram(st.Name); h != nil {
				count, sum, buckets := h.Snapshot()
				ch <- prometheus.MustNewConstHistogram(c.desc(st), count, sum, buckets)
			}
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc(st), typ, float64(snap[st.Name]))
	}
}

// metricsHandler serves the stats and the Go runtime's metrics from a
// registry of its own (never the global one).
func metricsHandler(stats *processor.Stats) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		statsCollector{snapshot: stats.Snapshot, histogram: stats.Histogram},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
