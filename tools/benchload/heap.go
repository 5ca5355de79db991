package benchload

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// envoyHeap reads the bytes Envoy's allocator has handed out (the admin
// /memory "allocated" figure). Beside the process's resident memory it tells
// Envoy's own heap (headers, filter objects, metadata) from what it does not
// count: a module's Go runtime, allocator caches, touched code pages.
func envoyHeap(ctx context.Context, adminURL string) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, adminURL+"/memory", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("envoy /memory: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("envoy /memory: %s", resp.Status)
	}
	// The admin API writes 64-bit integers as JSON strings.
	var m struct {
		Allocated string `json:"allocated"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return 0, fmt.Errorf("envoy /memory: %w", err)
	}
	n, err := strconv.ParseInt(m.Allocated, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("envoy /memory allocated %q: %w", m.Allocated, err)
	}
	return n, nil
}
