package eventlog

import (
	"testing"
	"time"
)

// A keyed sibling shares the connection, de-duplicates by key, finds the
// newest message of a key and follows like any log; closing it leaves the
// main log working.
func TestKeyedSibling(t *testing.T) {
	main := openEmbedded(t, t.TempDir(), 100)
	k := main.Sibling(Config{Stream: "KEYED", History: 100, Keyed: true})
	ctx := t.Context()
	tests := []struct {
		key, data string
		seq       uint64
		dup       bool
	}{
		{"a", "first", 1, false},
		{"b", "second", 2, false},
		{"a", "retried", 1, true},
	}
	for _, tt := range tests {
		res, err := k.PublishKeyed(ctx, tt.key, []byte(tt.data))
		if err != nil {
			t.Fatal(err)
		}
		if res.Seq != tt.seq || res.Duplicate != tt.dup {
			t.Fatalf("publish %s: %+v, want seq %d duplicate %v", tt.key, res, tt.seq, tt.dup)
		}
	}
	lookups := []struct {
		key   string
		seq   uint64
		data  string
		found bool
	}{
		{"a", 1, "first", true},
		{"b", 2, "second", true},
		{"c", 0, "", false},
	}
	for _, tt := range lookups {
		r, found, err := k.LastByKey(ctx, tt.key)
		if err != nil || found != tt.found || r.Seq != tt.seq || r.Data != tt.data {
			t.Fatalf("LastByKey(%s) = %+v, %v, %v", tt.key, r, found, err)
		}
	}
	if r, found, err := k.Get(ctx, 2); err != nil || !found || r.Data != "second" {
		t.Fatalf("Get(2) = %+v, %v, %v", r, found, err)
	}
	if _, found, err := k.Get(ctx, 9); err != nil || found {
		t.Fatalf("Get(9) = %v, %v; want not found", found, err)
	}
	if _, err := main.PublishKeyed(ctx, "a", nil); err == nil {
		t.Fatal("PublishKeyed on a stream without keys succeeded")
	}
	k.Close()
	if _, err := main.Publish(ctx, "x", "T", "still connected", time.Time{}); err != nil {
		t.Fatalf("the main log after closing its sibling: %v", err)
	}
	recs := follow(t, k.Sibling(Config{Stream: "KEYED", History: 100, Keyed: true}))
	if r := next(t, recs); r.Seq != 1 || r.Data != "first" {
		t.Fatalf("followed %+v", r)
	}
}
