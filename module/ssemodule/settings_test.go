package ssemodule_test

import (
	"slices"
	"testing"

	"example.com/sse-on-envoy/internal/policy"
	"example.com/sse-on-envoy/internal/ssestream"
	"example.com/sse-on-envoy/module/abi"
	"example.com/sse-on-envoy/module/ssemodule"
)

// setStreamSettings hands the module's settings to C, as libsse.so's init
// does.
func setStreamSettings(tb testing.TB) {
	tb.Helper()
	if err := abi.SetStreamSettings(ssemodule.StreamSettings); err != nil {
		tb.Fatal(err)
	}
}

// Go is the one source of what the C body hook and scanner share with the
// other adapters: after the module's init, C holds exactly internal/
// ssestream's line limit and metadata names, and the keys it refreshes
// together with the close-only ones are exactly ssestream.MetadataKeys(),
// so a new key fails here until the module decides who writes it.
func TestCHoldsGoStreamSettings(t *testing.T) {
	setStreamSettings(t)
	got := abi.CStreamSettings()
	want := abi.StreamSettings{
		Namespace:    policy.MetadataNamespace,
		Events:       policy.MetadataEvents,
		Bytes:        policy.MetadataBytes,
		LastEventID:  policy.MetadataLastEventID,
		Interval:     ssemodule.StreamSettings.Interval,
		MaxLineBytes: ssestream.LineLimit,
	}
	if got != want {
		t.Errorf("C holds %+v, want %+v", got, want)
	}
	keys := append([]string{got.Events, got.Bytes, got.LastEventID}, ssemodule.CloseOnlyMetadataKeys...)
	slices.Sort(keys)
	if all := slices.Sorted(slices.Values(ssestream.MetadataKeys())); !slices.Equal(keys, all) {
		t.Errorf("the C hook's keys and the close-only ones are %q, ssestream's %q", keys, all)
	}
	// The limit cannot change under streams whose buffers have its size.
	other := ssemodule.StreamSettings
	other.MaxLineBytes++
	if err := abi.SetStreamSettings(other); err == nil {
		t.Error("C took another line limit once set")
	}
	if got := abi.CStreamSettings().MaxLineBytes; got != ssestream.LineLimit {
		t.Errorf("line limit %d after a refused change, want %d", got, ssestream.LineLimit)
	}
}
