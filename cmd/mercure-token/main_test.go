package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"example.com/sse-on-envoy/internal/cli"
	"example.com/sse-on-envoy/upstream/mercure"
)

const secret = "dev-secret-0123456789abcdef012345"

func noEnv(string) string { return "" }

// Tokens made here verify with the hub's own key and grant what was asked.
func TestTokensVerifyAtTheHub(t *testing.T) {
	now := time.Now()
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	privFile := filepath.Join(t.TempDir(), "priv.pem")
	if err := os.WriteFile(privFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(priv)}), 0o600); err != nil {
		t.Fatal(err)
	}
	hs, _ := mercure.NewHMACKey([]byte(secret))
	rs, _ := mercure.NewRSAKey(&priv.PublicKey)
	tests := []struct {
		name           string
		args           []string
		key            mercure.Key
		publish, subTo string // a topic each grant must match ("" none)
	}{
		{"publisher", []string{"-key", secret, "-publish", "*"}, hs, "urn:any", ""},
		{"subscriber", []string{"-key", secret, "-subscribe", "https://example.com/books/{id}"}, hs, "", "https://example.com/books/1"},
		{"RS256", []string{"-alg", "RS256", "-key-file", privFile, "-publish", "urn:a, urn:b"}, rs, "urn:b", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := run(tt.args, noEnv, &bytes.Buffer{}, &out, now); err != nil {
				t.Fatal(err)
			}
			c, err := tt.key.Verify(strings.TrimSpace(out.String()), now.Add(time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if tt.publish != "" && !c.Publish.Match(tt.publish) || tt.subTo != "" && !c.Subscribe.Match(tt.subTo) {
				t.Errorf("grants publish %q, subscribe %q", c.Publish.Strings(), c.Subscribe.Strings())
			}
			if _, err := tt.key.Verify(strings.TrimSpace(out.String()), now.Add(25*time.Hour)); err == nil {
				t.Error("the token does not expire after -ttl")
			}
		})
	}
}

func TestBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
	}{
		{"no grant", []string{"-key", secret}},
		{"no key", []string{"-publish", "*"}},
		{"short secret", []string{"-key", "short", "-publish", "*"}},
		{"invalid selector", []string{"-key", secret, "-publish", "https://example.com/{id"}},
		{"unknown alg", []string{"-alg", "none", "-key", secret, "-publish", "*"}},
		{"RS256 without a file", []string{"-alg", "RS256", "-key", secret, "-publish", "*"}},
		{"negative ttl", []string{"-key", secret, "-publish", "*", "-ttl", "-1h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args, noEnv, &bytes.Buffer{}, &bytes.Buffer{}, time.Now())
			var usage cli.UsageError
			if !errors.As(err, &usage) {
				t.Fatalf("got %v, want a usage error", err)
			}
		})
	}
}
