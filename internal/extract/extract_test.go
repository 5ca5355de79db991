package extract

import (
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

func TestCompileNamesTheField(t *testing.T) {
	reserved := func(k string) bool { return k == "events" }
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no path", Config{Rules: []Rule{{Key: "k"}}}, "extract.rules[0].path"},
		{"empty segment", Config{Rules: []Rule{{Path: "usage..total", Key: "k"}}}, "extract.rules[0].path"},
		{"only indexes", Config{Rules: []Rule{{Path: "0.1", Key: "k"}}}, "no object key"},
		{"bad key", Config{Rules: []Rule{{Path: "a", Key: "a-b"}}}, "extract.rules[0].key"},
		{"reserved key", Config{Rules: []Rule{{Path: "a", Key: "events"}}}, "the stream's own"},
		{"key twice", Config{Rules: []Rule{{Path: "a", Key: "k"}, {Path: "b", Key: "k"}}}, "extract.rules[1].key"},
		{"type", Config{Rules: []Rule{{Path: "a", Key: "k", Type: "int"}}}, "extract.rules[0].type"},
		{"wins", Config{Rules: []Rule{{Path: "a", Key: "k", Wins: "max"}}}, "extract.rules[0].wins"},
		{"event on two lines", Config{Rules: []Rule{{Event: "a\nb", Path: "a", Key: "k"}}}, "extract.rules[0].event"},
		{"event size", Config{MaxEventBytes: ptr(10), Rules: []Rule{{Path: "a", Key: "k"}}}, "extract.max_event_bytes"},
		{"too many", Config{Rules: make([]Rule, MaxRules+1)}, "extract.rules: 9 rules"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, errs := Compile(&tc.cfg, reserved)
			var msgs []string
			for _, e := range errs {
				msgs = append(msgs, e.Error())
			}
			if !strings.Contains(strings.Join(msgs, "; "), tc.want) {
				t.Errorf("errors %q, want one with %q", msgs, tc.want)
			}
		})
	}
	if r, errs := Compile(&Config{}, nil); r != nil || errs != nil {
		t.Errorf("no rules: %v %v, want nil and no error", r, errs)
	}
}

// OpenAI and Anthropic token streams, read as an LLM gateway reads them.
func TestMatchAndApply(t *testing.T) {
	r, errs := Compile(&Config{Rules: []Rule{
		{Path: "usage.total_tokens", Key: "total_tokens"},
		{Event: "message_delta", Path: "usage.output_tokens", Key: "output_tokens"},
		{Path: "choices.0.finish_reason", Key: "finish_reason", Type: "string"},
		{Path: "model", Key: "model", Type: "string", Wins: "first"},
	}}, nil)
	if errs != nil {
		t.Fatal(errs)
	}
	var v Values
	set := map[string]any{}
	for _, ev := range []struct {
		typ, data string
		mask      uint32
	}{
		{"message", `{"model":"m1","choices":[{"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}`, 0b1100},
		{"message", `{"model":"m2","choices":[{"finish_reason":"stop"}]}`, 0b1100},
		{"message", `{"usage":{"prompt_tokens":3,"total_tokens":21}}`, 0b0001},
		{"message", "[DONE]", 0},
		{"message", `{"total_tokens": oops`, 0b0001},
		{"message_delta", `{"usage":{"output_tokens":15}}`, 0},
		{"message_delta", `{"usage":{"output_tokens":16}}`, 0},
		{"other", `{"usage":{"output_tokens":1}}`, 0},
		{"message", `{"usage":{"total_tokens":"many"}}`, 0b0001},
	} {
		mask := r.Match([]byte(ev.typ), []byte(ev.data))
		if ev.typ == "message_delta" {
			ev.mask = 0b0010
		}
		if mask != ev.mask {
			t.Errorf("Match(%q, %s) = %b, want %b", ev.typ, ev.data, mask, ev.mask)
		}
		r.Apply(&v, mask, []byte(ev.data), func(k string, val any) { set[k] = val })
	}
	want := map[string]any{"total_tokens": 21.0, "output_tokens": 16.0, "finish_reason": "stop", "model": "m1"}
	for k, w := range want {
		if set[k] != w {
			t.Errorf("%s = %v, want %v", k, set[k], w)
		}
	}
	// The bad JSON and the string where a number was wanted.
	if v.Errors != 2 {
		t.Errorf("errors = %d, want 2", v.Errors)
	}
}

// BenchmarkApply is the cost of reading an OpenAI usage chunk (the one
// event of a completion that passes the cheap test), and of the cheap test
// on an ordinary token chunk.
func BenchmarkApply(b *testing.B) {
	r, _ := Compile(&Config{Rules: []Rule{
		{Path: "usage.total_tokens", Key: "total_tokens"},
		{Path: "usage.prompt_tokens", Key: "prompt_tokens"},
		{Path: "usage.completion_tokens", Key: "completion_tokens"},
	}}, nil)
	usage := []byte(`{"id":"chatcmpl-8","object":"chat.completion.chunk","created":1764716000,"model":"dad-joke-1","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":87,"total_tokens":91}}`)
	token := []byte(`{"id":"chatcmpl-8","object":"chat.completion.chunk","created":1764716000,"model":"dad-joke-1","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}`)
	msg := []byte("message")
	b.Run("usage", func(b *testing.B) {
		b.ReportAllocs()
		var v Values
		for b.Loop() {
			r.Apply(&v, r.Match(msg, usage), usage, nil)
		}
	})
	b.Run("token", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r.Match(msg, token) != 0 {
				b.Fatal("a token chunk passed the cheap test")
			}
		}
	})
}
