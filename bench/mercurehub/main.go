// Command mercurehub serves the reference Mercure hub, github.com/dunglas/mercure
// (the version go.mod pins), on one address: the comparison `make bench-load`
// runs ours against (SCENARIO=mercure). It is a module of its own so that the
// hub's dependencies stay out of the product's go.mod.
//
// The hub is configured as the benchmark needs it: HS256 keys for
// publishers and subscribers, anonymous subscribers allowed, and a transport
// that keeps history (bolt, the hub's file-backed store, as the upstream keeps
// every update in JetStream) unless -transport local. GET /healthz answers
// 200 for Envoy's health check; everything else goes to the hub's handler,
// which serves /.well-known/mercure.
//
// Flags follow the repository's convention (internal/cli): each falls back
// to MERCUREHUB_<NAME>, dashes as underscores; the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/dunglas/mercure"
)

const envPrefix = "MERCUREHUB_"

type options struct {
	addr, publisherKey, subscriberKey, transport, data string
	heartbeat                                          time.Duration
	history                                            uint64
}

func parse(args []string, getenv func(string) string) (options, error) {
	var o options
	fs := flag.NewFlagSet("mercurehub", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:9010", "listen address")
	fs.StringVar(&o.publisherKey, "publisher-jwt-key", "", "HS256 secret of publishers' tokens (required)")
	fs.StringVar(&o.subscriberKey, "subscriber-jwt-key", "", "HS256 secret of subscribers' tokens (required; anonymous subscribers are allowed besides)")
	fs.StringVar(&o.transport, "transport", "bolt", "bolt (history in a file under -data) or local (in memory, no history)")
	fs.StringVar(&o.data, "data", "", "folder of the bolt file; default a temporary one, removed on exit")
	fs.Uint64Var(&o.history, "history", 10000, "updates the bolt transport keeps (0: all)")
	fs.DurationVar(&o.heartbeat, "heartbeat", 15*time.Second, "heartbeat comment interval")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		env := envPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v := getenv(env); v != "" && !given[f.Name] && err == nil {
			if e := f.Value.Set(v); e != nil {
				err = fmt.Errorf("%s=%q: %w", env, v, e)
			}
		}
	})
	if err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if o.publisherKey == "" || o.subscriberKey == "" {
		return o, errors.New("-publisher-jwt-key and -subscriber-jwt-key (or MERCUREHUB_PUBLISHER_JWT_KEY, MERCUREHUB_SUBSCRIBER_JWT_KEY) are required")
	}
	if o.transport != "bolt" && o.transport != "local" {
		return o, fmt.Errorf("-transport %q: want bolt or local", o.transport)
	}
	return o, nil
}

func main() {
	o, err := parse(os.Args[1:], os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mercurehub:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "mercurehub:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := []mercure.Option{
		mercure.WithPublisherJWT([]byte(o.publisherKey), "HS256"),
		mercure.WithSubscriberJWT([]byte(o.subscriberKey), "HS256"),
		mercure.WithAnonymous(),
		mercure.WithHeartbeat(o.heartbeat),
		mercure.WithLogger(log),
	}
	if o.transport == "bolt" {
		dir := o.data
		if dir == "" {
			tmp, err := os.MkdirTemp("", "mercurehub-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
		} else if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		t, err := mercure.NewBoltTransport(mercure.NewSubscriberList(mercure.DefaultSubscriberListCacheSize),
			log, filepath.Join(dir, "mercure.db"), "", o.history, mercure.BoltDefaultCleanupFrequency)
		if err != nil {
			return err
		}
		opts = append(opts, mercure.WithTransport(t))
	}
	hub, err := mercure.NewHub(ctx, opts...)
	if err != nil {
		return err
	}
	defer hub.Stop(context.Background())

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.Handle("/", hub)
	lis, err := net.Listen("tcp", o.addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Warn("mercurehub listening", "addr", lis.Addr().String(), "transport", o.transport)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	srv.Shutdown(sctx)
	return nil
}
