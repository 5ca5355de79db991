// Command demo serves the browser demo page (package demo) on its own
// origin, as `make run` does in Compose: http://localhost:3000/.
package main

import (
	"flag"
	"log/slog"
	"net/http"
	"os"
	"time"

	"example.com/sse-on-envoy/demo"
)

func main() {
	addr := flag.String("addr", ":3000", "listen address")
	flag.Parse()
	srv := &http.Server{Addr: *addr, Handler: demo.Handler(), ReadHeaderTimeout: 5 * time.Second}
	slog.Info("demo page listening", "addr", *addr)
	if err := srv.ListenAndServe(); err != nil {
		slog.Error("demo page", "err", err)
		os.Exit(1)
	}
}
