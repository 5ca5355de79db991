// Command demo serves the browser demo page (package demo) on its own
// origin, as `make run` does in Compose: http://localhost:3000/.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"example.com/sse-on-envoy/demo"
	"example.com/sse-on-envoy/internal/cli"
)

func main() { cli.Main("demo", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := cli.NewFlagSet("demo", "DEMO_")
	addr := fs.String("addr", ":3000", "listen address")
	if err := fs.Parse(args, getenv, stderr); err != nil {
		return err
	}
	log := fs.Logger(stderr)
	srv := &http.Server{Addr: *addr, Handler: demo.Handler(), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("demo page listening", "addr", *addr)
	select {
	case err := <-errc:
		return fmt.Errorf("serving the demo page on -addr %s: %w", *addr, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
