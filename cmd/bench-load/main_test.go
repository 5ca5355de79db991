package main

import (
	"io"
	"testing"
)

// An output folder counts as asked for whether it comes from -out or from
// BENCH_LOAD_OUT (make's OUT=), even empty on the command line (no files).
func TestOutIsSetFromTheFlagOrTheVariable(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		out    string
		outSet bool
	}{
		{"neither", nil, nil, "", false},
		{"flag", []string{"-out", "/tmp/b"}, nil, "/tmp/b", true},
		{"variable", nil, map[string]string{"BENCH_LOAD_OUT": "/tmp/v"}, "/tmp/v", true},
		{"flag over variable", []string{"-out", "/tmp/b"}, map[string]string{"BENCH_LOAD_OUT": "/tmp/v"}, "/tmp/b", true},
		{"empty flag: no files", []string{"-out", ""}, nil, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			getenv := func(k string) string {
				if k == "ENVOY_BIN" {
					return "/bin/true"
				}
				return tc.env[k]
			}
			o, _, err := parse(tc.args, getenv, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if o.out != tc.out || o.outSet != tc.outSet {
				t.Errorf("out %q set %v, want %q %v", o.out, o.outSet, tc.out, tc.outSet)
			}
		})
	}
}
