// Command bench-load is `make bench-load`: it runs every load scenario
// against every variant of serving SSE (the upstream alone, Envoy with the
// router only, Envoy's own CORS filter, the ext_proc adapter, and the
// golang filter when ENVOY_BIN has it), each on loopback ports of its own,
// and writes a Markdown table to stdout, the JSON report and SVG charts.
//
// Knobs come from the environment, as make passes them: SCENARIO, VARIANTS,
// LEGS (comma lists), STREAMS, SLOW, RATE (events/s), OPEN_RATE (streams/s,
// 0: as fast as possible), DURATION, ROUNDS (repeat every case, the variants
// taking turns; the report adds per-round ratios), QUICK=1. Flags say where
// output goes; each falls back to BENCH_LOAD_<NAME>.
//
// SCENARIO=mercure (or mercure-fanout, mercure-topics, mercure-publish)
// compares the upstream's Mercure hub with github.com/dunglas/mercure's
// (built from bench/mercurehub, a module of its own), both behind the same
// router-only Envoy; there STREAMS is subscribers, TOPICS the topics they
// spread over and RATE publishes/s.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"example.com/sse-on-envoy/internal/cli"
	"example.com/sse-on-envoy/tools/benchload"
	"example.com/sse-on-envoy/tools/fdlimit"
)

func main() {
	cli.Main("bench-load", func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
		return run(ctx, args, getenv, os.Stdout, stderr)
	})
}

type options struct {
	envoy, out, name, work, note, upstreamArgs string
	replot                                     string
}

// parse reads the flags, then BENCH_LOAD_<NAME> for every flag not given
// (internal/cli's convention); the load knobs come from ParseKnobs.
func parse(args []string, getenv func(string) string, stderr io.Writer) (options, *cli.FlagSet, error) {
	var o options
	fs := cli.NewFlagSet("bench-load", "BENCH_LOAD_")
	// ENVOY_BIN, which make sets, is the default.
	fs.StringVar(&o.envoy, "envoy", getenv("ENVOY_BIN"), "Envoy binary (default: $ENVOY_BIN)")
	fs.StringVar(&o.out, "out", "docs/bench", "folder for the JSON report and the charts; empty: none")
	fs.StringVar(&o.name, "name", "", "base name of the JSON report; default bench-load, or quick in quick mode")
	fs.StringVar(&o.work, "work", "", "work folder for certificates, configs and logs; default a temporary one")
	fs.StringVar(&o.note, "note", "", "a note on the run, kept in the report (reduced scale, a busy machine...)")
	fs.StringVar(&o.upstreamArgs, "upstream-args", "", "extra upstream flags, space-separated (experiments such as -queue 16)")
	fs.StringVar(&o.replot, "replot", "", "redraw the table and charts of this JSON report into -out, running nothing")
	if err := fs.Parse(args, getenv, stderr); err != nil {
		return o, fs, err
	}
	if o.envoy == "" && o.replot == "" {
		return o, fs, cli.Usagef("no Envoy: set ENVOY_BIN or %s (make bench-load installs stock Envoy)", fs.Flag("envoy"))
	}
	return o, fs, nil
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, fs, err := parse(args, getenv, stderr)
	if err != nil {
		return err
	}
	knobs, err := benchload.ParseKnobs(getenv)
	if err != nil {
		return cli.UsageError{Err: err}
	}
	plan, err := knobs.Plan()
	if err != nil {
		return cli.UsageError{Err: err}
	}
	log := fs.Logger(stderr)
	if o.replot != "" {
		return replot(o, stdout)
	}
	return bench(ctx, o, knobs, plan, log, stdout)
}

func bench(ctx context.Context, o options, knobs benchload.Knobs, plan benchload.Plan, log *slog.Logger, stdout io.Writer) error {
	start := time.Now()
	// Before any child starts, so Envoy and the upstream inherit it.
	limit, err := fdlimit.Raise()
	if err != nil {
		log.Warn("could not raise the file limit", "err", err)
	}
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	work := o.work
	if work == "" {
		if work, err = os.MkdirTemp("", "bench-load-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if work, err = filepath.Abs(work); err != nil {
		return err
	}
	log.Info("building", "work", work)
	env, err := benchload.NewEnv(ctx, root, work, o.envoy, log)
	if err != nil {
		return err
	}
	env.UpstreamArgs = strings.Fields(o.upstreamArgs)
	machine := benchload.DescribeMachine(ctx, o.envoy)
	machine.FileLim = limit
	machine.Note = o.note
	if len(env.UpstreamArgs) > 0 {
		machine.Note = strings.TrimSpace(machine.Note + " Upstream flags: " + o.upstreamArgs + ".")
	}
	r, err := env.Run(ctx, plan, func(c benchload.Case) {
		log.Info("case done", "scenario", c.Scenario, "variant", c.Variant, "leg", c.Leg,
			"opened", c.Opened, "events", c.Events, "p99_ms", c.LatencyMS.P99, "client_cores", fmt.Sprintf("%.2f", c.ClientCores), "err", c.Error)
	}, func(c benchload.MercureCase) {
		log.Info("case done", "scenario", c.Scenario, "hub", c.Variant, "opened", c.Opened,
			"published", c.Published, "received", c.Received, "lost", c.Lost, "p99_ms", c.LatencyMS.P99,
			"client_cores", fmt.Sprintf("%.2f", c.ClientCores), "err", c.Error)
	})
	if r == nil {
		return err
	}
	r.Machine = machine
	r.Machine.Duration = time.Since(start).Round(time.Second).String()
	r.WriteMarkdown(stdout)
	if o.out != "" {
		name := o.name
		if name == "" {
			name = "bench-load"
			if knobs.Quick {
				name = "quick"
			}
		}
		if err := os.MkdirAll(o.out, 0o755); err != nil {
			return err
		}
		path := filepath.Join(o.out, name+".json")
		if err := r.WriteJSON(path); err != nil {
			return err
		}
		var md strings.Builder
		r.WriteMarkdown(&md)
		if err := os.WriteFile(filepath.Join(o.out, name+".md"), []byte(md.String()), 0o644); err != nil {
			return err
		}
		for _, sc := range plan.Scenarios {
			if cerr := benchload.WriteCharts(r, o.out, sc.Name); cerr != nil {
				log.Warn("chart", "scenario", sc.Name, "err", cerr)
			}
		}
		log.Info("report written", "json", path, "charts", o.out)
	}
	return err
}

// replot redraws a committed report's table and charts, after a change to
// how they are drawn.
func replot(o options, stdout io.Writer) error {
	r, err := benchload.ReadReport(o.replot)
	if err != nil {
		return err
	}
	r.WriteMarkdown(stdout)
	for _, sc := range r.Scenarios {
		if err := benchload.WriteCharts(r, o.out, sc.Name); err != nil {
			return err
		}
	}
	return nil
}
