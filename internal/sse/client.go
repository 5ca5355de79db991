package sse

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"time"
)

// ErrFatalResponse is what Client.Run returns when a response would make a
// browser's EventSource give up for good: a status other than 200, or a
// content type other than text/event-stream.
var ErrFatalResponse = errors.New("sse: response ends the EventSource")

// Client reads a stream the way a browser's EventSource does: when the
// stream ends or the connection fails it waits the reconnection delay (the
// server's last retry field, else Retry) and reconnects with the
// Last-Event-ID of the last event that carried an id. A non-200 answer or a
// wrong content type ends it for good, as it ends EventSource.
type Client struct {
	HTTP *http.Client
	URL  string
	// Header is sent with every request (an Origin, say).
	Header http.Header
	// Retry is the reconnection delay until the server sends one; default 3 s.
	Retry time.Duration
	// OnConnect, when set, sees every response before its body is read: the
	// status, and headers EventSource hides, such as x-sse-replay.
	OnConnect func(*http.Response)
}

// Run reads events into onEvent until ctx ends (it then returns nil) or a
// response is fatal.
func (c *Client) Run(ctx context.Context, onEvent func(Event)) error {
	retry := c.Retry
	if retry <= 0 {
		retry = 3 * time.Second
	}
	var lastID string
	for {
		r, err := c.connect(ctx, lastID, onEvent)
		if r != nil {
			lastID = r.LastEventID()
			if d := r.Retry(); d > 0 {
				retry = d
			}
		}
		if errors.Is(err, ErrFatalResponse) {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(retry):
		}
	}
}

// connect makes one request and reads it to its end. The returned Reader
// (nil if no body was read) carries the last event id and retry seen.
func (c *Client) connect(ctx context.Context, lastID string, onEvent func(Event)) (*Reader, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFatalResponse, err)
	}
	for k, vs := range c.Header {
		req.Header[k] = append([]string(nil), vs...)
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err // a network error: EventSource reconnects
	}
	defer resp.Body.Close()
	if c.OnConnect != nil {
		c.OnConnect(resp)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s", ErrFatalResponse, resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
		return nil, fmt.Errorf("%w: content type %q", ErrFatalResponse, resp.Header.Get("Content-Type"))
	}
	r := NewReader(resp.Body)
	// The id survives reconnection even if no event arrives on this one.
	r.scan.idBuf = append(r.scan.idBuf, lastID...)
	r.scan.lastID = append(r.scan.lastID, lastID...)
	for {
		e, err := r.Next()
		if err != nil {
			return r, err
		}
		onEvent(e)
	}
}
