package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPolicyNamesTheBadField(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, content, want string
	}{
		{"unknown field", "allowed_origin: [https://a.example]\n", `unknown field "allowed_origin"`},
		{"bad origin", "allowed_origins: ['https://a.example/path']\n", "allowed_origins[0]"},
		{"credentials with star", "allowed_origins: ['*']\n", "allowed_origins[0]"},
		{"not yaml", "allowed_origins: [\n", "invalid sse config"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := loadPolicy(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("loadPolicy = %v, want an error naming %q and the file", err, tc.want)
			}
		})
	}
	if _, err := loadPolicy(filepath.Join(dir, "missing.yaml")); err == nil {
		t.Error("a missing file was accepted")
	}
	if _, err := loadPolicy(""); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

func TestFlagsFollowTheConvention(t *testing.T) {
	env := map[string]string{"EXTPROC_ADDR": "127.0.0.1:1", "EXTPROC_CONFIG": "p.yaml"}
	o, _, err := parseFlags([]string{"-admin", ""}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || o.grpcAddr != "127.0.0.1:1" || o.config != "p.yaml" || o.adminAddr != "" {
		t.Errorf("parseFlags = %+v, %v", o, err)
	}
	if _, _, err := parseFlags([]string{"-log-format", "xml"}, func(string) string { return "" }, io.Discard); err == nil || !strings.Contains(err.Error(), "-log-format") {
		t.Errorf("parseFlags accepted -log-format xml: %v", err)
	}
}
