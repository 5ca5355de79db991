package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// leaf describes one server certificate.
type leaf struct {
	name string // file stem: name.pem, name-key.pem
	dns  []string
	ips  []net.IP
}

var leaves = []leaf{
	{name: "envoy", dns: []string{"localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}},
	// "upstream" is its Compose host name and the SNI Envoy sends.
	{name: "upstream", dns: []string{"upstream", "localhost"}, ips: []net.IP{net.IPv4(127, 0, 0, 1)}},
}

const (
	caValidity   = 5 * 365 * 24 * time.Hour
	leafValidity = 365 * 24 * time.Hour // browsers refuse longer-lived leaves
	renewBefore  = 30 * 24 * time.Hour
)

// Keys are world-readable: Envoy's image runs as user "envoy" and reads them
// through a bind mount that keeps the host's owner. Acceptable for a CA that
// only exists on a developer's machine and signs only loopback names.
const keyMode = 0o644

// ensure writes a CA and the leaves into dir unless valid ones are there.
func ensure(dir string, force bool, now time.Time) (made bool, err error) {
	if !force {
		if err := check(dir, now); err == nil {
			return false, nil
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, fmt.Errorf("creating %s: %w", dir, err)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return false, fmt.Errorf("generating the CA key: %w", err)
	}
	caTemplate := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "sse-on-envoy local CA", Organization: []string{"sse-on-envoy (local development only)"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, caKey.Public(), caKey)
	if err != nil {
		return false, fmt.Errorf("signing the CA: %w", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return false, err
	}
	if err := writePEM(filepath.Join(dir, "ca.pem"), "CERTIFICATE", caDER, 0o644); err != nil {
		return false, err
	}
	if err := writeKey(filepath.Join(dir, "ca-key.pem"), caKey, 0o600); err != nil {
		return false, err
	}
	for _, l := range leaves {
		if err := issue(dir, l, ca, caKey, now); err != nil {
			return false, err
		}
	}
	return true, nil
}

func issue(dir string, l leaf, ca *x509.Certificate, caKey crypto.Signer, now time.Time) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generating the %s key: %w", l.name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: l.dns[0]},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     l.dns,
		IPAddresses:  l.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
	if err != nil {
		return fmt.Errorf("signing the %s certificate: %w", l.name, err)
	}
	if err := writePEM(filepath.Join(dir, l.name+".pem"), "CERTIFICATE", der, 0o644); err != nil {
		return err
	}
	return writeKey(filepath.Join(dir, l.name+"-key.pem"), key, keyMode)
}

// check reports why dir's certificates cannot be kept, or nil.
func check(dir string, now time.Time) error {
	ca, err := readCert(filepath.Join(dir, "ca.pem"))
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil {
		return err
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	for _, l := range leaves {
		cert, err := readCert(filepath.Join(dir, l.name+".pem"))
		if err != nil {
			return err
		}
		if _, err := os.Stat(filepath.Join(dir, l.name+"-key.pem")); err != nil {
			return err
		}
		if cert.NotAfter.Before(now.Add(renewBefore)) {
			return fmt.Errorf("%s expires on %s", l.name, cert.NotAfter.Format(time.DateOnly))
		}
		names := append([]string(nil), l.dns...)
		for _, ip := range l.ips {
			names = append(names, ip.String())
		}
		for _, name := range names {
			if _, err := cert.Verify(x509.VerifyOptions{DNSName: name, Roots: roots, CurrentTime: now}); err != nil {
				return fmt.Errorf("%s for %s: %w", l.name, name, err)
			}
		}
	}
	return nil
}

func readCert(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New(path + ": no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func writeKey(path string, key *ecdsa.PrivateKey, mode os.FileMode) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der, mode)
}

func writePEM(path, blockType string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// WriteFile keeps an existing file's mode; -force must still fix it.
	return os.Chmod(path, mode)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return n
}
