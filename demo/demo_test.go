package demo

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesThePage(t *testing.T) {
	srv := httptest.NewServer(Handler())
	defer srv.Close()
	for path, want := range map[string]int{"/": 200, "/?url=http://x/sse&streams=7": 200, "/other": 404} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
		if want == 200 && !strings.Contains(string(body), "function mercureSubscribe(") {
			t.Errorf("%s: no Mercure section", path)
		}
		if want == 200 && !strings.Contains(string(body), "async function streamTokens(") {
			t.Errorf("%s: no token stream section", path)
		}
		if want == 200 && !strings.Contains(string(body), "new EventSource(url, { withCredentials: true })") {
			t.Errorf("%s: not the demo page", path)
		}
	}
}
