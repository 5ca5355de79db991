package benchload

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/loadtest"
	"example.com/sse-on-envoy/tools/localstack"
)

// Env is what every case shares: the repository, the binaries, a work
// folder.
type Env struct {
	Root, Dir, EnvoyBin string
	Bins                map[string]string
	CertDir             string
	Log                 *slog.Logger
	// UpstreamArgs are added to every upstream's flags (experiments such as
	// -queue).
	UpstreamArgs []string

	policyOnce sync.Once
	pc         *policy.Config
	pcErr      error

	moduleOnce sync.Once
	module     string
	moduleErr  error

	mercureState
}

// moduleDir builds libsse.so once per run.
func (e *Env) moduleDir(ctx context.Context) (string, error) {
	e.moduleOnce.Do(func() {
		e.module, e.moduleErr = localstack.BuildModule(ctx, e.Root, filepath.Join(e.Dir, "bin"))
	})
	return e.module, e.moduleErr
}

// NewEnv builds the binaries into dir/bin.
func NewEnv(ctx context.Context, root, dir, envoyBin string, log *slog.Logger) (*Env, error) {
	bins, err := localstack.Build(ctx, root, filepath.Join(dir, "bin"), localstack.Binaries...)
	if err != nil {
		return nil, err
	}
	return &Env{Root: root, Dir: dir, EnvoyBin: envoyBin, Bins: bins, CertDir: filepath.Join(dir, "certs"), Log: log}, nil
}

func (e *Env) policy() (*policy.Config, error) {
	e.policyOnce.Do(func() {
		data, err := os.ReadFile(filepath.Join(e.Root, "envoy", "sse-policy.yaml"))
		if err != nil {
			e.pcErr = err
			return
		}
		e.pc, e.pcErr = policy.ParseYAMLOrJSON(data)
	})
	return e.pc, e.pcErr
}

// Case is one variant under one scenario on one leg.
type Case struct {
	Scenario string `json:"scenario"`
	Variant  string `json:"variant"`
	Leg      string `json:"leg"`
	// Round numbers a case from 1 when the run repeats every case
	// (ROUNDS); 0 in a run of one round.
	Round int `json:"round,omitempty"`
	// Streams asked for (readers), and never-reading ones beside them.
	Streams int `json:"streams"`
	Slow    int `json:"slow,omitempty"`
	// Opened streams answered 200 (readers and slow ones); Failed counts the
	// rest by status or client error, EnvoyFlags non-200 answers by
	// "code flags" from Envoy's access log.
	Opened     int            `json:"opened"`
	Failed     map[string]int `json:"failed,omitempty"`
	EnvoyFlags map[string]int `json:"envoy_flags,omitempty"`
	// Ended counts readers whose stream ended before the run did.
	Ended   map[string]int `json:"ended_early,omitempty"`
	OpenSec float64        `json:"open_seconds"`
	// Events read in the window, ids missing and repeated over the run.
	Events int64 `json:"events"`
	// Reached counts the reading streams that received at least one
	// event in the window.
	Reached   int     `json:"streams_with_events"`
	Unstamped int64   `json:"unstamped,omitempty"`
	Gaps      int64   `json:"id_gaps"`
	Dups      int64   `json:"id_dups"`
	WindowSec float64 `json:"window_seconds"`
	LatencyMS Pct     `json:"latency_ms"`
	Procs     []Proc  `json:"processes"`
	// EnvoyHeapKiBPerStream is Envoy's allocator's bytes in use (admin
	// /memory) with the streams open minus without, per open stream: the
	// part of Envoy's resident memory that is its own heap.
	EnvoyHeapKiBPerStream float64 `json:"envoy_heap_kib_per_stream,omitempty"`
	ClientCores           float64 `json:"client_cores"`
	// MachineBusy is the share of the whole machine's CPU in use during
	// the window (other tenants included).
	MachineBusy float64 `json:"machine_busy"`
	// ClientBound says the client used nearly all the CPU it may: the
	// figures are then the load tool's, not the system's.
	ClientBound bool `json:"client_bound"`
	// OpenClientCores is the client's CPU while opening the streams; a
	// storm's open time is the load tool's when it nears the cores it has.
	OpenClientCores float64 `json:"open_client_cores"`
	OpenClientBound bool    `json:"open_client_bound"`
	// Tokens is what a Completions scenario checked of the token counts.
	Tokens *TokenCheck `json:"tokens,omitempty"`
	Error  string      `json:"error,omitempty"`
}

// Pct is a latency summary in milliseconds.
type Pct struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Proc is one process's cost in a case.
type Proc struct {
	Name string `json:"name"`
	// CPUPerEventUS is CPU microseconds over the window per event read.
	CPUPerEventUS float64 `json:"cpu_us_per_event"`
	CPUCores      float64 `json:"cpu_cores"`
	// KiBPerStream is resident memory with the streams open minus without
	// any, per open stream.
	KiBPerStream float64 `json:"kib_per_stream"`
	IdleRSSMiB   float64 `json:"idle_rss_mib"`
}

// Proc finds a process's figures by name.
func (c Case) Proc(name string) (Proc, bool) { return findProc(c.Procs, name) }

const clientProc = "client"

// warmup lets connection setup and first replays settle before the window.
const warmup = time.Second

// RunCase starts the variant, runs the scenario on one leg and stops
// everything it started.
func (e *Env) RunCase(ctx context.Context, v Variant, sc Scenario, leg Leg, round int) Case {
	c := Case{Scenario: sc.Name, Variant: v.Name, Leg: leg.String(), Round: round, Streams: sc.Streams, Slow: sc.Slow}
	if v.Direct {
		c.Leg = leg.Downstream + "/-"
	}
	if err := e.runCase(ctx, v, sc, leg, &c); err != nil {
		c.Error = err.Error()
	}
	return c
}

func (e *Env) runCase(ctx context.Context, v Variant, sc Scenario, leg Leg, c *Case) error {
	dir, err := os.MkdirTemp(e.Dir, fmt.Sprintf("%s-%s-%s-", sc.Name, v.Name, strings.ReplaceAll(leg.String(), "/", "-")))
	if err != nil {
		return err
	}
	interval := time.Duration(float64(time.Second) / sc.EventRate)
	upstreamArgs := []string{"-stamp", "-interval", interval.String()}
	if sc.Heartbeat > 0 {
		upstreamArgs = append(upstreamArgs, "-heartbeat", sc.Heartbeat.String())
	}
	if sc.Completions {
		upstreamArgs = completionsUpstreamArgs(sc)
	}
	opts := localstack.Options{
		Root: e.Root, Dir: dir, EnvoyBin: e.EnvoyBin, Bins: e.Bins, CertDir: e.CertDir,
		UpstreamArgs: append(upstreamArgs, e.UpstreamArgs...),
		// The variants without an adapter of their own are rewrites of the
		// ext_proc config. One replica (its NATS embedded): what is measured
		// is the path through Envoy, the same for every variant.
		Adapter:  localstack.AdapterExtProc,
		Replicas: 1,
	}
	if v.Setup != nil {
		if err := v.Setup(ctx, e, &opts); err != nil {
			return err
		}
	}
	if !v.Direct {
		balanceConnections(&opts)
	}
	if sc.Completions && !v.Direct {
		logCompletions(&opts)
	}
	if err := resolvePorts(&opts.Ports); err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	stack, err := localstack.Start(startCtx, opts)
	if err != nil {
		return fmt.Errorf("starting the stack: %w", err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stack.Stop()
			stopped = true
		}
	}
	defer stop()

	procs := map[string]*localstack.Service{"upstream": stack.Upstream, "envoy": stack.Envoy, "extproc": stack.ExtProc}
	pids := map[string]int{clientProc: os.Getpid()}
	names := append(append([]string(nil), v.Measure...), clientProc)
	for _, n := range v.Measure {
		p := procs[n]
		if p == nil {
			return fmt.Errorf("variant %s measures %s, which the stack did not start", v.Name, n)
		}
		// A restart would change the pid mid-run: Service logs it, and the
		// figures of such a case are not to be trusted.
		pids[n] = p.Process().PID()
	}
	sampler := procSampler{names: names, pids: pids}
	// The idle baseline: everything started, no stream yet.
	idle, err := sampler.idle()
	if err != nil {
		return err
	}
	var idleHeap int64
	if !v.Direct {
		if idleHeap, err = envoyHeap(ctx, stack.AdminURL); err != nil {
			return err
		}
	}

	cfg := clientConfig(stack, opts.Ports, v, leg, sc)
	cfg.Streams, cfg.OpenRate = sc.Streams, sc.OpenRate
	var tally *tokenTally
	if sc.Completions {
		tally = askForCompletions(&cfg)
	}
	openStart := time.Now()
	openCPU, err := loadtest.SampleProc(os.Getpid())
	if err != nil {
		return err
	}
	readers, err := loadtest.Start(cfg)
	if err != nil {
		return err
	}
	loads := []*loadtest.Load{readers}
	defer func() {
		for _, l := range loads {
			l.Close()
		}
	}()
	if sc.Slow > 0 {
		slowCfg := cfg
		slowCfg.Streams, slowCfg.NoRead = sc.Slow, true
		slow, err := loadtest.Start(slowCfg)
		if err != nil {
			return err
		}
		loads = append(loads, slow)
	}
	openTimeout := 60 * time.Second
	if sc.OpenRate > 0 {
		openTimeout += time.Duration(float64(sc.Streams+sc.Slow) / sc.OpenRate * float64(time.Second))
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, openTimeout)
	for _, l := range loads {
		l.WaitAnswered(waitCtx)
	}
	cancelWait()
	c.OpenSec = time.Since(openStart).Seconds()
	if opened, err := loadtest.SampleProc(os.Getpid()); err == nil && c.OpenSec > 0 {
		c.OpenClientCores = (opened.CPU - openCPU.CPU).Seconds() / c.OpenSec
		c.OpenClientBound = c.OpenClientCores >= 0.9*float64(loadtest.ClientCores())
	}

	time.Sleep(warmup)
	before, err := sampler.sample()
	if err != nil {
		return err
	}
	m0, _ := loadtest.SampleMachine()
	windowStart := time.Now()
	readers.StartWindow()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(sc.Duration):
	}
	w := readers.EndWindow()
	window := time.Since(windowStart)
	after, err := sampler.sample()
	if err != nil {
		return err
	}
	var afterHeap int64
	if !v.Direct {
		if afterHeap, err = envoyHeap(ctx, stack.AdminURL); err != nil {
			return err
		}
	}
	m1, _ := loadtest.SampleMachine()

	c.WindowSec = window.Seconds()
	c.Events, c.Unstamped, c.Reached = w.Events, w.Unstamped, w.Streams
	c.LatencyMS = pct(w.Latencies)
	c.MachineBusy = loadtest.BusyFraction(m0, m1)

	for i, l := range loads {
		s := l.Snapshot()
		c.Opened += s.Opened()
		for k, n := range s.Statuses {
			if k != "200" {
				if c.Failed == nil {
					c.Failed = map[string]int{}
				}
				c.Failed[k] += n
			}
		}
		if i == 0 {
			c.Gaps, c.Dups, c.Ended = s.Gaps, s.Dups, s.Ended
			if len(c.Ended) == 0 {
				c.Ended = nil
			}
		}
	}
	if !v.Direct && c.Opened > 0 {
		c.EnvoyHeapKiBPerStream = float64(afterHeap-idleHeap) / 1024 / float64(c.Opened)
	}
	c.Procs, c.ClientCores = sampler.procFigures(idle, after, before, after, window, c.Events, c.Opened)
	c.ClientBound = c.ClientCores >= 0.9*float64(loadtest.ClientCores())

	for _, l := range loads {
		l.Close()
	}
	loads = nil
	stop()
	if !v.Direct {
		flags, err := envoyFlags(stack.Envoy.LogPath, "/sse")
		if err != nil {
			return err
		}
		c.EnvoyFlags = flags
	}
	if tally != nil {
		check, err := tally.check(v, stack.Envoy.LogPath, readers.Completed())
		if err != nil {
			return err
		}
		c.Tokens = &check
	}
	if err := os.RemoveAll(dir); err != nil {
		e.Log.Warn("removing the case folder", "dir", dir, "err", err)
	}
	return nil
}

// balanceConnections spreads the client's connections over Envoy's workers
// evenly in every variant (envoyconfig.BalanceConnections says why).
func balanceConnections(o *localstack.Options) { alsoEdit(o, envoyconfig.BalanceConnections) }

// alsoEdit adds edit after the Envoy config edits o already has (the
// variant's own).
func alsoEdit(o *localstack.Options, edit func(*bootstrapv3.Bootstrap) error) {
	prev := o.EditEnvoyConfig
	o.EditEnvoyConfig = func(b *bootstrapv3.Bootstrap) error {
		if prev != nil {
			if err := prev(b); err != nil {
				return err
			}
		}
		return edit(b)
	}
}

func resolvePorts(p *localstack.Ports) error {
	free, err := localstack.FreePorts(8)
	if err != nil {
		return err
	}
	*p = localstack.Ports{HTTP: free[0], HTTPS: free[1], Admin: free[2], Upstream: free[3],
		UpstreamTLS: free[4], ExtProc: free[5], ExtProcAdmin: free[6], Demo: free[7]}
	return nil
}

// clientConfig points the client at the leg's listener.
func clientConfig(s *localstack.Stack, p localstack.Ports, v Variant, leg Leg, sc Scenario) loadtest.Config {
	h2 := leg.Downstream == "h2"
	cfg := loadtest.Config{HTTP2: h2, CAFile: s.CAFile}
	upstreamPath, envoyPath := routes.EventsPath, routes.EventsPath
	if leg.Upstream == "tls" {
		envoyPath = routes.TLS(routes.EventsPath)
	}
	if sc.Completions {
		// Envoy routes the completions to the TLS leg only.
		upstreamPath, envoyPath = routes.CompletionsPath, routes.CompletionsPath
	}
	switch {
	case v.Direct && h2:
		// The upstream's TLS listener; its certificate names "upstream".
		cfg.URL = fmt.Sprintf("https://127.0.0.1:%d%s", p.UpstreamTLS, upstreamPath)
		cfg.ServerName = "upstream"
	case v.Direct:
		cfg.URL = s.UpstreamURL + upstreamPath
	default:
		base := s.HTTPURL
		if h2 {
			base = s.HTTPSURL
		}
		cfg.URL = base + envoyPath
	}
	return cfg
}

// envoyFlags counts Envoy's non-200 answers on paths under prefix by
// "code flags", from the JSON access log localstack writes to Envoy's log.
func envoyFlags(logPath, prefix string) (map[string]int, error) {
	f, err := os.Open(logPath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	counts := map[string]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var entry struct {
			Path  string `json:"path"`
			Code  any    `json:"response_code"`
			Flags string `json:"response_flags"`
		}
		if json.Unmarshal(line, &entry) != nil || !strings.HasPrefix(entry.Path, prefix) {
			continue
		}
		code := fmt.Sprint(entry.Code)
		if code == "200" {
			continue
		}
		counts[code+" "+entry.Flags]++
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", logPath, err)
	}
	if len(counts) == 0 {
		return nil, nil
	}
	return counts, nil
}

// ErrNoCases reports a plan that selects nothing.
var ErrNoCases = errors.New("benchload: no case to run")
