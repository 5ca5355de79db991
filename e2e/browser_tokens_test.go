package e2e

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/chromedp/chromedp"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/upstream/jokes"
	"example.com/sse-on-envoy/upstream/tokens"
)

// tokenStreamState mirrors the demo page's window.tokenStream.
type tokenStreamState struct {
	State        string   `json:"state"`
	Status       int      `json:"status"`
	Text         string   `json:"text"`
	Chunks       int      `json:"chunks"`
	Deltas       []string `json:"deltas"`
	FirstTokenMS float64  `json:"firstTokenMs"`
	MaxGapMS     float64  `json:"maxGapMs"`
	TotalTokens  int      `json:"totalTokens"`
	Tag          string   `json:"tag"`
	Error        string   `json:"error"`
}

// streamTokensInBrowser loads the demo page from pageOrigin with
// ?tokens=streamURL, which POSTs a chat completion request with fetch(),
// and polls window.tokenStream until it is done or failed (or 20 s pass).
func streamTokensInBrowser(t *testing.T, ctx context.Context, pageOrigin, streamURL, prompt string) tokenStreamState {
	t.Helper()
	page := fmt.Sprintf("%s/?tokens=%s&prompt=%s", pageOrigin, url.QueryEscape(streamURL), url.QueryEscape(prompt))
	if _, err := chromedp.Run(ctx, chromedp.Navigate(page)); err != nil {
		t.Fatalf("loading the demo page %s: %v", page, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ts, err := chromedp.Run(ctx, chromedp.Evaluate[*tokenStreamState](`window.tokenStream`))
		if err != nil {
			t.Fatalf("reading the demo page's token stream: %v", err)
		}
		if ts != nil && (ts.State == "done" || ts.State == "error") {
			return *ts
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo page's token stream after 20 s: %+v, want done", ts)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// countTokens counts as the upstream does: a token is TokenChars
// characters (the last may be shorter).
func countTokens(s string) int {
	return (utf8.RuneCountInString(s) + tokens.DefaultTokenChars - 1) / tokens.DefaultTokenChars
}

// An LLM token stream in the browser, read as LLM UIs read it: the demo page
// POSTs JSON with fetch() from its allowed origin (Content-Type:
// application/json makes it a preflighted request, which Envoy's policy
// answers) and reads the chunks with a ReadableStream reader and its own
// SSE parser. The page's answer is checked against the upstream's
// deterministic one (a joke from the list, usage counted from the prompt
// and the joke) and against Envoy's access log (the preflight, and the
// total tokens the module extracted from the same usage chunk).
func TestBrowserTokenStream(t *testing.T) {
	ctx := browser(t)
	s := startStack(t)
	const prompt = "Tell me a joke about proxies"
	legs := []struct {
		name, url, protocol string
	}{
		{"8080 HTTP/1.1", s.HTTPURL + routes.CompletionsPath, "HTTP/1.1"},
		{"8443 HTTP/2", s.HTTPSURL + routes.CompletionsPath, "HTTP/2"},
	}
	for _, leg := range legs {
		t.Run(leg.name, func(t *testing.T) {
			start := time.Now()
			ts := streamTokensInBrowser(t, ctx, s.DemoURL, leg.url, prompt)
			t.Logf("in %v: %d chunks, %d deltas, first token %.1f ms, largest gap %.1f ms, total tokens %d, tag %q, text %q",
				time.Since(start).Round(time.Millisecond), ts.Chunks, len(ts.Deltas), ts.FirstTokenMS, ts.MaxGapMS, ts.TotalTokens, ts.Tag, ts.Text)
			if ts.State != "done" || ts.Error != "" || ts.Status != 200 {
				t.Fatalf("token stream %+v: want done, status 200, no error", ts)
			}
			if ts.Text == "" || ts.Text != strings.Join(ts.Deltas, "") || !slices.Contains(jokes.All(), ts.Text) {
				t.Errorf("text %q (deltas %q): want the concatenated deltas, one of the upstream's jokes", ts.Text, ts.Deltas)
			}
			// The role chunk, one per token, the finish and the usage.
			if ts.Chunks <= 5 || ts.Chunks != len(ts.Deltas)+3 {
				t.Errorf("%d chunks for %d deltas: want more than 5, the deltas and 3", ts.Chunks, len(ts.Deltas))
			}
			if ts.FirstTokenMS <= 0 || ts.FirstTokenMS > 10000 || ts.MaxGapMS <= 0 {
				t.Errorf("first token %v ms, largest gap %v ms: want both measured", ts.FirstTokenMS, ts.MaxGapMS)
			}
			if want := countTokens(prompt) + countTokens(ts.Text); ts.TotalTokens != want {
				t.Errorf("total tokens %d, want %d (prompt and joke in %d-character tokens)", ts.TotalTokens, want, tokens.DefaultTokenChars)
			}
			if want := tagOf(localstack.AdapterModule); ts.Tag != want {
				t.Errorf("x-sse-stream %q, want %q (read through CORS's exposed headers)", ts.Tag, want)
			}
			// Envoy saw the preflight from the page's origin, then the POST,
			// whose usage chunk the module read as the page did.
			onLeg := func(method string) func(accessLogEntry) bool {
				return func(e accessLogEntry) bool {
					return e.str("method") == method && e.str("path") == routes.CompletionsPath &&
						e.str("origin") == s.DemoURL && e.str("protocol") == leg.protocol
				}
			}
			pre := waitForAccessLog(t, s, onLeg("OPTIONS"), 1)[0]
			if code := pre.str("response_code"); code != "200" && code != "204" {
				t.Errorf("preflight %v: want answered", pre)
			}
			post := waitForAccessLog(t, s, onLeg("POST"), 1)[0]
			if post.str("response_code") != "200" || post.str("sse_total_tokens") != fmt.Sprint(ts.TotalTokens) {
				t.Errorf("POST %v: want 200 and the page's total tokens %d", post, ts.TotalTokens)
			}
		})
	}
	// From an origin the policy does not allow, the preflight fails and
	// fetch() rejects before a chunk arrives.
	t.Run("refused origin", func(t *testing.T) {
		ts := streamTokensInBrowser(t, ctx, s.DemoURLOtherOrigin, legs[0].url, prompt)
		if ts.State != "error" || ts.Chunks != 0 || ts.Text != "" || ts.Status != 0 {
			t.Errorf("token stream %+v: want CORS to block it", ts)
		}
		t.Logf("refused: %s", ts.Error)
	})
	// The page's SSE parser, on input cut where a network may cut it: a CRLF
	// split between two reads, a line split mid-field, comments, a lone CR,
	// an empty data line, and an event the stream's end cuts off.
	t.Run("parser", func(t *testing.T) {
		type event struct{ Type, Data string }
		got, err := chromedp.Run(ctx, chromedp.Evaluate[[]event](`(() => {
			const got = [];
			const push = sseParser(e => got.push(e));
			for (const part of ["data: a\r", "\ndata:b\r\n", ": comment\n", "\r\n", "da", "ta: sp", "lit\n\n",
				"event: x\ndata:  c\rdata\n\n", "data: cut"]) push(part);
			return got;
		})()`))
		want := []event{{"message", "a\nb"}, {"message", "split"}, {"x", " c\n"}}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("sseParser: %q (%v), want %q", got, err, want)
		}
	})
}
