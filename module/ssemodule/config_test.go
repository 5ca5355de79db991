package ssemodule

import "testing"

// The module keeps Go's heap floor at 400 KB inside Envoy, unless the
// operator set GOGC in Envoy's environment.
func TestGCPercent(t *testing.T) {
	for _, tc := range []struct {
		gogc    string
		want    int
		wantSet bool
	}{
		{"", 10, true},
		{"200", 0, false},
		{"off", 0, false},
	} {
		got, set := GCPercent(func(k string) string {
			if k == "GOGC" {
				return tc.gogc
			}
			return ""
		})
		if got != tc.want || set != tc.wantSet {
			t.Errorf("GOGC=%q: %d, %v; want %d, %v", tc.gogc, got, set, tc.want, tc.wantSet)
		}
	}
}
