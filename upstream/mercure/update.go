package mercure

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"example.com/sse-on-envoy/internal/sse"
	"example.com/sse-on-envoy/upstream/replay"
)

// Update is one published update.
type Update struct {
	// ID is the SSE id: the publisher's own, or one the hub assigned.
	ID string `json:"id"`
	// Topics: the first is the canonical one, the others alternates.
	Topics  []string      `json:"topics"`
	Data    string        `json:"data,omitempty"`
	Type    string        `json:"type,omitempty"`
	Retry   time.Duration `json:"retry,omitempty"`
	Private bool          `json:"private,omitempty"`
}

// Event is the update as an SSE event.
func (u *Update) Event() sse.Event {
	return sse.Event{ID: u.ID, Type: u.Type, Data: u.Data, Retry: u.Retry}
}

// Marshal encodes u for the event log. Topics and ids are arbitrary
// strings, so they travel in the payload, never in a NATS subject.
func (u *Update) Marshal() ([]byte, error) {
	// No HTML escaping: HTML and Turbo Stream payloads would grow up to 6x
	// (each < > & as \u003c) towards NATS's payload limit.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(u); err != nil {
		return nil, fmt.Errorf("mercure: encode update %s: %w", u.ID, err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// UnmarshalUpdate decodes what Marshal encoded.
func UnmarshalUpdate(b []byte) (*Update, error) {
	var u Update
	if err := json.Unmarshal(b, &u); err != nil {
		return nil, fmt.Errorf("mercure: decode update: %w", err)
	}
	if u.ID == "" || len(u.Topics) == 0 {
		return nil, errors.New("mercure: decode update: no id or no topic")
	}
	return &u, nil
}

// Limits bound what one publish may carry and what one subscription may
// ask for. Zero fields take the defaults.
type Limits struct {
	// MaxTopics bounds the topics of an update and the selectors of a
	// subscription.
	MaxTopics int
	// MaxData bounds the data field, in bytes.
	MaxData int
	// MaxSubscriptionBytes bounds a subscription's selectors, all
	// together; MaxTemplateBytes and MaxTemplateExpressions its templates
	// (see Budget).
	MaxSubscriptionBytes, MaxTemplateBytes, MaxTemplateExpressions int
}

// Costliest is the costliest subscription l's budget allows, as far as we
// know, for benchmarks and load tests: one-expression templates sharing the
// template bytes, then exact topics filling the selector bytes, none of them
// matching https://example.com/... topics. salt makes each call's selectors
// differ from every other's, so no compiled template is shared.
func (l Limits) Costliest(salt int) []string {
	b := l.Budget()
	var raw []string
	total := 0
	if b.Expressions > 0 {
		each := b.TemplateBytes / b.Expressions
		for i := range b.Expressions {
			t := fmt.Sprintf("https://x.example/%d/%d/", salt%1000000, i)
			t += strings.Repeat("p", max(0, each-len(t)-len("{v}"))) + "{v}"
			raw = append(raw, t)
			total += len(t)
		}
	}
	for len(raw) < b.Selectors && total < b.Bytes {
		t := fmt.Sprintf("https://x.example/%d/%d/", salt, len(raw))
		t += strings.Repeat("t", max(0, min(200, b.Bytes-total)-len(t)))
		if total+len(t) > b.Bytes {
			break
		}
		raw = append(raw, t)
		total += len(t)
	}
	return raw
}

// Budget is what one subscription may ask for under l.
func (l Limits) Budget() Budget {
	l = l.WithDefaults()
	return Budget{Selectors: l.MaxTopics, Bytes: l.MaxSubscriptionBytes, TemplateBytes: l.MaxTemplateBytes, Expressions: l.MaxTemplateExpressions}
}

// Default limits.
const (
	DefaultMaxTopics = 64
	DefaultMaxData   = 256 << 10
	// The subscription budget's defaults. A compiled template costs about
	// 1.3 KiB, plus 50 bytes per byte of it and 1 KiB per expression, and
	// the request's URL stays in memory for the stream's life: these keep
	// the worst subscription allowed under 100 KiB and 1 ms on the replica
	// (BenchmarkMercureSubscriptionOpen), and still let a page follow 8
	// templates such as https://example.com/books/{id} beside 64 topics.
	DefaultMaxSubscriptionBytes   = 4 << 10
	DefaultMaxTemplateBytes       = 256
	DefaultMaxTemplateExpressions = 8
	// MaxIDLen bounds a publisher's id.
	MaxIDLen = 256
	// maxTypeLen bounds the type field.
	maxTypeLen = 256
	// formOverhead is what the other fields may add to a publish body
	// beyond the data: topics at their bound would not fit, but a body
	// needing more is not a publish anyone means.
	formOverhead = 64 << 10
)

// WithDefaults fills zero fields.
func (l Limits) WithDefaults() Limits {
	if l.MaxTopics <= 0 {
		l.MaxTopics = DefaultMaxTopics
	}
	if l.MaxData <= 0 {
		l.MaxData = DefaultMaxData
	}
	if l.MaxSubscriptionBytes <= 0 {
		l.MaxSubscriptionBytes = DefaultMaxSubscriptionBytes
	}
	if l.MaxTemplateBytes <= 0 {
		l.MaxTemplateBytes = DefaultMaxTemplateBytes
	}
	if l.MaxTemplateExpressions <= 0 {
		l.MaxTemplateExpressions = DefaultMaxTemplateExpressions
	}
	return l
}

// MaxBody bounds a whole publish request body: the data plus the rest of
// the form, percent-encoded (up to three bytes per data byte).
func (l Limits) MaxBody() int64 {
	l = l.WithDefaults()
	return int64(3*l.MaxData + formOverhead)
}

// RequestError is a publish or subscribe the client got wrong: Status
// (400, 401, 403, 413, 415) and a message safe to send back.
type RequestError struct {
	Status int
	Msg    string
}

func (e *RequestError) Error() string { return e.Msg }

func badRequest(format string, args ...any) *RequestError {
	return &RequestError{Status: http.StatusBadRequest, Msg: fmt.Sprintf(format, args...)}
}

// ParsePublish reads and validates a publish request's form. It reads at
// most l.MaxBody() bytes of body. The returned update has its ID empty
// when the publisher gave none.
func ParsePublish(r *http.Request, l Limits) (*Update, error) {
	l = l.WithDefaults()
	ct := r.Header.Get("Content-Type")
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, &RequestError{Status: http.StatusUnsupportedMediaType, Msg: "publish needs Content-Type application/x-www-form-urlencoded"}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, l.MaxBody()+1))
	if err != nil {
		return nil, badRequest("reading the form: %v", err)
	}
	if int64(len(body)) > l.MaxBody() {
		return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("publish body larger than %d bytes", l.MaxBody())}
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("malformed form: %v", err)
	}
	return parseForm(form, l)
}

func parseForm(form url.Values, l Limits) (*Update, error) {
	for name, vs := range form {
		if name != "topic" && len(vs) > 1 {
			return nil, badRequest("field %.32q given %d times; only topic may repeat", name, len(vs))
		}
		// An SSE stream is UTF-8: anything else would reach subscribers
		// altered, so it is refused rather than silently replaced.
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return nil, badRequest("field %.32q is not valid UTF-8", name)
			}
		}
	}
	topics := form["topic"]
	switch {
	case len(topics) == 0:
		return nil, badRequest("missing topic")
	case len(topics) > l.MaxTopics:
		return nil, badRequest("%d topics, at most %d", len(topics), l.MaxTopics)
	}
	for _, t := range topics {
		if err := checkTopic(t); err != nil {
			return nil, badRequest("invalid topic %.64q: %v", t, err)
		}
	}
	u := &Update{Topics: topics, Data: form.Get("data"), Type: form.Get("type")}
	if len(u.Data) > l.MaxData {
		return nil, &RequestError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("data is %d bytes, at most %d", len(u.Data), l.MaxData)}
	}
	if len(u.Type) > maxTypeLen || strings.ContainsAny(u.Type, "\r\n\x00") {
		return nil, badRequest("invalid type: at most %d bytes, no CR, LF or NUL", maxTypeLen)
	}
	if vs, ok := form["id"]; ok {
		if err := CheckID(vs[0]); err != nil {
			return nil, badRequest("invalid id: %v", err)
		}
		u.ID = vs[0]
	}
	if vs, ok := form["retry"]; ok {
		ms, err := strconv.ParseUint(vs[0], 10, 31)
		if err != nil || vs[0] == "" || strings.ContainsAny(vs[0], "+-") {
			return nil, badRequest("invalid retry %.32q: milliseconds as digits", vs[0])
		}
		u.Retry = time.Duration(ms) * time.Millisecond
	}
	// The spec makes any value mean private, even empty: presence counts.
	_, u.Private = form["private"]
	return u, nil
}

// Earliest is the Last-Event-ID that asks for the whole history; no
// update may carry it as its id.
const Earliest = replay.EarliestKeyword

// LastEventID is how subscribers name their last event: the header, else
// the lastEventID query parameter, and "earliest" for everything held.
var LastEventID = replay.Syntax{Query: "lastEventID", Earliest: true}

// CheckID reports whether a publisher's id is acceptable: non-empty,
// bounded, not "earliest", not starting with "#" (the spec keeps those for
// the hub), and without the characters an SSE id line cannot carry.
func CheckID(id string) error {
	switch {
	case id == "":
		return errors.New("empty")
	case len(id) > MaxIDLen:
		return fmt.Errorf("%d bytes, at most %d", len(id), MaxIDLen)
	case id == Earliest:
		return errors.New(`"earliest" is reserved`)
	case strings.HasPrefix(id, "#"):
		return errors.New(`must not start with "#"`)
	case strings.ContainsAny(id, "\r\n\x00"):
		return errors.New("contains CR, LF or NUL")
	}
	return nil
}

// NewID returns a random urn:uuid (version 4): unique across replicas
// without any coordination between them.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// LogKey is the event log's key for an update id: a hash, since ids are
// arbitrary text and a NATS subject token is not (no dots, spaces or
// wildcards). 52 base32 characters of SHA-256: collisions are not a
// practical concern, and the hub still checks the id it reads back.
func LogKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(sum[:]))
}
