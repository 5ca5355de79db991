package processor

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// headerEdits is a response header map that remembers what the policy did to
// it, so the edits can go back to Envoy as a HeaderMutation.
type headerEdits struct {
	current map[string]string
	setKeys []string
	set     map[string]string
	removed map[string]bool
}

func newHeaderEdits(hm *corev3.HeaderMap) *headerEdits {
	e := &headerEdits{current: map[string]string{}, set: map[string]string{}, removed: map[string]bool{}}
	for _, h := range hm.GetHeaders() {
		key := strings.ToLower(h.GetKey())
		if _, dup := e.current[key]; dup {
			continue // the policy reads the first value, as Envoy's Get does
		}
		e.current[key] = headerValue(h)
	}
	return e
}

// headerValue reads a header whichever field Envoy filled: recent versions
// send raw_value.
func headerValue(h *corev3.HeaderValue) string {
	if raw := h.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return h.GetValue()
}

func (e *headerEdits) Get(key string) (string, bool) {
	v, ok := e.current[key]
	return v, ok
}

func (e *headerEdits) Set(key, value string) {
	e.current[key] = value
	if _, ok := e.set[key]; !ok {
		e.setKeys = append(e.setKeys, key)
	}
	e.set[key] = value
	delete(e.removed, key)
}

func (e *headerEdits) Del(key string) {
	if _, ok := e.current[key]; !ok {
		return
	}
	delete(e.current, key)
	delete(e.set, key)
	e.removed[key] = true
}

func (e *headerEdits) mutation() *extprocv3.HeaderMutation {
	m := &extprocv3.HeaderMutation{}
	for _, key := range e.setKeys {
		value, ok := e.set[key]
		if !ok {
			continue
		}
		m.SetHeaders = append(m.SetHeaders, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: key, RawValue: []byte(value)},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for key := range e.removed {
		m.RemoveHeaders = append(m.RemoveHeaders, key)
	}
	return m
}
