package benchload

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/loadtest"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/tools/mercureload"
	"example.com/sse-on-envoy/upstream/mercure"
)

// The Mercure comparison (SCENARIO=mercure): the upstream's Mercure hub
// against github.com/dunglas/mercure's, each behind the same router-only
// Envoy, under the same Mercure load (tools/mercureload).

// MercureScenario is one Mercure load shape.
type MercureScenario struct {
	Name string `json:"name"`
	// Subscribers spread over Topics, each subscriber on one topic.
	Subscribers int `json:"subscribers"`
	Topics      int `json:"topics"`
	// Rate is publishes per second across the topics; 0 publishes as fast
	// as Publishers concurrent requests go.
	Rate       float64 `json:"publish_rate"`
	Publishers int     `json:"publishers,omitempty"`
	// OpenRate is subscribers opened per second.
	OpenRate float64       `json:"open_rate"`
	Duration time.Duration `json:"duration"`
	// Bystanders are subscriptions opened beside the subscribers before the
	// window, matching none of the load's topics: the costliest the hub's
	// budget allows (mercure.Limits.Costliest) with CostlyBystanders, else
	// one quiet topic each.
	Bystanders       int  `json:"bystanders,omitempty"`
	CostlyBystanders bool `json:"costly_bystanders,omitempty"`
	// UpstreamTLS routes our hub over Envoy's TLS leg (HTTP/2 to the
	// upstream) instead of the plain one; the reference hub serves plain
	// HTTP only and stays on the plain leg.
	UpstreamTLS bool   `json:"upstream_tls,omitempty"`
	Doc         string `json:"doc"`
}

// MercureAll selects every Mercure scenario (SCENARIO=mercure).
const MercureAll = "mercure"

// MercureScenarios are the shapes, and a throughput one.
var MercureScenarios = []MercureScenario{
	{Name: "mercure-fanout", Subscribers: 1000, Topics: 1, Rate: 100, OpenRate: 500, Duration: 10 * time.Second,
		Doc: "1,000 subscribers on one topic, 100 publishes/s"},
	// The largest shape both hubs reach here: dunglas/mercure serves plain
	// HTTP only, so both are on Envoy's HTTP/1.1 leg, where each subscriber
	// holds two of Envoy's descriptors (client and upstream); at 10,000,
	// 512 of them found the 20,000-descriptor limit.
	{Name: "mercure-topics", Subscribers: 9000, Topics: 1000, Rate: 100, OpenRate: 500, Duration: 10 * time.Second,
		Doc: "9,000 subscribers over 1,000 topics (10 s between publishes on a topic), 100 publishes/s"},
	{Name: "mercure-publish", Subscribers: 1000, Topics: 1000, Rate: 0, Publishers: 8, OpenRate: 500, Duration: 10 * time.Second,
		Doc: "publishes as fast as 8 concurrent publishers go, 1,000 subscribers over 1,000 topics"},
}

// Soak is quiet streams held over time (SCENARIO=soak, not part of
// SCENARIO=mercure): thousands of subscribers, one topic each, a publish
// every 5 s somewhere, for longer than every timeout in a stream's path
// (the upstream's write deadline and heartbeat, Envoy's route
// idle_timeout) several times over. A stream that ends before the window
// closes is a reconnect a browser would make; the report counts them per
// subscriber per hour, and the figure to hold is 0.
var Soak = MercureScenario{Name: "soak", Subscribers: 2000, Topics: 2000, Rate: 0.2, OpenRate: 500,
	Duration: 3 * time.Minute, UpstreamTLS: true,
	Doc: "2,000 subscribers on 2,000 quiet topics (one publish every 5 s across them) held 3 minutes; ours over the TLS leg"}

// CostAll selects CostScenarios (SCENARIO=cost, not part of
// SCENARIO=mercure).
const CostAll = "cost"

// CostScenarios are the same ordinary load alone, beside thousands of
// cheap quiet subscriptions (what any open stream costs: its heartbeats),
// and beside as many of the costliest the budget allows: the ordinary
// subscribers' latency must not move for their being costly.
var CostScenarios = []MercureScenario{
	{Name: "cost-baseline", Subscribers: 1000, Topics: 100, Rate: 100, OpenRate: 500, Duration: 30 * time.Second,
		Doc: "1,000 subscribers over 100 topics, 100 publishes/s"},
	{Name: "cost-cheap", Subscribers: 1000, Topics: 100, Rate: 100, OpenRate: 500, Duration: 30 * time.Second, Bystanders: 3000,
		Doc: "the same beside 3,000 quiet subscriptions of one topic each"},
	{Name: "cost-costly", Subscribers: 1000, Topics: 100, Rate: 100, OpenRate: 500, Duration: 30 * time.Second, Bystanders: 3000,
		CostlyBystanders: true, Doc: "the same beside 3,000 of the costliest subscriptions the budget allows"},
}

// MercureScenarioByName finds a Mercure scenario, the soak and the cost
// ones included.
func MercureScenarioByName(name string) (MercureScenario, bool) {
	if name == Soak.Name {
		return Soak, true
	}
	for _, s := range CostScenarios {
		if s.Name == name {
			return s, true
		}
	}
	for _, s := range MercureScenarios {
		if s.Name == name {
			return s, true
		}
	}
	return MercureScenario{}, false
}

// MercureVariant is one hub behind Envoy.
type MercureVariant struct {
	Name string
	// Reference runs dunglas/mercure's hub (bench/mercurehub) and points
	// Envoy's upstream cluster at it; otherwise the upstream's own hub.
	Reference bool
	Doc       string
}

// MercureBaseline is the variant every Mercure ratio is against.
const MercureBaseline = "mercure"

// MercureVariants are both hubs, ours first.
var MercureVariants = []MercureVariant{
	{Name: "ours", Doc: "the upstream's Mercure hub (one replica, embedded NATS JetStream) behind router-only Envoy"},
	{Name: MercureBaseline, Reference: true,
		Doc: "github.com/dunglas/mercure v0.21.2's hub handler (bench/mercurehub, bolt transport) behind the same router-only Envoy"},
}

// MercureVariantByName finds a Mercure variant.
func MercureVariantByName(name string) (MercureVariant, bool) {
	for _, v := range MercureVariants {
		if v.Name == name {
			return v, true
		}
	}
	return MercureVariant{}, false
}

// MercureCase is one hub under one Mercure scenario.
type MercureCase struct {
	Scenario    string         `json:"scenario"`
	Variant     string         `json:"variant"`
	Subscribers int            `json:"subscribers"`
	Topics      int            `json:"topics"`
	Opened      int            `json:"opened"`
	Failed      map[string]int `json:"failed,omitempty"`
	EnvoyFlags  map[string]int `json:"envoy_flags,omitempty"`
	Ended       map[string]int `json:"ended_early,omitempty"`
	// BystandersOpened bystanders were open during the window.
	BystandersOpened int            `json:"bystanders_opened,omitempty"`
	BystandersFailed map[string]int `json:"bystanders_failed,omitempty"`
	// ReconnectsPerHour is the streams that ended before the window closed
	// (each one a browser's reconnect), per subscriber per hour held.
	ReconnectsPerHour float64 `json:"reconnects_per_subscriber_hour"`
	HeldSec           float64 `json:"held_seconds"`
	OpenSec           float64 `json:"open_seconds"`
	// Published publishes were acknowledged (200) over PublishSec;
	// PublishRate is their rate. Behind were due but not sent (the
	// publishers' cap in flight), PublishErrors failed.
	Published     int64          `json:"published"`
	PublishSec    float64        `json:"publish_seconds"`
	PublishRate   float64        `json:"publishes_per_second"`
	Behind        int64          `json:"behind,omitempty"`
	PublishErrors map[string]int `json:"publish_errors,omitempty"`
	// Deliveries: expected (each acknowledged publish times its topic's
	// subscribers), received, lost.
	Expected int64 `json:"deliveries_expected"`
	Received int64 `json:"deliveries_received"`
	Lost     int64 `json:"deliveries_lost"`
	// LatencyMS is publish sent to update read; AckMS publish sent to its
	// 200.
	LatencyMS Pct `json:"latency_ms"`
	AckMS     Pct `json:"ack_ms"`
	// Procs: "hub" (the variant's hub process), "envoy", "client".
	// KiBPerStream is per open subscriber, from the sample taken with every
	// subscriber open and nothing published yet (a file-backed history's
	// pages would otherwise count as subscribers' memory);
	// CPUPerEventUS is per delivery.
	Procs       []Proc  `json:"processes"`
	ClientCores float64 `json:"client_cores"`
	ClientBound bool    `json:"client_bound"`
	MachineBusy float64 `json:"machine_busy"`
	Error       string  `json:"error,omitempty"`
}

// Proc finds a process's figures by name.
func (c MercureCase) Proc(name string) (Proc, bool) { return findProc(c.Procs, name) }

// mercureKey signs and verifies both hubs' tokens (HS256, benchmark only).
const mercureKey = "bench-load-mercure-secret-0123456789abcdef"

// mercureGrace is how long deliveries may trail the last publish.
const mercureGrace = 2 * time.Second

// mercureHubBin builds bench/mercurehub (a module of its own) once per run.
func (e *Env) mercureHubBin(ctx context.Context) (string, error) {
	e.mercureOnce.Do(func() {
		bin := filepath.Join(e.Dir, "bin", "mercurehub")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
		cmd.Dir = filepath.Join(e.Root, "bench", "mercurehub")
		if out, err := cmd.CombinedOutput(); err != nil {
			e.mercureErr = fmt.Errorf("building bench/mercurehub: %w\n%s", err, out)
			return
		}
		e.mercureBin = bin
	})
	return e.mercureBin, e.mercureErr
}

// mercureState is Env's lazily built reference hub.
type mercureState struct {
	mercureOnce sync.Once
	mercureBin  string
	mercureErr  error
}

// RunMercureCase starts the variant's hub behind Envoy, runs the scenario
// and stops everything it started.
func (e *Env) RunMercureCase(ctx context.Context, v MercureVariant, sc MercureScenario) MercureCase {
	c := MercureCase{Scenario: sc.Name, Variant: v.Name, Subscribers: sc.Subscribers, Topics: sc.Topics}
	if err := e.runMercureCase(ctx, v, sc, &c); err != nil {
		c.Error = err.Error()
	}
	return c
}

func (e *Env) runMercureCase(ctx context.Context, v MercureVariant, sc MercureScenario, c *MercureCase) error {
	dir, err := os.MkdirTemp(e.Dir, fmt.Sprintf("%s-%s-", sc.Name, v.Name))
	if err != nil {
		return err
	}
	opts := localstack.Options{
		Root: e.Root, Dir: dir, EnvoyBin: e.EnvoyBin, Bins: e.Bins, CertDir: e.CertDir,
		// The joke publisher all but idle (one event an hour): only the
		// Mercure hub works.
		UpstreamArgs: append([]string{"-interval", "1h",
			"-mercure-publisher-jwt-key", mercureKey, "-mercure-subscriber-jwt-key", mercureKey}, e.UpstreamArgs...),
		Adapter:  localstack.AdapterExtProc,
		Replicas: 1,
	}
	if err := resolvePorts(&opts.Ports); err != nil {
		return err
	}
	var hub *localstack.Service
	if v.Reference {
		bin, err := e.mercureHubBin(ctx)
		if err != nil {
			return err
		}
		free, err := localstack.FreePorts(1)
		if err != nil {
			return err
		}
		url := fmt.Sprintf("http://127.0.0.1:%d", free[0])
		if hub, err = localstack.StartService(dir, "mercurehub", bin, localstack.HTTPOK(url+"/healthz"), e.Log,
			"-addr", "127.0.0.1:"+strconv.Itoa(free[0]), "-publisher-jwt-key", mercureKey,
			"-subscriber-jwt-key", mercureKey, "-data", filepath.Join(dir, "mercurehub-data")); err != nil {
			return fmt.Errorf("starting bench/mercurehub: %w", err)
		}
		defer hub.Stop(5 * time.Second)
		readyCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err = hub.WaitReady(readyCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("bench/mercurehub: %w\n%s", err, hub.Output())
		}
		opts.EditEnvoyConfig = mercureRoute(free[0])
	} else {
		opts.EditEnvoyConfig = mercureRoute(0)
		if sc.UpstreamTLS {
			opts.EditEnvoyConfig = mercureRouteTLS
		}
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
	if hub == nil {
		hub = stack.Upstream
	}

	names := []string{"hub", "envoy", clientProc}
	pids := map[string]int{"hub": hub.Process().PID(), "envoy": stack.Envoy.Process().PID(), clientProc: os.Getpid()}
	sampler := procSampler{names: names, pids: pids}
	idle, err := sampler.idle()
	if err != nil {
		return err
	}

	token, err := localstack.MercureToken(mercureKey, []string{"*"}, nil, 24*time.Hour)
	if err != nil {
		return err
	}
	openStart := time.Now()
	load, err := mercureload.Start(mercureload.Config{
		HubURL:      stack.HTTPURL + mercureload.HubPath,
		Subscribers: sc.Subscribers, Topics: sc.Topics, OpenRate: sc.OpenRate,
		Rate: sc.Rate, Publishers: sc.Publishers, Token: token, Payload: 100,
		Bystanders: sc.Bystanders, BystanderSelectors: bystanders(sc),
	})
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			load.Close()
		}
	}()
	openTimeout := 60 * time.Second
	if sc.OpenRate > 0 {
		openTimeout += time.Duration(float64(sc.Subscribers) / sc.OpenRate * float64(time.Second))
	}
	waitCtx, cancelWait := context.WithTimeout(ctx, openTimeout)
	load.WaitAnswered(waitCtx)
	cancelWait()
	c.OpenSec = time.Since(openStart).Seconds()
	if sc.Bystanders > 0 {
		if err := load.OpenBystanders(); err != nil {
			return err
		}
		timeout := 60*time.Second + time.Duration(float64(sc.Bystanders)/max(sc.OpenRate, 1)*float64(time.Second))
		waitCtx, cancelWait := context.WithTimeout(ctx, timeout)
		load.WaitBystanders(waitCtx)
		cancelWait()
	}

	time.Sleep(warmup)
	before, err := sampler.sample()
	if err != nil {
		return err
	}
	m0, _ := loadtest.SampleMachine()
	res := load.Run(ctx, sc.Duration, mercureGrace)
	window := time.Duration(res.PublishSeconds*float64(time.Second)) + mercureGrace
	after, err := sampler.sample()
	if err != nil {
		return err
	}
	m1, _ := loadtest.SampleMachine()
	if ctx.Err() != nil {
		return ctx.Err()
	}

	c.Published, c.PublishSec, c.PublishRate, c.Behind = res.Published, res.PublishSeconds, res.PublishRate, res.Behind
	c.PublishErrors = res.PublishErrors
	c.Expected, c.Received, c.Lost = res.Expected, res.Received, res.Lost
	c.LatencyMS, c.AckMS = pct(res.Latencies), pct(res.AckLatencies)
	c.MachineBusy = loadtest.BusyFraction(m0, m1)

	bs := load.CloseBystanders()
	c.BystandersOpened = bs.Opened()
	for k, n := range bs.Statuses {
		if k != "200" {
			if c.BystandersFailed == nil {
				c.BystandersFailed = map[string]int{}
			}
			c.BystandersFailed[k] += n
		}
	}
	s := load.Close()
	closed = true
	c.HeldSec = time.Since(openStart).Seconds()
	c.Opened = s.Opened()
	for k, n := range s.Statuses {
		if k != "200" {
			if c.Failed == nil {
				c.Failed = map[string]int{}
			}
			c.Failed[k] += n
		}
	}
	if len(s.Ended) > 0 {
		c.Ended = s.Ended
	}
	c.ReconnectsPerHour = reconnectsPerHour(sum(s.Ended), c.Opened, c.HeldSec)
	// Memory per subscriber is from the sample with every subscriber open
	// and nothing published yet (before).
	c.Procs, c.ClientCores = sampler.procFigures(idle, before, before, after, window, c.Received, c.Opened)
	c.ClientBound = c.ClientCores >= 0.9*float64(loadtest.ClientCores())

	stop()
	flags, err := envoyFlags(stack.Envoy.LogPath, mercureload.HubPath)
	if err != nil {
		return err
	}
	c.EnvoyFlags = flags
	if err := os.RemoveAll(dir); err != nil {
		e.Log.Warn("removing the case folder", "dir", dir, "err", err)
	}
	return nil
}

// reconnectsPerHour is ended streams per subscriber per hour held.
func reconnectsPerHour(ended, opened int, heldSec float64) float64 {
	if opened == 0 || heldSec <= 0 {
		return 0
	}
	return float64(ended) / float64(opened) / (heldSec / 3600)
}

func pct(d []time.Duration) Pct {
	lat := loadtest.Summarize(d)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return Pct{ms(lat.P50), ms(lat.P90), ms(lat.P99), ms(lat.Max)}
}

// mercureRoute is the router-only config (the router variant's) with the
// hub's path routed to the upstream cluster; a non-zero port points that
// cluster at another hub, the upstream staying up but idle.
func mercureRoute(port int) func(*bootstrapv3.Bootstrap) error {
	return func(b *bootstrapv3.Bootstrap) error {
		if err := envoyconfig.RemoveExtProc(b); err != nil {
			return err
		}
		if err := envoyconfig.AddPrefixRoute(b, "mercure", mercureload.HubPath, envoyconfig.ClusterPlain); err != nil {
			return err
		}
		if port != 0 {
			return envoyconfig.SetClusterEndpoints(b, envoyconfig.ClusterPlain, envoyconfig.Endpoint{Host: "127.0.0.1", Port: port})
		}
		return nil
	}
}

// mercureRouteTLS routes the hub's path over the TLS leg, as
// envoy/*.yaml do (HTTP/2 to the upstream).
func mercureRouteTLS(b *bootstrapv3.Bootstrap) error {
	if err := envoyconfig.RemoveExtProc(b); err != nil {
		return err
	}
	return envoyconfig.AddPrefixRoute(b, "mercure", mercureload.HubPath, envoyconfig.ClusterTLS)
}

// mercureBase finds the baseline hub's case of the same scenario.
func (r *Report) mercureBase(c MercureCase) (MercureCase, bool) {
	for _, o := range r.MercureCases {
		if o.Variant == MercureBaseline && o.Scenario == c.Scenario && o.Error == "" {
			return o, true
		}
	}
	return MercureCase{}, false
}

// mercureFigure is one figure the comparison ranks hubs on.
type mercureFigure struct {
	name string
	get  func(MercureCase) float64
	// lowerIsBetter, else higher is.
	lowerIsBetter bool
	// paced figures rank hubs under a publish rate, flat-out ones when
	// publishing as fast as possible; both when neither is set.
	paced, flatOut bool
}

var mercureFigures = []mercureFigure{
	{name: "latency p50", get: func(c MercureCase) float64 { return c.LatencyMS.P50 }, lowerIsBetter: true},
	{name: "latency p99", get: func(c MercureCase) float64 { return c.LatencyMS.P99 }, lowerIsBetter: true},
	// Under a rate, publishes/s is the rate asked for: what counts is the
	// publishes that were not made (behind) or failed.
	{name: "publishes/s", get: func(c MercureCase) float64 { return c.PublishRate }, flatOut: true},
	{name: "publishes behind or failed", get: func(c MercureCase) float64 { return float64(c.Behind + int64(sum(c.PublishErrors))) },
		lowerIsBetter: true, paced: true},
	{name: "hub KiB/subscriber", get: func(c MercureCase) float64 { p, _ := c.Proc("hub"); return p.KiBPerStream }, lowerIsBetter: true},
	{name: "hub CPU µs/delivery", get: func(c MercureCase) float64 { p, _ := c.Proc("hub"); return p.CPUPerEventUS }, lowerIsBetter: true},
	{name: "deliveries lost", get: func(c MercureCase) float64 { return float64(c.Lost) }, lowerIsBetter: true},
}

// writeMercure writes one table per Mercure scenario, with ratios against
// dunglas/mercure's hub and the figures where ours is behind it.
func (r *Report) writeMercure(w io.Writer) {
	for _, sc := range r.MercureScenarios {
		var cases []MercureCase
		for _, c := range r.MercureCases {
			if c.Scenario == sc.Name {
				cases = append(cases, c)
			}
		}
		if len(cases) == 0 {
			continue
		}
		rate := fmt.Sprintf("%g publishes/s", sc.Rate)
		if sc.Rate == 0 {
			rate = fmt.Sprintf("publishes as fast as %d concurrent publishers go", max(sc.Publishers, 1))
		}
		fmt.Fprintf(w, "\n### %s: %s (%d subscribers over %d topics, %s, window %v)\n\n", sc.Name, sc.Doc, sc.Subscribers, sc.Topics, rate, sc.Duration)
		fmt.Fprintln(w, "| hub | opened | failed (client; Envoy code+flag) | published (/s) | behind / publish errors | deliveries received / expected (lost) | latency p50 / p90 / p99 / max ms | publish ack p50 / p99 ms | KiB/subscriber hub / envoy / client | CPU µs/delivery hub / envoy / client | p50 / p99 vs mercure | publishes/s vs mercure | hub KiB vs mercure | hub CPU vs mercure |")
		fmt.Fprintln(w, "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
		procs := []string{"hub", "envoy", clientProc}
		for _, c := range cases {
			if c.Error != "" {
				fmt.Fprintf(w, "| %s | error: %s |||||||||||||\n", c.Variant, strings.ReplaceAll(firstLine(c.Error), "|", "/"))
				continue
			}
			failed := counts(c.Failed)
			if f := counts(c.EnvoyFlags); f != "" {
				failed += "; Envoy: " + f
			}
			if e := counts(c.Ended); e != "" {
				failed += "; ended: " + e
			}
			lat, pubRatio, kib, cpu := "–", "–", "–", "–"
			if base, ok := r.mercureBase(c); ok {
				lat = ratio(c.LatencyMS.P50, base.LatencyMS.P50) + " / " + ratio(c.LatencyMS.P99, base.LatencyMS.P99)
				pubRatio = ratio(c.PublishRate, base.PublishRate)
				hub, _ := c.Proc("hub")
				bhub, _ := base.Proc("hub")
				kib, cpu = ratio(hub.KiBPerStream, bhub.KiBPerStream), ratio(hub.CPUPerEventUS, bhub.CPUPerEventUS)
			}
			received := fmt.Sprintf("%d / %d (%d)", c.Received, c.Expected, c.Lost)
			if c.ClientBound {
				received += " ⚠client-bound"
			}
			fmt.Fprintf(w, "| %s | %d/%d in %.1fs | %s | %d (%s) | %d / %d | %s | %s / %s / %s / %s | %s / %s | %s | %s | %s | %s | %s | %s |\n",
				c.Variant, c.Opened, c.Subscribers, c.OpenSec, failed, c.Published, num(c.PublishRate),
				c.Behind, sum(c.PublishErrors), received,
				num(c.LatencyMS.P50), num(c.LatencyMS.P90), num(c.LatencyMS.P99), num(c.LatencyMS.Max),
				num(c.AckMS.P50), num(c.AckMS.P99),
				perProc(c.Proc, procs, func(p Proc) float64 { return p.KiBPerStream }),
				perProc(c.Proc, procs, func(p Proc) float64 { return p.CPUPerEventUS }),
				lat, pubRatio, kib, cpu)
		}
		var busy float64
		var bound []string
		for _, c := range cases {
			busy = max(busy, c.MachineBusy)
			if c.ClientBound {
				bound = append(bound, c.Variant)
			}
		}
		fmt.Fprintf(w, "\nRatios are ours over mercure's: below 1x is better, except publishes/s. Machine busy up to %.0f%% during the windows (all tenants).", 100*busy)
		if len(bound) > 0 {
			fmt.Fprintf(w, " The client was CPU-bound in: %s.", strings.Join(bound, ", "))
		}
		fmt.Fprintln(w)
		var held []string
		for _, c := range cases {
			if c.Error == "" {
				held = append(held, fmt.Sprintf("%s %d (%s per subscriber per hour, %d subscribers held %.0f s)",
					c.Variant, sum(c.Ended), num(c.ReconnectsPerHour), c.Opened, c.HeldSec))
			}
		}
		if len(held) > 0 {
			fmt.Fprintf(w, "Streams that ended before the window closed (a browser would reconnect): %s.\n", strings.Join(held, ", "))
		}
		if sc.Bystanders > 0 {
			fmt.Fprintln(w, r.bystandersLine(sc, cases))
		}
		if behind := r.mercureBehind(sc, cases); behind != "" {
			fmt.Fprintf(w, "Ours is behind mercure's hub on: %s.\n", behind)
		} else if len(cases) > 1 {
			fmt.Fprintln(w, "Ours is ahead of or level with mercure's hub on every figure.")
		}
	}
}

// bystanders are the selectors of sc's bystanders.
func bystanders(sc MercureScenario) func(i int) []string {
	if sc.CostlyBystanders {
		return mercure.Limits{}.Costliest
	}
	return func(i int) []string { return []string{"https://quiet.example/" + strconv.Itoa(i)} }
}

// bystandersLine compares each hub's ordinary subscribers' latency beside
// the bystanders with the same hub's in the scenarios of the same load with
// none, and, for costly ones, with as many cheap ones.
func (r *Report) bystandersLine(sc MercureScenario, cases []MercureCase) string {
	kind := "cheap"
	if sc.CostlyBystanders {
		kind = "costly"
	}
	var parts []string
	for _, c := range cases {
		if c.Error != "" {
			continue
		}
		part := fmt.Sprintf("%s: %d of %d open (%s), ordinary p50 / p99 %s / %s ms", c.Variant, c.BystandersOpened, sc.Bystanders,
			orNone(counts(c.BystandersFailed)), num(c.LatencyMS.P50), num(c.LatencyMS.P99))
		for _, b := range r.MercureCases {
			o, ok := r.mercureScenario(b.Scenario)
			if b.Variant != c.Variant || b.Error != "" || !ok || o.Subscribers != sc.Subscribers || o.Topics != sc.Topics || o.Rate != sc.Rate {
				continue
			}
			var against string
			switch {
			case o.Bystanders == 0:
				against = "with none"
			case sc.CostlyBystanders && !o.CostlyBystanders && o.Bystanders == sc.Bystanders:
				against = "beside as many cheap ones"
			default:
				continue
			}
			part += fmt.Sprintf(", against %s / %s ms %s (%s / %s)", num(b.LatencyMS.P50), num(b.LatencyMS.P99), against,
				ratio(c.LatencyMS.P50, b.LatencyMS.P50), ratio(c.LatencyMS.P99, b.LatencyMS.P99))
		}
		parts = append(parts, part)
	}
	return fmt.Sprintf("Beside %d %s bystanders: %s.", sc.Bystanders, kind, strings.Join(parts, "; "))
}

// mercureScenario finds a scenario of the report by name.
func (r *Report) mercureScenario(name string) (MercureScenario, bool) {
	for _, s := range r.MercureScenarios {
		if s.Name == name {
			return s, true
		}
	}
	return MercureScenario{}, false
}

func orNone(s string) string {
	if s == "" {
		return "none failed"
	}
	return "failed: " + s
}

// mercureBehind lists the figures where "ours" is worse than the baseline.
func (r *Report) mercureBehind(sc MercureScenario, cases []MercureCase) string {
	var out []string
	for _, c := range cases {
		if c.Variant == MercureBaseline || c.Error != "" {
			continue
		}
		base, ok := r.mercureBase(c)
		if !ok {
			continue
		}
		for _, f := range mercureFigures {
			if (f.paced && sc.Rate == 0) || (f.flatOut && sc.Rate > 0) {
				continue
			}
			v, b := f.get(c), f.get(base)
			if (f.lowerIsBetter && v > b) || (!f.lowerIsBetter && v < b) {
				out = append(out, fmt.Sprintf("%s (%s %s vs %s)", f.name, c.Variant, num(v), num(b)))
			}
		}
	}
	return strings.Join(out, ", ")
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
