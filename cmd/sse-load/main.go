// Command sse-load opens many SSE streams against one URL and reports what
// they received: statuses, events, id gaps and duplicates, and each event's
// latency when the upstream stamps events (upstream -stamp). It also says
// when it was itself the bottleneck. `make bench-load` runs it against every
// variant through tools/benchload; this command is for one URL by hand.
//
// Every flag falls back to SSE_LOAD_<NAME>: -streams is SSE_LOAD_STREAMS.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"example.com/sse-on-envoy/internal/cli"
	"example.com/sse-on-envoy/tools/fdlimit"
	"example.com/sse-on-envoy/tools/loadtest"
)

func main() {
	cli.Main("sse-load", func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
		return run(ctx, args, getenv, os.Stdout, stderr)
	})
}

type options struct {
	cfg      loadtest.Config
	duration time.Duration
}

// parse reads the flags, then SSE_LOAD_<NAME> for every flag not given
// (internal/cli's convention).
func parse(args []string, getenv func(string) string, stderr io.Writer) (options, *cli.FlagSet, error) {
	var o options
	fs := cli.NewFlagSet("sse-load", "SSE_LOAD_")
	fs.StringVar(&o.cfg.URL, "url", "http://127.0.0.1:8080/sse/events", "stream URL")
	fs.IntVar(&o.cfg.Streams, "streams", 100, "streams to open")
	fs.Float64Var(&o.cfg.OpenRate, "rate", 0, "streams opened per second; 0: as fast as possible")
	fs.BoolVar(&o.cfg.HTTP2, "h2", false, "negotiate HTTP/2 (https URLs)")
	fs.StringVar(&o.cfg.CAFile, "ca", "", "PEM CA to trust for https")
	fs.StringVar(&o.cfg.ServerName, "server-name", "", "name to check in the server certificate")
	fs.BoolVar(&o.cfg.NoRead, "no-read", false, "never read the streams (slow consumers)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measurement window once every stream is answered")
	if err := fs.Parse(args, getenv, stderr); err != nil {
		return o, fs, err
	}
	if o.cfg.Streams < 1 || o.duration <= 0 {
		return o, fs, cli.Usagef("%s and %s must be positive", fs.Flag("streams"), fs.Flag("duration"))
	}
	return o, fs, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, fs, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := fs.Logger(stderr)
	if n, err := fdlimit.Raise(); err != nil {
		log.Warn("file limit", "err", err)
	} else if n < uint64(o.cfg.Streams)+64 {
		log.Warn("file limit below the stream count", "limit", n, "streams", o.cfg.Streams)
	}
	l, err := loadtest.Start(o.cfg)
	if err != nil {
		return fmt.Errorf("starting the load: %w", err)
	}
	openStart := time.Now()
	answered := l.WaitAnswered(ctx)
	log.Info("streams answered", "answered", answered, "took", time.Since(openStart).Round(time.Millisecond).String())

	self := os.Getpid()
	c0, _ := loadtest.SampleProc(self)
	m0, _ := loadtest.SampleMachine()
	l.StartWindow()
	select {
	case <-ctx.Done():
	case <-time.After(o.duration):
	}
	w := l.EndWindow()
	c1, _ := loadtest.SampleProc(self)
	m1, _ := loadtest.SampleMachine()
	s := l.Close()

	lat := loadtest.Summarize(w.Latencies)
	cores := (c1.CPU - c0.CPU).Seconds() / o.duration.Seconds()
	fmt.Fprintf(stdout, "streams %d: opened %d, failed %d %v, ended early %v\n", s.Streams, s.Opened(), s.Failed(), s.Statuses, s.Ended)
	fmt.Fprintf(stdout, "events %d in %v (%d unstamped), id gaps %d, duplicates %d\n", w.Events, o.duration, w.Unstamped, s.Gaps, s.Dups)
	fmt.Fprintf(stdout, "latency p50 %v p90 %v p99 %v max %v\n", lat.P50, lat.P90, lat.P99, lat.Max)
	fmt.Fprintf(stdout, "client CPU %.2f of %d cores; machine busy %.0f%%\n", cores, loadtest.ClientCores(), 100*loadtest.BusyFraction(m0, m1))
	if cores >= 0.9*float64(loadtest.ClientCores()) {
		fmt.Fprintln(stdout, "WARNING: the client was CPU-bound: these figures are the load tool's")
	}
	return nil
}
