package mercure

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// unsigned builds a token with alg "none" by hand, as an attacker would.
func unsigned(claims jwt.MapClaims) string {
	enc := func(v any) string {
		b, _ := json.Marshal(v)
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + "."
}

func grant(publish, subscribe any) jwt.MapClaims {
	return jwt.MapClaims{"mercure": map[string]any{"publish": publish, "subscribe": subscribe}}
}

func TestVerify(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	hs, err := NewHMACKey(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := NewRSAKey(&priv.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	otherPriv, _ := rsa.GenerateKey(rand.Reader, 2048)
	pubDER, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	ok := grant([]string{"https://example.com/{id}"}, []string{"urn:private:1"})
	with := func(extra jwt.MapClaims) jwt.MapClaims {
		c := grant([]string{"*"}, []string{"*"})
		for k, v := range extra {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name  string
		key   Key
		token string
		valid bool
	}{
		{"HS256", hs, sign(t, jwt.SigningMethodHS256, testSecret, ok), true},
		{"RS256", rs, sign(t, jwt.SigningMethodRS256, priv, ok), true},
		{"no mercure claim", hs, sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "x"}), true},
		{"exp in the future", hs, sign(t, jwt.SigningMethodHS256, testSecret, with(jwt.MapClaims{"exp": now.Add(time.Minute).Unix()})), true},
		{"alg none", hs, unsigned(ok), false},
		{"alg none against RSA", rs, unsigned(ok), false},
		{"wrong secret", hs, sign(t, jwt.SigningMethodHS256, []byte("another secret, long enough......"), ok), false},
		{"wrong RSA key", rs, sign(t, jwt.SigningMethodRS256, otherPriv, ok), false},
		{"HS256 signed with the RSA public key", rs, sign(t, jwt.SigningMethodHS256, pubPEM, ok), false},
		{"RS256 against an HMAC key", hs, sign(t, jwt.SigningMethodRS256, priv, ok), false},
		{"HS512 not allowed", hs, sign(t, jwt.SigningMethodHS512, testSecret, ok), false},
		{"expired", hs, sign(t, jwt.SigningMethodHS256, testSecret, with(jwt.MapClaims{"exp": now.Add(-time.Second).Unix()})), false},
		{"not yet valid", hs, sign(t, jwt.SigningMethodHS256, testSecret, with(jwt.MapClaims{"nbf": now.Add(time.Minute).Unix()})), false},
		{"exp as a string", hs, sign(t, jwt.SigningMethodHS256, testSecret, with(jwt.MapClaims{"exp": "tomorrow"})), false},
		{"publish as a string", hs, sign(t, jwt.SigningMethodHS256, testSecret, grant("*", nil)), false},
		{"subscribe with a number", hs, sign(t, jwt.SigningMethodHS256, testSecret, grant(nil, []any{"a", 7})), false},
		{"mercure as a string", hs, sign(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"mercure": "all"}), false},
		{"invalid selector in a claim", hs, sign(t, jwt.SigningMethodHS256, testSecret, grant([]string{"https://example.com/{id"}, nil)), false},
		{"garbage", hs, "not.a.token", false},
		{"empty", hs, "", false},
		{"no key configured", Key{}, sign(t, jwt.SigningMethodHS256, testSecret, ok), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.key.Verify(tt.token, now)
			if !tt.valid {
				if !errors.Is(err, ErrUnauthorized) || c != nil {
					t.Fatalf("Verify = %v, %v; want ErrUnauthorized", c, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}

	c, err := hs.Verify(sign(t, jwt.SigningMethodHS256, testSecret, ok), now)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Publish.Match("https://example.com/7") || c.Publish.Match("https://example.com/7/x") || !c.Subscribe.Match("urn:private:1") || c.Subscribe.Match("urn:private:2") {
		t.Errorf("claims grant the wrong selectors: publish %q, subscribe %q", c.Publish.Strings(), c.Subscribe.Strings())
	}
}

func TestLoadKey(t *testing.T) {
	dir := t.TempDir()
	priv, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&priv.PublicKey)
	pemFile := filepath.Join(dir, "pub.pem")
	must(t, os.WriteFile(pemFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600))
	pkcs1 := filepath.Join(dir, "pkcs1.pem")
	must(t, os.WriteFile(pkcs1, pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&priv.PublicKey)}), 0o600))
	secretFile := filepath.Join(dir, "secret")
	must(t, os.WriteFile(secretFile, append(testSecret, '\n'), 0o600))
	garbage := filepath.Join(dir, "garbage")
	must(t, os.WriteFile(garbage, []byte("nope"), 0o600))

	tests := []struct {
		name, alg, value, file string
		wantAlg                string
		fails                  bool
	}{
		{"none", "HS256", "", "", "", false},
		{"HS256 value", "HS256", string(testSecret), "", HS256, false},
		{"HS256 file", "hs256", "", secretFile, HS256, false},
		{"HS256 short", "HS256", "short", "", "", true},
		{"RS256 PKIX", "RS256", "", pemFile, RS256, false},
		{"RS256 PKCS1", "RS256", "", pkcs1, RS256, false},
		{"RS256 garbage", "RS256", "", garbage, "", true},
		{"RS256 missing file", "RS256", "", filepath.Join(dir, "missing"), "", true},
		{"both", "HS256", string(testSecret), secretFile, "", true},
		{"unknown alg", "ES256", string(testSecret), "", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := LoadKey(tt.alg, tt.value, tt.file)
			if (err != nil) != tt.fails || k.Alg() != tt.wantAlg {
				t.Fatalf("LoadKey = %q, %v; want alg %q, fails %v", k.Alg(), err, tt.wantAlg, tt.fails)
			}
		})
	}
	k, err := LoadKey("HS256", "", secretFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Verify(sign(t, jwt.SigningMethodHS256, testSecret, grant(nil, nil)), time.Now()); err != nil {
		t.Errorf("the file's trailing newline is part of the secret: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestTokenFrom(t *testing.T) {
	tests := []struct {
		name, header, cookie, query string
		want, from                  string
		fails                       bool
	}{
		{"none", "", "", "", "", FromNone, false},
		{"header", "Bearer h", "", "", "h", FromHeader, false},
		{"header, lowercase scheme", "bearer h", "", "", "h", FromHeader, false},
		{"cookie", "", "c", "", "c", FromCookie, false},
		{"query", "", "", "q", "q", FromQuery, false},
		{"header beats cookie and query", "Bearer h", "c", "q", "h", FromHeader, false},
		{"cookie beats query", "", "c", "q", "c", FromCookie, false},
		{"basic auth", "Basic dXNlcjpwdw==", "", "", "", FromHeader, true},
		{"bearer without token", "Bearer ", "", "", "", FromHeader, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/.well-known/mercure?topic=a&authorization="+tt.query, nil)
			if tt.header != "" {
				r.Header.Set("Authorization", tt.header)
			}
			if tt.cookie != "" {
				r.AddCookie(&http.Cookie{Name: CookieName, Value: tt.cookie})
			}
			tok, from, err := TokenFrom(r)
			if tok != tt.want || from != tt.from || (err != nil) != tt.fails {
				t.Fatalf("TokenFrom = %q, %q, %v; want %q, %q, fails %v", tok, from, err, tt.want, tt.from, tt.fails)
			}
			if err != nil && !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("error %v does not wrap ErrUnauthorized", err)
			}
		})
	}
}

func jwk(kid string, pub *rsa.PublicKey) map[string]string {
	return map[string]string{
		"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
		"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func TestJWKS(t *testing.T) {
	a, _ := rsa.GenerateKey(rand.Reader, 2048)
	b, _ := rsa.GenerateKey(rand.Reader, 2048)
	dir := t.TempDir()
	write := func(name string, v any) string {
		raw, _ := json.Marshal(v)
		f := filepath.Join(dir, name)
		must(t, os.WriteFile(f, raw, 0o600))
		return f
	}
	set := write("jwks.json", map[string]any{"keys": []any{
		jwk("a", &a.PublicKey),
		jwk("b", &b.PublicKey),
		map[string]string{"kty": "EC", "kid": "ec", "crv": "P-256"}, // skipped
	}})
	k, err := LoadKey("RS256", "", set)
	if err != nil {
		t.Fatal(err)
	}
	signKID := func(priv *rsa.PrivateKey, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, grant([]string{"*"}, nil))
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(priv)
		must(t, err)
		return s
	}
	tests := []struct {
		name  string
		token string
		valid bool
	}{
		{"kid a", signKID(a, "a"), true},
		{"kid b", signKID(b, "b"), true},
		{"kid a signed by b", signKID(b, "a"), false},
		{"unknown kid", signKID(a, "c"), false},
		{"no kid with two keys", signKID(a, ""), false},
		{"the EC kid", signKID(a, "ec"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := k.Verify(tt.token, time.Now()); (err == nil) != tt.valid {
				t.Fatalf("Verify: %v, want valid %v", err, tt.valid)
			}
		})
	}
	for name, v := range map[string]any{
		"empty":       map[string]any{"keys": []any{}},
		"only EC":     map[string]any{"keys": []any{map[string]string{"kty": "EC"}}},
		"kid twice":   map[string]any{"keys": []any{jwk("a", &a.PublicKey), jwk("a", &b.PublicKey)}},
		"bad modulus": map[string]any{"keys": []any{map[string]string{"kty": "RSA", "n": "!!", "e": "AQAB"}}},
		"small key":   map[string]any{"keys": []any{map[string]string{"kty": "RSA", "n": "AQAB", "e": "AQAB"}}},
	} {
		if _, err := LoadKey("RS256", "", write(strings.ReplaceAll(name, " ", "-")+".json", v)); err == nil {
			t.Errorf("JWKS %s accepted", name)
		}
	}
}
