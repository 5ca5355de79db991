package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestEnsureWritesVerifiableCertificates(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	made, err := ensure(dir, false, now)
	if err != nil || !made {
		t.Fatalf("ensure = %v, %v", made, err)
	}
	ca, err := readCert(filepath.Join(dir, "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	tests := []struct {
		leaf string
		name string
	}{
		{"envoy", "localhost"}, {"envoy", "127.0.0.1"}, {"envoy", "::1"},
		{"upstream", "upstream"}, {"upstream", "localhost"}, {"upstream", "127.0.0.1"},
	}
	for _, tc := range tests {
		cert, err := readCert(filepath.Join(dir, tc.leaf+".pem"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{DNSName: tc.name, Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Errorf("%s for %s: %v", tc.leaf, tc.name, err)
		}
		if _, err := tls.LoadX509KeyPair(filepath.Join(dir, tc.leaf+".pem"), filepath.Join(dir, tc.leaf+"-key.pem")); err != nil {
			t.Errorf("%s key pair: %v", tc.leaf, err)
		}
	}
	cert, _ := readCert(filepath.Join(dir, "envoy.pem"))
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "upstream", Roots: roots}); err == nil {
		t.Error("Envoy's certificate is valid for the upstream's name")
	}
	if st, _ := os.Stat(filepath.Join(dir, "ca-key.pem")); st.Mode().Perm() != 0o600 {
		t.Errorf("ca-key.pem mode %v", st.Mode().Perm())
	}
}

func TestEnsureKeepsValidCertificatesAndRenews(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	if _, err := ensure(dir, false, now); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "upstream.pem"))
	if made, err := ensure(dir, false, now); err != nil || made {
		t.Fatalf("rerun: made=%v err=%v, want the files kept", made, err)
	}
	if made, _ := ensure(dir, true, now); !made {
		t.Fatal("-force kept the files")
	}
	forced, _ := os.ReadFile(filepath.Join(dir, "upstream.pem"))
	if bytes.Equal(before, forced) {
		t.Fatal("-force did not replace the certificate")
	}
	// Eleven months later the leaves expire within a month: renew.
	if made, _ := ensure(dir, false, now.Add(340*24*time.Hour)); !made {
		t.Error("certificates about to expire were kept")
	}
	os.Remove(filepath.Join(dir, "envoy-key.pem"))
	if made, _ := ensure(dir, false, now); !made {
		t.Error("a missing key was not regenerated")
	}
}
