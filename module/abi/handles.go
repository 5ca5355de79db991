package abi

import "sync"

// table keeps the objects whose handles Envoy holds reachable from Go until
// their destroy hook. Envoy sees only a number, never a Go pointer, so the
// garbage collector and cgo's pointer rules have nothing to say about what
// Envoy keeps. Handles start at 1: Envoy reads 0 (NULL) as a failure.
type table[T any] struct {
	mu   sync.RWMutex
	m    map[uintptr]T
	next uintptr
}

func (t *table[T]) add(v T) uintptr {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = make(map[uintptr]T)
	}
	t.next++
	t.m[t.next] = v
	return t.next
}

func (t *table[T]) set(h uintptr, v T) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.m[h] = v
}

func (t *table[T]) get(h uintptr) (T, bool) {
	t.mu.RLock()
	v, ok := t.m[h]
	t.mu.RUnlock()
	return v, ok
}

func (t *table[T]) remove(h uintptr) (T, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	v, ok := t.m[h]
	delete(t.m, h)
	return v, ok
}

func (t *table[T]) len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.m)
}

var (
	filterConfigs table[FilterConfig]
	routeConfigs  table[any]
	filters       table[HTTPFilter]
)
