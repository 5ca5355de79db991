package tokens

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"example.com/sse-on-envoy/internal/sse"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const joke = "Why do seagulls fly over the sea? Because if they flew over the bay, they would be bagels."

func serve(t *testing.T, o Options) *httptest.Server {
	t.Helper()
	o.Jokes = []string{joke}
	ts := httptest.NewServer(NewHandler(o))
	t.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, ctx context.Context, url, contentType, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

const hello = `{"model":"any","stream":true,"messages":[{"role":"user","content":"Tell me a joke"}]}`

// readStream reads an answer's events: the chunks, and whether [DONE] came
// last.
func readStream(t *testing.T, r io.Reader) (chunks []Chunk, done bool) {
	t.Helper()
	rd := sse.NewReader(r)
	for {
		e, err := rd.Next()
		if err != nil {
			return chunks, done
		}
		if done {
			t.Fatalf("an event after [DONE]: %+v", e)
		}
		if e.Data == Done {
			done = true
			continue
		}
		var c Chunk
		if err := json.Unmarshal([]byte(e.Data), &c); err != nil {
			t.Fatalf("chunk %q: %v", e.Data, err)
		}
		chunks = append(chunks, c)
	}
}

func TestStreamedAnswer(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantTokens int
		finish     string
	}{
		{"whole", hello, (len(joke) + 3) / 4, "stop"},
		{"content as parts", `{"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"Tell me "},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"a joke"}]}]}`, (len(joke) + 3) / 4, "stop"},
		{"cut by max_tokens", `{"stream":true,"max_tokens":5,"messages":[{"role":"user","content":"Tell me a joke"}]}`, 5, "length"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := serve(t, Options{Rate: 2000})
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			resp := post(t, ctx, ts.URL+Path, "application/json", tt.body)
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%s %q", resp.Status, resp.Header.Get("Content-Type"))
			}
			chunks, done := readStream(t, resp.Body)
			if !done {
				t.Fatal("no data: [DONE] at the end")
			}
			// role, tokens, finish, usage
			if len(chunks) != tt.wantTokens+3 {
				t.Fatalf("%d chunks, want %d tokens and 3 more", len(chunks), tt.wantTokens)
			}
			if chunks[0].Choices[0].Delta.Role != "assistant" || chunks[0].Object != "chat.completion.chunk" || chunks[0].Model != Model {
				t.Errorf("first chunk %+v", chunks[0])
			}
			var text strings.Builder
			for _, c := range chunks[1 : 1+tt.wantTokens] {
				if c.Choices[0].FinishReason != nil || c.ID != chunks[0].ID {
					t.Errorf("token chunk %+v", c)
				}
				text.WriteString(c.Choices[0].Delta.Content)
			}
			if want := string([]rune(joke)[:min(len(joke), 4*tt.wantTokens)]); text.String() != want {
				t.Errorf("tokens say %q, want %q", text.String(), want)
			}
			if f := chunks[len(chunks)-2].Choices[0].FinishReason; f == nil || *f != tt.finish {
				t.Errorf("finish_reason %v, want %s", f, tt.finish)
			}
			u := chunks[len(chunks)-1].Usage
			if want := (Usage{PromptTokens: 4, CompletionTokens: tt.wantTokens, TotalTokens: 4 + tt.wantTokens}); u == nil || *u != want || len(chunks[len(chunks)-1].Choices) != 0 {
				t.Errorf("usage chunk %+v, want usage %+v and no choices", chunks[len(chunks)-1], want)
			}
		})
	}
}

// Tokens come at the rate asked, not all at once.
func TestTokensArePaced(t *testing.T) {
	ts := serve(t, Options{Rate: 100, TokenChars: 10})
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	start := time.Now()
	resp := post(t, ctx, ts.URL+Path, "application/json", hello)
	defer resp.Body.Close()
	chunks, done := readStream(t, resp.Body)
	tokens := len(chunks) - 3
	// The last token is due (tokens-1)/rate after the first; a lower bound
	// only (a loaded machine is late, never early).
	if took, least := time.Since(start), time.Duration(tokens-1)*10*time.Millisecond; !done || took < least {
		t.Errorf("%d tokens in %v, want at least %v at 100 tokens/s", tokens, took, least)
	}
}

func TestWholeAnswer(t *testing.T) {
	ts := serve(t, Options{})
	resp := post(t, t.Context(), ts.URL+Path, "application/json", `{"messages":[{"role":"user","content":"Tell me a joke"}]}`)
	defer resp.Body.Close()
	var c Completion
	if err := json.NewDecoder(resp.Body).Decode(&c); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%s: %v", resp.Status, err)
	}
	if c.Object != "chat.completion" || string(c.Choices[0].Message.Content) != joke || c.Choices[0].FinishReason != "stop" ||
		c.Usage.CompletionTokens != (len(joke)+3)/4 || c.Usage.TotalTokens != c.Usage.PromptTokens+c.Usage.CompletionTokens {
		t.Errorf("completion %+v", c)
	}
}

func TestBadRequests(t *testing.T) {
	ts := serve(t, Options{})
	tests := []struct {
		name, method, contentType, body string
		status                          int
		says                            string
	}{
		{"GET", http.MethodGet, "", "", 405, "use POST"},
		{"a form", http.MethodPost, "application/x-www-form-urlencoded", "a=b", 415, "application/json"},
		{"not JSON", http.MethodPost, "application/json", "{", 400, "not a JSON chat completion request"},
		{"no messages", http.MethodPost, "application/json", `{"stream":true}`, 400, "messages"},
		{"content neither text nor parts", http.MethodPost, "application/json", `{"messages":[{"role":"user","content":7}]}`, 400, "content: want a string or an array of parts"},
		{"negative max_tokens", http.MethodPost, "application/json", `{"max_tokens":-1,"messages":[{"role":"user","content":"x"}]}`, 400, "max_tokens"},
		{"too big", http.MethodPost, "application/json", `{"messages":[{"role":"user","content":"` + strings.Repeat("x", MaxBody) + `"}]}`, 413, "over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), tt.method, ts.URL+Path, strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var e struct {
				Error struct{ Message, Type string } `json:"error"`
			}
			_ = json.NewDecoder(resp.Body).Decode(&e)
			if resp.StatusCode != tt.status || !strings.Contains(e.Error.Message, tt.says) || e.Error.Type != "invalid_request_error" {
				t.Errorf("%s %+v, want %d saying %q", resp.Status, e, tt.status, tt.says)
			}
		})
	}
}

// A client that leaves mid-answer ends the stream and its pacing.
func TestClientLeavesMidAnswer(t *testing.T) {
	ts := serve(t, Options{Rate: 5})
	ctx, cancel := context.WithCancel(t.Context())
	resp := post(t, ctx, ts.URL+Path, "application/json", hello)
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	resp.Body.Close()
	// goleak (TestMain) fails the package if the pacing goroutine stays.
}

// With Stamp, every event is preceded by its send time, and a client that
// ignores comments reads the same stream.
func TestStampedChunks(t *testing.T) {
	ts := serve(t, Options{Rate: 1000, Stamp: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	before := time.Now().UnixNano()
	resp := post(t, ctx, ts.URL+Path, "application/json", hello)
	defer resp.Body.Close()
	rd := sse.NewReader(resp.Body)
	var stamps int
	var last int64
	rd.OnComment(func(text []byte) {
		if v, ok := sse.ParseSentComment(text); ok && v >= max(before, last) && v <= time.Now().UnixNano() {
			stamps++
			last = v
		}
	})
	events := 0
	for {
		if _, err := rd.Next(); err != nil {
			break
		}
		events++
	}
	if events < 5 || stamps != events {
		t.Errorf("%d events, %d of them stamped in order: want every one", events, stamps)
	}
}

// With AnswerTokens every answer is that long, jokes following one another,
// and its usage says so.
func TestAnswerTokens(t *testing.T) {
	ts := serve(t, Options{Rate: 100000, TokenChars: 3, AnswerTokens: 70})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp := post(t, ctx, ts.URL+Path, "application/json", hello)
	defer resp.Body.Close()
	chunks, done := readStream(t, resp.Body)
	var text strings.Builder
	tokens := 0
	for _, c := range chunks {
		if len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			text.WriteString(c.Choices[0].Delta.Content)
			tokens++
		}
	}
	last := chunks[len(chunks)-1]
	if !done || tokens != 70 || last.Usage == nil || last.Usage.CompletionTokens != 70 ||
		!strings.HasPrefix(text.String(), joke+" "+joke[:10]) {
		t.Errorf("done %v, %d tokens, usage %+v, text %q: want 70 tokens of the joke told again", done, tokens, last.Usage, text.String())
	}
}
