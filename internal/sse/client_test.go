package sse

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"
)

// The client reconnects after a stream ends, with the server's retry delay
// and the last id, and stops for good on a non-200, like EventSource.
func TestClientReconnectsWithLastEventID(t *testing.T) {
	var mu sync.Mutex
	var gotLastIDs []string
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls++
		n := calls
		gotLastIDs = append(gotLastIDs, r.Header.Get("Last-Event-ID"))
		mu.Unlock()
		switch n {
		case 1:
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "retry: 10\nid: 1\ndata: a\n\n")
		case 2:
			// No event: the id must survive this connection.
			w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
			fmt.Fprint(w, ": nothing new\n\n")
		case 3:
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "id: 2\ndata: b\n\n")
		default:
			http.Error(w, "gone", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var ids []string
	var statuses []int
	c := &Client{URL: srv.URL, Retry: time.Minute, OnConnect: func(r *http.Response) { statuses = append(statuses, r.StatusCode) }}
	start := time.Now()
	err := c.Run(ctx, func(e Event) { ids = append(ids, e.ID) })
	if !errors.Is(err, ErrFatalResponse) {
		t.Fatalf("Run: %v, want ErrFatalResponse", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("took %v: the server's retry: 10 was not applied", time.Since(start))
	}
	if !slices.Equal(ids, []string{"1", "2"}) {
		t.Errorf("ids %q", ids)
	}
	if !slices.Equal(gotLastIDs, []string{"", "1", "1", "2"}) {
		t.Errorf("Last-Event-IDs sent %q", gotLastIDs)
	}
	if !slices.Equal(statuses, []int{200, 200, 200, 503}) {
		t.Errorf("statuses %v", statuses)
	}
}

// A refused connection is retried, as EventSource retries it.
func TestClientRetriesNetworkErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	url := srv.URL
	srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c := &Client{URL: url, Retry: 20 * time.Millisecond}
	if err := c.Run(ctx, func(Event) {}); err != nil {
		t.Errorf("Run: %v, want nil once ctx ends", err)
	}
}
