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
// Only a full run (every knob at its default, or SCENARIO=mercure alone)
// replaces the committed report in docs/bench; any other run writes into
// .cache/bench (git-ignored) and says so, unless -out (make's OUT=) names a
// folder.
//
// SCENARIO=mercure (or mercure-fanout, mercure-topics, mercure-publish)
// compares the upstream's Mercure hub with github.com/dunglas/mercure's
// (built from bench/mercurehub, a module of its own), both behind the same
// router-only Envoy; there STREAMS is subscribers, TOPICS the topics they
// spread over and RATE publishes/s.
package main

import (
	"context"
	"flag"
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
	// outSet: -out was given, on the command line or as BENCH_LOAD_OUT.
	outSet bool
}

// parse reads the flags, then BENCH_LOAD_<NAME> for every flag not given
// (internal/cli's convention); the load knobs come from ParseKnobs.
func parse(args []string, getenv func(string) string, stderr io.Writer) (options, *cli.FlagSet, error) {
	var o options
	fs := cli.NewFlagSet("bench-load", "BENCH_LOAD_")
	// ENVOY_BIN, which make sets, is the default.
	fs.StringVar(&o.envoy, "envoy", getenv("ENVOY_BIN"), "Envoy binary (default: $ENVOY_BIN)")
	fs.StringVar(&o.out, "out", "", "folder for the JSON and Markdown report and the charts (make's OUT=); default "+
		benchload.CommittedDir+" for a full run, "+benchload.ScratchDir+" for any other; -out '' writes none; with -replot, default the report's folder")
	fs.StringVar(&o.name, "name", "", "base name of the report; default bench-load, quick in quick mode, mercure for Mercure scenarios only")
	fs.StringVar(&o.work, "work", "", "work folder for certificates, configs and logs; default a temporary one")
	fs.StringVar(&o.note, "note", "", "a note on the run, kept in the report (reduced scale, a busy machine...)")
	fs.StringVar(&o.upstreamArgs, "upstream-args", "", "extra upstream flags, space-separated (experiments such as -queue 16)")
	fs.StringVar(&o.replot, "replot", "", "redraw the table and charts of this JSON report into -out, running nothing")
	if err := fs.Parse(args, getenv, stderr); err != nil {
		return o, fs, err
	}
	fs.Visit(func(f *flag.Flag) { o.outSet = o.outSet || f.Name == "out" })
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
	output := benchload.ChooseOutput(knobs, plan, benchload.OutputRequest{
		Out: o.out, OutSet: o.outSet, Name: o.name, Experiment: o.upstreamArgs != "",
	})
	switch {
	case output.Dir == "":
		log.Info("no report files (-out '')")
	case output.Committed:
		log.Info("full run: the report replaces the committed one", "dir", output.Dir, "name", output.Name)
	case output.Dir == benchload.ScratchDir:
		log.Info("partial run: the report goes to "+output.Dir+", not "+benchload.CommittedDir+" (OUT= names another folder)",
			"dir", output.Dir, "name", output.Name)
	}
	return bench(ctx, o, output, plan, log, stdout)
}

func bench(ctx context.Context, o options, output benchload.Output, plan benchload.Plan, log *slog.Logger, stdout io.Writer) error {
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
	if output.Dir != "" {
		if err := os.MkdirAll(output.Dir, 0o755); err != nil {
			return err
		}
		path := filepath.Join(output.Dir, output.Name+".json")
		if err := r.WriteJSON(path); err != nil {
			return err
		}
		var md strings.Builder
		r.WriteMarkdown(&md)
		if err := os.WriteFile(filepath.Join(output.Dir, output.Name+".md"), []byte(md.String()), 0o644); err != nil {
			return err
		}
		if cerr := benchload.WriteReportCharts(r, output.Dir); cerr != nil {
			log.Warn("charts", "err", cerr)
		}
		abs, _ := filepath.Abs(output.Dir)
		log.Info("report written", "json", path, "charts", output.Dir, "folder", abs)
	}
	return err
}

// replot redraws a committed report's table and charts, after a change to
// how they are drawn: the charts go next to the report unless -out says
// otherwise.
func replot(o options, stdout io.Writer) error {
	r, err := benchload.ReadReport(o.replot)
	if err != nil {
		return err
	}
	r.WriteMarkdown(stdout)
	dir := o.out
	if !o.outSet {
		dir = filepath.Dir(o.replot)
	}
	if dir == "" {
		return nil
	}
	return benchload.WriteReportCharts(r, dir)
}
