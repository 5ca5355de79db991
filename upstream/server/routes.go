package server

import (
	"log/slog"
	"net/http"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/upstream/hub"
	"example.com/sse-on-envoy/upstream/mercure/hubhttp"
	"example.com/sse-on-envoy/upstream/seed"
	"example.com/sse-on-envoy/upstream/stream"
	"example.com/sse-on-envoy/upstream/tokens"
)

// HealthPath is the health check's path.
const HealthPath = routes.HealthPath

// HandlerOptions configure NewHandler. Zero values take the defaults.
type HandlerOptions struct {
	// Stream is the timing of every stream, the seed's and the Mercure
	// hub's.
	Stream stream.Options
	Logger *slog.Logger
	// Health, when set, decides /healthz: an error is answered 503 with
	// its text, so that a load balancer stops sending new streams here.
	Health func() error
	// Log, when set, is the shared event log behind the hub (see
	// seed.Options.Log).
	Log seed.ReplayLog
	// Metrics, when set, counts replays by outcome and serves /metrics.
	Metrics *Metrics
	// Mercure, when set, serves the Mercure hub at hubhttp.Path.
	Mercure http.Handler
	// Tokens configure the token stream at tokens.Path (its Stream and
	// Logger are these options').
	Tokens tokens.Options
}

func (o HandlerOptions) withDefaults() HandlerOptions {
	o.Stream = o.Stream.WithDefaults()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// NewHandler serves the event stream of h, the token stream, the Mercure
// hub if any, the metrics and the health check.
func NewHandler(h *hub.Hub, o HandlerOptions) http.Handler {
	o = o.withDefaults()
	mux := http.NewServeMux()
	// Registered without a method so that the 405 is the stream's own and
	// names GET only: the mux's would also allow HEAD, which makes no sense
	// for a stream.
	mux.Handle(seed.EventsPath, seed.NewHandler(h, seed.Options{
		Stream:   o.Stream,
		Logger:   o.Logger,
		Log:      o.Log,
		OnReplay: o.Metrics.replay,
	}))
	if o.Mercure != nil {
		mux.Handle(hubhttp.Path, o.Mercure)
	}
	tok := o.Tokens
	tok.Stream, tok.Logger = o.Stream, o.Logger
	mux.Handle(tokens.Path, tokens.NewHandler(tok))
	if o.Metrics != nil {
		mux.Handle("GET "+MetricsPath, o.Metrics.Handler())
	}
	mux.HandleFunc("GET "+HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if o.Health != nil {
			if err := o.Health(); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte("unavailable: " + err.Error() + "\n"))
				return
			}
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
