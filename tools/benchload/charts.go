package benchload

import (
	"cmp"
	"errors"
	"fmt"
	"image/color"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var palette = []color.Color{
	color.RGBA{0x4c, 0x72, 0xb0, 0xff},
	color.RGBA{0xdd, 0x84, 0x52, 0xff},
	color.RGBA{0x55, 0xa8, 0x68, 0xff},
	color.RGBA{0xc4, 0x4e, 0x52, 0xff},
}

// ChartNames are the files WriteCharts writes for a scenario.
func ChartNames(scenario string) []string {
	return []string{scenario + "-latency.svg", scenario + "-cpu.svg", scenario + "-memory.svg"}
}

// WriteCharts draws the scenario's cases into dir: latency percentiles,
// CPU per event stacked by process, and memory per stream stacked by
// process. Of a run over several rounds it draws the round with the median
// p99 of each variant and leg.
func WriteCharts(r *Report, dir, scenario string) error {
	var cases []Case
	for _, c := range r.Cases {
		if c.Scenario == scenario && c.Error == "" {
			cases = append(cases, c)
		}
	}
	if len(cases) == 0 {
		return fmt.Errorf("no case of scenario %s to chart", scenario)
	}
	cases = representatives(cases)
	labels := make([]string, len(cases))
	for i, c := range cases {
		labels[i] = c.Variant + " " + c.Leg
	}
	names := ChartNames(scenario)
	m := r.Machine
	machine := fmt.Sprintf("%d × %s, Linux %s, %s, Envoy %s, %s", m.CPUs, m.Model, m.Kernel, m.Go, m.Envoy, m.Started)

	lat := []series{
		{"p50", func(c Case) float64 { return c.LatencyMS.P50 }},
		{"p90", func(c Case) float64 { return c.LatencyMS.P90 }},
		{"p99", func(c Case) float64 { return c.LatencyMS.P99 }},
	}
	if err := barChart(filepath.Join(dir, names[0]), scenario+": event latency, publish to client read", "ms", machine, labels, cases, lat, false); err != nil {
		return err
	}
	procs := []string{"upstream", "envoy", "extproc"}
	var cpu, mem []series
	for _, n := range procs {
		cpu = append(cpu, series{n, func(c Case) float64 { p, _ := c.Proc(n); return p.CPUPerEventUS }})
		mem = append(mem, series{n, func(c Case) float64 { p, _ := c.Proc(n); return math.Max(p.KiBPerStream, 0) }})
	}
	if err := barChart(filepath.Join(dir, names[1]), scenario+": CPU per event delivered, by process", "µs", machine, labels, cases, cpu, true); err != nil {
		return err
	}
	return barChart(filepath.Join(dir, names[2]), scenario+": resident memory per open stream, by process", "KiB", machine, labels, cases, mem, true)
}

type series struct {
	name string
	get  func(Case) float64
}

func barChart(path, title, unit, machine string, labels []string, cases []Case, ss []series, stacked bool) error {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	// The machine the figures come from travels with the picture.
	p.X.Label.Text = machine
	p.Legend.Top = true
	p.X.Tick.Label.Rotation = math.Pi / 5
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	w := vg.Points(36)
	if !stacked {
		w = vg.Points(36 / float64(len(ss)))
	}
	var below *plotter.BarChart
	top := make([]float64, len(cases))
	for i, s := range ss {
		vals := make(plotter.Values, len(cases))
		for j, c := range cases {
			vals[j] = s.get(c)
			if stacked {
				top[j] += vals[j]
			} else {
				top[j] = math.Max(top[j], vals[j])
			}
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		b.Color = palette[i%len(palette)]
		b.LineStyle.Width = 0
		if stacked {
			if below != nil {
				b.StackOn(below)
			}
			below = b
		} else {
			b.Offset = w * vg.Length(float64(i)-float64(len(ss)-1)/2)
		}
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	p.NominalX(labels...)
	p.Add(plotter.NewGrid())
	// Room above the tallest bar for the legend.
	p.Y.Min = 0
	for _, t := range top {
		p.Y.Max = math.Max(p.Y.Max, t*1.3)
	}
	width := vg.Length(max(len(cases), 4)) * vg.Points(56)
	if err := p.Save(width+vg.Points(80), 5*vg.Inch, path); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}

// CurveChartName is the scale curve's chart (SCENARIO=curve).
const CurveChartName = CurveAll + "-memory.svg"

// WriteReportCharts draws every chart of r into dir: three per scenario,
// and one for the scale curve's steps together (cost against streams).
func WriteReportCharts(r *Report, dir string) error {
	var errs []error
	curve := false
	for _, sc := range r.Scenarios {
		if sc.Step {
			curve = true
			continue
		}
		errs = append(errs, WriteCharts(r, dir, sc.Name))
	}
	if curve {
		errs = append(errs, WriteCurveChart(r, filepath.Join(dir, CurveChartName)))
	}
	return errors.Join(errs...)
}

// WriteCurveChart draws the curve's resident memory per stream of each
// process against the streams held, one line per variant and process: a
// flat line is a cost that grows with the streams and nothing else.
func WriteCurveChart(r *Report, path string) error {
	steps := map[string]int{}
	for _, sc := range r.Scenarios {
		if sc.Step {
			steps[sc.Name] = sc.Streams
		}
	}
	type key struct{ variant, proc string }
	lines := map[key]plotter.XYs{}
	var keys []key
	for _, c := range r.Cases {
		n, ok := steps[c.Scenario]
		if !ok || c.Error != "" || c.Opened == 0 {
			continue
		}
		for _, proc := range []string{"upstream", "envoy", clientProc} {
			p, ok := c.Proc(proc)
			if !ok || (proc != "envoy" && c.Variant != RouterVariant) {
				// One upstream line and one client line: they do the
				// same work behind every variant.
				continue
			}
			k := key{c.Variant, proc}
			if _, seen := lines[k]; !seen {
				keys = append(keys, k)
			}
			lines[k] = append(lines[k], plotter.XY{X: float64(n), Y: p.KiBPerStream})
		}
	}
	if len(keys) == 0 {
		return errors.New("no curve case to chart")
	}
	p := plot.New()
	m := r.Machine
	// The machine the figures come from travels with the picture, on a
	// line of its own: as the axis label it would squeeze the plot.
	p.Title.Text = fmt.Sprintf("scale curve: resident memory per open stream (HTTP/2, quiet streams)\n%d × %s, %s, Envoy %s, %s", m.CPUs, m.Model, m.Go, m.Envoy, m.Started)
	p.X.Label.Text = "streams held (log scale)"
	p.Y.Label.Text = "KiB per stream"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Y.Min = 0
	for i, k := range keys {
		xy := lines[k]
		slices.SortFunc(xy, func(a, b plotter.XY) int { return cmp.Compare(a.X, b.X) })
		l, pts, err := plotter.NewLinePoints(xy)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		l.Color = palette[i%len(palette)]
		pts.Color = l.Color
		if k.variant != RouterVariant {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		}
		p.Add(l, pts)
		label := k.proc
		if k.proc == "envoy" {
			label = k.proc + " (" + k.variant + ")"
		}
		p.Legend.Add(label, l, pts)
		for _, v := range xy {
			p.Y.Max = math.Max(p.Y.Max, v.Y*1.3)
		}
	}
	p.Add(plotter.NewGrid())
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("saving %s: %w", path, err)
	}
	return nil
}
