package benchload

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"time"

	"example.com/sse-on-envoy/tools/loadtest"
)

// procSampler reads the CPU time and resident memory of a case's processes
// from /proc, by name.
type procSampler struct {
	names []string
	pids  map[string]int
}

func (s procSampler) sample() (map[string]loadtest.ProcSample, error) {
	out := make(map[string]loadtest.ProcSample, len(s.names))
	for _, n := range s.names {
		p, err := loadtest.SampleProc(s.pids[n])
		if err != nil {
			return nil, fmt.Errorf("sampling %s: %w", n, err)
		}
		out[n] = p
	}
	return out, nil
}

// idle is the baseline sample: everything started, no stream yet, and the
// client's garbage from earlier cases returned to the system.
func (s procSampler) idle() (map[string]loadtest.ProcSample, error) {
	runtime.GC()
	debug.FreeOSMemory()
	time.Sleep(300 * time.Millisecond)
	return s.sample()
}

// procFigures turns the samples into each process's figures: CPU over the
// window (before to after) per unit of work (events read, deliveries), and
// resident memory with the streams open (loaded) minus idle, per stream.
func (s procSampler) procFigures(idle, loaded, before, after map[string]loadtest.ProcSample, window time.Duration, work int64, opened int) (procs []Proc, clientCores float64) {
	for _, n := range s.names {
		p := Proc{Name: n}
		cpu := after[n].CPU - before[n].CPU
		p.CPUCores = cpu.Seconds() / window.Seconds()
		if work > 0 {
			p.CPUPerEventUS = float64(cpu.Microseconds()) / float64(work)
		}
		if opened > 0 {
			p.KiBPerStream = float64(loaded[n].RSS-idle[n].RSS) / 1024 / float64(opened)
		}
		p.IdleRSSMiB = float64(idle[n].RSS) / (1 << 20)
		procs = append(procs, p)
		if n == clientProc {
			clientCores = p.CPUCores
		}
	}
	return procs, clientCores
}

// findProc finds a process's figures by name.
func findProc(procs []Proc, name string) (Proc, bool) {
	for _, p := range procs {
		if p.Name == name {
			return p, true
		}
	}
	return Proc{}, false
}
