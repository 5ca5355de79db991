package mercure

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func publishRequest(body, contentType string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/.well-known/mercure", strings.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	return r
}

const formType = "application/x-www-form-urlencoded"

func TestParsePublish(t *testing.T) {
	form := url.Values{
		"topic":   {"https://example.com/books/1", "urn:alt"},
		"data":    {"line 1\nline 2"},
		"id":      {"urn:uuid:mine"},
		"type":    {"book"},
		"retry":   {"2500"},
		"private": {""},
	}
	u, err := ParsePublish(publishRequest(form.Encode(), formType+"; charset=utf-8"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := &Update{ID: "urn:uuid:mine", Topics: form["topic"], Data: "line 1\nline 2", Type: "book", Retry: 2500 * time.Millisecond, Private: true}
	if !reflect.DeepEqual(u, want) {
		t.Fatalf("got %+v, want %+v", u, want)
	}
	b, err := u.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := UnmarshalUpdate(b)
	if err != nil || !reflect.DeepEqual(back, want) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
}

func TestParsePublishRejects(t *testing.T) {
	lim := Limits{MaxTopics: 3, MaxData: 100}
	tests := []struct {
		name, body, contentType string
		status                  int
	}{
		{"not a form", `{"topic":"a"}`, "application/json", 415},
		{"no content type", "topic=a", "", 415},
		{"malformed form", "topic=%zz&data=x", formType, 400},
		{"missing topic", "data=x", formType, 400},
		{"empty topic", "topic=&data=x", formType, 400},
		{"too many topics", "topic=a&topic=b&topic=c&topic=d", formType, 400},
		{"topic with newline", "topic=a%0Ab", formType, 400},
		{"oversized data", "topic=a&data=" + strings.Repeat("x", 101), formType, 413},
		{"oversized body", "topic=a&data=" + strings.Repeat("x", int(lim.MaxBody())), formType, 413},
		{"empty id", "topic=a&id=", formType, 400},
		{"id earliest", "topic=a&id=earliest", formType, 400},
		{"id with hash", "topic=a&id=%23x", formType, 400},
		{"id with newline", "topic=a&id=a%0Ab", formType, 400},
		{"id too long", "topic=a&id=" + strings.Repeat("i", MaxIDLen+1), formType, 400},
		{"two ids", "topic=a&id=x&id=y", formType, 400},
		{"type with newline", "topic=a&type=a%0Ab", formType, 400},
		{"retry not digits", "topic=a&retry=soon", formType, 400},
		{"retry negative", "topic=a&retry=-5", formType, 400},
		{"retry empty", "topic=a&retry=", formType, 400},
		{"data not UTF-8", "topic=a&data=%FF%FE", formType, 400},
		{"topic not UTF-8", "topic=%C3%28", formType, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePublish(publishRequest(tt.body, tt.contentType), lim)
			var re *RequestError
			if !errors.As(err, &re) || re.Status != tt.status {
				t.Fatalf("got %v, want a RequestError with status %d", err, tt.status)
			}
		})
	}
}

func TestNewID(t *testing.T) {
	re := regexp.MustCompile(`^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 1000 {
		id := NewID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("id %q malformed or repeated", id)
		}
		if err := CheckID(id); err != nil {
			t.Fatalf("a hub id fails CheckID: %v", err)
		}
		seen[id] = true
	}
}

// HTML payloads (Turbo Streams, the usual Mercure data) are stored as sent,
// not grown sixfold by JSON's HTML escaping toward NATS's payload limit.
func TestMarshalKeepsHTML(t *testing.T) {
	u := &Update{ID: "urn:x", Topics: []string{"urn:t"}, Data: `<turbo-stream action="append">&amp;</turbo-stream>`}
	b, err := u.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), u.Data[:20]) || strings.Contains(string(b), `\u003c`) {
		t.Errorf("encoded %s, want the data unescaped", b)
	}
	back, err := UnmarshalUpdate(b)
	if err != nil || back.Data != u.Data {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}
