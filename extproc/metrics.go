package main

import (
	"net/http"
	"sort"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// statsCollector exposes the processor's stats to Prometheus under the
// names /stats uses (and Envoy's own sse.* stats), dots turned into
// underscores: sse.streams_opened is sse_streams_opened. It reads the
// snapshot at scrape time, so the counters stay defined in one place.
type statsCollector struct {
	snapshot func() map[string]int64
}

// gauge reports the stats that go down as well as up; the rest are counters.
func gauge(name string) bool { return strings.HasSuffix(name, "_active") }

func promName(stat string) string { return strings.ReplaceAll(stat, ".", "_") }

func (c statsCollector) desc(name string) *prometheus.Desc {
	return prometheus.NewDesc(name, "ext_proc server stat "+name+" (as on /stats).", nil, nil)
}

// Describe sends nothing: the set of stats is read at scrape time, which
// makes this an unchecked collector.
func (statsCollector) Describe(chan<- *prometheus.Desc) {}

func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.snapshot()
	names := make([]string, 0, len(snap))
	for k := range snap {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		name, typ := promName(k), prometheus.CounterValue
		if gauge(name) {
			typ = prometheus.GaugeValue
		}
		ch <- prometheus.MustNewConstMetric(c.desc(name), typ, float64(snap[k]))
	}
}

// metricsHandler serves the stats and the Go runtime's metrics from a
// registry of its own (never the global one).
func metricsHandler(snapshot func() map[string]int64) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		statsCollector{snapshot: snapshot},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}
