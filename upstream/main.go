// Command upstream streams dad jokes as server-sent events from one event
// hub on two listeners: plain HTTP/1.1 (-addr) and TLS with HTTP/2 through
// ALPN (-tls-addr). See README.md for the flags and the x-sse-replay header.
//
// main only turns flags and the environment into a server.Config, opens
// the listeners and turns SIGINT/SIGTERM into a graceful shutdown; the
// behaviour lives in the server and hub packages.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/server"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		// A second signal kills at once instead of waiting for the drain.
		stop()
	}()
	os.Exit(run(ctx, os.Args[1:], os.Getenv, os.Stderr))
}

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type config struct {
	addr, tlsAddr   string
	tlsCert, tlsKey string
	interval        time.Duration
	heartbeat       time.Duration
	retry           time.Duration
	writeTimeout    time.Duration
	shutdownTimeout time.Duration
	idleTimeout     time.Duration
	history, queue  int
	stamp           bool
	logFormat       string
}

// envPrefix + upper-cased flag name with - turned into _ is each flag's
// environment variable: -tls-cert is UPSTREAM_TLS_CERT.
const envPrefix = "UPSTREAM_"

func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseConfig reads flags, then the environment for every flag not given
// on the command line: flags win over the environment, which wins over the
// defaults.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	fs.SetOutput(out)
	str := func(p *string, name, def, usage string) {
		fs.StringVar(p, name, def, usage+" (env "+envName(name)+")")
	}
	dur := func(p *time.Duration, name string, def time.Duration, usage string) {
		fs.DurationVar(p, name, def, usage+" (env "+envName(name)+")")
	}
	num := func(p *int, name string, def int, usage string) {
		fs.IntVar(p, name, def, usage+" (env "+envName(name)+")")
	}
	str(&c.addr, "addr", ":9000", "plain HTTP listen address; empty disables it")
	str(&c.tlsAddr, "tls-addr", ":9443", "TLS (HTTP/2 and HTTP/1.1 via ALPN) listen address")
	str(&c.tlsCert, "tls-cert", "", "PEM certificate for the TLS listener; without -tls-cert and -tls-key it is disabled")
	str(&c.tlsKey, "tls-key", "", "PEM private key for the TLS listener")
	dur(&c.interval, "interval", server.DefaultInterval, "time between events")
	dur(&c.heartbeat, "heartbeat", server.DefaultHeartbeat, "time between keep-alive comments")
	dur(&c.retry, "retry", server.DefaultRetry, "reconnect delay suggested to clients at stream start")
	dur(&c.writeTimeout, "write-timeout", server.DefaultWriteTimeout, "deadline for each write to a client")
	dur(&c.shutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "bound on the graceful shutdown")
	dur(&c.idleTimeout, "idle-timeout", server.DefaultIdleTimeout, "idle keep-alive timeout; keep it above Envoy's upstream idle_timeout")
	num(&c.history, "history", hub.DefaultHistory, "events kept for Last-Event-ID replay")
	num(&c.queue, "queue", hub.DefaultQueue, "events queued per client before a slow client is cut")
	fs.BoolVar(&c.stamp, "stamp", false, "put a \": sent=<unix ns>\" comment before each event, for latency measurement (env "+envName("stamp")+")")
	str(&c.logFormat, "log-format", "text", "log format: text or json")

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, reportedError{err}
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	onCommandLine := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { onCommandLine[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := envName(f.Name)
		v := getenv(env)
		if err != nil || onCommandLine[f.Name] || v == "" {
			return
		}
		if fs.Set(f.Name, v) != nil {
			err = fmt.Errorf("invalid value %q for %s (flag -%s): want %s", v, env, f.Name, describeWant(f))
		}
	})
	if err != nil {
		return c, err
	}
	return c, c.validate()
}

// describeWant says what a flag's value should look like; the flag
// package's own "parse error" does not.
func describeWant(f *flag.Flag) string {
	switch f.Value.(flag.Getter).Get().(type) {
	case time.Duration:
		return "a duration such as 2s, 500ms or 1m30s"
	case int:
		return "a whole number"
	case bool:
		return "true or false"
	default:
		return "a valid value"
	}
}

// reportedError is an error the flag package already printed, with usage.
type reportedError struct{ error }

func (c config) validate() error {
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"interval", c.interval},
		{"heartbeat", c.heartbeat},
		{"write-timeout", c.writeTimeout},
		{"shutdown-timeout", c.shutdownTimeout},
		{"idle-timeout", c.idleTimeout},
	}
	for _, p := range positive {
		if p.d <= 0 {
			return fmt.Errorf("-%s (env %s) must be positive, got %v", p.name, envName(p.name), p.d)
		}
	}
	if c.retry < 0 {
		return fmt.Errorf("-retry (env %s) must not be negative, got %v", envName("retry"), c.retry)
	}
	if c.retry > 0 && c.retry < time.Millisecond {
		return fmt.Errorf("-retry (env %s) is sent in milliseconds, got %v", envName("retry"), c.retry)
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"history", c.history}, {"queue", c.queue}} {
		if n.v < 1 {
			return fmt.Errorf("-%s (env %s) must be at least 1, got %d", n.name, envName(n.name), n.v)
		}
	}
	if c.logFormat != "text" && c.logFormat != "json" {
		return fmt.Errorf("-log-format (env %s) must be text or json, got %q", envName("log-format"), c.logFormat)
	}
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return fmt.Errorf("-tls-cert (env %s) and -tls-key (env %s) go together: give both or neither",
			envName("tls-cert"), envName("tls-key"))
	}
	if c.addr == "" && c.tlsCert == "" {
		return errors.New("nothing to serve: -addr is empty and no -tls-cert/-tls-key given")
	}
	return nil
}

func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, nil))
	}
	return slog.New(slog.NewTextHandler(w, nil))
}

// run is main without the process: it returns the exit code, and ends when
// ctx does.
func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	c, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		if !errors.As(err, new(reportedError)) {
			fmt.Fprintln(stderr, "upstream:", err)
		}
		return exitUsage
	}
	log := newLogger(c.logFormat, stderr)
	if err := serve(ctx, c, log); err != nil {
		log.Error("upstream failed", "err", err)
		return exitFailure
	}
	return exitOK
}

func serve(ctx context.Context, c config, log *slog.Logger) error {
	cfg := server.Config{
		Interval: c.interval,
		Hub:      hub.Options{History: c.history, Queue: c.queue, Stamp: c.stamp},
		Handler: server.HandlerOptions{
			Retry:        c.retry,
			Heartbeat:    c.heartbeat,
			WriteTimeout: c.writeTimeout,
			Logger:       log,
		},
		ShutdownTimeout: c.shutdownTimeout,
		IdleTimeout:     c.idleTimeout,
	}
	if c.retry == 0 {
		cfg.Handler.Retry = -1 // explicit 0: send no retry hint
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
	log.Info("upstream starting",
		"interval", c.interval.String(), "heartbeat", c.heartbeat.String(), "retry", c.retry.String(),
		"history", c.history, "queue", c.queue, "write_timeout", c.writeTimeout.String(),
		"shutdown_timeout", c.shutdownTimeout.String(), "idle_timeout", c.idleTimeout.String())
	return server.New(cfg).Run(ctx, plain, secure)
}
