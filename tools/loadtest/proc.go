package loadtest

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Linux reports CPU times in clock ticks of 1/100 s on every architecture Go
// supports (USER_HZ); the page size comes from the runtime.
const clockTick = 10 * time.Millisecond

// ProcSample is a process's CPU time and resident memory at one moment.
type ProcSample struct {
	CPU time.Duration // user + system, all threads
	RSS int64         // bytes
}

// SampleProc reads /proc/<pid>/stat.
func SampleProc(pid int) (ProcSample, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ProcSample{}, err
	}
	// The command name (field 2) may hold spaces and parentheses: fields
	// are counted after its closing parenthesis.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return ProcSample{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(data[i+1:]))
	// f[0] is field 3 (state): utime is field 14, stime 15, rss 24.
	if len(f) < 22 {
		return ProcSample{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	num := func(field int) int64 {
		n, e := strconv.ParseInt(f[field-3], 10, 64)
		err = errors.Join(err, e)
		return n
	}
	s := ProcSample{
		CPU: time.Duration(num(14)+num(15)) * clockTick,
		RSS: num(24) * int64(os.Getpagesize()),
	}
	if err != nil {
		return ProcSample{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return s, nil
}

// MachineSample is the whole machine's CPU time, busy and total, from
// /proc/stat.
type MachineSample struct{ Busy, Total time.Duration }

// SampleMachine reads the aggregate cpu line of /proc/stat.
func SampleMachine() (MachineSample, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return MachineSample{}, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return MachineSample{}, errors.New("/proc/stat: no cpu line")
	}
	var total, idle int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return MachineSample{}, fmt.Errorf("/proc/stat: %w", err)
		}
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return MachineSample{Busy: time.Duration(total-idle) * clockTick, Total: time.Duration(total) * clockTick}, nil
}

// BusyFraction is the share of the machine's CPU busy between a and b.
func BusyFraction(a, b MachineSample) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}

// ClientCores is how many cores this process may use at most.
func ClientCores() int { return min(runtime.GOMAXPROCS(0), runtime.NumCPU()) }
