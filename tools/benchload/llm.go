package benchload

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"

	"example.com/sse-on-envoy/internal/routes"
	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/tools/envoyconfig"
	"example.com/sse-on-envoy/tools/loadtest"
	"example.com/sse-on-envoy/tools/localstack"
	"example.com/sse-on-envoy/upstream/tokens"
)

// CompletionHeader numbers a completion request, so that Envoy's access log
// entry for it can be matched with what the client read.
const CompletionHeader = "x-bench-completion"

// completionRequest is what every client asks for: a streamed completion
// with its usage, as OpenAI's clients ask.
const completionRequest = `{"model":"` + tokens.Model + `","stream":true,"stream_options":{"include_usage":true},` +
	`"messages":[{"role":"user","content":"Tell me a joke."}]}`

// AnswerTokens is how long the upstream's answers are in a Completions
// scenario: a chat model's answer runs to hundreds of tokens.
const AnswerTokens = 500

// completionsUpstreamArgs run the upstream's token stream at the scenario's
// rate, AnswerTokens tokens an answer, each chunk stamped for the latency.
func completionsUpstreamArgs(sc Scenario) []string {
	return []string{"-stamp", "-token-rate", strconv.FormatFloat(sc.EventRate, 'f', -1, 64),
		"-token-answer", strconv.Itoa(AnswerTokens)}
}

// logCompletions adds to Envoy's access log the completion's number and
// the token count Envoy's own sse_to_metadata writes (the module's is in
// the log already).
func logCompletions(o *localstack.Options) {
	alsoEdit(o, func(b *bootstrapv3.Bootstrap) error {
		t := LLMTokens.SSEToMetadata
		return envoyconfig.AddAccessLogFields(b, map[string]string{
			"bench_completion":   "%REQ(" + strings.ToUpper(CompletionHeader) + ")%",
			llmTokensLogField:    "%DYNAMIC_METADATA(" + t.Namespace + ":" + t.Key + ")%",
			moduleTokensLogField: "%DYNAMIC_METADATA(sse:" + LLMTokens.ModuleKey + ")%",
		})
	})
}

const (
	llmTokensLogField    = "bench_sse_to_metadata_tokens"
	moduleTokensLogField = "bench_policy_tokens"
)

// tokenTally is the usage each completion's last chunk reported, as the
// client read it, by completion number.
type tokenTally struct {
	mu    sync.Mutex
	usage map[int64]int
}

// askForCompletions makes cfg's streams LLM clients: a POST for a streamed
// completion, then the next once it ends, each numbered.
func askForCompletions(cfg *loadtest.Config) *tokenTally {
	t := &tokenTally{usage: map[int64]int{}}
	cfg.Repeat = true
	cfg.NewRequest = func(ctx context.Context, url string, n int64) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(completionRequest))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(CompletionHeader, strconv.FormatInt(n, 10))
		return req, nil
	}
	cfg.OnEvent = func(n int64, e sse.Event) {
		if !strings.Contains(e.Data, `"usage":{`) {
			return
		}
		var c tokens.Chunk
		if json.Unmarshal([]byte(e.Data), &c) == nil && c.Usage != nil {
			t.mu.Lock()
			t.usage[n] = c.Usage.TotalTokens
			t.mu.Unlock()
		}
	}
	return t
}

// TokenCheck is what Envoy's access log said of each completion's tokens,
// against the usage the client read in the completion's last chunk.
type TokenCheck struct {
	// Completions were read to their end by the client; Logged are the
	// access-log entries of completions.
	Completions int64 `json:"completions"`
	Logged      int   `json:"logged"`
	// Field is the access-log field the variant writes the count in ("":
	// none); Counted entries have one, Matched equal the client's.
	Field   string `json:"field,omitempty"`
	Counted int    `json:"counted"`
	Matched int    `json:"matched"`
	// Tokens is the sum of the counts the log has.
	Tokens int64 `json:"tokens"`
}

// check reads Envoy's access log after the case.
func (t *tokenTally) check(v Variant, logPath string, completed int64) (TokenCheck, error) {
	c := TokenCheck{Completions: completed}
	switch v.Name {
	case SSEToMetadataVariant:
		c.Field = llmTokensLogField
	case "module", "golang":
		c.Field = moduleTokensLogField
	}
	if v.Direct {
		return c, nil
	}
	f, err := os.Open(logPath)
	if err != nil {
		return c, err
	}
	defer f.Close()
	t.mu.Lock()
	defer t.mu.Unlock()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var entry map[string]any
		if json.Unmarshal(line, &entry) != nil || entry["path"] != routes.CompletionsPath || entry["log_type"] == "DownstreamPeriodic" {
			continue
		}
		c.Logged++
		if c.Field == "" {
			continue
		}
		count, ok := entry[c.Field].(float64)
		if !ok {
			continue
		}
		c.Counted++
		c.Tokens += int64(count)
		n, err := strconv.ParseInt(fmt.Sprint(entry["bench_completion"]), 10, 64)
		if want, read := t.usage[n]; err == nil && read && int(count) == want {
			c.Matched++
		}
	}
	return c, sc.Err()
}

// writeTokenChecks says, per case of a token-stream scenario, whether the
// token count Envoy logged for each completion is the usage the client read.
func writeTokenChecks(w io.Writer, cases []Case) {
	fmt.Fprintln(w, "\nToken counts in Envoy's access log, each completion's against the usage its last chunk carried (as the client read it):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| variant | leg | round | completions read | logged | with a count | equal to the client's | tokens logged |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|")
	for _, c := range cases {
		t := c.Tokens
		if t == nil || c.Error != "" {
			continue
		}
		counted, matched := "–", "–"
		if t.Field != "" {
			counted, matched = fmt.Sprint(t.Counted), fmt.Sprint(t.Matched)
		}
		fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %s | %s | %d |\n", c.Variant, c.Leg, c.Round, t.Completions, t.Logged, counted, matched, t.Tokens)
	}
}
