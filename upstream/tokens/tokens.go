// Package tokens answers POST /v1/chat/completions as an LLM API does, so
// that token streaming, the biggest SSE workload through Envoy, has a
// source to run on: a JSON request in, and out, a text/event-stream of
// OpenAI-style chunks carrying a dad joke a few characters at a time at a
// set token rate, a last chunk with the usage, then "data: [DONE]". With
// "stream": false the answer is one JSON completion. Each response is its
// own stream, written by upstream/stream's serve loop.
//
// A token here is TokenChars characters of the joke (OpenAI's tokenizer is
// not ours to copy); prompt_tokens counts the messages' characters the same
// way, so usage is deterministic and a test can know it.
package tokens

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/upstream/jokes"
	"example.com/sse-on-envoy/upstream/stream"
)

// Path is where the completions are served.
const Path = routes.CompletionsPath

// Model is the model name the answers carry.
const Model = "dad-joke-1"

// Defaults for zero Options.
const (
	DefaultRate       = 50 // tokens per second
	DefaultTokenChars = 4
	// MaxBody bounds a request's body.
	MaxBody = 1 << 20
)

// Options configure NewHandler. Zero values take the defaults.
type Options struct {
	// Stream is the timing of the streams: the write deadline and the
	// heartbeat between slow tokens; no retry is sent (LLM clients read
	// with fetch, not EventSource).
	Stream stream.Options
	// Rate is tokens per second.
	Rate float64
	// TokenChars is how many characters of the joke one token carries.
	TokenChars int
	// AnswerTokens, when positive, is how long every answer is: jokes
	// follow one another until it is reached, as a model's answers run to
	// hundreds of tokens (one joke is tens). 0: one joke.
	AnswerTokens int
	// Stamp puts a ": sent=<unix ns>" comment before each chunk, the time
	// it is handed to the writer, as the seed stream stamps its events
	// (-stamp): what a load client measures latency with. A comment is
	// ignored by every SSE parser, OpenAI's clients' included.
	Stamp bool
	// Jokes to answer with, in turn; nil means the embedded list.
	Jokes  []string
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	o.Stream = o.Stream.WithDefaults()
	o.Stream.Retry = -1
	if o.Rate <= 0 {
		o.Rate = DefaultRate
	}
	if o.TokenChars <= 0 {
		o.TokenChars = DefaultTokenChars
	}
	if o.Jokes == nil {
		o.Jokes = jokes.All()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// NewHandler serves Path.
func NewHandler(o Options) http.Handler { return &handler{opts: o.withDefaults()} }

type handler struct {
	opts Options
	n    atomic.Uint64 // answers so far: picks the joke and names the completion
}

// Request is what the handler reads of a chat completion request; other
// fields are accepted and ignored.
type Request struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	Stream   bool      `json:"stream"`
	// MaxTokens, when positive, cuts the answer (finish_reason "length").
	MaxTokens int `json:"max_tokens"`
}

// Message is one message of a request or an answer.
type Message struct {
	Role    string  `json:"role"`
	Content Content `json:"content"`
}

// Content is a message's text. A request may send it as a string or, as
// OpenAI's API also accepts, as an array of parts whose "text" fields are
// joined (other parts, such as images, count for nothing).
type Content string

func (c *Content) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = Content(s)
		return nil
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return errors.New("content: want a string or an array of parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		sb.WriteString(p.Text)
	}
	*c = Content(sb.String())
	return nil
}

// Usage is the answer's token count, as OpenAI reports it.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Chunk is one event of a streamed answer (object chat.completion.chunk).
type Chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"`
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// ChunkChoice is a chunk's piece of the answer.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is what a chunk adds to the answer.
type Delta struct {
	Role    string `json:"role,omitempty"`
	Content string `json:"content,omitempty"`
}

// Completion is a whole answer (object chat.completion, "stream": false).
type Completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   Usage    `json:"usage"`
}

// Choice is a whole answer's message.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// Done is the data of the stream's last event.
const Done = "[DONE]"

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.fail(w, r, http.StatusMethodNotAllowed, "use POST")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		h.fail(w, r, http.StatusUnsupportedMediaType, "the body must be application/json")
		return
	}
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.fail(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", MaxBody))
			return
		}
		h.fail(w, r, http.StatusBadRequest, "the body is not a JSON chat completion request: "+err.Error())
		return
	}
	if len(req.Messages) == 0 {
		h.fail(w, r, http.StatusBadRequest, "messages: at least one message is needed")
		return
	}
	if req.MaxTokens < 0 {
		h.fail(w, r, http.StatusBadRequest, "max_tokens: must not be negative")
		return
	}
	n := h.n.Add(1)
	a := h.answer(n, req)
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.completion())
		return
	}
	log := h.opts.Logger.With("proto", r.Proto, "remote", r.RemoteAddr, "completion", a.id)
	stream.SetHeaders(w.Header())
	w.WriteHeader(http.StatusOK)
	log.Info("token stream open", "tokens", len(a.tokens), "rate", h.opts.Rate)
	res := stream.Serve(r.Context(), stream.NewWriter(w, h.opts.Stream.WriteTimeout), stream.Session[*event]{
		Feed: a.pace(r.Context(), h.opts.Rate, h.opts.Stamp),
	}, h.opts.Stream, log)
	log.Info("token stream closed", res.LogAttrs()...)
}

// fail answers an error as OpenAI's API does, in JSON.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	h.opts.Logger.Info("completion request refused", "method", r.Method, "status", status, "reason", msg, "remote", r.RemoteAddr)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var body struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
	}
	body.Error.Message, body.Error.Type = msg, "invalid_request_error"
	_ = json.NewEncoder(w).Encode(body)
}

// answer is one completion, cut into tokens.
type answer struct {
	id      string
	created int64
	tokens  []string
	finish  string
	usage   Usage
}

func (h *handler) answer(n uint64, req Request) answer {
	jokes := h.opts.Jokes
	joke := func(i uint64) string { return jokes[(n-1+i)%uint64(len(jokes))] }
	a := answer{id: "chatcmpl-" + strconv.FormatUint(n, 10), created: time.Now().Unix(), finish: "stop"}
	text := joke(0)
	for i := uint64(1); h.opts.AnswerTokens > 0 && utf8.RuneCountInString(text) < h.opts.AnswerTokens*h.opts.TokenChars; i++ {
		text += " " + joke(i)
	}
	a.tokens = split(text, h.opts.TokenChars)
	if h.opts.AnswerTokens > 0 {
		a.tokens = a.tokens[:h.opts.AnswerTokens]
	}
	if req.MaxTokens > 0 && len(a.tokens) > req.MaxTokens {
		a.tokens, a.finish = a.tokens[:req.MaxTokens], "length"
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += len(split(string(m.Content), h.opts.TokenChars))
	}
	a.usage = Usage{PromptTokens: prompt, CompletionTokens: len(a.tokens), TotalTokens: prompt + len(a.tokens)}
	return a
}

// split cuts s into pieces of n characters (the last may be shorter).
func split(s string, n int) []string {
	var out []string
	rs := []rune(s)
	for i := 0; i < len(rs); i += n {
		out = append(out, string(rs[i:min(i+n, len(rs))]))
	}
	return out
}

func (a answer) completion() Completion {
	content := strings.Join(a.tokens, "")
	return Completion{ID: a.id, Object: "chat.completion", Created: a.created, Model: Model,
		Choices: []Choice{{Message: Message{Role: "assistant", Content: Content(content)}, FinishReason: a.finish}},
		Usage:   a.usage}
}

// events are the stream's: the role, one per token, the finish, the usage
// and [DONE].
func (a answer) events() []*event {
	chunk := func(d Delta, finish *string, usage *Usage) Chunk {
		c := Chunk{ID: a.id, Object: "chat.completion.chunk", Created: a.created, Model: Model, Usage: usage,
			Choices: []ChunkChoice{{Delta: d, FinishReason: finish}}}
		if usage != nil {
			c.Choices = []ChunkChoice{}
		}
		return c
	}
	chunks := []Chunk{chunk(Delta{Role: "assistant"}, nil, nil)}
	for _, t := range a.tokens {
		chunks = append(chunks, chunk(Delta{Content: t}, nil, nil))
	}
	finish := a.finish
	usage := a.usage
	chunks = append(chunks, chunk(Delta{}, &finish, nil), chunk(Delta{}, nil, &usage))
	out := make([]*event, 0, len(chunks)+1)
	for i, c := range chunks {
		data, err := json.Marshal(c)
		if err != nil {
			panic(err) // only our own types, which always marshal
		}
		out = append(out, &event{pos: uint64(i + 1), wire: dataEvent(data)})
	}
	return append(out, &event{pos: uint64(len(chunks) + 1), wire: dataEvent([]byte(Done))})
}

func dataEvent(data []byte) []byte {
	wire := make([]byte, 0, len(data)+8)
	wire = append(wire, "data: "...)
	wire = append(wire, data...)
	return append(wire, "\n\n"...)
}
