// Command mercure-token prints a JWT for the upstream's Mercure hub,
// granting the topic selectors given to -publish and -subscribe, signed
// with the development key (or any HS256 secret or RS256 private key), so
// that `make run-local`, Compose and docs/mercure.md's curl lines have a
// publisher and a subscriber token without a third-party tool:
//
//	mercure-token -key "$UPSTREAM_MERCURE_PUBLISHER_JWT_KEY" -publish '*'
//	mercure-token -key "$UPSTREAM_MERCURE_SUBSCRIBER_JWT_KEY" -subscribe 'https://example.com/books/{id}'
//
// The token goes to stdout, alone on its line.
package main

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"example.com/sse-on-envoy/internal/cli"
	"example.com/sse-on-envoy/upstream/mercure"
)

func main() {
	cli.Main("mercure-token", func(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
		return run(args, getenv, stderr, os.Stdout, time.Now())
	})
}

func run(args []string, getenv func(string) string, stderr, stdout io.Writer, now time.Time) error {
	fs := cli.NewFlagSet("mercure-token", "MERCURE_TOKEN_")
	alg := fs.String("alg", mercure.HS256, "signing algorithm: HS256 or RS256")
	key := fs.String("key", "", "HS256 secret")
	keyFile := fs.String("key-file", "", "file with the HS256 secret, or the RS256 private key (PEM)")
	publish := fs.String("publish", "", "comma-separated topic selectors the token may publish to")
	subscribe := fs.String("subscribe", "", "comma-separated topic selectors whose private updates the token may receive")
	ttl := fs.Duration("ttl", 24*time.Hour, "lifetime of the token (exp); 0s: no expiry")
	if err := fs.Parse(args, getenv, stderr); err != nil {
		return err
	}
	if *publish == "" && *subscribe == "" {
		return cli.Usagef("give %s or %s (or both)", fs.Flag("publish"), fs.Flag("subscribe"))
	}
	if *ttl < 0 {
		return cli.Usagef("%s must not be negative", fs.Flag("ttl"))
	}
	method, signKey, err := signingKey(*alg, *key, *keyFile)
	if err != nil {
		return cli.Usagef("%v (%s, %s, %s)", err, fs.Flag("alg"), fs.Flag("key"), fs.Flag("key-file"))
	}
	grant := map[string][]string{}
	for name, v := range map[string]string{"publish": *publish, "subscribe": *subscribe} {
		if v == "" {
			continue
		}
		sels := splitList(v)
		// A selector the hub would refuse makes a token that verifies
		// nowhere: better said now.
		if _, err := mercure.ParseSelectors(sels, 0); err != nil {
			return cli.Usagef("%s: %v", fs.Flag(name), err)
		}
		grant[name] = sels
	}
	claims := jwt.MapClaims{"mercure": grant, "iat": now.Unix()}
	if *ttl > 0 {
		claims["exp"] = now.Add(*ttl).Unix()
	}
	tok, err := jwt.NewWithClaims(method, claims).SignedString(signKey)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}

func signingKey(alg, key, file string) (jwt.SigningMethod, any, error) {
	if (key == "") == (file == "") {
		return nil, nil, errors.New("give the key as a value or a file, one of them")
	}
	raw := []byte(key)
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, nil, fmt.Errorf("read key: %w", err)
		}
		raw = b
	}
	switch strings.ToUpper(alg) {
	case mercure.HS256:
		if file != "" {
			raw = []byte(strings.TrimRight(string(raw), "\r\n"))
		}
		// The hub's own rule, so that a token made here verifies there.
		if _, err := mercure.NewHMACKey(raw); err != nil {
			return nil, nil, err
		}
		return jwt.SigningMethodHS256, raw, nil
	case mercure.RS256:
		if file == "" {
			return nil, nil, errors.New("RS256 needs -key-file with a PEM private key")
		}
		priv, err := parseRSAPrivateKey(raw)
		if err != nil {
			return nil, nil, err
		}
		return jwt.SigningMethodRS256, priv, nil
	}
	return nil, nil, fmt.Errorf("unsupported algorithm %q (HS256 or RS256)", alg)
}

func parseRSAPrivateKey(b []byte) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("RS256 key: no PEM block")
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("RS256 key: %w", err)
	}
	priv, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("RS256 key: %T is not an RSA private key", k)
	}
	return priv, nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
