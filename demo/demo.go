// Package demo serves the browser demo page: EventSource streams from the
// page's origin to Envoy, to see CORS and the HTTP/1.1 connection limit, and
// the Mercure hub through Envoy (subscribe to topics, publicly or with the
// subscriber token; publish with the publisher token; watch updates arrive),
// and an LLM token stream read as LLM UIs read it (a fetch() POST of JSON and
// a ReadableStream reader with its own SSE parser).
package demo

import (
	_ "embed"
	"net/http"
)

//go:embed index.html
var page []byte

// Handler serves the page at / (and 404 elsewhere).
func Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("content-type", "text/html; charset=utf-8")
		w.Header().Set("cache-control", "no-cache")
		w.Write(page)
	})
	return mux
}
