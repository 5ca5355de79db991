package stream

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// BenchmarkWrite is one event written and flushed to a client reading on
// loopback, per protocol: the Writer (deadline set, write, flush, deadline
// cleared) against the same write without the clearing (what leaves a
// deadline behind, the bug on HTTP/2), to show what the clearing costs per
// event.
//
//	go test -run '^$' -bench Write -benchmem ./upstream/stream
func BenchmarkWrite(b *testing.B) {
	event := []byte("id: 123456\nevent: DAD_JOKE\ndata: I used to hate facial hair, but then it grew on me.\n\n")
	const timeout = 10 * time.Second
	writers := []struct {
		name  string
		write func(w http.ResponseWriter, rc *http.ResponseController, sw *Writer) error
	}{
		{"Writer", func(_ http.ResponseWriter, _ *http.ResponseController, sw *Writer) error { return sw.Write(event) }},
		{"deadline-left-set", func(w http.ResponseWriter, rc *http.ResponseController, _ *Writer) error {
			if err := rc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
				return err
			}
			if _, err := w.Write(event); err != nil {
				return err
			}
			return rc.Flush()
		}},
	}
	for _, proto := range []string{"h1", "h2"} {
		for _, wr := range writers {
			b.Run(proto+"/"+wr.name, func(b *testing.B) {
				ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusOK)
					rc := http.NewResponseController(w)
					sw := NewWriter(w, timeout)
					b.ResetTimer()
					for b.Loop() {
						if err := wr.write(w, rc, sw); err != nil {
							b.Error(err)
							return
						}
					}
				}))
				ts.EnableHTTP2 = proto == "h2"
				ts.StartTLS()
				defer ts.Close()
				c := ts.Client()
				defer c.CloseIdleConnections()
				resp, err := c.Get(ts.URL)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				_, _ = io.Copy(io.Discard, resp.Body)
			})
		}
	}
}
