// Command extproc is the ext_proc adapter: an Envoy External Processing
// server applying the same SSE policy as the golang filter, for stock Envoy.
// See processor for what each of its two roles does.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"example.com/sse-on-envoy/extproc/processor"
	"example.com/sse-on-envoy/internal/cli"
	"example.com/sse-on-envoy/internal/policy"
)

func main() { cli.Main("extproc", run) }

type options struct {
	grpcAddr  string
	adminAddr string
	config    string
}

// parseFlags reads the flags, then EXTPROC_<NAME> for every flag not given
// on the command line (internal/cli's convention).
func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (options, *cli.FlagSet, error) {
	var o options
	fs := cli.NewFlagSet("extproc", "EXTPROC_")
	fs.StringVar(&o.grpcAddr, "addr", ":9002", "gRPC listen address for Envoy's ext_proc filters")
	fs.StringVar(&o.adminAddr, "admin", "127.0.0.1:9003", "HTTP address for /healthz, /stats and /metrics (Prometheus); empty disables")
	fs.StringVar(&o.config, "config", "", "SSE policy file, YAML or JSON, the golang filter's plugin_config schema; empty: defaults")
	return o, fs, fs.Parse(args, getenv, stderr)
}

func loadPolicy(path string) (*policy.Policy, error) {
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("reading -config: %w", err)
		}
	}
	return policy.Load("-config "+path, data, policy.ParseYAMLOrJSON)
}

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	o, fs, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := fs.Logger(stderr)
	p, err := loadPolicy(o.config)
	if err != nil {
		return err
	}

	srv := processor.New(p, log)
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	healthpb.RegisterHealthServer(gs, health.NewServer())
	lis, err := net.Listen("tcp", o.grpcAddr)
	if err != nil {
		return fmt.Errorf("listening on -addr: %w", err)
	}
	log.Info("ext_proc server listening", "addr", lis.Addr().String(), "config", o.config)

	errc := make(chan error, 2)
	go func() { errc <- gs.Serve(lis) }()

	var admin *http.Server
	if o.adminAddr != "" {
		admin = &http.Server{Addr: o.adminAddr, Handler: adminHandler(srv), ReadHeaderTimeout: 5 * time.Second}
		adminLis, err := net.Listen("tcp", o.adminAddr)
		if err != nil {
			gs.Stop()
			return fmt.Errorf("listening on -admin: %w", err)
		}
		log.Info("admin listening", "addr", adminLis.Addr().String())
		go func() {
			if err := admin.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Observer streams last as long as the SSE streams they watch, so a
	// graceful stop is bounded.
	done := make(chan struct{})
	go func() { gs.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		gs.Stop()
	}
	if admin != nil {
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		admin.Shutdown(shutdownCtx)
	}
	return nil
}

func adminHandler(srv *processor.Server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("content-type", "application/json")
		json.NewEncoder(w).Encode(srv.Stats().Snapshot())
	})
	mux.Handle("GET /metrics", metricsHandler(srv.Stats()))
	return mux
}
