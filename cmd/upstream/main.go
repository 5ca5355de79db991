// Command upstream streams dad jokes as server-sent events from one event
// hub on two listeners: plain HTTP/1.1 (-addr) and TLS with HTTP/2 through
// ALPN (-tls-addr). See upstream/README.md for the flags and the x-sse-replay header.
//
// main only turns flags and the environment into a server.Config, opens
// the listeners and turns SIGINT/SIGTERM into a graceful shutdown; the
// behaviour lives in the server, seed, stream and hub packages.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"strings"
	"time"

	"example.com/sse-on-envoy/internal/cli"
	"example.com/sse-on-envoy/upstream/eventlog"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/mercure"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
	"example.com/sse-on-envoy/upstream/server"
	"example.com/sse-on-envoy/upstream/stream"
	"example.com/sse-on-envoy/upstream/tokens"
)

func main() { cli.Main("upstream", run) }

type config struct {
	addr, tlsAddr   string
	tlsCert, tlsKey string
	debugAddr       string
	tokenRate       float64
	tokenChars      int
	tokenAnswer     int
	interval        time.Duration
	heartbeat       time.Duration
	retry           time.Duration
	writeTimeout    time.Duration
	shutdownTimeout time.Duration
	idleTimeout     time.Duration
	history, queue  int
	memoryHistory   int
	historyAge      time.Duration
	natsURL         string
	natsStream      string
	natsReplicas    int
	dataDir         string
	stamp           bool
	mercure         mercureFlags
}

// mercureFlags configure the Mercure hub at /.well-known/mercure.
type mercureFlags struct {
	stream         string
	history        int
	dedupWindow    time.Duration
	pubAlg, pubKey string
	pubKeyFile     string
	subAlg, subKey string
	subKeyFile     string
	maxTopics      int
	maxData        int
	// The subscription budget (mercure.Budget).
	maxSubBytes, maxTplBytes, maxTplExprs int
	cookieOrigins                         string
}

// defaultDataDir is relative to the working directory, so that processes
// started from different directories (tests, run-local) never share one;
// .data/ is git-ignored.
const defaultDataDir = ".data/upstream"

// parseConfig reads the flags, then UPSTREAM_<NAME> for every flag not
// given on the command line (internal/cli's convention).
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, *cli.FlagSet, error) {
	var c config
	fs := cli.NewFlagSet("upstream", "UPSTREAM_")
	fs.StringVar(&c.addr, "addr", ":9000", "plain HTTP listen address; empty disables it")
	fs.StringVar(&c.tlsAddr, "tls-addr", ":9443", "TLS (HTTP/2 and HTTP/1.1 via ALPN) listen address")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "PEM certificate for the TLS listener; without -tls-cert and -tls-key it is disabled")
	fs.StringVar(&c.tlsKey, "tls-key", "", "PEM private key for the TLS listener")
	fs.StringVar(&c.debugAddr, "debug-addr", "", "loopback address serving Go's profiler (/debug/pprof/) for diagnosis; empty disables it")
	fs.DurationVar(&c.interval, "interval", server.DefaultInterval, "time between events")
	fs.DurationVar(&c.heartbeat, "heartbeat", stream.DefaultHeartbeat, "time between keep-alive comments")
	fs.DurationVar(&c.retry, "retry", stream.DefaultRetry, "reconnect delay suggested to clients at stream start")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 0, "deadline for each write to a client, shorter than -heartbeat (0: "+stream.DefaultWriteTimeout.String()+", or half -heartbeat if that is not shorter)")
	fs.DurationVar(&c.shutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "bound on the graceful shutdown")
	fs.DurationVar(&c.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "idle keep-alive timeout; keep it above Envoy's upstream idle_timeout")
	fs.IntVar(&c.history, "history", hub.DefaultHistory, "events kept for Last-Event-ID replay (the event log's count limit)")
	fs.IntVar(&c.memoryHistory, "memory-history", 0, "events each replica keeps in memory for replay; older ones within -history are read back from the event log (0: -history, at most 10000)")
	fs.DurationVar(&c.historyAge, "history-age", 24*time.Hour, "how long events are kept for replay (the event log's age limit); 0s: no age limit")
	fs.StringVar(&c.natsURL, "nats-url", "", "NATS server or cluster URLs (comma-separated) holding the event log; empty runs an embedded NATS storing under -data")
	fs.StringVar(&c.natsStream, "nats-stream", eventlog.DefaultStream, "JetStream stream name of the event log; replicas sharing it share one id sequence")
	fs.IntVar(&c.natsReplicas, "nats-replicas", 1, "copies of the stream a NATS cluster keeps (at most the cluster's size; 1 for the embedded NATS)")
	fs.StringVar(&c.dataDir, "data", defaultDataDir, "embedded NATS's JetStream storage (relative to the working directory); unused with -nats-url")
	fs.BoolVar(&c.stamp, "stamp", false, "stamp each event with its publish time, sent as a ': sent=<unix ns>' comment before its id line, and each token stream chunk with the time it is sent (latency measurements)")
	fs.IntVar(&c.queue, "queue", hub.DefaultQueue, "events queued per client before a slow client is cut")
	fs.Float64Var(&c.tokenRate, "token-rate", tokens.DefaultRate, "tokens per second of the token stream ("+tokens.Path+")")
	fs.IntVar(&c.tokenChars, "token-chars", tokens.DefaultTokenChars, "characters of the joke one token of the token stream carries")
	fs.IntVar(&c.tokenAnswer, "token-answer", 0, "tokens in every answer of the token stream, jokes following one another (0: one joke)")
	m := &c.mercure
	fs.StringVar(&m.stream, "mercure-stream", "MERCURE", "JetStream stream of the Mercure hub's updates")
	fs.IntVar(&m.history, "mercure-history", 10000, "Mercure updates kept for replay (the stream's count limit; -history-age applies too)")
	fs.DurationVar(&m.dedupWindow, "mercure-dedup-window", eventlog.DefaultDuplicates, "a publish retried with the same id within this window is stored once (JetStream's duplicate window; at most -history-age)")
	fs.StringVar(&m.pubAlg, "mercure-publisher-jwt-alg", mercure.HS256, "algorithm of publishers' tokens: HS256 or RS256")
	fs.StringVar(&m.pubKey, "mercure-publisher-jwt-key", "", "HS256 secret verifying publishers' tokens; without a key nobody can publish")
	fs.StringVar(&m.pubKeyFile, "mercure-publisher-jwt-key-file", "", "file with the publishers' key: the HS256 secret, or for RS256 a public key in PEM or a JWKS")
	fs.StringVar(&m.subAlg, "mercure-subscriber-jwt-alg", mercure.HS256, "algorithm of subscribers' tokens: HS256 or RS256")
	fs.StringVar(&m.subKey, "mercure-subscriber-jwt-key", "", "HS256 secret verifying subscribers' tokens; without a key subscribers are anonymous (public updates only)")
	fs.StringVar(&m.subKeyFile, "mercure-subscriber-jwt-key-file", "", "file with the subscribers' key: the HS256 secret, or for RS256 a public key in PEM or a JWKS")
	fs.IntVar(&m.maxTopics, "mercure-max-topics", mercure.DefaultMaxTopics, "topics per update and selectors per subscription")
	fs.IntVar(&m.maxData, "mercure-max-data", mercure.DefaultMaxData, "bytes of data per update (larger: 413)")
	fs.IntVar(&m.maxSubBytes, "mercure-max-subscription-bytes", mercure.DefaultMaxSubscriptionBytes, "bytes of a subscription's topic selectors, all together (more: 400)")
	fs.IntVar(&m.maxTplBytes, "mercure-max-template-bytes", mercure.DefaultMaxTemplateBytes, "bytes of a subscription's URI templates, all together (more: 400)")
	fs.IntVar(&m.maxTplExprs, "mercure-max-template-expressions", mercure.DefaultMaxTemplateExpressions, "{...} expressions of a subscription's URI templates, all together (more: 400)")
	fs.StringVar(&m.cookieOrigins, "mercure-cookie-origins", "", "comma-separated origins whose pages may publish with the mercureAuthorization cookie (others must send the Authorization header)")
	if err := fs.Parse(args, getenv, stderr); err != nil {
		return c, fs, err
	}
	return c, fs, c.validate(fs)
}

func (c config) validate(fs *cli.FlagSet) error {
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"interval", c.interval},
		{"heartbeat", c.heartbeat},
		{"shutdown-timeout", c.shutdownTimeout},
		{"idle-timeout", c.idleTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return cli.Usagef("%s must be positive, got %v", fs.Flag(p.name), p.d)
		}
	}
	if c.tokenRate <= 0 || c.tokenChars < 1 || c.tokenAnswer < 0 {
		return cli.Usagef("%s must be positive, %s at least 1 and %s not negative, got %v, %d and %d",
			fs.Flag("token-rate"), fs.Flag("token-chars"), fs.Flag("token-answer"), c.tokenRate, c.tokenChars, c.tokenAnswer)
	}
	if c.writeTimeout < 0 {
		return cli.Usagef("%s must not be negative, got %v", fs.Flag("write-timeout"), c.writeTimeout)
	}
	if c.memoryHistory < 0 {
		return cli.Usagef("%s must not be negative, got %d", fs.Flag("memory-history"), c.memoryHistory)
	}
	if c.historyAge < 0 {
		return cli.Usagef("%s must not be negative, got %v", fs.Flag("history-age"), c.historyAge)
	}
	if c.historyAge > 0 && c.historyAge < c.interval {
		return cli.Usagef("%s %v is shorter than -interval %v: nothing could be replayed", fs.Flag("history-age"), c.historyAge, c.interval)
	}
	if c.natsURL == "" && c.dataDir == "" {
		return cli.Usagef("%s is needed for the embedded NATS (no -nats-url given)", fs.Flag("data"))
	}
	if c.natsReplicas < 1 || c.natsReplicas > 5 {
		return cli.Usagef("%s must be 1 to 5, got %d", fs.Flag("nats-replicas"), c.natsReplicas)
	}
	if c.natsURL == "" && c.natsReplicas != 1 {
		return cli.Usagef("%s needs a NATS cluster (-nats-url); the embedded NATS keeps one copy", fs.Flag("nats-replicas"))
	}
	if c.natsStream == "" || strings.ContainsAny(c.natsStream, ". *>\t") {
		return cli.Usagef("%s must be a non-empty name without dots, spaces or wildcards, got %q", fs.Flag("nats-stream"), c.natsStream)
	}
	if c.retry < 0 {
		return cli.Usagef("%s must not be negative, got %v", fs.Flag("retry"), c.retry)
	}
	if c.retry > 0 && c.retry < time.Millisecond {
		return cli.Usagef("%s is sent in milliseconds, got %v", fs.Flag("retry"), c.retry)
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"history", c.history}, {"queue", c.queue}} {
		if n.v < 1 {
			return cli.Usagef("%s must be at least 1, got %d", fs.Flag(n.name), n.v)
		}
	}
	if err := c.streamOptions().Validate(); err != nil {
		var oe *stream.OptionError
		if errors.As(err, &oe) {
			return cli.Usagef("%s %s", fs.Flag(oe.Option), oe.Reason)
		}
		return err
	}
	if err := c.mercure.validate(fs, c); err != nil {
		return err
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return cli.Usagef("%s and %s go together: give both or neither", fs.Flag("tls-cert"), fs.Flag("tls-key"))
	}
	if c.debugAddr != "" {
		host, _, err := net.SplitHostPort(c.debugAddr)
		if ip := net.ParseIP(host); err != nil || (host != "localhost" && (ip == nil || !ip.IsLoopback())) {
			return cli.Usagef("%s must be a loopback address such as 127.0.0.1:6060 (profiles show the process's insides), got %q", fs.Flag("debug-addr"), c.debugAddr)
		}
	}
	if c.addr == "" && c.tlsCert == "" {
		return cli.Usagef("nothing to serve: -addr is empty and no -tls-cert/-tls-key given")
	}
	return nil
}

// serveProfiler serves net/http/pprof on addr until stop.
func serveProfiler(ctx context.Context, addr string, log *slog.Logger) (stop func(), err error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on -debug-addr %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: server.DefaultReadHeaderTimeout}
	go func() { _ = srv.Serve(ln) }()
	log.Info("profiler listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}

// streamOptions are the timing flags of every stream.
func (c config) streamOptions() stream.Options {
	o := stream.Options{Retry: c.retry, Heartbeat: c.heartbeat, WriteTimeout: c.writeTimeout}
	if c.retry == 0 {
		o.Retry = -1 // explicit 0: send no retry hint
	}
	return o
}

func (m mercureFlags) validate(fs *cli.FlagSet, c config) error {
	if m.stream == "" || strings.ContainsAny(m.stream, ". *>\t") {
		return cli.Usagef("%s must be a non-empty name without dots, spaces or wildcards, got %q", fs.Flag("mercure-stream"), m.stream)
	}
	if m.stream == c.natsStream {
		return cli.Usagef("%s must differ from -nats-stream %q", fs.Flag("mercure-stream"), c.natsStream)
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"mercure-history", m.history}, {"mercure-max-topics", m.maxTopics}, {"mercure-max-data", m.maxData},
		{"mercure-max-subscription-bytes", m.maxSubBytes}, {"mercure-max-template-bytes", m.maxTplBytes}, {"mercure-max-template-expressions", m.maxTplExprs}} {
		if n.v < 1 {
			return cli.Usagef("%s must be at least 1, got %d", fs.Flag(n.name), n.v)
		}
	}
	if m.dedupWindow <= 0 {
		return cli.Usagef("%s must be positive, got %v", fs.Flag("mercure-dedup-window"), m.dedupWindow)
	}
	if _, err := m.keys(); err != nil {
		return cli.Usagef("%v (flags -mercure-publisher-jwt-* and -mercure-subscriber-jwt-*)", err)
	}
	return nil
}

// keys loads both roles' keys.
func (m mercureFlags) keys() ([2]mercure.Key, error) {
	pub, err := mercure.LoadKey(m.pubAlg, m.pubKey, m.pubKeyFile)
	if err != nil {
		return [2]mercure.Key{}, fmt.Errorf("publisher key: %w", err)
	}
	sub, err := mercure.LoadKey(m.subAlg, m.subKey, m.subKeyFile)
	if err != nil {
		return [2]mercure.Key{}, fmt.Errorf("subscriber key: %w", err)
	}
	return [2]mercure.Key{pub, sub}, nil
}

func (m mercureFlags) origins() []string {
	var out []string
	for o := range strings.SplitSeq(m.cookieOrigins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			out = append(out, o)
		}
	}
	return out
}

// run is main without the process; it ends when ctx does.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	c, fs, err := parseConfig(args, getenv, stderr)
	if err != nil {
		return err
	}
	return serve(ctx, c, fs.Logger(stderr))
}

func serve(ctx context.Context, c config, log *slog.Logger) error {
	cfg := server.Config{
		Interval: c.interval,
		Hub:      hub.Options{History: c.memoryWindow(), Queue: c.queue, MaxAge: c.historyAge},
		Stamp:    c.stamp,
		Handler: server.HandlerOptions{
			Stream: c.streamOptions(),
			Logger: log,
			Tokens: tokens.Options{Rate: c.tokenRate, TokenChars: c.tokenChars, AnswerTokens: c.tokenAnswer, Stamp: c.stamp},
		},
		ShutdownTimeout: c.shutdownTimeout,
		IdleTimeout:     c.idleTimeout,
	}
	if c.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCert, c.tlsKey)
		if err != nil {
			return fmt.Errorf("load TLS certificate %s and key %s: %w", c.tlsCert, c.tlsKey, err)
		}
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else {
		log.Warn("TLS listener disabled: no -tls-cert/-tls-key (UPSTREAM_TLS_CERT/UPSTREAM_TLS_KEY) given; serving plain HTTP only",
			"tls_addr", c.tlsAddr)
	}

	var plain, secure net.Listener
	closeAll := func() {
		for _, ln := range []net.Listener{plain, secure} {
			if ln != nil {
				_ = ln.Close()
			}
		}
	}
	var lc net.ListenConfig
	var err error
	if c.addr != "" {
		if plain, err = lc.Listen(ctx, "tcp", c.addr); err != nil {
			return fmt.Errorf("listen on -addr %s: %w", c.addr, err)
		}
	}
	if cfg.TLS != nil {
		if secure, err = lc.Listen(ctx, "tcp", c.tlsAddr); err != nil {
			closeAll()
			return fmt.Errorf("listen on -tls-addr %s: %w", c.tlsAddr, err)
		}
	}
	evlog, err := eventlog.Open(eventlog.Config{
		URL:        c.natsURL,
		DataDir:    c.dataDir,
		Stream:     c.natsStream,
		History:    c.history,
		Preload:    c.memoryWindow(),
		MaxAge:     c.historyAge,
		Duplicates: dedupWindow(c.interval),
		Replicas:   c.natsReplicas,
		Logger:     log,
	})
	if err != nil {
		closeAll()
		return err
	}
	defer evlog.Close()
	cfg.Log = evlog
	keys, err := c.mercure.keys()
	if err != nil {
		closeAll()
		return err
	}
	cfg.Mercure = &hubhttp.Config{
		Log: evlog.Sibling(eventlog.Config{
			Stream:     c.mercure.stream,
			History:    c.mercure.history,
			MaxAge:     c.historyAge,
			Duplicates: c.mercure.dedupWindow,
			Replicas:   c.natsReplicas,
			Keyed:      true,
			// Only live updates feed the fan-out; replays read the stream.
			Preload: 1,
			Logger:  log,
		}),
		PublisherKey:  keys[0],
		SubscriberKey: keys[1],
		Limits: mercure.Limits{MaxTopics: c.mercure.maxTopics, MaxData: c.mercure.maxData,
			MaxSubscriptionBytes: c.mercure.maxSubBytes, MaxTemplateBytes: c.mercure.maxTplBytes, MaxTemplateExpressions: c.mercure.maxTplExprs},
		CookieOrigins: c.mercure.origins(),
		Queue:         c.queue,
	}
	log.Info("mercure hub", "path", hubhttp.Path, "stream", c.mercure.stream, "history", c.mercure.history,
		"dedup_window", c.mercure.dedupWindow.String(),
		"publisher_key", keyDesc(keys[0]), "subscriber_key", keyDesc(keys[1]))
	log.Info("upstream starting",
		"interval", c.interval.String(), "heartbeat", c.heartbeat.String(), "retry", c.retry.String(),
		"history", c.history, "memory_history", c.memoryWindow(), "history_age", c.historyAge.String(), "queue", c.queue,
		"write_timeout", c.writeTimeout.String(), "shutdown_timeout", c.shutdownTimeout.String(),
		"idle_timeout", c.idleTimeout.String(), "nats", natsDescription(c), "stream", c.natsStream, "stamp", c.stamp)
	if c.debugAddr != "" {
		stop, err := serveProfiler(ctx, c.debugAddr, log)
		if err != nil {
			closeAll()
			return err
		}
		defer stop()
	}
	return server.New(cfg).Run(ctx, plain, secure)
}

func keyDesc(k mercure.Key) string {
	if !k.Configured() {
		return "none"
	}
	return k.Alg()
}

// defaultMemoryCap bounds the default in-memory window: a long -history is
// served from the event log rather than from every replica's memory.
const defaultMemoryCap = 10000

func (c config) memoryWindow() int {
	if c.memoryHistory > 0 {
		return min(c.memoryHistory, c.history)
	}
	return min(c.history, defaultMemoryCap)
}

// dedupWindow is how long the event log remembers a tick's message id. It
// must cover the spread between the replicas publishing the same tick (clock
// skew plus publish latency, milliseconds with NTP); longer costs only one
// remembered id per tick. Two minutes, or two intervals for slow tickers.
func dedupWindow(interval time.Duration) time.Duration {
	return max(eventlog.DefaultDuplicates, 2*interval)
}

func natsDescription(c config) string {
	if c.natsURL == "" {
		return "embedded, data " + c.dataDir
	}
	// Credentials in a URL stay out of the log.
	var out []string
	for u := range strings.SplitSeq(c.natsURL, ",") {
		if p, err := url.Parse(strings.TrimSpace(u)); err == nil {
			out = append(out, p.Redacted())
		}
	}
	return strings.Join(out, ",")
}
